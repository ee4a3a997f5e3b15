/* console_test.c - the console sink's three formats and only_anomalies,
 * reading back what it wrote to stdout. */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testing/stage_harness.h"

extern const struct cv_plugin cv_plugin_descriptor;

static const struct cv_tag line3 = {"line_id", "line-3", 7, 6};

/* 2026-11-26T12:00:00.123Z */
#define TS 1795694400123456789LL

static struct cv_record *add(struct harness *h, struct cv_batch *b, double speed, int64_t seq,
                             int anomaly)
{
	const struct cv_host_api *api = harness_api(h);
	struct cv_record *r = cv_batch_record_new(b);
	assert_non_null(r);
	r->measurement = "conveyor_speed";
	r->measurement_len = 14;
	r->timestamp = TS;
	r->tags = &line3;
	r->ntags = 1;
	cv_record_add_float(api, b, r, "speed_ms", 8, speed);
	cv_record_add_int(api, b, r, "seq", 3, seq);
	if (anomaly >= 0) {
		cv_record_add_float(api, b, r, "zscore", 6, anomaly ? -7.9 : 0.25);
		cv_record_add_bool(api, b, r, "anomaly", 7, anomaly);
	}
	return r;
}

/* Runs harness_write with stdout sent to a file; returns what was printed
 * (caller frees) and the write's result in *rc. */
static char *capture_write(struct harness *h, struct cv_batch *b, int *rc)
{
	char path[] = "/tmp/console_test_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stdout);
	int saved = dup(1);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, 1), 1);
	*rc = harness_write(h, b);
	fflush(stdout);
	assert_int_equal(dup2(saved, 1), 1);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	char *out = calloc(1, (size_t)len + 1);
	assert_int_equal(pread(fd, out, (size_t)len, 0), len);
	close(fd);
	return out;
}

static struct harness *open_console(const char *options)
{
	struct harness *h = NULL;
	int rc = harness_open(&cv_plugin_descriptor, options, 64, &h);
	if (rc)
		fail_msg("harness_open(%s) = %d", options, rc);
	return h;
}

static void test_text(void **state)
{
	struct harness *h = open_console("{}");
	struct cv_batch *b = harness_batch(h);
	add(h, b, 0.0, 1234, 1);
	add(h, b, 2.0125, 1235, 0);
	add(h, b, 1.5, 7, -1);
	struct cv_record *dropped = add(h, b, 9.9, 9, 0);
	cv_record_drop(b, dropped);
	int rc;
	char *out = capture_write(h, b, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out,
	                    "2026-11-26T12:00:00.123Z conveyor_speed line_id=line-3 speed_ms=0.000 "
	                    "seq=1234 zscore=-7.900 ANOMALY\n"
	                    "2026-11-26T12:00:00.123Z conveyor_speed line_id=line-3 speed_ms=2.013 "
	                    "seq=1235 zscore=0.250\n"
	                    "2026-11-26T12:00:00.123Z conveyor_speed line_id=line-3 speed_ms=1.500 "
	                    "seq=7\n");
	free(out);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 3);

	/* hostile bytes stay on one line; other field types */
	b = harness_batch(h);
	struct cv_tag t = {"k", "a\nb\tc\x01", 1, 6};
	struct cv_record *r = cv_batch_record_new(b);
	r->measurement = "m";
	r->measurement_len = 1;
	r->timestamp = -1; /* before 1970 */
	r->tags = &t;
	r->ntags = 1;
	struct cv_field *f = cv_record_add_field(harness_api(h), b, r);
	*f = (struct cv_field){
	        .key = "s", .key_len = 1, .type = CV_FIELD_STRING, .v.s = "x\r\ny", .str_len = 4};
	cv_record_add_bool(harness_api(h), b, r, "ok", 2, true);
	cv_record_add_float(harness_api(h), b, r, "big", 3, 1e300);
	out = capture_write(h, b, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out,
	                    "1969-12-31T23:59:59.999Z m k=a\\nb\\tc\\x01 s=\"x\\r\\ny\" ok=true "
	                    "big=1e+300\n");
	free(out);
	harness_close(h);
}

static void test_only_anomalies(void **state)
{
	struct harness *h = open_console("{only_anomalies: true}");
	struct cv_batch *b = harness_batch(h);
	for (int i = 0; i < 10; i++)
		add(h, b, 2.0, i, i == 4 ? 1 : i == 7 ? -1 : 0);
	int rc;
	char *out = capture_write(h, b, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "2026-11-26T12:00:00.123Z conveyor_speed line_id=line-3 "
	                         "speed_ms=2.000 seq=4 zscore=-7.900 ANOMALY\n");
	free(out);
	/* everything is acknowledged as delivered */
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 10);

	/* a batch without anomalies prints nothing */
	b = harness_batch(h);
	add(h, b, 2.0, 1, 0);
	out = capture_write(h, b, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 11);
	harness_close(h);
}

static void test_json_and_influx(void **state)
{
	struct harness *h = open_console("{format: json}");
	struct cv_batch *b = harness_batch(h);
	add(h, b, 1.25, 42, -1);
	struct cv_record *bad = add(h, b, NAN, 43, -1); /* not encodable */
	(void)bad;
	add(h, b, 2.0, 44, 1);
	int rc;
	char *out = capture_write(h, b, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(
	        out, "{\"measurement\":\"conveyor_speed\",\"timestamp\":1795694400123456789,"
	             "\"tags\":{\"line_id\":\"line-3\"},\"fields\":{\"speed_ms\":1.25,\"seq\":"
	             "42}}\n"
	             "{\"measurement\":\"conveyor_speed\",\"timestamp\":1795694400123456789,"
	             "\"tags\":{\"line_id\":\"line-3\"},\"fields\":{\"speed_ms\":2.0,\"seq\":44,"
	             "\"zscore\":-7.9,\"anomaly\":true}}\n");
	free(out);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 2);
	assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 1);
	harness_close(h);

	h = open_console("{format: influx}");
	b = harness_batch(h);
	add(h, b, 1.25, 42, 0);
	out = capture_write(h, b, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "conveyor_speed,line_id=line-3 speed_ms=1.25,seq=42i,zscore=0.25,"
	                         "anomaly=f 1795694400123456789\n");
	free(out);
	harness_close(h);
}

static void test_options(void **state)
{
	struct harness *h = NULL;
	assert_true(harness_open(&cv_plugin_descriptor, "{format: xml}", 16, &h) < 0);
	assert_true(harness_open(&cv_plugin_descriptor, "{only_anomalies: maybe}", 16, &h) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_text),
	        cmocka_unit_test(test_only_anomalies),
	        cmocka_unit_test(test_json_and_influx),
	        cmocka_unit_test(test_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
