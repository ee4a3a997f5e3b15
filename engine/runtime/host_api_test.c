/* host_api_test.c - the host services added in ABI 1.1, through the stage
 * harness: reject() for each kind, the cv_context of a stage without init,
 * CV_HOST_HAS, and the inline helpers that came with them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/host_api.h"
#include "testing/stage_harness.h"

struct cfg {
	struct cv_field_name field;
};

static const struct cv_option options[] = {
        CV_OPTION(struct cfg, field, CV_OPT_FIELD_NAME, .flags = CV_OPT_REQUIRED),
        {0},
};

/* A transform without init or destroy: its state is the host's context.
 * Rejects every record without the field; rejects record 0 twice. */
static int reject_process(void *state, struct cv_batch *batch)
{
	const struct cv_context *cx = state;
	const struct cfg *cfg = cx->config;
	for (struct cv_record *r = NULL; (r = cv_batch_next(batch, r));)
		if (!cv_record_find_field(r, cfg->field.name, cfg->field.len))
			cx->api->reject(cx->stage, batch, r, "no field");
	if (batch->count)
		cx->api->reject(cx->stage, batch, &batch->records[0], "again");
	return 0;
}

static const struct cv_plugin transform = {
        CV_PLUGIN_HEADER,
        .name = "rejecter",
        .kind = CV_KIND_TRANSFORM,
        .options = options,
        .config_size = sizeof(struct cfg),
        .process = reject_process,
};

/* A synchronous sink without init: rejects records whose field is missing;
 * the host settles the rest as delivered. */
static int reject_write(void *state, struct cv_batch *batch)
{
	return reject_process(state, batch);
}

static const struct cv_plugin sink = {
        CV_PLUGIN_HEADER,   .name = "rejecting_sink",          .kind = CV_KIND_SINK,
        .options = options, .config_size = sizeof(struct cfg), .write = reject_write,
};

/* Records 0..n-1; those with i % 3 == 0 lack field "v". */
static struct cv_batch *fill(struct harness *h, int n)
{
	struct cv_batch *b = harness_batch(h);
	for (int i = 0; i < n; i++) {
		struct cv_record *r = cv_batch_record_new(b);
		assert_non_null(r);
		r->measurement = "m";
		r->measurement_len = 1;
		assert_non_null(cv_record_add_int(harness_api(h), b, r, i % 3 ? "v" : "w", 1, i));
	}
	return b;
}

static void test_transform_reject(void **unused)
{
	(void)unused;
	struct harness *h = NULL;
	assert_int_equal(harness_open(&transform, "{field: v}", 64, &h), 0);
	const struct cv_context *cx = harness_state(h);
	assert_ptr_equal(cx->api, harness_api(h));
	assert_string_equal(((const struct cfg *)cx->config)->field.name, "v");

	struct cv_batch *b = fill(h, 9);
	cv_record_drop(b, &b->records[3]); /* filtered earlier: neither visited nor rejected */
	assert_int_equal(harness_process(h, b), 0);
	/* records 0 and 6 rejected (3 was dropped already); the second reject of
	 * record 0 changes nothing */
	assert_int_equal(harness_dead_lettered(h), 2);
	assert_int_equal(b->live, 6);
	for (uint32_t i = 0; i < b->count; i++)
		assert_int_equal(!!(b->records[i].flags & CV_RECORD_DROPPED), i % 3 == 0);
	/* a record of another batch is not this batch's: ignored */
	struct cv_record stray = {0};
	harness_api(h)->reject(cx->stage, b, &stray, "stray");
	assert_int_equal(harness_dead_lettered(h), 2);
	harness_close(h);
}

static void test_sink_reject(void **unused)
{
	(void)unused;
	struct harness *h = NULL;
	assert_int_equal(harness_open(&sink, "{field: v}", 64, &h), 0);
	struct cv_batch *b = fill(h, 9);
	assert_int_equal(harness_write(h, b), 0);
	assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 3);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 6);
	assert_int_equal(harness_acked(h, CV_ACK_FAILED), 0);
	harness_close(h);
}

static void test_host_table(void **unused)
{
	(void)unused;
	assert_true(CV_HOST_HAS(&host_api, reject));
	assert_true(CV_HOST_HAS(&host_api, log));
	assert_int_equal(host_api.abi_minor, CV_ABI_MINOR);
	/* A 1.0 table ends before check_error. */
	struct cv_host_api old = host_api;
	old.struct_size = (uint32_t)offsetof(struct cv_host_api, check_error);
	assert_false(CV_HOST_HAS(&old, check_error));
	assert_false(CV_HOST_HAS(&old, reject));
	assert_true(CV_HOST_HAS(&old, stopping));
}

static void test_inline_helpers(void **unused)
{
	(void)unused;
	assert_string_equal(cv_error_name(CV_ECONFIG), "CV_ECONFIG");
	assert_string_equal(cv_error_name(0), "CV_OK");
	assert_string_equal(cv_error_name(CV_ESTATE), "CV_ESTATE");
	assert_string_equal(cv_error_name(-8), "CV_E?");
	assert_string_equal(cv_error_name(1), "CV_E?");

	struct cv_field f = {.type = CV_FIELD_INT, .v.i = -4};
	double v = 1;
	assert_true(cv_field_number(&f, &v) && v == -4);
	f = (struct cv_field){.type = CV_FIELD_FLOAT, .v.f = 2.5};
	assert_true(cv_field_number(&f, &v) && v == 2.5);
	f = (struct cv_field){.type = CV_FIELD_BOOL, .v.b = true};
	assert_false(cv_field_number(&f, &v));
	assert_false(cv_field_number(NULL, &v));
	assert_true(v == 2.5);

	struct cv_record recs[4] = {
	        {.flags = CV_RECORD_DROPPED}, {0}, {.flags = CV_RECORD_DROPPED}, {0}};
	struct cv_batch b = {.records = recs, .count = 4, .capacity = 4, .live = 2};
	assert_ptr_equal(cv_batch_next(&b, NULL), &recs[1]);
	assert_ptr_equal(cv_batch_next(&b, &recs[1]), &recs[3]);
	assert_null(cv_batch_next(&b, &recs[3]));
	b.count = 0;
	assert_null(cv_batch_next(&b, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_transform_reject),
	        cmocka_unit_test(test_sink_reject),
	        cmocka_unit_test(test_host_table),
	        cmocka_unit_test(test_inline_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
