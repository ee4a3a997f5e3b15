/* sim_speed_test.c - the simulator through the stage harness: determinism
 * across batch sizes, per-line seq and timestamps, count, anomaly share,
 * pacing and stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "testing/stage_harness.h"

extern const struct cv_plugin cv_plugin_descriptor;

struct reading {
	uint32_t line; /* from the tag value line-N, N >= 1 */
	int64_t seq;
	int64_t ts;
	double speed;
	int injected; /* -1 when the field is absent */
	const char *tag_value;
};

static const struct cv_field *field(const struct cv_record *r, const char *key)
{
	return cv_record_find_field(r, key, (uint32_t)strlen(key));
}

/* Reads until `max` readings or CV_EOF (bounded in calls). Returns the count;
 * *eof tells whether CV_EOF was seen. */
static size_t collect(struct harness *h, struct reading *out, size_t max, int *eof)
{
	size_t n = 0;
	*eof = 0;
	for (int calls = 0; calls < 1000000 && n < max; calls++) {
		struct cv_batch *b;
		int rc = harness_read(h, &b);
		assert_true(rc == 0 || rc == CV_EOF);
		assert_int_equal(b->live, b->count);
		for (uint32_t i = 0; i < b->count && n < max; i++) {
			const struct cv_record *r = &b->records[i];
			assert_int_equal(r->ntags, 1);
			assert_int_equal(r->tags[0].key_len, 7);
			assert_memory_equal(r->tags[0].key, "line_id", 7);
			assert_int_equal(r->measurement_len, 14);
			assert_memory_equal(r->measurement, "conveyor_speed", 14);
			const struct cv_field *speed = field(r, "speed_ms");
			const struct cv_field *seq = field(r, "seq");
			const struct cv_field *inj = field(r, "injected");
			assert_non_null(speed);
			assert_non_null(seq);
			assert_int_equal(speed->type, CV_FIELD_FLOAT);
			assert_int_equal(seq->type, CV_FIELD_INT);
			struct reading *o = &out[n++];
			char name[16];
			assert_true(r->tags[0].value_len < sizeof(name));
			memcpy(name, r->tags[0].value, r->tags[0].value_len);
			name[r->tags[0].value_len] = '\0';
			assert_int_equal(sscanf(name, "line-%u", &o->line), 1);
			o->seq = seq->v.i;
			o->ts = r->timestamp;
			o->speed = speed->v.f;
			o->injected =
			        inj ? (assert_int_equal(inj->type, CV_FIELD_BOOL), inj->v.b) : -1;
			o->tag_value = r->tags[0].value;
		}
		if (rc == CV_EOF) {
			*eof = 1;
			break;
		}
	}
	return n;
}

static struct harness *open_sim(const char *options, uint32_t batch)
{
	struct harness *h = NULL;
	int rc = harness_open(&cv_plugin_descriptor, options, batch, &h);
	if (rc)
		fail_msg("harness_open(%s) = %d", options, rc);
	return h;
}

static void test_deterministic_across_batch_sizes(void **state)
{
	enum { N = 5000 };
	static const uint32_t sizes[] = {1024, 37, 1, 4096};
	struct reading *ref = calloc(N, sizeof *ref), *got = calloc(N, sizeof *got);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct harness *h =
		        open_sim("{lines: 7, rate: 0, count: 5000, seed: 42}", sizes[s]);
		int eof;
		struct reading *dst = s == 0 ? ref : got;
		assert_int_equal(collect(h, dst, N, &eof), N);
		assert_true(eof);
		harness_close(h);
		if (s == 0)
			continue;
		for (size_t i = 0; i < N; i++) {
			assert_int_equal(got[i].line, ref[i].line);
			assert_int_equal(got[i].seq, ref[i].seq);
			assert_memory_equal(&got[i].speed, &ref[i].speed, sizeof(double));
		}
	}
	/* another seed, other values */
	struct harness *h = open_sim("{lines: 7, rate: 0, count: 5000, seed: 43}", 512);
	int eof, same = 0;
	assert_int_equal(collect(h, got, N, &eof), N);
	harness_close(h);
	for (size_t i = 0; i < N; i++)
		same += got[i].speed == ref[i].speed;
	assert_true(same < N / 100);
	free(ref);
	free(got);
}

static void test_seq_and_timestamps_per_line(void **state)
{
	enum { N = 30000, LINES = 13 };
	struct reading *r = calloc(N, sizeof *r);
	struct harness *h = open_sim("{lines: 13, rate: 0, count: 30000}", 777);
	int eof;
	assert_int_equal(collect(h, r, N, &eof), N);
	harness_close(h);
	int64_t seq[LINES + 1] = {0}, ts[LINES + 1];
	const char *tagp[LINES + 1] = {0};
	for (int i = 0; i <= LINES; i++)
		ts[i] = INT64_MIN;
	for (size_t i = 0; i < N; i++) {
		uint32_t l = r[i].line;
		assert_true(l >= 1 && l <= LINES);
		assert_int_equal(l, i % LINES + 1); /* round robin */
		assert_int_equal(r[i].seq, seq[l] + 1);
		seq[l] = r[i].seq;
		assert_true(r[i].ts > ts[l]);
		ts[l] = r[i].ts;
		/* the same tag memory for every record of a line */
		if (!tagp[l])
			tagp[l] = r[i].tag_value;
		assert_ptr_equal(r[i].tag_value, tagp[l]);
	}
	/* flat out stamps with the wall clock: within a day of now */
	int64_t now = (int64_t)time(NULL) * 1000000000;
	assert_true(r[N - 1].ts > now - 86400LL * 1000000000 &&
	            r[N - 1].ts < now + 86400LL * 1000000000);
	free(r);
}

static void test_count(void **state)
{
	struct harness *h = open_sim("{rate: 0, count: 1000}", 300);
	struct cv_batch *b;
	assert_int_equal(harness_read(h, &b), 0);
	assert_int_equal(b->count, 300);
	assert_int_equal(harness_read(h, &b), 0);
	assert_int_equal(b->count, 300);
	assert_int_equal(harness_read(h, &b), 0);
	assert_int_equal(b->count, 300);
	assert_int_equal(harness_read(h, &b), CV_EOF); /* the last records come with EOF */
	assert_int_equal(b->count, 100);
	assert_int_equal(harness_read(h, &b), CV_EOF);
	assert_int_equal(b->count, 0);
	harness_close(h);

	/* count equal to a batch: EOF with the batch */
	h = open_sim("{rate: 0, count: 64}", 64);
	assert_int_equal(harness_read(h, &b), CV_EOF);
	assert_int_equal(b->count, 64);
	harness_close(h);
}

static void test_anomaly_share(void **state)
{
	enum { N = 100000 };
	struct reading *r = calloc(N, sizeof *r);
	struct harness *h =
	        open_sim("{lines: 10, rate: 0, count: 100000, anomaly_rate: 0.05, "
	                 "mark_injected: true, base_speed: 2.0, noise: 0.05, drift: 0.1}",
	                 4096);
	int eof;
	assert_int_equal(collect(h, r, N, &eof), N);
	harness_close(h);
	int injected = 0, stalls = 0;
	for (size_t i = 0; i < N; i++) {
		assert_true(r[i].injected == 0 || r[i].injected == 1);
		if (r[i].injected) {
			injected++;
			stalls += r[i].speed == 0.0;
			/* a stall, or a spike of 1.5..2.5 times a line's speed */
			assert_true(r[i].speed == 0.0 || r[i].speed >= 1.5 * 0.95 * 2.0);
		} else {
			/* base +-5%, drift (bounded walk), noise (+-3.5 sigma) */
			assert_true(r[i].speed > 2.0 * 0.95 - 0.6 && r[i].speed < 2.0 * 1.05 + 0.6);
		}
	}
	/* 5% of 100000: 5000, sigma ~69 */
	assert_true(injected > 4600 && injected < 5400);
	assert_true(stalls > injected / 2 - 300 && stalls < injected / 2 + 300);
	free(r);

	r = calloc(1000, sizeof *r);
	h = open_sim("{rate: 0, count: 1000, anomaly_rate: 0, mark_injected: true}", 1000);
	assert_int_equal(collect(h, r, 1000, &eof), 1000);
	harness_close(h);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(r[i].injected, 0);
	h = open_sim("{rate: 0, count: 1000, anomaly_rate: 1, mark_injected: true}", 1000);
	assert_int_equal(collect(h, r, 1000, &eof), 1000);
	harness_close(h);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(r[i].injected, 1);
	/* without mark_injected there is no such field */
	h = open_sim("{rate: 0, count: 10}", 10);
	assert_int_equal(collect(h, r, 10, &eof), 10);
	harness_close(h);
	assert_int_equal(r[0].injected, -1);
	free(r);
}

static int64_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void test_paced(void **state)
{
	/* 100 records at 2000/s: record 99 is due 49.5 ms after the start, so
	 * reading them all cannot take less (a lower bound, not a speed test). */
	enum { N = 100 };
	struct reading r[N];
	int64_t t0 = mono_now();
	struct harness *h = open_sim("{lines: 4, rate: 2000, count: 100}", 1024);
	int eof;
	assert_int_equal(collect(h, r, N, &eof), N);
	int64_t elapsed = mono_now() - t0;
	assert_true(eof);
	harness_close(h);
	assert_true(elapsed >= 49000000);
	/* timestamps follow the schedule: 0.5 ms apart over all lines */
	for (int i = 1; i < N; i++) {
		int64_t d = r[i].ts - r[i - 1].ts;
		assert_true(d > 400000 && d < 600000);
	}
}

static void test_paced_wait_is_bounded(void **state)
{
	/* One record per 10 s: the first is due at once, then a read waits at
	 * most 100 ms and returns 0 with nothing. */
	struct harness *h = open_sim("{rate: 0.1}", 16);
	struct cv_batch *b;
	int got = 0;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(harness_read(h, &b), 0);
		got += (int)b->count;
	}
	assert_int_equal(got, 1);
	harness_close(h);
}

static void test_stop(void **state)
{
	struct harness *h = open_sim("{rate: 0.1}", 16);
	struct cv_batch *b;
	assert_int_equal(harness_read(h, &b), 0);
	cv_plugin_descriptor.stop(harness_state(h));
	assert_int_equal(harness_read(h, &b), CV_EOF);
	assert_int_equal(b->count, 0);
	harness_close(h);

	h = open_sim("{rate: 0}", 16);
	assert_int_equal(harness_read(h, &b), 0);
	assert_int_equal(b->count, 16); /* flat out fills the batch */
	cv_plugin_descriptor.stop(harness_state(h));
	assert_int_equal(harness_read(h, &b), CV_EOF);
	harness_close(h);
}

static void test_extra_tags(void **state)
{
	struct harness *h =
	        open_sim("{lines: 3, rate: 0, tags: {producer: pod-a, zone: \"\", site: x}}", 16);
	struct cv_batch *b;
	assert_int_equal(harness_read(h, &b), 0);
	assert_true(b->count > 0);
	for (uint32_t i = 0; i < b->count; i++) {
		const struct cv_record *r = &b->records[i];
		assert_int_equal(r->ntags, 3); /* line_id, producer, site: empty zone left out */
		const struct cv_tag *t = cv_record_find_tag(r, "producer", 8);
		assert_non_null(t);
		assert_int_equal(t->value_len, 5);
		assert_memory_equal(t->value, "pod-a", 5);
		assert_non_null(cv_record_find_tag(r, "site", 4));
		assert_null(cv_record_find_tag(r, "zone", 4));
		assert_non_null(cv_record_find_tag(r, "line_id", 7));
	}
	harness_close(h);
}

static void test_options(void **state)
{
	static const char *const bad[] = {
	        "{lines: 0}",          "{lines: 100001}",      "{rate: -1}",  "{count: -1}",
	        "{anomaly_rate: 1.5}", "{anomaly_rate: -0.1}", "{nosuch: 1}", "{measurement: \"\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct harness *h = NULL;
		assert_true(harness_open(&cv_plugin_descriptor, bad[i], 16, &h) < 0);
	}
	struct harness *h = open_sim("{lines: 100000, rate: 0, count: 200000, measurement: m2, "
	                             "tag_key: belt}",
	                             4096);
	struct cv_batch *b;
	int rc;
	uint64_t n = 0;
	do {
		rc = harness_read(h, &b);
		for (uint32_t i = 0; i < b->count; i++) {
			const struct cv_record *r = &b->records[i];
			assert_int_equal(r->measurement_len, 2);
			assert_memory_equal(r->measurement, "m2", 2);
			assert_memory_equal(r->tags[0].key, "belt", 4);
			if (n == 99999)
				assert_memory_equal(r->tags[0].value, "line-100000", 11);
			n++;
		}
	} while (rc == 0);
	assert_int_equal(rc, CV_EOF);
	assert_int_equal(n, 200000);
	harness_close(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_deterministic_across_batch_sizes),
	        cmocka_unit_test(test_seq_and_timestamps_per_line),
	        cmocka_unit_test(test_count),
	        cmocka_unit_test(test_anomaly_share),
	        cmocka_unit_test(test_paced),
	        cmocka_unit_test(test_paced_wait_is_bounded),
	        cmocka_unit_test(test_stop),
	        cmocka_unit_test(test_options),
	        cmocka_unit_test(test_extra_tags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
