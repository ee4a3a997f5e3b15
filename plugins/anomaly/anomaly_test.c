/* anomaly_test.c - rolling statistics against a naive computation, spikes,
 * flat series, drop_normal, dead letters, the metric, and the key cache
 * with recycled key memory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testing/stage_harness.h"

extern const struct cv_plugin cv_plugin_descriptor;

static struct harness *open_anomaly(const char *options)
{
	struct harness *h = NULL;
	int rc = harness_open(&cv_plugin_descriptor, options, 4096, &h);
	if (rc)
		fail_msg("harness_open(%s) = %d", options, rc);
	return h;
}

static struct cv_tag tag_of(const char *value)
{
	return (struct cv_tag){"line_id", value, 7, (uint32_t)strlen(value)};
}

/* Appends a record with tag `tag` (may be NULL) and field speed_ms = v. */
static struct cv_record *add(struct harness *h, struct cv_batch *b, const struct cv_tag *tag,
                             double v)
{
	const struct cv_host_api *api = harness_api(h);
	struct cv_record *r = cv_batch_record_new(b);
	assert_non_null(r);
	r->measurement = "conveyor_speed";
	r->measurement_len = 14;
	r->timestamp = 1;
	r->tags = tag;
	r->ntags = tag ? 1 : 0;
	assert_non_null(cv_record_add_float(api, b, r, "speed_ms", 8, v));
	assert_non_null(cv_record_add_int(api, b, r, "seq", 3, 7));
	return r;
}

struct result {
	double mean, stddev, zscore;
	bool anomaly;
};

static struct result result_of(const struct cv_record *r)
{
	const struct cv_field *m = cv_record_find_field(r, "mean", 4);
	const struct cv_field *s = cv_record_find_field(r, "stddev", 6);
	const struct cv_field *z = cv_record_find_field(r, "zscore", 6);
	const struct cv_field *a = cv_record_find_field(r, "anomaly", 7);
	assert_non_null(m);
	assert_non_null(s);
	assert_non_null(z);
	assert_non_null(a);
	assert_int_equal(m->type, CV_FIELD_FLOAT);
	assert_int_equal(a->type, CV_FIELD_BOOL);
	/* appended after the original fields, which are still there */
	assert_true(r->nfields >= 5);
	assert_memory_equal(r->fields[0].key, "speed_ms", 8);
	assert_ptr_equal(m, &r->fields[r->nfields - 4]);
	return (struct result){m->v.f, s->v.f, z->v.f, a->v.b};
}

static uint64_t rng_state = 99;
static double uniform(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static void close_to(double got, double want, double tol, const char *what, int i)
{
	if (fabs(got - want) > tol * (1 + fabs(want)))
		fail_msg("record %d: %s = %.17g, naive %.17g", i, what, got, want);
}

static void test_against_naive(void **state)
{
	/* Three interleaved keys, offset far from zero (precision), with
	 * spikes, over many windows (the periodic recompute). */
	enum { KEYS = 3, N = 30000, W = 20, MIN = 5 };
	static double hist[KEYS][N];
	int len[KEYS] = {0};
	struct cv_tag tags[KEYS] = {tag_of("a"), tag_of("b"), tag_of("c")};
	const double threshold = 2.5;
	struct harness *h = open_anomaly("{window: 20, threshold: 2.5, min_samples: 5}");
	int anomalies = 0, checked = 0;
	for (int done = 0; done < N;) {
		struct cv_batch *b = harness_batch(h);
		int n = 1 + (int)(uniform() * 700);
		if (n > N - done)
			n = N - done;
		double vals[700];
		for (int i = 0; i < n; i++) {
			int k = (done + i) % KEYS;
			double v = 1e6 + k * 10 + uniform();
			if (uniform() < 0.02)
				v += (uniform() < 0.5 ? -1 : 1) * 20 * uniform();
			vals[i] = v;
			add(h, b, &tags[k], v);
		}
		assert_int_equal(harness_process(h, b), 0);
		assert_int_equal(b->live, (uint32_t)n);
		for (int i = 0; i < n; i++, done++) {
			int k = done % KEYS;
			struct result got = result_of(&b->records[i]);
			int c = len[k] < W ? len[k] : W;
			const double *win = hist[k] + len[k] - c;
			double mean = vals[i], sd = 0, z = 0;
			if (c > 0) {
				mean = 0;
				for (int j = 0; j < c; j++)
					mean += win[j];
				mean /= c;
			}
			if (c > 1) {
				double ss = 0;
				for (int j = 0; j < c; j++)
					ss += (win[j] - mean) * (win[j] - mean);
				sd = sqrt(ss / (c - 1));
				z = (vals[i] - mean) / sd;
			}
			close_to(got.mean, mean, 1e-12, "mean", done);
			close_to(got.stddev, sd, 1e-6, "stddev", done);
			close_to(got.zscore, z, 1e-6, "zscore", done);
			bool want = c >= MIN && fabs(z) > threshold;
			if (fabs(fabs(z) - threshold) > 1e-6) {
				if (got.anomaly != want)
					fail_msg("record %d: anomaly %d, naive %d (z %g)", done,
					         got.anomaly, want, z);
				checked++;
			}
			anomalies += got.anomaly;
			hist[k][len[k]++] = vals[i];
		}
	}
	assert_true(checked > N - 10);
	assert_true(anomalies > 100); /* the spikes were seen */
	assert_true(harness_metric(h, "conveyor_anomalies_total", NULL) == anomalies);
	assert_true(harness_metric(h, "conveyor_anomaly_keys", NULL) == KEYS);
	assert_int_equal(harness_dead_lettered(h), 0);
	harness_close(h);
}

static void test_spike_and_stall(void **state)
{
	struct cv_tag t = tag_of("line-1");
	struct harness *h = open_anomaly("{}"); /* defaults: window 60, threshold 3 */
	struct cv_batch *b = harness_batch(h);
	for (int i = 0; i < 100; i++)
		add(h, b, &t, 2.0 + 0.05 * (uniform() - 0.5));
	add(h, b, &t, 3.5); /* spike */
	add(h, b, &t, 0.0); /* stall */
	add(h, b, &t, 2.0); /* normal again */
	assert_int_equal(harness_process(h, b), 0);
	/* uniform noise never strays 3 deviations from a full window */
	for (int i = 60; i < 100; i++)
		assert_false(result_of(&b->records[i]).anomaly);
	struct result spike = result_of(&b->records[100]);
	struct result stall = result_of(&b->records[101]);
	struct result normal = result_of(&b->records[102]);
	assert_true(spike.anomaly && spike.zscore > 3);
	assert_true(stall.anomaly && stall.zscore < -3);
	assert_false(normal.anomaly);
	close_to(spike.mean, 2.0, 0.01, "mean", 100);
	int flagged = 0;
	for (int i = 0; i < 103; i++)
		flagged += result_of(&b->records[i]).anomaly;
	assert_true(harness_metric(h, "conveyor_anomalies_total", NULL) == flagged);
	harness_close(h);
}

static void test_flat_series(void **state)
{
	struct cv_tag t = tag_of("flat");
	struct harness *h = open_anomaly("{window: 10, min_samples: 3}");
	struct cv_batch *b = harness_batch(h);
	for (int i = 0; i < 50; i++)
		add(h, b, &t, 0.1); /* not exact in binary: sums must still be 0 */
	add(h, b, &t, 0.1000001);
	add(h, b, &t, 0.1);
	assert_int_equal(harness_process(h, b), 0);
	for (int i = 0; i < 50; i++) {
		struct result r = result_of(&b->records[i]);
		assert_true(r.mean == 0.1);
		assert_true(r.stddev == 0.0);
		assert_true(r.zscore == 0.0);
		assert_false(r.anomaly);
	}
	struct result jump = result_of(&b->records[50]);
	assert_true(jump.anomaly);
	assert_true(jump.zscore == 1e6);
	assert_true(jump.stddev == 0.0);
	struct result back = result_of(&b->records[51]);
	assert_true(back.stddev > 0);
	assert_false(back.anomaly);

	/* below min_samples a flat window flags nothing */
	struct cv_tag u = tag_of("young");
	b = harness_batch(h);
	add(h, b, &u, 5.0);
	add(h, b, &u, 5.0);
	add(h, b, &u, 9.0); /* window holds 2 < 3 */
	add(h, b, &u, -9.0);
	assert_int_equal(harness_process(h, b), 0);
	assert_false(result_of(&b->records[0]).anomaly);
	assert_true(result_of(&b->records[0]).mean == 5.0); /* no history: the value */
	assert_false(result_of(&b->records[2]).anomaly);
	assert_true(result_of(&b->records[2]).zscore == 0.0);
	assert_true(result_of(&b->records[3]).zscore < 0);
	harness_close(h);
}

static void test_min_samples(void **state)
{
	struct cv_tag t = tag_of("k");
	struct harness *h = open_anomaly("{min_samples: 10, threshold: 1}");
	struct cv_batch *b = harness_batch(h);
	for (int i = 0; i < 30; i++)
		add(h, b, &t, (i % 2) ? 1.0 : (i < 10 ? 1000.0 * i : 1.1));
	assert_int_equal(harness_process(h, b), 0);
	for (int i = 0; i < 10; i++)
		assert_false(result_of(&b->records[i]).anomaly);
	harness_close(h);
}

static void test_drop_normal(void **state)
{
	struct cv_tag t = tag_of("line-1");
	struct harness *h = open_anomaly("{mode: drop_normal}");
	struct cv_batch *b = harness_batch(h);
	for (int i = 0; i < 200; i++)
		add(h, b, &t, (i == 100 || i == 150) ? 9.0 : 2.0 + 0.01 * (i % 5));
	assert_int_equal(harness_process(h, b), 0);
	assert_int_equal(b->live, 2);
	for (int i = 0; i < 200; i++) {
		bool dropped = b->records[i].flags & CV_RECORD_DROPPED;
		assert_int_equal(dropped, !(i == 100 || i == 150));
		if (!dropped)
			assert_true(result_of(&b->records[i]).anomaly);
	}
	assert_true(harness_metric(h, "conveyor_anomalies_total", NULL) == 2);
	assert_int_equal(harness_dead_lettered(h), 0);
	harness_close(h);
}

static void test_dead_letters(void **state)
{
	const struct cv_host_api *api;
	struct cv_tag t = tag_of("line-1");
	struct cv_tag other = {"zone", "z1", 4, 2};
	struct harness *h = open_anomaly("{}");
	api = harness_api(h);
	struct cv_batch *b = harness_batch(h);
	add(h, b, &t, 1.0);
	add(h, b, NULL, 1.0);                         /* no tags */
	add(h, b, &other, 1.0);                       /* not the key tag */
	struct cv_record *r = cv_batch_record_new(b); /* no field */
	r->tags = &t;
	r->ntags = 1;
	r = cv_batch_record_new(b); /* a string field */
	r->tags = &t;
	r->ntags = 1;
	struct cv_field *f = cv_record_add_field(api, b, r);
	*f = (struct cv_field){.key = "speed_ms",
	                       .key_len = 8,
	                       .type = CV_FIELD_STRING,
	                       .v.s = "fast",
	                       .str_len = 4};
	add(h, b, &t, NAN);
	add(h, b, &t, INFINITY);
	r = cv_batch_record_new(b); /* an integer field is fine */
	r->tags = &t;
	r->ntags = 1;
	cv_record_add_int(api, b, r, "speed_ms", 8, 3);
	add(h, b, &t, 2.0);
	/* an already dropped record is left alone */
	r = add(h, b, NULL, 1.0);
	cv_record_drop(b, r);
	assert_int_equal(harness_process(h, b), 0);
	assert_int_equal(harness_dead_lettered(h), 6);
	assert_int_equal(b->live, 3);
	static const bool live[] = {1, 0, 0, 0, 0, 0, 0, 1, 1, 0};
	for (int i = 0; i < 10; i++) {
		assert_int_equal(!(b->records[i].flags & CV_RECORD_DROPPED), live[i]);
		if (i == 9)
			assert_int_equal(b->records[i].nfields, 2); /* untouched */
	}
	assert_true(result_of(&b->records[7]).mean == 1.0);
	harness_close(h);
}

static void test_recycled_key_memory(void **state)
{
	/* The same bytes' address carries another key later (as batch arenas
	 * are recycled): the series must follow the bytes, not the address. */
	char keybuf[16];
	struct cv_tag t = {"line_id", keybuf, 7, 0};
	struct harness *h = open_anomaly("{window: 5, min_samples: 2}");
	for (int round = 0; round < 6; round++) {
		const char *name = round % 2 ? "line-B" : "line-A";
		double v = round % 2 ? 100.0 : 1.0;
		strcpy(keybuf, name);
		t.value_len = 6;
		struct cv_batch *b = harness_batch(h);
		add(h, b, &t, v);
		add(h, b, &t, v);
		assert_int_equal(harness_process(h, b), 0);
		assert_true(result_of(&b->records[0]).mean == v);
		assert_true(result_of(&b->records[1]).mean == v);
		assert_false(result_of(&b->records[1]).anomaly);
	}
	assert_true(harness_metric(h, "conveyor_anomaly_keys", NULL) == 2);
	harness_close(h);
}

static void test_many_keys_and_limit(void **state)
{
	enum { K = 5000 };
	static char names[K][16];
	static struct cv_tag tags[K];
	for (int i = 0; i < K; i++) {
		int n = snprintf(names[i], sizeof names[i], "key-%d", i);
		tags[i] = (struct cv_tag){"line_id", names[i], 7, (uint32_t)n};
	}
	struct harness *h = open_anomaly("{window: 4, min_samples: 2}");
	for (int round = 0; round < 3; round++) {
		struct cv_batch *b = harness_batch(h);
		for (int i = 0; i < K / 2; i++)
			add(h, b, &tags[(i * 7 + round * (K / 2)) % K], i);
		assert_int_equal(harness_process(h, b), 0);
		for (int i = 0; i < K / 2; i++) {
			/* each key sees one value per two rounds: its first mean is itself */
			struct result r = result_of(&b->records[i]);
			if (round < 2)
				assert_true(r.mean == i);
		}
	}
	assert_true(harness_metric(h, "conveyor_anomaly_keys", NULL) == K);
	harness_close(h);

	h = open_anomaly("{max_keys: 2}");
	struct cv_tag a = tag_of("a"), bb = tag_of("b"), c = tag_of("c");
	struct cv_batch *b = harness_batch(h);
	add(h, b, &a, 1);
	add(h, b, &bb, 1);
	add(h, b, &c, 1);
	add(h, b, &a, 1);
	assert_int_equal(harness_process(h, b), 0);
	assert_int_equal(harness_dead_lettered(h), 1);
	assert_true(b->records[2].flags & CV_RECORD_DROPPED);
	assert_int_equal(b->live, 3);
	harness_close(h);
}

static void test_many_fields(void **state)
{
	/* Records whose field slots are nearly full take the host's slow path
	 * for the four new fields. */
	struct cv_tag t = tag_of("k");
	struct harness *h = open_anomaly("{window: 4, min_samples: 2}");
	const struct cv_host_api *api = harness_api(h);
	struct cv_batch *b = harness_batch(h);
	static const char *const extra[] = {"e1", "e2", "e3", "e4", "e5", "e6"};
	for (int i = 0; i < 300; i++) {
		struct cv_record *r = add(h, b, &t, i % 3);
		for (int j = 0; j < 6; j++)
			assert_non_null(cv_record_add_int(api, b, r, extra[j], 2, j));
	}
	assert_int_equal(harness_process(h, b), 0);
	for (int i = 0; i < 300; i++) {
		const struct cv_record *r = &b->records[i];
		assert_int_equal(r->nfields, 12);
		assert_int_equal(r->fields[7].v.i, 5); /* the originals survived the move */
		struct result res = result_of(r);
		if (i >= 4) {
			/* the window holds the 3-cycle 0,1,2 plus one of them */
			assert_true(res.stddev > 0.5 && res.stddev < 1.1);
			assert_true(fabs(res.zscore * res.stddev - (i % 3 - res.mean)) < 1e-9);
		}
	}
	harness_close(h);
}

static void test_options(void **state)
{
	static const char *const bad[] = {
	        "{window: 1}",       "{window: 1000001}", "{threshold: 0}",
	        "{mode: sometimes}", "{min_samples: 1}",  "{min_samples: 100, window: 50}",
	        "{field: \"\"}",     "{unknown: 1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct harness *h = NULL;
		if (harness_open(&cv_plugin_descriptor, bad[i], 16, &h) >= 0)
			fail_msg("accepted %s", bad[i]);
	}
	/* another field and key */
	struct harness *h = open_anomaly("{field: seq, key: zone, window: 2, min_samples: 2}");
	struct cv_tag z = {"zone", "north", 4, 5};
	struct cv_batch *b = harness_batch(h);
	add(h, b, &z, 1.0);
	add(h, b, &z, 1.0);
	add(h, b, &z, 1.0);
	assert_int_equal(harness_process(h, b), 0);
	assert_int_equal(b->live, 3);
	assert_true(result_of(&b->records[2]).mean == 7.0); /* seq is 7 */
	harness_close(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_against_naive),
	        cmocka_unit_test(test_spike_and_stall),
	        cmocka_unit_test(test_flat_series),
	        cmocka_unit_test(test_min_samples),
	        cmocka_unit_test(test_drop_normal),
	        cmocka_unit_test(test_dead_letters),
	        cmocka_unit_test(test_recycled_key_memory),
	        cmocka_unit_test(test_many_keys_and_limit),
	        cmocka_unit_test(test_many_fields),
	        cmocka_unit_test(test_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
