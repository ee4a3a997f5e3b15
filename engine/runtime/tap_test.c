/* tap_test.c - the tap's ring: records leave as lines, what does not fit or
 * goes past the rate cap is counted as missed, the limit ends the tap, and
 * closing from either side (reader, pipeline) frees it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/batch.h"
#include "runtime/host_api.h"
#include "runtime/pipeline.h"
#include "runtime/tap.h"

struct fixture {
	struct pipeline p;
	struct cv_stage st;
	struct batch *b;
};

static struct fixture *fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->p.taps = tap_hub_new();
	assert_non_null(f->p.taps);
	f->p.stages = &f->st;
	f->p.nstages = 1;
	f->st.pipeline = &f->p;
	f->st.name = "s";
	f->b = batch_new(1024, 8, 1 << 20);
	assert_non_null(f->b);
	return f;
}

static void fixture_free(struct fixture *f)
{
	tap_hub_close(f->p.taps, &f->st, 1);
	batch_free(f->b);
	free(f);
}

/* Fills the batch with n records seq = first.., every `drop_every`th dropped. */
static void fill(struct fixture *f, uint32_t n, int64_t first, uint32_t drop_every)
{
	batch_reset(f->b);
	for (uint32_t i = 0; i < n; i++) {
		struct cv_record *r = cv_batch_record_new(&f->b->pub);
		assert_non_null(r);
		r->measurement = "m";
		r->measurement_len = 1;
		r->timestamp = 1000 + i;
		assert_non_null(cv_record_add_int(&host_api, &f->b->pub, r, "seq", 3, first + i));
		if (drop_every && i % drop_every == drop_every - 1)
			cv_record_drop(&f->b->pub, r);
	}
}

static size_t read_all(struct tap *t, char *buf, size_t cap)
{
	size_t n = 0, k;
	while ((k = tap_read(t, buf + n, cap - n, false)) > 0)
		n += k;
	buf[n] = '\0';
	return n;
}

static void test_lines_and_drops(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	const char *why = NULL;
	assert_false(atomic_load(&f->st.tapped));
	struct tap *t = tap_attach(&f->p, &f->st, TAP_FORMAT_JSON, 0, &why);
	assert_non_null(t);
	assert_true(atomic_load(&f->st.tapped));
	assert_int_equal(tap_count(&f->st), 1);
	fill(f, 6, 1, 3); /* seq 3 and 6 dropped */
	tap_point(&f->st, &f->b->pub);
	char buf[4096];
	read_all(t, buf, sizeof buf - 1);
	assert_string_equal(
	        buf,
	        "{\"measurement\":\"m\",\"timestamp\":1000,\"tags\":{},\"fields\":{\"seq\":1}}\n"
	        "{\"measurement\":\"m\",\"timestamp\":1001,\"tags\":{},\"fields\":{\"seq\":2}}\n"
	        "{\"measurement\":\"m\",\"timestamp\":1003,\"tags\":{},\"fields\":{\"seq\":4}}\n"
	        "{\"measurement\":\"m\",\"timestamp\":1004,\"tags\":{},\"fields\":{\"seq\":5}}\n");
	struct tap_status s;
	tap_get_status(t, &s);
	assert_int_equal(s.records, 4);
	assert_int_equal(s.missed, 0);
	assert_int_equal(s.end, TAP_RUNNING);
	assert_false(tap_pending(t));

	/* line_end: one line at a time; discard counts whole lines. */
	fill(f, 3, 10, 0);
	tap_point(&f->st, &f->b->pub);
	size_t n = tap_read(t, buf, 10, false);
	assert_int_equal(n, 10);
	n = tap_read(t, buf, sizeof buf, true);
	assert_true(n > 0 && buf[n - 1] == '\n' && memchr(buf, '\n', n) == buf + n - 1);
	assert_int_equal(tap_discard(t), 2);
	assert_false(tap_pending(t));

	tap_close(t);
	assert_false(atomic_load(&f->st.tapped));
	assert_int_equal(tap_count(&f->st), 0);
	fixture_free(f);
}

static void test_limit_ends_the_tap(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	const char *why = NULL;
	struct tap *t = tap_attach(&f->p, &f->st, TAP_FORMAT_INFLUX, 5, &why);
	assert_non_null(t);
	fill(f, 3, 1, 0);
	tap_point(&f->st, &f->b->pub);
	fill(f, 3, 4, 0);
	tap_point(&f->st, &f->b->pub);
	struct tap_status s;
	tap_get_status(t, &s);
	assert_int_equal(s.records, 5);
	assert_int_equal(s.missed, 0); /* past the limit is not missed */
	assert_int_equal(s.end, TAP_END_LIMIT);
	assert_string_equal(tap_end_name(s.end), "limit");
	assert_false(atomic_load(&f->st.tapped)); /* the worker let go */
	char buf[4096];
	read_all(t, buf, sizeof buf - 1);
	assert_string_equal(buf, "m seq=1i 1000\nm seq=2i 1001\nm seq=3i 1002\nm seq=4i 1000\n"
	                         "m seq=5i 1001\n");
	tap_close(t);
	fixture_free(f);
}

static void test_full_ring_and_rate_cap_miss(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	const char *why = NULL;
	struct tap *t = tap_attach(&f->p, &f->st, TAP_FORMAT_JSON, 0, &why);
	assert_non_null(t);
	/* Nobody reads: the burst of the rate cap, then nothing more. */
	uint64_t published = 0;
	for (int i = 0; i < 100; i++) {
		fill(f, 1000, i * 1000, 0);
		tap_point(&f->st, &f->b->pub);
		published += 1000;
	}
	struct tap_status s;
	tap_get_status(t, &s);
	assert_true(s.records > 0);
	assert_true(s.records < published);
	assert_int_equal(s.records + s.missed, published);
	uint64_t lines = tap_discard(t);
	assert_int_equal(lines, s.records);
	tap_close(t);
	fixture_free(f);
}

static void test_pipeline_closes_first(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	const char *why = NULL;
	struct tap *a = tap_attach(&f->p, &f->st, TAP_FORMAT_JSON, 0, &why);
	struct tap *b = tap_attach(&f->p, &f->st, TAP_FORMAT_JSON, 0, &why);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(tap_count(&f->st), 2);
	fill(f, 2, 1, 0);
	tap_point(&f->st, &f->b->pub);
	tap_hub_close(f->p.taps, &f->st, 1);
	f->p.taps = NULL;
	/* The readers still read what came, then see the end. */
	struct tap_status s;
	tap_get_status(a, &s);
	assert_int_equal(s.end, TAP_END_PIPELINE);
	assert_true(tap_pending(a));
	char buf[4096];
	assert_true(read_all(a, buf, sizeof buf - 1) > 0);
	tap_close(a);
	tap_close(b); /* the hub goes with the last tap */
	batch_free(f->b);
	free(f);
}

static void test_open_taps_are_bounded(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct tap *t[TAP_MAX_OPEN];
	const char *why = NULL;
	for (int i = 0; i < TAP_MAX_OPEN; i++) {
		t[i] = tap_attach(&f->p, &f->st, TAP_FORMAT_JSON, 0, &why);
		assert_non_null(t[i]);
	}
	assert_null(tap_attach(&f->p, &f->st, TAP_FORMAT_JSON, 0, &why));
	assert_string_equal(why, "too many taps open");
	tap_close(t[0]);
	t[0] = tap_attach(&f->p, &f->st, TAP_FORMAT_JSON, 0, &why);
	assert_non_null(t[0]);
	for (int i = 0; i < TAP_MAX_OPEN; i++)
		tap_close(t[i]);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_lines_and_drops),
	        cmocka_unit_test(test_limit_ends_the_tap),
	        cmocka_unit_test(test_full_ring_and_rate_cap_miss),
	        cmocka_unit_test(test_pipeline_closes_first),
	        cmocka_unit_test(test_open_taps_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
