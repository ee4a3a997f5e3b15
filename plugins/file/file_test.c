/* file_test.c - the file sink: JSON and line protocol appended and read
 * back, rejected records, write failures rolled back. */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testing/stage_harness.h"

extern const struct cv_plugin cv_plugin_descriptor;

static char dir[64];
static char path[128];

static int setup(void **state)
{
	strcpy(dir, "/tmp/file_test_XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/out.log", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

static const struct cv_tag line1 = {"line_id", "line-1", 7, 6};

static void add(struct harness *h, struct cv_batch *b, double speed, int64_t seq)
{
	const struct cv_host_api *api = harness_api(h);
	struct cv_record *r = cv_batch_record_new(b);
	assert_non_null(r);
	r->measurement = "conveyor_speed";
	r->measurement_len = 14;
	r->timestamp = 1700000000000000000 + seq;
	r->tags = &line1;
	r->ntags = 1;
	cv_record_add_float(api, b, r, "speed_ms", 8, speed);
	cv_record_add_int(api, b, r, "seq", 3, seq);
}

static char *slurp(void)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	static char data[1 << 20];
	size_t n = fread(data, 1, sizeof data - 1, fp);
	data[n] = '\0';
	fclose(fp);
	return data;
}

static struct harness *open_file(const char *extra)
{
	char options[512];
	snprintf(options, sizeof options, "{path: \"%s\"%s%s}", path, extra ? ", " : "",
	         extra ? extra : "");
	struct harness *h = NULL;
	int rc = harness_open(&cv_plugin_descriptor, options, 64, &h);
	if (rc)
		fail_msg("harness_open(%s) = %d", options, rc);
	return h;
}

static void test_json_append(void **state)
{
	FILE *fp = fopen(path, "w");
	fputs("existing line\n", fp);
	fclose(fp);

	struct harness *h = open_file(NULL);
	struct cv_batch *b = harness_batch(h);
	add(h, b, 1.5, 1);
	add(h, b, 2.0, 2);
	assert_int_equal(harness_write(h, b), 0);
	b = harness_batch(h);
	add(h, b, 0.1, 3);
	assert_int_equal(harness_write(h, b), 0);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 3);
	harness_close(h);

	assert_string_equal(
	        slurp(),
	        "existing line\n"
	        "{\"measurement\":\"conveyor_speed\",\"timestamp\":1700000000000000001,"
	        "\"tags\":{\"line_id\":\"line-1\"},\"fields\":{\"speed_ms\":1.5,\"seq\":1}}\n"
	        "{\"measurement\":\"conveyor_speed\",\"timestamp\":1700000000000000002,"
	        "\"tags\":{\"line_id\":\"line-1\"},\"fields\":{\"speed_ms\":2.0,\"seq\":2}}\n"
	        "{\"measurement\":\"conveyor_speed\",\"timestamp\":1700000000000000003,"
	        "\"tags\":{\"line_id\":\"line-1\"},\"fields\":{\"speed_ms\":0.1,\"seq\":3}}\n");
	unlink(path);
}

static void test_influx_new_file_and_rejects(void **state)
{
	unlink(path);
	mode_t old = umask(022);
	struct harness *h = open_file("format: influx, fsync: true");
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0); /* created at init */
	assert_int_equal(st.st_mode & 0777, 0644);
	struct cv_batch *b = harness_batch(h);
	add(h, b, 1.5, 1);
	add(h, b, NAN, 2); /* no line protocol for NaN */
	add(h, b, 3.0, 3);
	add(h, b, 4.0, 4);
	cv_record_drop(b, &b->records[3]);
	assert_int_equal(harness_write(h, b), 0);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 2);
	assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 1);
	/* a batch of only rejects writes nothing */
	b = harness_batch(h);
	add(h, b, INFINITY, 5);
	assert_int_equal(harness_write(h, b), 0);
	harness_close(h);
	assert_string_equal(slurp(), "conveyor_speed,line_id=line-1 speed_ms=1.5,seq=1i "
	                             "1700000000000000001\n"
	                             "conveyor_speed,line_id=line-1 speed_ms=3.0,seq=3i "
	                             "1700000000000000003\n");
	unlink(path);
}

static void test_write_failure_rolls_back(void **state)
{
	/* A file size limit makes write(2) stop halfway: the partial batch must
	 * be cut off, and the next batch must start on a clean line. */
	unlink(path);
	FILE *fp = fopen(path, "w");
	fputs("0123456789\n", fp);
	fclose(fp);
	struct harness *h = open_file(NULL);
	struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
	sigaction(SIGXFSZ, &ign, &prev);
	struct rlimit saved, small;
	getrlimit(RLIMIT_FSIZE, &saved);
	small = saved;
	small.rlim_cur = 200;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);

	struct cv_batch *b = harness_batch(h);
	for (int i = 0; i < 5; i++)
		add(h, b, 1.0, i);
	assert_int_equal(harness_write(h, b), CV_EIO);
	assert_int_equal(harness_acked(h, CV_ACK_FAILED), 5);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 11); /* rolled back */

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	sigaction(SIGXFSZ, &prev, NULL);
	b = harness_batch(h);
	add(h, b, 1.0, 9);
	assert_int_equal(harness_write(h, b), 0);
	harness_close(h);
	assert_string_equal(
	        slurp(),
	        "0123456789\n"
	        "{\"measurement\":\"conveyor_speed\",\"timestamp\":1700000000000000009,"
	        "\"tags\":{\"line_id\":\"line-1\"},\"fields\":{\"speed_ms\":1.0,\"seq\":9}}\n");
	unlink(path);
}

static void test_device_full(void **state)
{
	struct harness *h = NULL;
	if (access("/dev/full", W_OK) != 0)
		skip();
	assert_int_equal(harness_open(&cv_plugin_descriptor, "{path: /dev/full}", 16, &h), 0);
	struct cv_batch *b = harness_batch(h);
	add(h, b, 1.0, 1);
	assert_int_equal(harness_write(h, b), CV_EIO);
	assert_int_equal(harness_acked(h, CV_ACK_FAILED), 1);
	harness_close(h);
}

static void test_options(void **state)
{
	struct harness *h = NULL;
	assert_true(harness_open(&cv_plugin_descriptor, "{}", 16, &h) < 0); /* path required */
	assert_true(harness_open(&cv_plugin_descriptor, "{path: /nonexistent/dir/x.log}", 16, &h) <
	            0);
	char options[256];
	snprintf(options, sizeof options, "{path: \"%s\", format: text}", path);
	assert_true(harness_open(&cv_plugin_descriptor, options, 16, &h) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_json_append),
	        cmocka_unit_test(test_influx_new_file_and_rejects),
	        cmocka_unit_test(test_write_failure_rolls_back),
	        cmocka_unit_test(test_device_full),
	        cmocka_unit_test(test_options),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
