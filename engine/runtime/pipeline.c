#include "runtime/pipeline.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "runtime/dead_letter.h"
#include "runtime/tap.h"

/* How long a thread waits on its condition before looking around again. */
#define TICK_NS (100 * 1000000LL)
/* Errors from a source are logged at most this often. */
#define ERROR_LOG_INTERVAL_NS (5 * 1000000000LL)

/* The monotonic time `ns` from now, for pthread_cond_timedwait. */
static void deadline_after(struct timespec *ts, int64_t ns)
{
	int64_t at = clock_monotonic_ns() + ns;
	ts->tv_sec = at / 1000000000;
	ts->tv_nsec = at % 1000000000;
}

static void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
}

static struct cv_stage *source_of(const struct pipeline *p)
{
	return &p->stages[0];
}

static struct cv_stage *sink_of(const struct pipeline *p)
{
	return &p->stages[p->nstages - 1];
}

static int setup_latency(struct pipeline *p)
{
	static const char *const names[] = {"pipeline"};
	const char *values[] = {p->cfg.name};
	struct metric_family *f =
	        metrics_family(p->registry, METRIC_HISTOGRAM, "conveyor_pipeline_latency_seconds",
	                       "Record timestamp to sink acknowledgement.", names, 1, NULL, 0);
	if (!f || !(p->latency = metrics_series(f, values)))
		return CV_ENOMEM;
	p->nlatency = METRICS_LATENCY_NBUCKETS;
	p->latency_bounds_ns = calloc(p->nlatency, sizeof *p->latency_bounds_ns);
	if (!p->latency_bounds_ns)
		return CV_ENOMEM;
	for (size_t i = 0; i < p->nlatency; i++)
		p->latency_bounds_ns[i] = (int64_t)(metric_bucket_bound(p->latency, i) * 1e9 + 0.5);
	return 0;
}

#define DEFAULT_BATCH_RECORDS 1024
#define DEFAULT_MAX_BYTES     (64ull << 20)
/* Records in flight when not configured, and at least: whole batches, so
 * that the source fills one while the sink works on another. */
#define DEFAULT_INFLIGHT_BATCHES 8
#define MIN_INFLIGHT_BATCHES     2
/* Field slots allocated per record; a record with more grows into the arena. */
#define FIELD_SLOTS 8
/* Arena bytes per record (strings, extra fields), within these bounds. */
#define ARENA_BYTES_PER_RECORD 256
#define ARENA_MIN_BYTES        (64u << 10)
#define ARENA_MAX_BYTES        (4u << 20)
/* The pool grows by batches while records in flight allow it, but a slow
 * source's partial batches hold few records each: one batch per this many
 * records in flight at most, and never more than POOL_MAX_BATCHES. */
#define POOL_RECORDS_PER_BATCH 16
#define POOL_MAX_BATCHES       1024
/* Batches made with the pipeline, and the pool's least bound: one filling,
 * one in the worker's hands. */
#define POOL_MIN_BATCHES  2
#define DEFAULT_LINGER_NS (20 * 1000000LL)

/* Adds a batch to the pool; NULL when the pool is at its bounds. */
static struct batch *pool_grow(struct pipeline *p)
{
	if (p->npool >= p->max_pool)
		return NULL;
	struct batch *b = batch_new(p->batch_records, p->slots, p->arena_bytes);
	if (!b)
		return NULL;
	b->owner = &p->owner;
	p->pool[p->npool++] = b;
	p->pool_bytes += batch_footprint(b);
	return b;
}

/* A free batch for the source, or NULL while the bounds say wait. */
static struct batch *take_batch(struct pipeline *p)
{
	if (p->inflight_records + p->batch_records > p->max_records && p->inflight > 0)
		return NULL;
	struct batch *b = p->free_list;
	if (b) {
		p->free_list = b->next;
		b->next = NULL;
		return b;
	}
	return pool_grow(p);
}

static void batch_done(void *ctx, struct batch *b);

/* Gives stages their pipeline, labels and metrics. */
static int attach_stages(struct pipeline *p, struct cv_stage *stages, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		stages[i].pipeline = p;
		stages[i].stop = &p->stop;
		stages[i].dead_letter = p->dead_letter;
		stages[i].pipeline_name = p->cfg.name;
		stages[i].registry = p->registry;
		atomic_store(&stages[i].healthy, true);
		if (p->cfg.metrics_enabled && p->registry &&
		    stage_metrics_register(&stages[i], p->registry) < 0)
			return CV_ENOMEM;
	}
	return 0;
}

struct pipeline *pipeline_new(const struct pipeline_config *cfg, struct cv_stage *stages,
                              size_t nstages, struct metrics *registry)
{
	struct pipeline *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->cfg = *cfg;
	p->stages = stages;
	p->nstages = nstages;
	p->registry = registry;
	p->deadline_ns = INT64_MAX;
	p->taps = tap_hub_new();
	pthread_mutex_init(&p->mu, NULL);
	cond_init_monotonic(&p->worker_cv);
	cond_init_monotonic(&p->source_cv);

	p->xf_first = (struct transform_set){.stages = stages + 1, .n = nstages - 2};
	atomic_init(&p->xf, &p->xf_first);
	p->dead_letter = dead_letter_open(cfg->name, cfg->dead_letter_path);
	if (!p->dead_letter) {
		log_write(CV_LOG_ERROR, cfg->name, NULL, "cannot open dead-letter file %s: %s",
		          cfg->dead_letter_path ? cfg->dead_letter_path : "(none)",
		          strerror(errno));
		goto fail;
	}
	p->owner = (struct batch_owner){.complete = batch_done,
	                                .ctx = p,
	                                .dead_letter = p->dead_letter,
	                                .sink = sink_of(p)->name};
	if (attach_stages(p, stages, nstages) < 0)
		goto fail;
	if (cfg->metrics_enabled && registry && setup_latency(p) < 0)
		goto fail;

	p->batch_records = cfg->batch_records ? cfg->batch_records : DEFAULT_BATCH_RECORDS;
	p->max_records =
	        cfg->max_records ? cfg->max_records : DEFAULT_INFLIGHT_BATCHES * p->batch_records;
	if (p->max_records < MIN_INFLIGHT_BATCHES * p->batch_records)
		p->max_records = MIN_INFLIGHT_BATCHES * p->batch_records;
	p->max_bytes = cfg->max_bytes ? cfg->max_bytes : DEFAULT_MAX_BYTES;
	p->linger_ns = cfg->linger_ns >= 0 ? cfg->linger_ns : DEFAULT_LINGER_NS;
	p->slots = FIELD_SLOTS;
	size_t arena = (size_t)p->batch_records * ARENA_BYTES_PER_RECORD;
	p->arena_bytes = arena < ARENA_MIN_BYTES   ? ARENA_MIN_BYTES
	                 : arena > ARENA_MAX_BYTES ? ARENA_MAX_BYTES
	                                           : arena;
	size_t footprint = sizeof(struct batch) + p->arena_bytes +
	                   (size_t)p->batch_records *
	                           (sizeof(struct cv_record) + p->slots * sizeof(struct cv_field));
	p->max_pool = p->max_records / POOL_RECORDS_PER_BATCH;
	if (p->max_pool > p->max_bytes / footprint)
		p->max_pool = p->max_bytes / footprint;
	if (p->max_pool > POOL_MAX_BATCHES)
		p->max_pool = POOL_MAX_BATCHES;
	if (p->max_pool < POOL_MIN_BATCHES)
		p->max_pool = POOL_MIN_BATCHES;
	p->pool = calloc(p->max_pool, sizeof *p->pool);
	if (!p->pool)
		goto fail;
	for (size_t i = 0; i < POOL_MIN_BATCHES; i++) {
		struct batch *b = pool_grow(p);
		if (!b)
			goto fail;
		b->next = p->free_list;
		p->free_list = b;
	}
	return p;
fail:
	p->stages = NULL; /* the caller still owns them on failure */
	pipeline_free(p);
	return NULL;
}

static void set_queue_gauge(struct pipeline *p)
{
	struct transform_set *xf = atomic_load_explicit(&p->xf, memory_order_relaxed);
	struct cv_stage *next = xf->n ? &xf->stages[0] : sink_of(p);
	if (next->m.queue)
		metric_set(next->m.queue, (double)p->queue_records);
}

/* A plugin call the liveness check watches: the stage is busy from `now`
 * (monotonic ns) until busy_end(). */
static inline void busy_begin(struct cv_stage *st, int64_t now)
{
	atomic_store_explicit(&st->busy_since, now, memory_order_release);
}

static inline void busy_end(struct cv_stage *st)
{
	atomic_store_explicit(&st->busy_since, 0, memory_order_release);
}

/* A plugin call that is also measured: returns its start for call_end(). */
static inline int64_t call_begin(struct cv_stage *st)
{
	int64_t t0 = clock_monotonic_ns();
	busy_begin(st, t0);
	return t0;
}

/* Ends a call begun at t0 at `t1`: the stage's duration histogram and
 * batch count take it. */
static inline void call_end(struct cv_stage *st, int64_t t0, int64_t t1)
{
	busy_end(st);
	if (st->m.duration) {
		metric_observe(st->m.duration, (double)(t1 - t0) * 1e-9);
		metric_inc(st->m.batches, 1);
	}
}

/* The worker is turning: liveness reads this while no sink call is busy. */
static inline void worker_heartbeat(struct pipeline *p, int64_t now)
{
	atomic_store_explicit(&p->heartbeat_worker, now, memory_order_release);
}

static void count(struct metric_series *s, _Atomic uint64_t *total, uint64_t n)
{
	if (!n)
		return;
	if (total)
		atomic_fetch_add_explicit(total, n, memory_order_relaxed);
	if (s)
		metric_inc(s, n);
}

static size_t latency_bucket(const struct pipeline *p, int64_t lat)
{
	size_t a = 0, z = p->nlatency;
	while (a < z) {
		size_t mid = (a + z) / 2;
		if (lat <= p->latency_bounds_ns[mid])
			z = mid;
		else
			a = mid + 1;
	}
	return a;
}

static void observe_latency(struct pipeline *p, struct batch *b, uint32_t delivered)
{
	const int64_t now = clock_now_ns();
	const struct cv_record *recs = b->pub.records;
	const uint32_t n = b->pub.count;
	if (delivered == n) {
		/* Common case: every record delivered. Records of a batch were made
		 * close together, so usually all fall in one bucket: find the
		 * extremes and the sum in one tight pass. */
		int64_t lo = INT64_MAX, hi = INT64_MIN, base = recs[0].timestamp;
		uint64_t spread = 0; /* sum of ts - base, wrapping: only used when small */
		for (uint32_t i = 0; i < n; i++) {
			int64_t ts = recs[i].timestamp;
			lo = ts < lo ? ts : lo;
			hi = ts > hi ? ts : hi;
			spread += (uint64_t)ts - (uint64_t)base;
		}
		int64_t lat_min, lat_max;
		if (!__builtin_sub_overflow(now, hi, &lat_min) &&
		    !__builtin_sub_overflow(now, lo, &lat_max) && lat_min >= 0) {
			size_t idx = latency_bucket(p, lat_min);
			if (idx == latency_bucket(p, lat_max)) {
				double total =
				        (double)n * (double)(now - base) - (double)(int64_t)spread;
				metric_observe_bucket(p->latency, idx, total * 1e-9, n);
				return;
			}
		}
	}
	int64_t lo = 0, hi = -1;
	size_t idx = 0;
	uint64_t cnt = 0;
	double sum = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct cv_record *r = &recs[i];
		if (!(r->flags & CV_RECORD_DELIVERED))
			continue;
		int64_t lat;
		if (__builtin_sub_overflow(now, r->timestamp, &lat))
			lat = r->timestamp < 0 ? INT64_MAX : 0;
		if (lat < 0)
			lat = 0;
		if (lat > hi || lat <= lo) {
			if (cnt)
				metric_observe_bucket(p->latency, idx, sum * 1e-9, cnt);
			cnt = 0;
			sum = 0;
			idx = latency_bucket(p, lat);
			lo = idx ? p->latency_bounds_ns[idx - 1] : -1;
			hi = idx < p->nlatency ? p->latency_bounds_ns[idx] : INT64_MAX;
		}
		cnt++;
		sum += (double)lat;
	}
	if (cnt)
		metric_observe_bucket(p->latency, idx, sum * 1e-9, cnt);
}

/* The batch's owner callback: its last record settled (any thread). Counts
 * the sink's outcomes and hands the batch to the source thread. */
static void batch_done(void *ctx, struct batch *b)
{
	struct pipeline *p = ctx;
	struct cv_stage *sink = sink_of(p);
	struct transform_set *xf = b->xf;
	b->xf = NULL;
	uint32_t delivered = atomic_load_explicit(&b->delivered, memory_order_relaxed);
	count(sink->m.out, &sink->total_out, delivered);
	count(sink->m.dropped, &sink->total_dropped,
	      atomic_load_explicit(&b->rejected, memory_order_relaxed));
	count(sink->m.errors, &sink->total_errors,
	      atomic_load_explicit(&b->failed, memory_order_relaxed));
	if (p->latency && delivered)
		observe_latency(p, b, delivered);
	pthread_mutex_lock(&p->mu);
	b->next = p->done_head;
	p->done_head = b;
	pthread_cond_signal(&p->source_cv);
	pthread_mutex_unlock(&p->mu);
	if (xf)
		atomic_fetch_sub_explicit(&xf->batches, 1, memory_order_release);
}

/* Settles every live record of a batch as failed (a transform failed). */
static void fail_batch(struct batch *b, const char *reason)
{
	batch_hold(b, b->pub.live);
	batch_settle_all(b, CV_ACK_FAILED, reason);
	batch_release(b);
}

static void run_batch(struct pipeline *p, struct batch *b)
{
	struct transform_set *xf = atomic_load_explicit(&p->xf, memory_order_relaxed);
	b->xf = xf;
	atomic_fetch_add_explicit(&xf->batches, 1, memory_order_relaxed);
	tap_point(source_of(p), &b->pub);
	for (size_t i = 0; i < xf->n; i++) {
		struct cv_stage *st = &xf->stages[i];
		uint32_t in = b->pub.live;
		if (in == 0)
			break;
		int64_t t0 = call_begin(st);
		int rc = stage_process(st, b);
		int64_t t1 = clock_monotonic_ns();
		worker_heartbeat(p, t1); /* before the stage stops being busy */
		call_end(st, t0, t1);
		uint32_t out = b->pub.live;
		count(st->m.in, NULL, in);
		count(st->m.out, &st->total_out, out);
		if (out < in)
			count(st->m.dropped, &st->total_dropped, in - out);
		if (rc < 0) {
			count(st->m.errors, &st->total_errors, 1);
			log_write(CV_LOG_ERROR, p->cfg.name, st->name,
			          "transform failed (%s): %u records failed", cv_error_name(rc),
			          out);
			fail_batch(b, "transform failed");
			return;
		}
		tap_point(st, &b->pub);
	}
	struct cv_stage *sink = sink_of(p);
	uint32_t live = b->pub.live;
	if (live == 0) {
		batch_complete(b);
		return;
	}
	count(sink->m.in, NULL, live);
	tap_point(sink, &b->pub);
	batch_hold(b, live);
	bool async = sink->plugin->flags & CV_PLUGIN_ASYNC_ACK;
	int64_t t0 = call_begin(sink);
	int rc = sink->plugin->write(sink->state, &b->pub);
	int64_t t1 = clock_monotonic_ns();
	worker_heartbeat(p, t1); /* before the sink stops being busy */
	call_end(sink, t0, t1);
	if (rc < 0) {
		count(sink->m.errors, NULL, 1);
		log_write(CV_LOG_ERROR, p->cfg.name, sink->name, "write failed (%s)",
		          cv_error_name(rc));
		batch_settle_all(b, CV_ACK_FAILED, "write failed");
	} else if (!async) {
		batch_settle_all(b, CV_ACK_DELIVERED, NULL);
	}
	batch_release(b);
}

static int64_t current_deadline(struct pipeline *p)
{
	return atomic_load_explicit(&p->deadline_ns, memory_order_relaxed);
}

static void flush_sink(struct pipeline *p)
{
	struct cv_stage *sink = sink_of(p);
	if (!sink->plugin->flush)
		return;
	for (;;) {
		int64_t now = clock_monotonic_ns();
		int64_t deadline = current_deadline(p);
		if (now >= deadline)
			break;
		int64_t until = deadline - now < TICK_NS * 2 ? deadline - now : TICK_NS * 2;
		busy_begin(sink, now);
		int rc = sink->plugin->flush(sink->state, clock_now_ns() + until);
		worker_heartbeat(p, clock_monotonic_ns());
		busy_end(sink);
		if (rc == 0)
			break;
	}
}

/* Both threads call this as they end; the second tells the engine. */
static void notify_if_done(struct pipeline *p)
{
	if (atomic_load(&p->source_exited) && atomic_load(&p->worker_exited) && p->cfg.on_done &&
	    !atomic_exchange(&p->done_notified, true))
		p->cfg.on_done(p->cfg.on_done_ctx);
}

/* Installs the transforms a reload handed over; under mu, between batches.
 * Their successors continue the totals of stages of the same name. */
static void install_transforms(struct pipeline *p)
{
	struct transform_set *old = atomic_load_explicit(&p->xf, memory_order_relaxed);
	struct transform_set *next = p->xf_pending;
	p->xf_pending = NULL;
	for (size_t i = 0; i < next->n; i++)
		for (size_t j = 0; j < old->n; j++)
			if (strcmp(next->stages[i].name, old->stages[j].name) == 0)
				stage_carry_totals(&next->stages[i], &old->stages[j]);
	atomic_store_explicit(&p->xf, next, memory_order_relaxed);
	old->next = p->xf_retired;
	p->xf_retired = old;
}

/* The worker has nothing to do (called with the lock held): a source
 * lingering over a partial batch hands it on now. */
static void worker_idle(struct pipeline *p)
{
	p->worker_busy = false;
	if (p->source_lingering)
		pthread_cond_signal(&p->source_cv);
}

static void *worker_main(void *arg)
{
	struct pipeline *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		if (!p->queue_head)
			worker_idle(p);
		while (!p->queue_head && !p->source_done && !p->xf_pending) {
			worker_heartbeat(p, clock_monotonic_ns());
			struct timespec ts;
			deadline_after(&ts, TICK_NS);
			pthread_cond_timedwait(&p->worker_cv, &p->mu, &ts);
		}
		if (p->xf_pending)
			install_transforms(p);
		struct batch *b = p->queue_head;
		if (!b) {
			bool done = p->source_done;
			pthread_mutex_unlock(&p->mu);
			if (done)
				break;
			continue;
		}
		p->queue_head = b->next;
		if (!p->queue_head)
			p->queue_tail = NULL;
		p->queue_records -= b->pub.count;
		p->worker_busy = true;
		set_queue_gauge(p);
		pthread_mutex_unlock(&p->mu);
		worker_heartbeat(p, clock_monotonic_ns());
		b->next = NULL;
		run_batch(p, b);
	}
	flush_sink(p);
	atomic_store(&p->worker_exited, true);
	notify_if_done(p);
	return NULL;
}

static void source_error(struct pipeline *p, struct cv_stage *st, int rc, int64_t *last_log)
{
	count(st->m.errors, &st->total_errors, 1);
	int64_t now = clock_monotonic_ns();
	if (now - *last_log >= ERROR_LOG_INTERVAL_NS) {
		log_write(CV_LOG_ERROR, p->cfg.name, st->name, "read failed (%s); retrying",
		          cv_error_name(rc));
		*last_log = now;
	}
}

/* Batches in the pool (the one filling too) before a partial batch waits
 * for a free one rather than grow the pool: a batch costs ~60 KiB resident
 * however few records it holds (its record array), and an asynchronous sink
 * (kafka_out) holds every batch until its delivery reports, so at a record
 * or two per batch the pool would grow to its bound (the demo's RSS was
 * 3-7 MiB higher, from its start-up, before the broker answers). */
#define EAGER_POOL 16

/* Would handing a partial batch on now gain nothing? True while the worker
 * holds a batch or one waits in the queue, and while the pool is at
 * EAGER_POOL batches with none free or coming back. Called with the lock. */
static bool downstream_busy(const struct pipeline *p)
{
	return p->worker_busy || p->queue_head ||
	       (!p->free_list && !p->done_head && p->npool >= EAGER_POOL);
}

/* Has the source fill `b`. The batch leaves once it is full, or once the
 * source has nothing more right now while the downstream is idle: at low
 * rates each record goes on at once. While it is busy (a batch in the
 * worker's hands or queued, or the pool spent), records arrive faster than
 * batches can be handed on, and waiting costs no latency: the batch keeps
 * filling, up to full, until the worker goes idle or a batch comes back, or
 * for at most queue.linger. Returns read's code. */
static int fill_batch(struct pipeline *p, struct cv_stage *st, struct batch *b)
{
	int64_t linger_until = 0;
	for (;;) {
		uint32_t before = b->pub.count;
		int64_t t0 = call_begin(st);
		int rc = st->plugin->read(st->state, &b->pub);
		int64_t now = clock_monotonic_ns();
		call_end(st, t0, now);
		if (rc != 0 || b->pub.count == 0 || b->pub.count >= b->pub.capacity ||
		    p->linger_ns == 0 || atomic_load_explicit(&p->stop, memory_order_relaxed))
			return rc;
		atomic_store_explicit(&p->heartbeat_source, now, memory_order_relaxed);
		if (!linger_until)
			linger_until = now + p->linger_ns;
		else if (now >= linger_until)
			return rc;
		pthread_mutex_lock(&p->mu);
		bool busy = downstream_busy(p);
		if (busy && b->pub.count == before) {
			/* Nothing more right now: sleep until the worker goes idle
			 * or a batch completes (or the linger ends), then take
			 * what came meanwhile. */
			struct timespec ts;
			deadline_after(&ts, linger_until - now);
			p->source_lingering = true;
			pthread_cond_timedwait(&p->source_cv, &p->mu, &ts);
			p->source_lingering = false;
		}
		pthread_mutex_unlock(&p->mu);
		if (!busy)
			return rc;
	}
}

static void *source_main(void *arg)
{
	struct pipeline *p = arg;
	struct cv_stage *st = source_of(p);
	bool eof = false;
	int64_t last_error_log = INT64_MIN / 2;
	for (;;) {
		atomic_store_explicit(&p->heartbeat_source, clock_monotonic_ns(),
		                      memory_order_relaxed);
		pthread_mutex_lock(&p->mu);
		struct batch *done = p->done_head;
		p->done_head = NULL;
		pthread_mutex_unlock(&p->mu);
		while (done) {
			struct batch *next = done->next;
			if (st->plugin->ack) {
				busy_begin(st, clock_monotonic_ns());
				st->plugin->ack(st->state, &done->pub);
				busy_end(st);
			}
			p->inflight_records -= done->pub.count;
			batch_reset(done);
			done->next = p->free_list;
			p->free_list = done;
			p->inflight--;
			done = next;
		}
		if (!eof && atomic_load_explicit(&p->stop, memory_order_relaxed))
			eof = true;
		if (eof && !p->source_done) {
			pthread_mutex_lock(&p->mu);
			p->source_done = true; /* the worker drains the queue, then flushes */
			pthread_cond_signal(&p->worker_cv);
			pthread_mutex_unlock(&p->mu);
		}
		if (eof && p->inflight == 0)
			break;
		if (eof && clock_monotonic_ns() >= current_deadline(p)) {
			log_write(CV_LOG_ERROR, p->cfg.name, st->name,
			          "shutdown timeout: %u batches still unacknowledged; they will be "
			          "delivered again after restart",
			          p->inflight);
			break;
		}
		struct batch *b = eof ? NULL : take_batch(p);
		if (!b) {
			pthread_mutex_lock(&p->mu);
			if (!p->done_head) {
				struct timespec ts;
				deadline_after(&ts, TICK_NS);
				pthread_cond_timedwait(&p->source_cv, &p->mu, &ts);
			}
			pthread_mutex_unlock(&p->mu);
			continue;
		}
		int rc = fill_batch(p, st, b);
		uint32_t n = b->pub.count;
		if (n > 0) {
			count(st->m.out, &st->total_out, n);
			pthread_mutex_lock(&p->mu);
			if (p->queue_tail)
				p->queue_tail->next = b;
			else
				p->queue_head = b;
			p->queue_tail = b;
			p->queue_records += n;
			set_queue_gauge(p);
			pthread_cond_signal(&p->worker_cv);
			pthread_mutex_unlock(&p->mu);
			p->inflight++;
			p->inflight_records += n;
		} else {
			batch_reset(b);
			b->next = p->free_list;
			p->free_list = b;
		}
		if (rc == CV_EOF) {
			eof = true;
		} else if (rc < 0 && rc != CV_EAGAIN) {
			source_error(p, st, rc, &last_error_log);
			pthread_mutex_lock(&p->mu);
			struct timespec ts;
			deadline_after(&ts, TICK_NS);
			if (!atomic_load(&p->stop))
				pthread_cond_timedwait(&p->source_cv, &p->mu, &ts);
			pthread_mutex_unlock(&p->mu);
		}
	}
	atomic_store(&p->source_exited, true);
	notify_if_done(p);
	return NULL;
}

int pipeline_init_stages(struct pipeline *p)
{
	/* Sinks first, so everything downstream is ready before data flows. */
	for (size_t i = p->nstages; i-- > 0;) {
		int rc = p->stages[i].initialised ? 0 : stage_init(&p->stages[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int pipeline_start(struct pipeline *p)
{
	int init_rc = pipeline_init_stages(p);
	if (init_rc < 0)
		return init_rc;
	for (size_t i = p->nstages; i-- > 0;) {
		struct cv_stage *st = &p->stages[i];
		if (st->plugin->start) {
			int rc = st->plugin->start(st->state);
			if (rc < 0) {
				log_write(CV_LOG_ERROR, p->cfg.name, st->name,
				          "plugin %s failed to start (%s)", st->plugin->name,
				          cv_error_name(rc));
				return rc;
			}
		}
		st->started = true;
	}
	int64_t now = clock_monotonic_ns();
	p->heartbeat_source = now;
	p->heartbeat_worker = now;
	if (pthread_create(&p->worker_thread, NULL, worker_main, p) != 0)
		return CV_ENOMEM;
	if (pthread_create(&p->source_thread, NULL, source_main, p) != 0) {
		pthread_mutex_lock(&p->mu);
		p->source_done = true;
		pthread_cond_signal(&p->worker_cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->worker_thread, NULL);
		return CV_ENOMEM;
	}
	p->threads_started = true;
	return 0;
}

void pipeline_request_stop(struct pipeline *p, int64_t deadline_ns)
{
	int64_t cur = atomic_load(&p->deadline_ns);
	while (deadline_ns < cur &&
	       !atomic_compare_exchange_weak(&p->deadline_ns, &cur, deadline_ns))
		;
	if (atomic_exchange(&p->stop, true))
		return;
	struct cv_stage *src = source_of(p);
	if (src->initialised && src->plugin->stop)
		src->plugin->stop(src->state);
	pthread_mutex_lock(&p->mu);
	pthread_cond_broadcast(&p->source_cv);
	pthread_cond_broadcast(&p->worker_cv);
	pthread_mutex_unlock(&p->mu);
}

bool pipeline_threads_done(const struct pipeline *p)
{
	return !p->threads_started ||
	       (atomic_load(&p->source_exited) && atomic_load(&p->worker_exited));
}

uint32_t pipeline_join(struct pipeline *p)
{
	if (p->threads_started) {
		pthread_join(p->source_thread, NULL);
		/* The source may have given up at the deadline with the queue still
		 * full: let the worker see the end. */
		pthread_mutex_lock(&p->mu);
		p->source_done = true;
		pthread_cond_signal(&p->worker_cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->worker_thread, NULL);
		p->threads_started = false;
	}
	return p->inflight;
}

bool pipeline_ready(const struct pipeline *p, const char **why)
{
	for (size_t i = 0, n = pipeline_stage_count(p); i < n; i++) {
		const struct cv_stage *st = pipeline_stage(p, i);
		if (!st->started) {
			*why = st->name;
			return false;
		}
		if (!atomic_load(&st->healthy)) {
			*why = st->name;
			return false;
		}
	}
	return true;
}

bool pipeline_alive(const struct pipeline *p, int64_t stuck_ns, const char **why)
{
	if (!p->threads_started)
		return true; /* finished, or not started yet */
	int64_t now = clock_monotonic_ns();
	const struct cv_stage *src = source_of(p);
	int64_t busy = atomic_load(&src->busy_since);
	if (busy && now - busy > stuck_ns) {
		*why = src->name;
		return false;
	}
	if (now - atomic_load(&p->heartbeat_source) > stuck_ns) {
		*why = "source loop";
		return false;
	}
	for (size_t i = 1, n = pipeline_stage_count(p); i + 1 < n; i++) {
		const struct cv_stage *st = pipeline_stage(p, i);
		busy = atomic_load(&st->busy_since);
		if (busy && now - busy > stuck_ns) {
			*why = st->name;
			return false;
		}
	}
	/* A sink may block in write as long as it likes (backpressure, retries):
	 * the worker counts as alive while inside it. Outside, its loop turns at
	 * least every tick. The worker beats before it clears the sink's busy
	 * mark, so a clear mark read here comes with a fresh beat. */
	if (atomic_load(&p->worker_exited) || atomic_load(&sink_of(p)->busy_since))
		return true;
	if (now - atomic_load(&p->heartbeat_worker) > stuck_ns) {
		*why = "worker loop";
		return false;
	}
	return true;
}

uint64_t pipeline_source_out(const struct pipeline *p)
{
	return atomic_load(&source_of(p)->total_out);
}

uint64_t pipeline_sink_delivered(const struct pipeline *p)
{
	return atomic_load(&sink_of(p)->total_out);
}

size_t pipeline_stage_count(const struct pipeline *p)
{
	return atomic_load_explicit(&p->xf, memory_order_relaxed)->n + 2;
}

struct cv_stage *pipeline_stage(const struct pipeline *p, size_t i)
{
	struct transform_set *xf = atomic_load_explicit(&p->xf, memory_order_relaxed);
	if (i == 0)
		return source_of(p);
	return i <= xf->n ? &xf->stages[i - 1] : sink_of(p);
}

void pipeline_each_stage(struct pipeline *p, void (*fn)(void *ctx, const struct cv_stage *st),
                         void *ctx)
{
	pthread_mutex_lock(&p->mu);
	fn(ctx, source_of(p));
	fn(ctx, sink_of(p));
	const struct transform_set *sets[] = {atomic_load(&p->xf), p->xf_pending};
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; sets[k] && i < sets[k]->n; i++)
			fn(ctx, &sets[k]->stages[i]);
	for (const struct transform_set *s = p->xf_retired; s; s = s->next)
		for (size_t i = 0; i < s->n; i++)
			fn(ctx, &s->stages[i]);
	pthread_mutex_unlock(&p->mu);
}

/* Destroys a set's stages; their metric series may go away next, so the
 * dead stage structs keep no pointer to them. */
static void destroy_set(struct transform_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		stage_destroy(&set->stages[i]);
		memset(&set->stages[i].m, 0, sizeof set->stages[i].m);
	}
}

int pipeline_prepare_transforms(struct pipeline *p, struct transform_set *set, size_t *failed)
{
	atomic_init(&set->batches, 0);
	set->next = NULL;
	*failed = 0;
	int rc = attach_stages(p, set->stages, set->n);
	for (size_t i = 0; rc == 0 && i < set->n; i++) {
		struct cv_stage *st = &set->stages[i];
		*failed = i;
		rc = stage_init(st);
		if (rc == 0 && st->plugin->start && (rc = st->plugin->start(st->state)) < 0)
			log_write(CV_LOG_ERROR, p->cfg.name, st->name,
			          "plugin %s failed to start (%s)", st->plugin->name,
			          cv_error_name(rc));
		st->started = rc == 0;
	}
	if (rc < 0)
		destroy_set(set);
	return rc;
}

void pipeline_swap_transforms(struct pipeline *p, struct transform_set *set)
{
	pthread_mutex_lock(&p->mu);
	if (p->xf_pending) {
		p->xf_pending->next = p->xf_retired;
		p->xf_retired = p->xf_pending;
	}
	p->xf_pending = set;
	pthread_cond_signal(&p->worker_cv);
	pthread_mutex_unlock(&p->mu);
}

size_t pipeline_reap_transforms(struct pipeline *p)
{
	struct transform_set *dead = NULL;
	pthread_mutex_lock(&p->mu);
	for (struct transform_set **link = &p->xf_retired; *link;) {
		struct transform_set *s = *link;
		if (atomic_load_explicit(&s->batches, memory_order_acquire) == 0) {
			*link = s->next;
			s->next = dead;
			dead = s;
		} else {
			link = &s->next;
		}
	}
	pthread_mutex_unlock(&p->mu);
	size_t n = 0;
	while (dead) {
		struct transform_set *next = dead->next;
		tap_stages_detach(p->taps, dead->stages, dead->n);
		destroy_set(dead);
		if (dead->release)
			dead->release(dead);
		dead = next;
		n++;
	}
	return n;
}

/* At pipeline_free, after the sink: every set the pipeline still holds. */
static void free_transform_sets(struct pipeline *p)
{
	struct transform_set *sets = p->xf_retired;
	p->xf_retired = NULL;
	struct transform_set *cur = atomic_load(&p->xf);
	if (p->xf_pending) {
		p->xf_pending->next = sets;
		sets = p->xf_pending;
		p->xf_pending = NULL;
	}
	cur->next = sets;
	sets = cur;
	atomic_store(&p->xf, &p->xf_first);
	while (sets) {
		struct transform_set *next = sets->next;
		destroy_set(sets);
		if (sets->release)
			sets->release(sets);
		sets = next;
	}
}

void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	if (p->threads_started)
		pipeline_join(p);
	/* Taps on transforms a reload installed end with the others. */
	struct transform_set *cur = atomic_load(&p->xf);
	if (p->stages && cur != &p->xf_first)
		tap_stages_detach(p->taps, cur->stages, cur->n);
	for (struct transform_set *s = p->xf_retired; s; s = s->next)
		tap_stages_detach(p->taps, s->stages, s->n);
	tap_hub_close(p->taps, p->stages, p->stages ? p->nstages : 0);
	if (p->stages) {
		/* Sink first: it may settle its last records while it shuts down. */
		for (size_t i = p->nstages; i-- > 1;)
			stage_destroy(&p->stages[i]);
		free_transform_sets(p);
		struct cv_stage *src = source_of(p);
		struct batch *done = p->done_head;
		p->done_head = NULL;
		for (; done; done = done->next)
			if (src->initialised && src->plugin->ack)
				src->plugin->ack(src->state, &done->pub);
		stage_destroy(src);
	}
	for (size_t i = 0; i < p->npool; i++)
		batch_free(p->pool[i]);
	free(p->pool);
	free(p->latency_bounds_ns);
	dead_letter_close(p->dead_letter);
	pthread_cond_destroy(&p->worker_cv);
	pthread_cond_destroy(&p->source_cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
