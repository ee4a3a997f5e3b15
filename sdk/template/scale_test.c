/*
 * scale_test.c - unit tests of the scale transform against the real host.
 *
 * <conveyor/test_harness.h> (pkg-config conveyor-sdk-test) runs the plugin's
 * stage in this process with the engine's own option validation, host API
 * and batches: what passes here behaves the same under `conveyor run`.
 * `make test` builds and runs it (or `ctest` in a CMake build).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/test_harness.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* Adds a record with speed_ms = v (a float, or an int when `as_int`), or
 * without the field when v is NAN. */
static void add(struct cv_harness *h, struct cv_batch *b, double v, bool as_int)
{
	struct cv_record *r = cv_batch_record_new(b);
	CHECK(r);
	r->measurement = "conveyor_speed";
	r->measurement_len = 14;
	if (isnan(v))
		CHECK(cv_record_add_int(cv_harness_api(h), b, r, "seq", 3, 1));
	else if (as_int)
		CHECK(cv_record_add_int(cv_harness_api(h), b, r, "speed_ms", 8, (int64_t)v));
	else
		CHECK(cv_record_add_float(cv_harness_api(h), b, r, "speed_ms", 8, v));
}

static void test_scales_and_rejects(void)
{
	struct cv_harness *h = NULL;
	CHECK(cv_harness_open(&cv_plugin_descriptor,
	                      "{field: speed_ms, factor: 3.6, offset: 1, output_field: kmh, "
	                      "decimals: 1}",
	                      16, &h) == 0);
	struct cv_batch *b = cv_harness_batch(h);
	add(h, b, 2.0, false);
	add(h, b, 10, true);
	add(h, b, NAN, false);
	CHECK(cv_harness_process(h, b) == 0);

	const struct cv_field *f = cv_record_find_field(&b->records[0], "kmh", 3);
	CHECK(f && f->type == CV_FIELD_FLOAT && fabs(f->v.f - 8.2) < 1e-9);
	f = cv_record_find_field(&b->records[1], "kmh", 3);
	CHECK(f && fabs(f->v.f - 37.0) < 1e-9);
	/* the record without the field is rejected: dead-lettered and dropped */
	CHECK(b->records[2].flags & CV_RECORD_DROPPED);
	CHECK(b->live == 2);
	CHECK(cv_harness_dead_lettered(h) == 1);
	CHECK(cv_harness_metric(h, "conveyor_scale_skipped_total", "missing") == 1);
	cv_harness_close(h);
}

static void test_options_refused(void)
{
	struct cv_harness *h = NULL;
	/* by the schema (decimals 0..15), and by scale's check */
	CHECK(cv_harness_open(&cv_plugin_descriptor, "{field: x, decimals: 16}", 16, &h) ==
	      CV_ECONFIG);
	CHECK(cv_harness_open(&cv_plugin_descriptor, "{field: x, output_field: x}", 16, &h) ==
	      CV_ECONFIG);
	CHECK(cv_harness_open(&cv_plugin_descriptor, "{factor: 2}", 16, &h) == CV_ECONFIG);
}

int main(void)
{
	test_scales_and_rejects();
	test_options_refused();
	printf("scale_test: ok\n");
	return 0;
}
