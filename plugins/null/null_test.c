/* null_test.c - the null sink accepts no options and delivers everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing/stage_harness.h"

extern const struct cv_plugin cv_plugin_descriptor;

static void test_discards_and_delivers(void **state)
{
	struct harness *h = NULL;
	assert_int_equal(harness_open(&cv_plugin_descriptor, "{}", 128, &h), 0);
	for (int round = 0; round < 3; round++) {
		struct cv_batch *b = harness_batch(h);
		for (int i = 0; i < 100; i++) {
			struct cv_record *r = cv_batch_record_new(b);
			r->measurement = "m";
			r->measurement_len = 1;
			cv_record_add_int(harness_api(h), b, r, "v", 1, i);
		}
		cv_record_drop(b, &b->records[7]);
		assert_int_equal(harness_write(h, b), 0);
	}
	/* an empty batch is fine too */
	assert_int_equal(harness_write(h, harness_batch(h)), 0);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 3 * 99);
	assert_int_equal(harness_acked(h, CV_ACK_FAILED), 0);
	harness_close(h);
}

static void test_no_options(void **state)
{
	struct harness *h = NULL;
	assert_true(harness_open(&cv_plugin_descriptor, "{path: x}", 16, &h) < 0);
	assert_int_equal(cv_plugin_descriptor.kind, CV_KIND_SINK);
	assert_int_equal(cv_plugin_descriptor.flags & CV_PLUGIN_ASYNC_ACK, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_discards_and_delivers),
	        cmocka_unit_test(test_no_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
