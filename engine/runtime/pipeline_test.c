/* Runs real pipelines (threads, pool, acknowledgements) with small plugins
 * defined here, and checks that every record is settled exactly once and
 * acknowledged back to the source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "base/clock.h"
#include "runtime/host_api.h"
#include "base/log.h"
#include "metrics/metrics.h"
#include "runtime/dead_letter.h"
#include "runtime/pipeline.h"

/* --- a counting source: emits `limit` records (0 = endless), token = seq --- */
struct count_src {
	const struct cv_host_api *api;
	uint64_t next, limit;
	_Atomic uint64_t acked_ok, acked_bad, acks, reads;
	_Atomic bool stopped;
	uint64_t max_inflight_seen;
	uint8_t *seen; /* per token: times acknowledged */
};

static struct count_src *g_src;

static int src_init(struct cv_stage *st, const struct cv_host_api *api, const void *cfg,
                    void **state)
{
	g_src->api = api;
	*state = g_src;
	return 0;
}

static void noop_destroy(void *state)
{
}

static const char M[] = "m";

static int src_read(void *state, struct cv_batch *b)
{
	struct count_src *s = state;
	atomic_fetch_add(&s->reads, 1);
	if (atomic_load(&s->stopped))
		return CV_EOF;
	struct cv_record *r;
	while ((!s->limit || s->next < s->limit) && (r = cv_batch_record_new(b))) {
		r->measurement = M;
		r->measurement_len = 1;
		r->timestamp = s->api->now_ns();
		r->token = s->next++;
		cv_record_add_int(s->api, b, r, "seq", 3, (int64_t)r->token);
	}
	return s->limit && s->next >= s->limit ? CV_EOF : 0;
}

static void src_ack(void *state, const struct cv_batch *b)
{
	struct count_src *s = state;
	atomic_fetch_add(&s->acks, 1);
	for (uint32_t i = 0; i < b->count; i++) {
		const struct cv_record *r = &b->records[i];
		if (s->seen)
			s->seen[r->token]++;
		if (r->flags & (CV_RECORD_DELIVERED | CV_RECORD_DROPPED))
			atomic_fetch_add(&s->acked_ok, 1);
		else
			atomic_fetch_add(&s->acked_bad, 1);
	}
}

static void src_stop(void *state)
{
	atomic_store(&((struct count_src *)state)->stopped, true);
}

/* Ages records: with aged_every = k, every k-th record (by token) is stamped
 * AGED_NS in the past, the others now. */
#define AGED_NS (3 * 1000000000LL)
static uint64_t aged_every;

static int aged_read(void *state, struct cv_batch *b)
{
	struct count_src *s = state;
	uint32_t first = b->count;
	int rc = src_read(state, b);
	for (uint32_t i = first; i < b->count; i++) {
		if (b->records[i].token % aged_every == 0)
			b->records[i].timestamp = s->api->now_ns() - AGED_NS;
	}
	return rc;
}

static const struct cv_plugin aged_source_plugin = {
        CV_PLUGIN_HEADER,        .name = "aged",    .kind = CV_KIND_SOURCE, .init = src_init,
        .destroy = noop_destroy, .read = aged_read, .ack = src_ack,         .stop = src_stop,
};

static const struct cv_plugin source_plugin = {
        CV_PLUGIN_HEADER,        .name = "count",  .kind = CV_KIND_SOURCE, .init = src_init,
        .destroy = noop_destroy, .read = src_read, .ack = src_ack,         .stop = src_stop,
};

/* --- a transform that drops every third record --- */
static int third_init(struct cv_stage *st, const struct cv_host_api *api, const void *cfg,
                      void **state)
{
	*state = NULL;
	return 0;
}

static int third_process(void *state, struct cv_batch *b)
{
	for (uint32_t i = 0; i < b->count; i++)
		if (b->records[i].token % 3 == 0)
			cv_record_drop(b, &b->records[i]);
	return 0;
}

static const struct cv_plugin drop_plugin = {
        CV_PLUGIN_HEADER,   .name = "third",         .kind = CV_KIND_TRANSFORM,
        .init = third_init, .destroy = noop_destroy, .process = third_process,
};

/* --- a synchronous sink --- */
static _Atomic uint64_t sync_written;

static int sync_write(void *state, struct cv_batch *b)
{
	atomic_fetch_add(&sync_written, b->live);
	return 0;
}

static const struct cv_plugin sync_sink = {
        CV_PLUGIN_HEADER,   .name = "sync",          .kind = CV_KIND_SINK,
        .init = third_init, .destroy = noop_destroy, .write = sync_write,
};

/* --- an asynchronous sink: a thread settles records in reverse order; it can
 * be held to test backpressure; every 7th record is rejected --- */
struct async_sink {
	const struct cv_host_api *api;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cv_batch *queue[64];
	size_t n;
	bool hold, quit;
	size_t max_queued;
	uint32_t writes, last_live; /* calls to write; the last batch's live records */
	pthread_t thread;
};

static struct async_sink g_async;

static void *async_main(void *arg)
{
	struct async_sink *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->quit && (s->hold || s->n == 0))
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->n == 0 && s->quit)
			break;
		struct cv_batch *b = s->queue[--s->n];
		pthread_mutex_unlock(&s->mu);
		for (uint32_t i = b->count; i-- > 0;) {
			const struct cv_record *r = &b->records[i];
			if (r->flags & CV_RECORD_DROPPED)
				continue;
			s->api->ack_record(b, i,
			                   r->token % 7 == 0 ? CV_ACK_REJECTED : CV_ACK_DELIVERED,
			                   "multiple of seven");
		}
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int async_init(struct cv_stage *st, const struct cv_host_api *api, const void *cfg,
                      void **state)
{
	g_async.api = api;
	pthread_mutex_init(&g_async.mu, NULL);
	pthread_cond_init(&g_async.cv, NULL);
	pthread_create(&g_async.thread, NULL, async_main, &g_async);
	*state = &g_async;
	return 0;
}

static void async_destroy(void *state)
{
	struct async_sink *s = state;
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	s->hold = false;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}

static int async_write(void *state, struct cv_batch *b)
{
	struct async_sink *s = state;
	pthread_mutex_lock(&s->mu);
	s->queue[s->n++] = b;
	if (s->n > s->max_queued)
		s->max_queued = s->n;
	s->writes++;
	s->last_live = b->live;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static const struct cv_plugin async_sink_plugin = {
        CV_PLUGIN_HEADER,     .name = "async",
        .kind = CV_KIND_SINK, .flags = CV_PLUGIN_ASYNC_ACK,
        .init = async_init,   .destroy = async_destroy,
        .write = async_write,
};

/* --- helpers --- */
static void wait_done(struct pipeline *p, int seconds)
{
	int64_t deadline = clock_monotonic_ns() + (int64_t)seconds * 1000000000;
	while (!pipeline_threads_done(p)) {
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

static double series_value(struct metrics *m, const char *prefix)
{
	struct strbuf sb = {0};
	assert_int_equal(metrics_render(m, &sb), 0);
	char *line = strstr(sb.data, prefix);
	assert_non_null(line);
	double v = strtod(strchr(line, '}') + 2, NULL);
	strbuf_free(&sb);
	return v;
}

static struct pipeline *make(struct cv_stage *stages, size_t n, struct metrics *m, uint32_t batch,
                             uint32_t max)
{
	struct pipeline_config cfg = {
	        .name = "p", .batch_records = batch, .max_records = max, .metrics_enabled = true};
	struct pipeline *p = pipeline_new(&cfg, stages, n, m);
	assert_non_null(p);
	return p;
}

static void test_sync_counts_and_acks(void **unused)
{
	const uint64_t N = 100000;
	struct count_src src = {.limit = N};
	src.seen = calloc(N, 1);
	g_src = &src;
	atomic_store(&sync_written, 0);
	struct cv_stage stages[3] = {
	        {.name = "count", .plugin = &source_plugin},
	        {.name = "third", .plugin = &drop_plugin},
	        {.name = "sync", .plugin = &sync_sink},
	};
	struct metrics *m = metrics_new();
	struct pipeline *p = make(stages, 3, m, 256, 1024);
	assert_int_equal(pipeline_start(p), 0);
	wait_done(p, 30);
	assert_int_equal(pipeline_join(p), 0);
	uint64_t dropped = (N + 2) / 3;
	assert_int_equal(atomic_load(&sync_written), N - dropped);
	assert_int_equal(atomic_load(&src.acked_ok), N);
	assert_int_equal(atomic_load(&src.acked_bad), 0);
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(src.seen[i], 1);
	assert_true(series_value(
	                    m, "conveyor_stage_records_out_total{pipeline=\"p\",stage=\"count\"") ==
	            (double)N);
	assert_true(
	        series_value(
	                m, "conveyor_stage_records_dropped_total{pipeline=\"p\",stage=\"third\"") ==
	        (double)dropped);
	assert_true(
	        series_value(m, "conveyor_stage_records_out_total{pipeline=\"p\",stage=\"sync\"") ==
	        (double)(N - dropped));
	assert_true(series_value(m, "conveyor_pipeline_latency_seconds_count{pipeline=\"p\"") ==
	            (double)(N - dropped));
	pipeline_free(p);
	metrics_free(m);
	free(src.seen);
}

/* The latency histogram counts each delivered record in its bucket: all in
 * one bucket (the batch's timestamp span decides at once), and split across
 * two (record by record). Records are 3 s old or fresh; processing them
 * takes far less than the 2 s between them and a bucket bound. */
static void check_latency(uint64_t every, double aged_share)
{
	const uint64_t N = 20000;
	struct count_src src = {.limit = N};
	g_src = &src;
	aged_every = every;
	struct cv_stage stages[2] = {
	        {.name = "aged", .plugin = &aged_source_plugin},
	        {.name = "sync", .plugin = &sync_sink},
	};
	struct metrics *m = metrics_new();
	struct pipeline *p = make(stages, 2, m, 256, 1024);
	assert_int_equal(pipeline_start(p), 0);
	wait_done(p, 30);
	assert_int_equal(pipeline_join(p), 0);
	double count = series_value(m, "conveyor_pipeline_latency_seconds_count{pipeline=\"p\"");
	double sum = series_value(m, "conveyor_pipeline_latency_seconds_sum{pipeline=\"p\"");
	double below = series_value(
	        m, "conveyor_pipeline_latency_seconds_bucket{pipeline=\"p\",le=\"2.5\"");
	double upto5 =
	        series_value(m, "conveyor_pipeline_latency_seconds_bucket{pipeline=\"p\",le=\"5\"");
	double aged = (double)N * aged_share;
	assert_true(count == (double)N);
	assert_true(below == (double)N - aged);
	assert_true(upto5 == (double)N);
	/* Every aged record adds 3 s or a little more, a fresh one a little. */
	assert_true(sum >= aged * 3.0 && sum < aged * 3.0 + (double)N * 1.0);
	pipeline_free(p);
	metrics_free(m);
}

static void test_latency_one_bucket(void **unused)
{
	check_latency(1, 1.0);
}

static void test_latency_two_buckets(void **unused)
{
	check_latency(2, 0.5);
}

static void test_async_reverse_and_rejects(void **unused)
{
	const uint64_t N = 50000;
	struct count_src src = {.limit = N};
	src.seen = calloc(N, 1);
	g_src = &src;
	memset(&g_async, 0, sizeof g_async);
	struct cv_stage stages[2] = {
	        {.name = "count", .plugin = &source_plugin},
	        {.name = "async", .plugin = &async_sink_plugin},
	};
	struct metrics *m = metrics_new();
	struct pipeline *p = make(stages, 2, m, 100, 800);
	assert_int_equal(pipeline_start(p), 0);
	wait_done(p, 30);
	assert_int_equal(pipeline_join(p), 0);
	uint64_t rejected = (N + 6) / 7;
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(src.seen[i], 1);
	assert_int_equal(atomic_load(&src.acked_ok), N - rejected);
	assert_int_equal(atomic_load(&src.acked_bad), rejected);
	assert_true(
	        series_value(
	                m, "conveyor_stage_records_dropped_total{pipeline=\"p\",stage=\"async\"") ==
	        (double)rejected);
	pipeline_free(p);
	metrics_free(m);
	free(src.seen);
}

/* --- dead letters reach the file before the source acknowledges --- */
static const char *dl_path;
static _Atomic uint64_t dl_expected; /* dead letters of the batches acknowledged */
static _Atomic uint64_t dl_short;    /* of those, not in the file at the ack */

static uint64_t file_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	uint64_t n = 0;
	for (int c; (c = fgetc(f)) != EOF;)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Marks in `seen` (N bytes) the seq of every record in the file. */
static void file_seqs(const char *path, uint8_t *seen, uint64_t n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		const char *at = strstr(line, "\"seq\":");
		uint64_t seq = at ? strtoull(at + 6, NULL, 10) : n;
		if (seq < n)
			seen[seq] = 1;
	}
	fclose(f);
}

/* Checks that the file holds a line for every record of the batch that
 * was rejected (by the sink) or dropped (rejected by the transform). */
static void dl_ack(void *state, const struct cv_batch *b)
{
	struct count_src *s = state;
	uint8_t *seen = calloc(s->limit, 1);
	file_seqs(dl_path, seen, s->limit);
	for (uint32_t i = 0; i < b->count; i++) {
		const struct cv_record *r = &b->records[i];
		if (!(r->flags & (CV_RECORD_REJECTED | CV_RECORD_DROPPED)))
			continue;
		atomic_fetch_add(&dl_expected, 1);
		if (!seen[r->token])
			atomic_fetch_add(&dl_short, 1);
	}
	free(seen);
	src_ack(state, b);
}

static const struct cv_plugin dl_source_plugin = {
        CV_PLUGIN_HEADER,        .name = "count",  .kind = CV_KIND_SOURCE, .init = src_init,
        .destroy = noop_destroy, .read = src_read, .ack = dl_ack,          .stop = src_stop,
};

/* Rejects every other record (token odd), through the host. */
struct odd_rejecter {
	struct cv_stage *st;
	const struct cv_host_api *api;
};
static struct odd_rejecter g_odd;

static int odd_init(struct cv_stage *st, const struct cv_host_api *api, const void *cfg,
                    void **state)
{
	g_odd = (struct odd_rejecter){st, api};
	*state = &g_odd;
	return 0;
}

static int odd_process(void *state, struct cv_batch *b)
{
	struct odd_rejecter *o = state;
	for (uint32_t i = 0; i < b->count; i++)
		if (b->records[i].token % 2)
			o->api->reject(o->st, b, &b->records[i], "odd");
	return 0;
}

static const struct cv_plugin odd_plugin = {
        CV_PLUGIN_HEADER, .name = "odd",           .kind = CV_KIND_TRANSFORM,
        .init = odd_init, .destroy = noop_destroy, .process = odd_process,
};

static void test_dead_letters_written_before_ack(void **unused)
{
	/* The transform rejects every odd record, the asynchronous sink every
	 * 7th of the others (from its own thread); a batch of 1024 has more
	 * than 64 KiB of dead letters, so some are written early too. */
	const uint64_t N = 20000;
	char path[] = "/tmp/conveyor_dl_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	dl_path = path;
	atomic_store(&dl_expected, 0);
	atomic_store(&dl_short, 0);
	struct count_src src = {.limit = N};
	g_src = &src;
	memset(&g_async, 0, sizeof g_async);
	struct cv_stage stages[3] = {
	        {.name = "count", .plugin = &dl_source_plugin},
	        {.name = "odd", .plugin = &odd_plugin},
	        {.name = "async", .plugin = &async_sink_plugin},
	};
	struct metrics *m = metrics_new();
	struct pipeline_config cfg = {.name = "p",
	                              .batch_records = 1024,
	                              .max_records = 4096,
	                              .metrics_enabled = true,
	                              .dead_letter_path = path};
	struct pipeline *p = pipeline_new(&cfg, stages, 3, m);
	assert_non_null(p);
	assert_int_equal(pipeline_start(p), 0);
	wait_done(p, 30);
	assert_int_equal(pipeline_join(p), 0);
	uint64_t odd = N / 2, sevens = 0;
	for (uint64_t t = 0; t < N; t += 2)
		sevens += t % 7 == 0;
	assert_int_equal(atomic_load(&dl_expected), odd + sevens);
	assert_int_equal(atomic_load(&dl_short), 0);
	assert_int_equal(file_lines(path), odd + sevens);
	assert_int_equal(dead_letter_kept(p->dead_letter), odd + sevens);
	pipeline_free(p);
	metrics_free(m);
	unlink(path);
}

static void test_backpressure_bounds_inflight(void **unused)
{
	struct count_src src = {.limit = 0};
	g_src = &src;
	memset(&g_async, 0, sizeof g_async);
	g_async.hold = true; /* the sink settles nothing until released */
	struct cv_stage stages[2] = {
	        {.name = "count", .plugin = &source_plugin},
	        {.name = "async", .plugin = &async_sink_plugin},
	};
	struct metrics *m = metrics_new();
	struct pipeline *p = make(stages, 2, m, 64, 256); /* a pool of 4 batches */
	assert_int_equal(pipeline_start(p), 0);
	/* The source fills the pool, then must wait: poll until the sink holds
	 * all four batches, then check the source has not read more. */
	int64_t deadline = clock_monotonic_ns() + 10 * 1000000000LL;
	for (;;) {
		pthread_mutex_lock(&g_async.mu);
		size_t n = g_async.n;
		pthread_mutex_unlock(&g_async.mu);
		if (n == 4)
			break;
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	uint64_t reads = atomic_load(&src.reads);
	struct timespec ts = {0, 200000000};
	nanosleep(&ts, NULL); /* give a misbehaving source time to over-read */
	assert_int_equal(atomic_load(&src.reads), reads);
	assert_int_equal(src.next, 4 * 64);
	pthread_mutex_lock(&g_async.mu);
	g_async.hold = false;
	pthread_cond_broadcast(&g_async.cv);
	pthread_mutex_unlock(&g_async.mu);
	pipeline_request_stop(p, clock_monotonic_ns() + 10 * 1000000000LL);
	wait_done(p, 15);
	assert_int_equal(pipeline_join(p), 0);
	assert_int_equal(atomic_load(&src.acked_ok) + atomic_load(&src.acked_bad), src.next);
	assert_true(g_async.max_queued <= 4);
	pipeline_free(p);
	metrics_free(m);
}

static void test_stop_drains_endless_source(void **unused)
{
	struct count_src src = {.limit = 0};
	g_src = &src;
	atomic_store(&sync_written, 0);
	struct cv_stage stages[2] = {
	        {.name = "count", .plugin = &source_plugin},
	        {.name = "sync", .plugin = &sync_sink},
	};
	struct metrics *m = metrics_new();
	struct pipeline *p = make(stages, 2, m, 512, 4096);
	assert_int_equal(pipeline_start(p), 0);
	int64_t deadline = clock_monotonic_ns() + 10 * 1000000000LL;
	while (atomic_load(&sync_written) < 100000) {
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	pipeline_request_stop(p, clock_monotonic_ns() + 5 * 1000000000LL);
	wait_done(p, 10);
	assert_int_equal(pipeline_join(p), 0);
	assert_int_equal(atomic_load(&src.acked_ok), src.next);
	assert_int_equal(atomic_load(&sync_written), src.next);
	pipeline_free(p);
	metrics_free(m);
}

/* --- a transform that counts, per record, how often it was transformed;
 * its instances count their inits and destroys --- */
static uint8_t *g_tagged;
static _Atomic int g_tag_inits, g_tag_destroys;

static int tag_init(struct cv_stage *st, const struct cv_host_api *api, const void *cfg,
                    void **state)
{
	atomic_fetch_add(&g_tag_inits, 1);
	*state = NULL;
	return 0;
}

static void tag_destroy(void *state)
{
	atomic_fetch_add(&g_tag_destroys, 1);
}

static int tag_process(void *state, struct cv_batch *b)
{
	for (uint32_t i = 0; i < b->count; i++)
		g_tagged[b->records[i].token]++;
	return 0;
}

static const struct cv_plugin tag_plugin = {
        CV_PLUGIN_HEADER, .name = "tag",          .kind = CV_KIND_TRANSFORM,
        .init = tag_init, .destroy = tag_destroy, .process = tag_process,
};

static void free_set(struct transform_set *set)
{
	free(set->stages);
	free(set);
}

static struct transform_set *tag_set(struct pipeline *p)
{
	struct transform_set *set = calloc(1, sizeof *set);
	assert_non_null(set);
	set->n = 1;
	set->stages = calloc(1, sizeof *set->stages);
	assert_non_null(set->stages);
	set->stages[0] = (struct cv_stage){.name = "tag", .plugin = &tag_plugin};
	set->release = free_set;
	size_t failed;
	assert_int_equal(pipeline_prepare_transforms(p, set, &failed), 0);
	return set;
}

/* Transforms swapped while records flow: every record is transformed once
 * (by one set or the next), no set is destroyed while a batch it touched is
 * unsettled, the totals carry over, and every instance is destroyed once. */
static void test_transform_swaps(void **unused)
{
	const uint64_t N = 400000;
	struct count_src src = {.limit = N};
	g_src = &src;
	g_tagged = calloc(N, 1);
	atomic_store(&g_tag_inits, 0);
	atomic_store(&g_tag_destroys, 0);
	memset(&g_async, 0, sizeof g_async);
	struct cv_stage stages[3] = {
	        {.name = "count", .plugin = &source_plugin},
	        {.name = "tag", .plugin = &tag_plugin},
	        {.name = "async", .plugin = &async_sink_plugin},
	};
	struct metrics *m = metrics_new();
	struct pipeline *p = make(stages, 3, m, 128, 1024);
	assert_int_equal(pipeline_start(p), 0);

	/* Held sink: the replaced set has batches in flight and stays. */
	pthread_mutex_lock(&g_async.mu);
	g_async.hold = true;
	pthread_mutex_unlock(&g_async.mu);
	int64_t deadline = clock_monotonic_ns() + 10 * 1000000000LL;
	for (;;) { /* until the sink holds a batch the first set transformed */
		pthread_mutex_lock(&g_async.mu);
		size_t held = g_async.n;
		pthread_mutex_unlock(&g_async.mu);
		if (held)
			break;
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	pipeline_swap_transforms(p, tag_set(p));
	while (pipeline_stage(p, 1) == &stages[1]) { /* installed between batches */
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(pipeline_reap_transforms(p), 0);
	pthread_mutex_lock(&g_async.mu);
	g_async.hold = false;
	pthread_cond_broadcast(&g_async.cv);
	pthread_mutex_unlock(&g_async.mu);
	while (pipeline_reap_transforms(p) == 0) {
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	assert_false(stages[1].initialised);

	/* Many swaps while records flow, some handed over before the last was
	 * installed. */
	for (int i = 0; i < 50; i++) {
		pipeline_swap_transforms(p, tag_set(p));
		if (i % 3)
			pipeline_swap_transforms(p, tag_set(p));
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
		pipeline_reap_transforms(p);
	}
	wait_done(p, 60);
	assert_int_equal(pipeline_join(p), 0);
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(g_tagged[i], 1);
	assert_int_equal(atomic_load(&src.acked_ok) + atomic_load(&src.acked_bad), N);
	/* The last set's totals include those of every set before it. */
	assert_int_equal(atomic_load(&pipeline_stage(p, 1)->total_out), N);
	assert_true(
	        series_value(m, "conveyor_stage_records_in_total{pipeline=\"p\",stage=\"tag\"") ==
	        (double)N);
	pipeline_free(p);
	assert_int_equal(atomic_load(&g_tag_inits), atomic_load(&g_tag_destroys));
	metrics_free(m);
	free(g_tagged);
}

/* --- batch closing: a source fed record by record from the test, and a
 * synchronous sink that can be held shut while it writes --- */
struct feed_src {
	const struct cv_host_api *api;
	_Atomic uint64_t fed, taken;
	_Atomic bool stopped;
};

static struct feed_src g_feed;

static int feed_init(struct cv_stage *st, const struct cv_host_api *api, const void *cfg,
                     void **state)
{
	g_feed.api = api;
	*state = &g_feed;
	return 0;
}

static int feed_read(void *state, struct cv_batch *b)
{
	struct feed_src *s = state;
	if (atomic_load(&s->stopped))
		return CV_EOF;
	struct cv_record *r;
	while (atomic_load(&s->taken) < atomic_load(&s->fed) && (r = cv_batch_record_new(b))) {
		r->measurement = M;
		r->measurement_len = 1;
		r->timestamp = s->api->now_ns();
		r->token = atomic_fetch_add(&s->taken, 1);
	}
	if (b->count == 0) {
		/* Nothing at all: a short wait, as the contract asks. */
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static void feed_stop(void *state)
{
	atomic_store(&((struct feed_src *)state)->stopped, true);
}

static const struct cv_plugin feed_plugin = {
        CV_PLUGIN_HEADER,        .name = "feed",    .kind = CV_KIND_SOURCE, .init = feed_init,
        .destroy = noop_destroy, .read = feed_read, .stop = feed_stop,
};

struct gate_sink {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool shut;                  /* write waits while shut */
	uint32_t writes, sizes[64]; /* records per write, in order */
	uint32_t waiting;           /* writes waiting at the gate */
};

static struct gate_sink g_gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int gate_write(void *state, struct cv_batch *b)
{
	pthread_mutex_lock(&g_gate.mu);
	if (g_gate.writes < 64)
		g_gate.sizes[g_gate.writes] = b->live;
	g_gate.writes++;
	g_gate.waiting++;
	while (g_gate.shut)
		pthread_cond_wait(&g_gate.cv, &g_gate.mu);
	g_gate.waiting--;
	pthread_mutex_unlock(&g_gate.mu);
	return 0;
}

static const struct cv_plugin gate_plugin = {
        CV_PLUGIN_HEADER,   .name = "gate",          .kind = CV_KIND_SINK,
        .init = third_init, .destroy = noop_destroy, .write = gate_write,
};

static void gate_set(bool shut)
{
	pthread_mutex_lock(&g_gate.mu);
	g_gate.shut = shut;
	pthread_cond_broadcast(&g_gate.cv);
	pthread_mutex_unlock(&g_gate.mu);
}

static uint32_t gate_writes(uint32_t *waiting)
{
	pthread_mutex_lock(&g_gate.mu);
	uint32_t n = g_gate.writes;
	if (waiting)
		*waiting = g_gate.waiting;
	pthread_mutex_unlock(&g_gate.mu);
	return n;
}

/* Polls (bounded) until the sink has been called `writes` times, and
 * `waiting` of those calls wait at the gate. */
static void await_writes(uint32_t writes, uint32_t waiting)
{
	int64_t deadline = clock_monotonic_ns() + 20 * 1000000000LL;
	for (;;) {
		uint32_t w;
		if (gate_writes(&w) == writes && w == waiting)
			return;
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

static void await_taken(uint64_t n)
{
	int64_t deadline = clock_monotonic_ns() + 20 * 1000000000LL;
	while (atomic_load(&g_feed.taken) < n) {
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

static struct pipeline *start_gate_pipeline(struct cv_stage *stages, struct metrics *m,
                                            int64_t linger_ns)
{
	memset(&g_feed, 0, sizeof g_feed);
	pthread_mutex_lock(&g_gate.mu);
	g_gate.shut = false;
	g_gate.writes = g_gate.waiting = 0;
	pthread_mutex_unlock(&g_gate.mu);
	stages[0] = (struct cv_stage){.name = "feed", .plugin = &feed_plugin};
	stages[1] = (struct cv_stage){.name = "gate", .plugin = &gate_plugin};
	struct pipeline_config cfg = {.name = "p",
	                              .batch_records = 256,
	                              .max_records = 4096,
	                              .linger_ns = linger_ns,
	                              .metrics_enabled = true};
	struct pipeline *p = pipeline_new(&cfg, stages, 2, m);
	assert_non_null(p);
	assert_int_equal(pipeline_start(p), 0);
	return p;
}

static void stop_gate_pipeline(struct pipeline *p, struct metrics *m)
{
	gate_set(false);
	pipeline_request_stop(p, clock_monotonic_ns() + 10 * 1000000000LL);
	wait_done(p, 15);
	assert_int_equal(pipeline_join(p), 0);
	pipeline_free(p);
	metrics_free(m);
}

#define HOUR_NS (3600 * 1000000000LL)

/* The worker idle: a record goes on at once, whatever queue.linger says. */
static void test_idle_worker_takes_partial_batch_at_once(void **unused)
{
	struct cv_stage stages[2];
	struct metrics *m = metrics_new();
	struct pipeline *p = start_gate_pipeline(stages, m, HOUR_NS);
	for (uint32_t i = 1; i <= 20; i++) {
		atomic_fetch_add(&g_feed.fed, 1);
		await_writes(i, 0); /* an hour's linger would fail here */
		assert_int_equal(g_gate.sizes[i - 1], 1);
	}
	stop_gate_pipeline(p, m);
}

/* The worker busy: the next batch keeps filling (an hour's linger) and
 * goes on, whole, the moment the worker is idle again. */
static void test_busy_worker_batch_fills_until_idle(void **unused)
{
	struct cv_stage stages[2];
	struct metrics *m = metrics_new();
	struct pipeline *p = start_gate_pipeline(stages, m, HOUR_NS);
	gate_set(true);
	atomic_fetch_add(&g_feed.fed, 1);
	await_writes(1, 1); /* the sink holds the first record */
	for (int i = 0; i < 100; i++)
		atomic_fetch_add(&g_feed.fed, 1);
	await_taken(101);
	uint32_t waiting;
	assert_int_equal(gate_writes(&waiting), 1);
	gate_set(false);
	await_writes(2, 0);
	assert_int_equal(g_gate.sizes[0], 1);
	assert_int_equal(g_gate.sizes[1], 100);
	stop_gate_pipeline(p, m);
}

/* The worker busy for longer than queue.linger: partial batches go on
 * (into the queue) after the linger. */
static void test_busy_worker_linger_bounds_the_wait(void **unused)
{
	struct cv_stage stages[2];
	struct metrics *m = metrics_new();
	struct pipeline *p = start_gate_pipeline(stages, m, 5 * 1000000LL);
	gate_set(true);
	atomic_fetch_add(&g_feed.fed, 1);
	await_writes(1, 1);
	const char *queued = "conveyor_stage_queue_records{pipeline=\"p\",stage=\"gate\"";
	for (int i = 1; i <= 3; i++) {
		atomic_fetch_add(&g_feed.fed, 1);
		int64_t deadline = clock_monotonic_ns() + 20 * 1000000000LL;
		while (series_value(m, queued) < (double)i) {
			assert_true(clock_monotonic_ns() < deadline);
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
	assert_int_equal(gate_writes(NULL), 1);
	gate_set(false);
	await_writes(4, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(g_gate.sizes[i], 1);
	stop_gate_pipeline(p, m);
}

static uint32_t async_writes(uint32_t *last_live)
{
	pthread_mutex_lock(&g_async.mu);
	uint32_t n = g_async.writes;
	if (last_live)
		*last_live = g_async.last_live;
	pthread_mutex_unlock(&g_async.mu);
	return n;
}

static void await_async_writes(uint32_t n)
{
	int64_t deadline = clock_monotonic_ns() + 20 * 1000000000LL;
	while (async_writes(NULL) < n) {
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

/* An asynchronous sink holding every batch: single records go on at once
 * while the pool is small; once it holds 16 batches, none free, the one
 * filling keeps filling (an hour's linger) instead of growing the pool, and
 * goes on when batches come back. */
static void test_spent_pool_batch_fills(void **unused)
{
	memset(&g_feed, 0, sizeof g_feed);
	memset(&g_async, 0, sizeof g_async);
	g_async.hold = true;
	struct cv_stage stages[2] = {
	        {.name = "feed", .plugin = &feed_plugin},
	        {.name = "async", .plugin = &async_sink_plugin},
	};
	struct metrics *m = metrics_new();
	struct pipeline_config cfg = {.name = "p",
	                              .batch_records = 64,
	                              .max_records = 65536,
	                              .linger_ns = HOUR_NS,
	                              .metrics_enabled = true};
	struct pipeline *p = pipeline_new(&cfg, stages, 2, m);
	assert_non_null(p);
	assert_int_equal(pipeline_start(p), 0);
	for (uint32_t i = 1; i <= 15; i++) {
		atomic_fetch_add(&g_feed.fed, 1);
		await_async_writes(i);
	}
	/* The sixteenth batch, the pool's last, keeps filling. */
	for (int i = 0; i < 6; i++)
		atomic_fetch_add(&g_feed.fed, 1);
	await_taken(21);
	assert_int_equal(async_writes(NULL), 15);
	pthread_mutex_lock(&g_async.mu);
	g_async.hold = false;
	pthread_cond_broadcast(&g_async.cv);
	pthread_mutex_unlock(&g_async.mu);
	await_async_writes(16);
	uint32_t live;
	async_writes(&live);
	assert_int_equal(live, 6);
	pipeline_request_stop(p, clock_monotonic_ns() + 10 * 1000000000LL);
	wait_done(p, 15);
	assert_int_equal(pipeline_join(p), 0);
	pipeline_free(p);
	metrics_free(m);
}

/* --- liveness: a worker stuck outside a sink call, a sink blocked in write --- */
static _Atomic int stuck_calls; /* calls into the failing transform or the blocking sink */
static _Atomic bool sink_release;

static void await_calls(int n)
{
	int64_t deadline = clock_monotonic_ns() + 10 * 1000000000LL;
	while (atomic_load(&stuck_calls) < n) {
		assert_true(clock_monotonic_ns() < deadline);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Fails its first batch, so the worker logs "transform failed" (outside
 * any plugin call); passes the others. */
static int fail_once_process(void *state, struct cv_batch *b)
{
	return atomic_fetch_add(&stuck_calls, 1) == 0 ? CV_EIO : 0;
}

static const struct cv_plugin fail_once_plugin = {
        CV_PLUGIN_HEADER,   .name = "fail_once",     .kind = CV_KIND_TRANSFORM,
        .init = third_init, .destroy = noop_destroy, .process = fail_once_process,
};

static void test_stuck_worker_loop_is_not_alive(void **unused)
{
	/* The worker's log line goes to a full pipe: it blocks in write(2)
	 * between two plugin calls, as on a stalled stderr. */
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	char junk[4096];
	memset(junk, 'x', sizeof junk);
	while (write(fds[1], junk, sizeof junk) > 0)
		;
	while (write(fds[1], junk, 1) > 0)
		;
	fcntl(fds[1], F_SETFL, 0);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	dup2(fds[1], STDERR_FILENO);

	struct count_src src = {.limit = 0};
	g_src = &src;
	atomic_store(&stuck_calls, 0);
	struct cv_stage stages[3] = {
	        {.name = "count", .plugin = &source_plugin},
	        {.name = "fail_once", .plugin = &fail_once_plugin},
	        {.name = "sync", .plugin = &sync_sink},
	};
	struct metrics *m = metrics_new();
	struct pipeline *p = make(stages, 3, m, 64, 256);
	assert_int_equal(pipeline_start(p), 0);
	await_calls(1);
	sleep_ms(600);
	const char *why = NULL;
	bool alive = pipeline_alive(p, 300 * 1000000LL, &why);

	/* Unblock the worker: its line goes to the pipe, later ones to stderr. */
	dup2(saved, STDERR_FILENO);
	close(saved);
	while (read(fds[0], junk, sizeof junk) == (ssize_t)sizeof junk)
		;
	pipeline_request_stop(p, clock_monotonic_ns() + 10 * 1000000000LL);
	wait_done(p, 15);
	pipeline_join(p);
	pipeline_free(p);
	metrics_free(m);
	close(fds[0]);
	close(fds[1]);
	assert_false(alive);
	assert_string_equal(why, "worker loop");
}

/* Blocks in write until released; settles as a synchronous sink. */
static int blocking_write(void *state, struct cv_batch *b)
{
	atomic_fetch_add(&stuck_calls, 1);
	while (!atomic_load(&sink_release))
		sleep_ms(1);
	return 0;
}

static const struct cv_plugin blocking_sink = {
        CV_PLUGIN_HEADER,   .name = "blocking",      .kind = CV_KIND_SINK,
        .init = third_init, .destroy = noop_destroy, .write = blocking_write,
};

static void test_sink_blocked_in_write_is_alive(void **unused)
{
	struct count_src src = {.limit = 0};
	g_src = &src;
	atomic_store(&stuck_calls, 0);
	atomic_store(&sink_release, false);
	struct cv_stage stages[2] = {
	        {.name = "count", .plugin = &source_plugin},
	        {.name = "blocking", .plugin = &blocking_sink},
	};
	struct metrics *m = metrics_new();
	struct pipeline *p = make(stages, 2, m, 64, 256);
	assert_int_equal(pipeline_start(p), 0);
	await_calls(1);
	sleep_ms(600);
	const char *why = NULL;
	bool alive = pipeline_alive(p, 300 * 1000000LL, &why);
	atomic_store(&sink_release, true);
	pipeline_request_stop(p, clock_monotonic_ns() + 10 * 1000000000LL);
	wait_done(p, 15);
	assert_int_equal(pipeline_join(p), 0);
	pipeline_free(p);
	metrics_free(m);
	assert_true(alive);
	assert_null(why);
}

int main(void)
{
	log_configure(CV_LOG_ERROR, LOG_FORMAT_TEXT);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sync_counts_and_acks),
	        cmocka_unit_test(test_latency_one_bucket),
	        cmocka_unit_test(test_latency_two_buckets),
	        cmocka_unit_test(test_async_reverse_and_rejects),
	        cmocka_unit_test(test_dead_letters_written_before_ack),
	        cmocka_unit_test(test_backpressure_bounds_inflight),
	        cmocka_unit_test(test_stop_drains_endless_source),
	        cmocka_unit_test(test_transform_swaps),
	        cmocka_unit_test(test_idle_worker_takes_partial_batch_at_once),
	        cmocka_unit_test(test_busy_worker_batch_fills_until_idle),
	        cmocka_unit_test(test_busy_worker_linger_bounds_the_wait),
	        cmocka_unit_test(test_spent_pool_batch_fills),
	        cmocka_unit_test(test_stuck_worker_loop_is_not_alive),
	        cmocka_unit_test(test_sink_blocked_in_write_is_alive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
