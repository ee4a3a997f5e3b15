/* metrics_test.c - the registry: names, series, atomics, exposition. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "metrics/metrics.h"

static char *render(struct metrics *m)
{
	struct strbuf sb = {0};
	assert_int_equal(metrics_render(m, &sb), 0);
	if (!sb.data)
		strbuf_puts(&sb, "");
	return sb.data; /* the caller frees */
}

/* Pipes text into the real `promtool check metrics`; returns its exit code. */
static int promtool_check(const char *text)
{
	FILE *p = popen("promtool check metrics", "w");
	assert_non_null(p);
	fputs(text, p);
	int st = pclose(p);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 127)
		fail_msg("promtool is not installed (apt-get install prometheus): it is required");
	return WEXITSTATUS(st);
}

static void test_invalid_names(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	assert_non_null(m);
	const char *ok_label[] = {"stage"};
	const char *bad_labels[][1] = {{"__x"}, {"1a"}, {"a-b"}, {""}};
	const char *dup[] = {"a", "a"};
	const char *le[] = {"le"};
	const char *bad_names[] = {"", "1abc", "a-b", "a b", "é", "a.b"};

	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		assert_null(metrics_family(m, METRIC_GAUGE, bad_names[i], "h", NULL, 0, NULL, 0));
	assert_null(metrics_family(m, METRIC_GAUGE, NULL, "h", NULL, 0, NULL, 0));
	/* A counter's name ends in _total. */
	assert_null(metrics_family(m, METRIC_COUNTER, "events", "h", NULL, 0, NULL, 0));
	for (size_t i = 0; i < 4; i++)
		assert_null(metrics_family(m, METRIC_GAUGE, "g", "h", bad_labels[i], 1, NULL, 0));
	assert_null(metrics_family(m, METRIC_GAUGE, "g", "h", dup, 2, NULL, 0));
	assert_null(metrics_family(m, METRIC_HISTOGRAM, "h_seconds", "h", le, 1, NULL, 0));
	const double unsorted[] = {1, 0.5};
	const double equal[] = {1, 1};
	const double with_nan[] = {1, NAN};
	assert_null(metrics_family(m, METRIC_HISTOGRAM, "h_seconds", "h", NULL, 0, unsorted, 2));
	assert_null(metrics_family(m, METRIC_HISTOGRAM, "h_seconds", "h", NULL, 0, equal, 2));
	assert_null(metrics_family(m, METRIC_HISTOGRAM, "h_seconds", "h", NULL, 0, with_nan, 2));

	/* Valid names, including colons and a leading underscore. */
	assert_non_null(metrics_family(m, METRIC_GAUGE, "_a:b_c9", "h", NULL, 0, NULL, 0));
	assert_non_null(metrics_family(m, METRIC_GAUGE, "ok", "h", ok_label, 1, NULL, 0));

	/* Same name: same shape gives the same family, another shape NULL. */
	struct metric_family *f =
	        metrics_family(m, METRIC_COUNTER, "x_total", "h", ok_label, 1, NULL, 0);
	assert_non_null(f);
	assert_ptr_equal(
	        metrics_family(m, METRIC_COUNTER, "x_total", "other help", ok_label, 1, NULL, 0),
	        f);
	assert_null(metrics_family(m, METRIC_GAUGE, "x_total", "h", ok_label, 1, NULL, 0));
	assert_null(metrics_family(m, METRIC_COUNTER, "x_total", "h", NULL, 0, NULL, 0));
	assert_null(metrics_family(m, METRIC_COUNTER, "x_total", "h", le, 1, NULL, 0));
	const double b1[] = {1, 2};
	const double b2[] = {1, 3};
	struct metric_family *h =
	        metrics_family(m, METRIC_HISTOGRAM, "y_seconds", "h", NULL, 0, b1, 2);
	assert_non_null(h);
	assert_ptr_equal(metrics_family(m, METRIC_HISTOGRAM, "y_seconds", "h", NULL, 0, b1, 2), h);
	assert_null(metrics_family(m, METRIC_HISTOGRAM, "y_seconds", "h", NULL, 0, b2, 2));
	metrics_free(m);
}

static void test_counter_gauge_render(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const char *labels[] = {"pipeline", "stage"};
	struct metric_family *c = metrics_family(m, METRIC_COUNTER, "conveyor_records_total",
	                                         "Records seen.", labels, 2, NULL, 0);
	struct metric_family *g = metrics_family(m, METRIC_GAUGE, "conveyor_queue_records",
	                                         "Queued.", NULL, 0, NULL, 0);
	struct metric_family *empty =
	        metrics_family(m, METRIC_GAUGE, "conveyor_unused", "Never set.", NULL, 0, NULL, 0);
	assert_non_null(c);
	assert_non_null(g);
	assert_non_null(empty);

	const char *v1[] = {"p1", "src"};
	const char *v2[] = {"p1", "sink"};
	struct metric_series *s1 = metrics_series(c, v1);
	struct metric_series *s2 = metrics_series(c, v2);
	assert_ptr_equal(metrics_series(c, v1), s1); /* same labels, same series */
	assert_ptr_not_equal(s1, s2);
	metric_inc(s1, 41);
	metric_inc(s1, 1);
	metric_add(s2, 2.5);
	metric_add(s2, -7); /* counters never go down */
	assert_true(metric_value(s1) == 42);
	assert_true(metric_value(s2) == 2.5);

	struct metric_series *gs = metrics_series(g, NULL);
	metric_set(gs, 10);
	metric_add(gs, -12.5);
	metric_inc(gs, 1);
	assert_true(metric_value(gs) == -1.5);

	char *text = render(m);
	assert_string_equal(text, "# HELP conveyor_records_total Records seen.\n"
	                          "# TYPE conveyor_records_total counter\n"
	                          "conveyor_records_total{pipeline=\"p1\",stage=\"src\"} 42\n"
	                          "conveyor_records_total{pipeline=\"p1\",stage=\"sink\"} 2.5\n"
	                          "# HELP conveyor_queue_records Queued.\n"
	                          "# TYPE conveyor_queue_records gauge\n"
	                          "conveyor_queue_records -1.5\n"
	                          "# HELP conveyor_unused Never set.\n"
	                          "# TYPE conveyor_unused gauge\n");
	assert_int_equal(promtool_check(text), 0);
	free(text);

	metric_set(gs, 3e6);
	text = render(m);
	assert_non_null(strstr(text, "\nconveyor_queue_records 3000000\n"));
	free(text);
	metrics_free(m);
}

static void test_label_escaping(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const char *labels[] = {"v"};
	struct metric_family *g = metrics_family(m, METRIC_GAUGE, "esc", "Back\\slash\nnew \"q\"",
	                                         labels, 1, NULL, 0);
	const char *v[] = {"a\\b\"c\nd"};
	const char *bad_utf8[] = {"x\xff\xc3(y\xe2\x82"};
	const char *utf8[] = {"gr\xc3\xbc\xc3\x9f \xe2\x82\xac"};
	metric_set(metrics_series(g, v), 1);
	metric_set(metrics_series(g, bad_utf8), 2);
	metric_set(metrics_series(g, utf8), 3);
	char *text = render(m);
	assert_string_equal(text,
	                    "# HELP esc Back\\\\slash\\nnew \"q\"\n"
	                    "# TYPE esc gauge\n"
	                    "esc{v=\"a\\\\b\\\"c\\nd\"} 1\n"
	                    "esc{v=\"x\xef\xbf\xbd\xef\xbf\xbd(y\xef\xbf\xbd\xef\xbf\xbd\"} 2\n"
	                    "esc{v=\"gr\xc3\xbc\xc3\x9f \xe2\x82\xac\"} 3\n");
	assert_int_equal(promtool_check(text), 0);
	free(text);
	metrics_free(m);
}

static void test_float_format(void **state)
{
	(void)state;
	static const struct {
		double v;
		const char *text;
	} cases[] = {
	        {1e-6, "1e-06"},
	        {2.5e-6, "2.5e-06"},
	        {5e-5, "5e-05"},
	        {0.0001, "0.0001"},
	        {0.005, "0.005"},
	        {0.1, "0.1"},
	        {0.25, "0.25"},
	        {1, "1"},
	        {10, "10"},
	        {0, "0"},
	        {-2.5, "-2.5"},
	        {123456, "123456"},
	        {1e6, "1e+06"},
	        {1.5e300, "1.5e+300"},
	        {1.0 / 3, "0.3333333333333333"},
	        {0.1 + 0.2, "0.30000000000000004"},
	        {INFINITY, "+Inf"},
	        {-INFINITY, "-Inf"},
	        {NAN, "NaN"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf sb = {0};
		assert_int_equal(metrics_append_double(&sb, cases[i].v), 0);
		assert_string_equal(sb.data, cases[i].text);
		strbuf_free(&sb);
	}
	/* Every default bound reads back to itself. */
	assert_int_equal(METRICS_LATENCY_NBUCKETS, 22);
	assert_true(METRICS_LATENCY_BUCKETS[0] == 1e-6);
	assert_true(METRICS_LATENCY_BUCKETS[METRICS_LATENCY_NBUCKETS - 1] == 10);
	for (size_t i = 0; i < METRICS_LATENCY_NBUCKETS; i++) {
		struct strbuf sb = {0};
		metrics_append_double(&sb, METRICS_LATENCY_BUCKETS[i]);
		assert_true(strtod(sb.data, NULL) == METRICS_LATENCY_BUCKETS[i]);
		if (i > 0)
			assert_true(METRICS_LATENCY_BUCKETS[i] > METRICS_LATENCY_BUCKETS[i - 1]);
		strbuf_free(&sb);
	}
}

static void test_histogram(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const double b[] = {0.125, 1, 10, INFINITY}; /* a listed +Inf is dropped */
	const char *labels[] = {"stage"};
	struct metric_family *f = metrics_family(m, METRIC_HISTOGRAM, "req_duration_seconds",
	                                         "Request time.", labels, 1, b, 4);
	assert_non_null(f);
	const char *v[] = {"a"};
	struct metric_series *s = metrics_series(f, v);
	assert_int_equal(metric_bucket_index(s, 0.0625), 0);
	assert_int_equal(metric_bucket_index(s, 0.125), 0); /* upper bounds are inclusive */
	assert_int_equal(metric_bucket_index(s, 0.13), 1);
	assert_int_equal(metric_bucket_index(s, 10), 2);
	assert_int_equal(metric_bucket_index(s, 11), 3);
	assert_int_equal(metric_bucket_index(s, NAN), 3);
	assert_true(metric_bucket_bound(s, 1) == 1);
	assert_true(isinf(metric_bucket_bound(s, 3)));

	metric_observe(s, 0.0625);
	metric_observe(s, 0.125);
	metric_observe(s, 0.5);
	metric_observe(s, 5);
	metric_observe(s, 100);
	metric_observe_bucket(s, 1, 1.5, 2); /* two observations of 0.75 */
	metric_observe_bucket(s, 99, 0, 0);  /* out of range clamps to +Inf */
	assert_int_equal(metric_count(s), 7);

	char *text = render(m);
	assert_string_equal(text, "# HELP req_duration_seconds Request time.\n"
	                          "# TYPE req_duration_seconds histogram\n"
	                          "req_duration_seconds_bucket{stage=\"a\",le=\"0.125\"} 2\n"
	                          "req_duration_seconds_bucket{stage=\"a\",le=\"1\"} 5\n"
	                          "req_duration_seconds_bucket{stage=\"a\",le=\"10\"} 6\n"
	                          "req_duration_seconds_bucket{stage=\"a\",le=\"+Inf\"} 7\n"
	                          "req_duration_seconds_sum{stage=\"a\"} 107.1875\n"
	                          "req_duration_seconds_count{stage=\"a\"} 7\n");
	assert_int_equal(promtool_check(text), 0);
	free(text);

	/* Default buckets without labels. */
	struct metric_family *d =
	        metrics_family(m, METRIC_HISTOGRAM, "lat_seconds", "Latency.", NULL, 0, NULL, 0);
	struct metric_series *ds = metrics_series(d, NULL);
	assert_int_equal(metric_bucket_index(ds, 0), 0);
	assert_int_equal(metric_bucket_index(ds, 1e-6), 0);
	assert_int_equal(metric_bucket_index(ds, 2e-6), 1);
	assert_int_equal(metric_bucket_index(ds, 0.003), 11);
	assert_int_equal(metric_bucket_index(ds, 10), METRICS_LATENCY_NBUCKETS - 1);
	assert_int_equal(metric_bucket_index(ds, 10.5), METRICS_LATENCY_NBUCKETS);
	for (size_t i = 0; i < METRICS_LATENCY_NBUCKETS; i++)
		assert_true(metric_bucket_bound(ds, i) == METRICS_LATENCY_BUCKETS[i]);
	metric_observe(ds, 0.003);
	text = render(m);
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"1e-06\"} 0\n"
	                             "lat_seconds_bucket{le=\"2.5e-06\"} 0\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.0025\"} 0\n"
	                             "lat_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"10\"} 1\n"
	                             "lat_seconds_bucket{le=\"+Inf\"} 1\n"
	                             "lat_seconds_sum 0.003\n"
	                             "lat_seconds_count 1\n"));
	free(text);
	metrics_free(m);
}

#define THREADS    4
#define PER_THREAD 200000

struct worker {
	struct metric_series *counter, *fcounter, *gauge, *hist;
	pthread_barrier_t *start;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	pthread_barrier_wait(w->start);
	for (int i = 0; i < PER_THREAD; i++) {
		metric_inc(w->counter, 1);
		metric_add(w->fcounter, 0.5); /* exact in binary: totals compare exactly */
		metric_add(w->gauge, 0.25);
		metric_observe(w->hist, (i & 1) ? 0.5 : 2);
	}
	return NULL;
}

static void test_concurrent_updates(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const double b[] = {1};
	struct worker w = {0};
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, THREADS);
	w.start = &start;
	w.counter = metrics_series(
	        metrics_family(m, METRIC_COUNTER, "a_total", "a", NULL, 0, NULL, 0), NULL);
	w.fcounter = metrics_series(
	        metrics_family(m, METRIC_COUNTER, "b_total", "b", NULL, 0, NULL, 0), NULL);
	w.gauge = metrics_series(metrics_family(m, METRIC_GAUGE, "c", "c", NULL, 0, NULL, 0), NULL);
	w.hist = metrics_series(metrics_family(m, METRIC_HISTOGRAM, "d", "d", NULL, 0, b, 1), NULL);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, work, &w), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);

	const double n = (double)THREADS * PER_THREAD;
	assert_true(metric_value(w.counter) == n);
	assert_true(metric_value(w.fcounter) == n * 0.5);
	assert_true(metric_value(w.gauge) == n * 0.25);
	assert_int_equal(metric_count(w.hist), THREADS * PER_THREAD);
	char *text = render(m);
	char expect[512];
	snprintf(expect, sizeof(expect),
	         "d_bucket{le=\"1\"} %d\nd_bucket{le=\"+Inf\"} %d\nd_sum %d\nd_count %d\n",
	         THREADS * PER_THREAD / 2, THREADS * PER_THREAD, THREADS * PER_THREAD / 2 * 5 / 2,
	         THREADS * PER_THREAD);
	assert_non_null(strstr(text, expect));
	free(text);
	metrics_free(m);
}

/* Series created from several threads at once: one series per label value. */
struct creator {
	struct metric_family *f;
	struct metric_series *got[50];
};

static void *create(void *arg)
{
	struct creator *c = arg;
	for (int i = 0; i < 50; i++) {
		char v[16];
		snprintf(v, sizeof(v), "s%d", i);
		const char *vals[] = {v};
		c->got[i] = metrics_series(c->f, vals);
		metric_inc(c->got[i], 1);
	}
	return NULL;
}

static void test_concurrent_series_creation(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const char *labels[] = {"k"};
	struct metric_family *f =
	        metrics_family(m, METRIC_COUNTER, "n_total", "n", labels, 1, NULL, 0);
	struct creator c[THREADS];
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		c[i].f = f;
		assert_int_equal(pthread_create(&t[i], NULL, create, &c[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 50; i++) {
		for (int j = 1; j < THREADS; j++)
			assert_ptr_equal(c[j].got[i], c[0].got[i]);
		assert_true(metric_value(c[0].got[i]) == THREADS);
	}
	char *text = render(m);
	size_t lines = 0;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2 + 50);
	free(text);
	metrics_free(m);
}

static void test_many_series(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const char *labels[] = {"a", "b"};
	struct metric_family *f =
	        metrics_family(m, METRIC_GAUGE, "many", "Many.", labels, 2, NULL, 0);
	static struct metric_series *got[1000];
	for (int i = 0; i < 1000; i++) {
		char a[16], b[16];
		snprintf(a, sizeof(a), "%d", i / 10);
		snprintf(b, sizeof(b), "%d", i % 10);
		const char *v[] = {a, b};
		got[i] = metrics_series(f, v);
		assert_non_null(got[i]);
		metric_set(got[i], i);
	}
	/* ("1","23") and ("12","3") are different series. */
	const char *x[] = {"1", "23"}, *y[] = {"12", "3"};
	assert_ptr_not_equal(metrics_series(f, x), metrics_series(f, y));
	for (int i = 0; i < 1000; i++) {
		char a[16], b[16];
		snprintf(a, sizeof(a), "%d", i / 10);
		snprintf(b, sizeof(b), "%d", i % 10);
		const char *v[] = {a, b};
		assert_ptr_equal(metrics_series(f, v), got[i]);
		assert_true(metric_value(got[i]) == i);
	}
	char *text = render(m);
	/* Series render in creation order. */
	assert_non_null(strstr(text, "# TYPE many gauge\nmany{a=\"0\",b=\"0\"} 0\n"
	                             "many{a=\"0\",b=\"1\"} 1\n"));
	assert_non_null(strstr(text, "many{a=\"99\",b=\"9\"} 999\nmany{a=\"1\",b=\"23\"} 0\n"));
	free(text);
	metrics_free(m);
}

static void collect_a(void *ctx, struct strbuf *out)
{
	(*(int *)ctx)++;
	strbuf_puts(out, "# HELP extra_info Extra.\n# TYPE extra_info gauge\nextra_info 1\n");
}

static void test_collectors(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	int calls = 0;
	assert_int_equal(metrics_add_collector(m, collect_a, &calls), 0);
	assert_true(metrics_add_collector(m, NULL, NULL) < 0);
	assert_non_null(metrics_family(m, METRIC_GAUGE, "first", "First.", NULL, 0, NULL, 0));
	char *text = render(m);
	assert_string_equal(text, "# HELP first First.\n# TYPE first gauge\n"
	                          "# HELP extra_info Extra.\n# TYPE extra_info gauge\n"
	                          "extra_info 1\n");
	assert_int_equal(calls, 1);
	free(text);
	metrics_free(m);
	metrics_free(NULL);
}

/* A registry with every type, labels, escaping and the process collector
 * passes the real promtool. */
static void test_promtool_every_type(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const char *stage_labels[] = {"pipeline", "stage", "plugin", "kind"};
	const char *sv[] = {"demo", "in", "generator", "source"};
	const char *sv2[] = {"demo", "out\"\\\n", "influx", "sink"};
	struct metric_family *c =
	        metrics_family(m, METRIC_COUNTER, "conveyor_stage_records_out_total",
	                       "Records emitted or delivered.", stage_labels, 4, NULL, 0);
	struct metric_family *g = metrics_family(m, METRIC_GAUGE, "conveyor_stage_queue_records",
	                                         "Records waiting.", stage_labels, 4, NULL, 0);
	struct metric_family *h =
	        metrics_family(m, METRIC_HISTOGRAM, "conveyor_stage_duration_seconds",
	                       "Time in the plugin per call.", stage_labels, 4, NULL, 0);
	const char *bi[] = {"version", "abi"};
	const char *biv[] = {"0.1.0", "1.0"};
	struct metric_family *info = metrics_family(m, METRIC_GAUGE, "conveyor_build_info",
	                                            "Build information.", bi, 2, NULL, 0);
	assert_non_null(metrics_family(m, METRIC_COUNTER, "conveyor_unused_total", "Never used.",
	                               NULL, 0, NULL, 0));
	metric_inc(metrics_series(c, sv), 1000);
	metric_add(metrics_series(c, sv2), 0.125);
	metric_set(metrics_series(g, sv), 12);
	metric_set(metrics_series(g, sv2), 1e-9);
	metric_observe(metrics_series(h, sv), 0.0003);
	metric_observe(metrics_series(h, sv2), 42);
	metric_set(metrics_series(info, biv), 1);
	assert_int_equal(metrics_add_collector(m, process_metrics_collect, NULL), 0);
	char *text = render(m);
	assert_int_equal(promtool_check(text), 0);
	free(text);
	metrics_free(m);
}

static void test_promtool_is_strict(void **state)
{
	(void)state;
	/* The check must be able to fail: a broken exposition is refused. */
	assert_int_not_equal(promtool_check("# TYPE x counter\nx{a=\"b} 1\n"), 0);
}

static bool drop_pipeline(void *ctx, const char *const *names, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], "pipeline") == 0)
			return strcmp(values[i], ctx) == 0;
	return false;
}

/* Removing series: they leave the exposition, the others keep their values
 * and stay found by their labels, and the same labels make a new series. */
static void test_remove_series(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const char *names[] = {"pipeline", "stage"};
	struct metric_family *c =
	        metrics_family(m, METRIC_COUNTER, "rm_total", "Removal.", names, 2, NULL, 0);
	struct metric_family *h =
	        metrics_family(m, METRIC_HISTOGRAM, "rm_seconds", "Removal.", names, 1, NULL, 0);
	struct metric_family *plain =
	        metrics_family(m, METRIC_GAUGE, "rm_plain", "No pipeline.", NULL, 0, NULL, 0);
	struct metric_series *keep[40];
	for (int i = 0; i < 40; i++) {
		char p[16], st[16];
		snprintf(p, sizeof p, "p%d", i % 4);
		snprintf(st, sizeof st, "s%d", i);
		const char *v[] = {p, st};
		keep[i] = metrics_series(c, v);
		metric_inc(keep[i], (uint64_t)i + 1);
		metric_observe(metrics_series(h, v), 0.5);
	}
	metric_set(metrics_series(plain, NULL), 7);
	/* p1's series: 10 counters and one histogram. */
	assert_int_equal(metrics_remove_series(m, drop_pipeline, "p1"), 11);
	assert_int_equal(metrics_remove_series(m, drop_pipeline, "p1"), 0);
	char *text = render(m);
	assert_null(strstr(text, "pipeline=\"p1\""));
	assert_non_null(strstr(text, "rm_total{pipeline=\"p0\",stage=\"s0\"} 1\n"));
	assert_non_null(strstr(text, "rm_total{pipeline=\"p3\",stage=\"s39\"} 40\n"));
	assert_non_null(strstr(text, "rm_plain 7\n"));
	free(text);
	for (int i = 0; i < 40; i++) {
		char p[16], st[16];
		snprintf(p, sizeof p, "p%d", i % 4);
		snprintf(st, sizeof st, "s%d", i);
		const char *v[] = {p, st};
		struct metric_series *s = metrics_series(c, v);
		if (i % 4 == 1) {
			assert_true(metric_value(s) == 0); /* a new one */
		} else {
			assert_ptr_equal(s, keep[i]);
			assert_true(metric_value(s) == i + 1);
		}
	}
	/* Removing the last-made series keeps appending right. */
	assert_int_equal(metrics_remove_series(m, drop_pipeline, "p1"), 10);
	const char *last[] = {"p9", "s"};
	metric_inc(metrics_series(c, last), 5);
	text = render(m);
	assert_non_null(strstr(text, "rm_total{pipeline=\"p9\",stage=\"s\"} 5\n"));
	assert_int_equal(promtool_check(text), 0);
	free(text);
	metrics_free(m);
}

static void test_histogram_read_and_quantile(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	const double b[] = {1, 2, 4};
	struct metric_family *f =
	        metrics_family(m, METRIC_HISTOGRAM, "h_seconds", "H.", NULL, 0, b, 3);
	struct metric_series *s = metrics_series(f, NULL);
	assert_string_equal(metric_family_name(f), "h_seconds");
	const double *bounds = NULL;
	uint64_t cum[4];
	double sum = -1;
	assert_int_equal(metric_histogram_read(s, &bounds, cum, &sum), 3);
	assert_true(bounds[2] == 4);
	assert_int_equal(cum[3], 0);
	assert_true(isnan(metrics_histogram_quantile(0.5, bounds, cum, 3)));
	for (int i = 0; i < 10; i++)
		metric_observe(s, 0.5); /* bucket le=1 */
	for (int i = 0; i < 10; i++)
		metric_observe(s, 3); /* bucket le=4 */
	metric_observe(s, 100);       /* +Inf */
	assert_int_equal(metric_histogram_read(s, &bounds, cum, &sum), 3);
	assert_int_equal(cum[0], 10);
	assert_int_equal(cum[1], 10);
	assert_int_equal(cum[2], 20);
	assert_int_equal(cum[3], 21);
	assert_true(sum == 5 + 30 + 100);
	/* Rank 10.5 of 21 falls in (2, 4] at 0.5/10 of the way. */
	assert_true(fabs(metrics_histogram_quantile(0.5, bounds, cum, 3) - 2.1) < 1e-12);
	/* Rank 5 of 21 falls in [0, 1] halfway. */
	assert_true(fabs(metrics_histogram_quantile(5.0 / 21, bounds, cum, 3) - 0.5) < 1e-12);
	/* In +Inf: the highest finite bound. */
	assert_true(metrics_histogram_quantile(0.99, bounds, cum, 3) == 4);
	struct metric_family *c =
	        metrics_family(m, METRIC_COUNTER, "c_total", "C.", NULL, 0, NULL, 0);
	assert_int_equal(metric_histogram_read(metrics_series(c, NULL), &bounds, cum, &sum), 0);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_invalid_names),
	        cmocka_unit_test(test_counter_gauge_render),
	        cmocka_unit_test(test_label_escaping),
	        cmocka_unit_test(test_float_format),
	        cmocka_unit_test(test_histogram),
	        cmocka_unit_test(test_concurrent_updates),
	        cmocka_unit_test(test_concurrent_series_creation),
	        cmocka_unit_test(test_many_series),
	        cmocka_unit_test(test_collectors),
	        cmocka_unit_test(test_promtool_every_type),
	        cmocka_unit_test(test_promtool_is_strict),
	        cmocka_unit_test(test_remove_series),
	        cmocka_unit_test(test_histogram_read_and_quantile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
