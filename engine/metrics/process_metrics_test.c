/* process_metrics_test.c - the process_* collector reads this process. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics/metrics.h"

static char *collect(void)
{
	struct strbuf sb = {0};
	process_metrics_collect(NULL, &sb);
	assert_false(sb.failed);
	assert_non_null(sb.data);
	return sb.data;
}

/* The value of the sample `name`, after checking its HELP and TYPE lines. */
static double value_of(const char *text, const char *name, const char *type)
{
	char want[256];
	snprintf(want, sizeof(want), "# HELP %s ", name);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), "\n# TYPE %s %s\n%s ", name, type, name);
	const char *p = strstr(text, want);
	if (!p)
		fail_msg("no TYPE/sample for %s in:\n%s", name, text);
	char *end;
	double v = strtod(p + strlen(want), &end);
	assert_true(end != p + strlen(want));
	assert_int_equal(*end, '\n');
	return v;
}

static void test_all_present(void **state)
{
	(void)state;
	char *text = collect();
	double cpu = value_of(text, "process_cpu_seconds_total", "counter");
	double rss = value_of(text, "process_resident_memory_bytes", "gauge");
	double vsz = value_of(text, "process_virtual_memory_bytes", "gauge");
	double fds = value_of(text, "process_open_fds", "gauge");
	double max = value_of(text, "process_max_fds", "gauge");
	double start = value_of(text, "process_start_time_seconds", "gauge");
	assert_true(cpu >= 0);
	assert_true(rss > 0);
	assert_true(vsz >= rss);
	assert_true(fds >= 3); /* stdin, stdout, stderr at least */
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(max == (double)rl.rlim_cur);
	/* This process started moments ago (the boot time in /proc/stat and
	 * the wall clock may disagree by a few seconds). */
	double now = (double)time(NULL);
	if (!(start <= now + 60 && start >= now - 3600))
		fail_msg("start time %f, now %f", start, now);
	free(text);
}

static void test_open_fds_follow(void **state)
{
	(void)state;
	char *text = collect();
	double before = value_of(text, "process_open_fds", "gauge");
	free(text);
	int fd[3];
	for (int i = 0; i < 3; i++)
		assert_true((fd[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	text = collect();
	double after = value_of(text, "process_open_fds", "gauge");
	free(text);
	for (int i = 0; i < 3; i++)
		close(fd[i]);
	assert_true(after == before + 3);
}

static void test_cpu_follows(void **state)
{
	(void)state;
	/* Spend some CPU (bounded by a CPU-time deadline), then the counter
	 * shows at least most of it. */
	volatile uint64_t x = 1;
	clock_t deadline = clock() + CLOCKS_PER_SEC / 10;
	for (long i = 0; i < 4000000000L && clock() < deadline; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	char *text = collect();
	double cpu = value_of(text, "process_cpu_seconds_total", "counter");
	free(text);
	assert_true(cpu >= 0.05);
}

static void test_promtool(void **state)
{
	(void)state;
	char *text = collect();
	FILE *p = popen("promtool check metrics", "w");
	assert_non_null(p);
	fputs(text, p);
	int st = pclose(p);
	free(text);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 127)
		fail_msg("promtool is not installed (apt-get install prometheus): it is required");
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_all_present),
	        cmocka_unit_test(test_open_fds_follow),
	        cmocka_unit_test(test_cpu_follows),
	        cmocka_unit_test(test_promtool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
