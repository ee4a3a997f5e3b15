/* offset_tracker_test.c - the commit position: contiguous settled prefix,
 * out-of-order settles, failures, gaps, revocation and slot reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "offset_tracker.h"

static struct offset_tracker *t;

static int setup(void **state)
{
	t = offset_tracker_new();
	return t ? 0 : -1;
}

static int teardown(void **state)
{
	offset_tracker_free(t);
	t = NULL;
	return 0;
}

static int64_t committable(int slot)
{
	int64_t off = -1;
	return offset_tracker_committable(t, slot, &off) ? off : -1;
}

static void test_nothing_consumed(void **state)
{
	int s = offset_tracker_assign(t, 0, 3);
	assert_true(s > 0);
	assert_int_equal(offset_tracker_find(t, 0, 3), s);
	assert_int_equal(offset_tracker_find(t, 0, 4), 0);
	assert_int_equal(offset_tracker_position(t, s), -1);
	assert_int_equal(committable(s), -1);
	assert_int_equal(offset_tracker_assign(t, 0, 3), s); /* idempotent */
}

static void test_in_order(void **state)
{
	int s = offset_tracker_assign(t, 0, 0);
	uint64_t tok[5];
	for (int i = 0; i < 5; i++) {
		tok[i] = offset_tracker_consume(t, s, 100 + i);
		assert_true(tok[i] != 0);
		assert_int_equal(offset_tracker_token_slot(tok[i]), s);
		assert_int_equal(offset_tracker_token_offset(tok[i]), 100 + i);
	}
	assert_int_equal(offset_tracker_in_flight(t), 5);
	assert_int_equal(offset_tracker_position(t, s), 100);
	offset_tracker_settle(t, tok[0], OT_DONE);
	offset_tracker_settle(t, tok[1], OT_DONE);
	assert_int_equal(committable(s), 102);
	offset_tracker_mark_committed(t, s, 102);
	assert_int_equal(committable(s), -1); /* no progress since */
	for (int i = 2; i < 5; i++)
		offset_tracker_settle(t, tok[i], OT_DONE);
	assert_int_equal(committable(s), 105);
	assert_int_equal(offset_tracker_in_flight(t), 0);
}

static void test_out_of_order(void **state)
{
	int s = offset_tracker_assign(t, 0, 1);
	uint64_t tok[6];
	for (int i = 0; i < 6; i++)
		tok[i] = offset_tracker_consume(t, s, i);
	/* The sink completes 5, 3, 1 first: nothing before 0 is settled. */
	offset_tracker_settle(t, tok[5], OT_DONE);
	offset_tracker_settle(t, tok[3], OT_DONE);
	offset_tracker_settle(t, tok[1], OT_DONE);
	assert_int_equal(offset_tracker_position(t, s), 0);
	assert_int_equal(committable(s), 0);
	offset_tracker_mark_committed(t, s, 0);
	offset_tracker_settle(t, tok[0], OT_DONE); /* 0 and 1 done: up to 2 */
	assert_int_equal(committable(s), 2);
	offset_tracker_settle(t, tok[2], OT_DONE); /* 0..3 done */
	assert_int_equal(committable(s), 4);
	offset_tracker_settle(t, tok[4], OT_DONE);
	assert_int_equal(committable(s), 6);
}

static void test_gaps(void **state)
{
	/* Compacted topics and transaction markers leave holes in offsets. */
	int s = offset_tracker_assign(t, 0, 2);
	uint64_t a = offset_tracker_consume(t, s, 10);
	uint64_t b = offset_tracker_consume(t, s, 15);
	uint64_t c = offset_tracker_consume(t, s, 1000);
	assert_int_equal(offset_tracker_consume(t, s, 1000), 0); /* not rising */
	assert_int_equal(offset_tracker_consume(t, s, 999), 0);
	offset_tracker_settle(t, c, OT_DONE);
	offset_tracker_settle(t, a, OT_DONE);
	assert_int_equal(committable(s), 15);
	offset_tracker_settle(t, b, OT_DONE);
	assert_int_equal(committable(s), 1001);
}

static void test_failure_pins(void **state)
{
	int s = offset_tracker_assign(t, 0, 0);
	uint64_t tok[6];
	for (int i = 0; i < 6; i++)
		tok[i] = offset_tracker_consume(t, s, i);
	offset_tracker_settle(t, tok[0], OT_DONE);
	assert_true(offset_tracker_settle(t, tok[3], OT_FAILED)); /* first pin */
	assert_int_equal(offset_tracker_failed_at(t, s), 3);
	offset_tracker_settle(t, tok[4], OT_DONE);
	offset_tracker_settle(t, tok[5], OT_DONE);
	assert_int_equal(committable(s), 1);
	offset_tracker_settle(t, tok[1], OT_DONE);
	offset_tracker_settle(t, tok[2], OT_DONE);
	assert_int_equal(committable(s), 3); /* never past the failed record */
	/* Later records are counted, not kept, and never move the position. */
	for (int i = 6; i < 1000; i++) {
		uint64_t k = offset_tracker_consume(t, s, i);
		assert_true(k != 0);
		offset_tracker_settle(t, k, OT_DONE);
	}
	assert_int_equal(offset_tracker_position(t, s), 3);
	assert_int_equal(offset_tracker_in_flight(t), 0);
	/* An earlier failure moves the pin back, without a second log. */
	int s2 = offset_tracker_assign(t, 0, 9);
	uint64_t x = offset_tracker_consume(t, s2, 1);
	uint64_t y = offset_tracker_consume(t, s2, 2);
	assert_true(offset_tracker_settle(t, y, OT_FAILED));
	assert_false(offset_tracker_settle(t, x, OT_FAILED));
	assert_int_equal(offset_tracker_position(t, s2), 1);
}

static void test_settle_twice(void **state)
{
	int s = offset_tracker_assign(t, 0, 0);
	uint64_t a = offset_tracker_consume(t, s, 0);
	uint64_t b = offset_tracker_consume(t, s, 1);
	offset_tracker_settle(t, b, OT_DONE);
	offset_tracker_settle(t, b, OT_DONE); /* copied token: ignored */
	assert_int_equal(offset_tracker_in_flight(t), 1);
	assert_int_equal(committable(s), 0);
	offset_tracker_settle(t, a, OT_DONE);
	assert_int_equal(committable(s), 2);
	offset_tracker_settle(t, 0, OT_DONE); /* a record a transform added */
	assert_int_equal(offset_tracker_in_flight(t), 0);
}

static void test_revocation(void **state)
{
	int s = offset_tracker_assign(t, 0, 4);
	uint64_t a = offset_tracker_consume(t, s, 50);
	uint64_t b = offset_tracker_consume(t, s, 51);
	offset_tracker_settle(t, a, OT_DONE);
	assert_int_equal(committable(s), 51);
	offset_tracker_revoke(t, s);
	assert_int_equal(offset_tracker_find(t, 0, 4), 0);
	assert_int_equal(committable(s), -1);
	assert_int_equal(offset_tracker_in_flight(t), 0); /* active slots only */

	/* Re-assigned while 51 is still in flight: a fresh slot, not the
	 * retired one, so the late ack cannot move the new position. */
	int s2 = offset_tracker_assign(t, 0, 4);
	assert_true(s2 > 0);
	assert_int_not_equal(s2, s);
	uint64_t c = offset_tracker_consume(t, s2, 51); /* re-read from 51 */
	offset_tracker_settle(t, b, OT_DONE);           /* the old one lands */
	assert_int_equal(offset_tracker_position(t, s2), 51);
	assert_int_equal(committable(s2), 51);
	offset_tracker_settle(t, c, OT_DONE);
	assert_int_equal(committable(s2), 52);

	/* The retired slot is free again once its last ack came back. */
	int s3 = offset_tracker_assign(t, 1, 0);
	assert_int_equal(s3, s);
}

static void test_many_partitions_and_growth(void **state)
{
	int slots[40];
	for (int p = 0; p < 40; p++)
		slots[p] = offset_tracker_assign(t, 0, p);
	for (int p = 0; p < 40; p++)
		assert_int_equal(offset_tracker_find(t, 0, p), slots[p]);
	static uint64_t toks[5000];
	for (int i = 0; i < 5000; i++)
		toks[i] = offset_tracker_consume(t, slots[7], i);
	/* Settle in reverse: the position stays until the very first. */
	for (int i = 4999; i > 0; i--)
		offset_tracker_settle(t, toks[i], OT_DONE);
	assert_int_equal(offset_tracker_position(t, slots[7]), 0);
	offset_tracker_settle(t, toks[0], OT_DONE);
	assert_int_equal(offset_tracker_position(t, slots[7]), 5000);
	int n = 0;
	for (int s = offset_tracker_next(t, 0); s; s = offset_tracker_next(t, s))
		n++;
	assert_int_equal(n, 40);
	uint32_t topic;
	int32_t part;
	assert_true(offset_tracker_slot_info(t, slots[9], &topic, &part));
	assert_int_equal(part, 9);
}

static void test_wraparound(void **state)
{
	/* A steady window of 100 in flight walks the ring around many times. */
	int s = offset_tracker_assign(t, 0, 0);
	static uint64_t toks[20000];
	for (int i = 0; i < 20000; i++) {
		toks[i] = offset_tracker_consume(t, s, i);
		if (i >= 100)
			offset_tracker_settle(t, toks[i - 100], OT_DONE);
	}
	assert_int_equal(offset_tracker_position(t, s), 19900);
	assert_int_equal(offset_tracker_in_flight(t), 100);
}

static void test_bad_input(void **state)
{
	assert_int_equal(offset_tracker_consume(t, 0, 1), 0);
	assert_int_equal(offset_tracker_consume(t, 99, 1), 0);
	int s = offset_tracker_assign(t, 0, 0);
	assert_int_equal(offset_tracker_consume(t, s, -1), 0);
	assert_int_equal(offset_tracker_consume(t, s, OT_OFFSET_MAX + 1), 0);
	assert_true(offset_tracker_consume(t, s, OT_OFFSET_MAX) != 0);
	assert_false(offset_tracker_settle(t, UINT64_MAX, OT_DONE));
	offset_tracker_revoke(t, 1234);
	offset_tracker_mark_committed(t, 1234, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_nothing_consumed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_gaps, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_failure_pins, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_settle_twice, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_revocation, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_many_partitions_and_growth, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_wraparound, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
