/* pipeline.h - the runtime of one pipeline: source -> bounded queue ->
 * transforms -> sink, in batches, on two threads, with acknowledgements
 * flowing back to the source.
 *
 * The source thread owns the batch pool: it takes a free batch, has the
 * source fill it, and queues it. The worker thread runs the transforms and
 * hands the batch to the sink. When the sink has settled every record (on
 * any thread), the batch goes to the source thread's completed list; the
 * source's ack callback sees it there, and it returns to the pool. The pool
 * is the bound on records and bytes in flight: a slow sink slows the source.
 */
#ifndef CONVEYOR_PIPELINE_H
#define CONVEYOR_PIPELINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/batch.h"
#include "metrics/metrics.h"
#include "runtime/stage.h"

struct dead_letter;
struct tap_hub;

/* A pipeline's transforms as one unit, so that a reload can replace them
 * between two batches without stopping the source or the sink. */
struct transform_set {
	struct cv_stage *stages;
	size_t n;
	_Atomic uint32_t batches;   /* batches it transformed, not settled yet */
	struct transform_set *next; /* the pipeline's retired list */
	/* Frees the set's memory once its stages are destroyed; NULL for the
	 * pipeline's first set, which lives in its stage array. */
	void (*release)(struct transform_set *set);
};

struct pipeline_config {
	const char *name;
	uint32_t batch_records; /* records per batch */
	uint32_t max_records;   /* records in flight, all batches */
	uint64_t max_bytes;     /* bytes in flight, all batches */
	int64_t linger_ns;      /* while the worker is busy, a partial batch waits this
	                         * long for more; 0: never; <0: default */
	bool metrics_enabled;
	const char *dead_letter_path; /* NULL: rejected records are logged and counted */
	/* Called from the pipeline's last thread to end, so the engine learns at
	 * once that a finite pipeline is done. May be NULL. */
	void (*on_done)(void *ctx);
	void *on_done_ctx;
};

struct pipeline {
	struct pipeline_config cfg;
	/* [0] source, [1..n-2] the first transforms, [n-1] sink. After a
	 * reload swapped the transforms, [1..n-2] are dead: walk the live
	 * stages with pipeline_stage_count() / pipeline_stage(). */
	struct cv_stage *stages;
	size_t nstages;
	struct metrics *registry;

	/* The transforms the worker runs (it changes them under mu, between
	 * two batches); a set handed over by a reload and not installed yet;
	 * sets replaced, destroyed once no batch they touched is in flight. */
	struct transform_set xf_first;
	_Atomic(struct transform_set *) xf;
	struct transform_set *xf_pending; /* under mu */
	struct transform_set *xf_retired; /* under mu */

	/* The pool grows on demand (source thread only) while the records and
	 * bytes in flight stay under the bounds: small batches from a slow
	 * source do not starve a sink that gathers records across batches. */
	struct batch **pool;
	size_t npool, max_pool;
	uint32_t batch_records;
	uint16_t slots;
	size_t arena_bytes;
	uint64_t pool_bytes, max_bytes;
	uint32_t max_records;
	int64_t linger_ns;
	struct batch *free_list;   /* source thread only */
	uint32_t inflight;         /* batches; source thread only */
	uint64_t inflight_records; /* source thread only */

	pthread_mutex_t mu;
	pthread_cond_t worker_cv; /* a batch was queued, or the source is done */
	pthread_cond_t source_cv; /* a batch completed, or the worker went idle */
	struct batch *queue_head, *queue_tail;
	uint32_t queue_records;
	struct batch *done_head; /* completed batches for the source */
	bool source_done;
	bool worker_busy;      /* the worker holds a batch */
	bool source_lingering; /* the source waits for the worker to go idle */

	_Atomic bool stop;
	_Atomic bool source_exited;
	_Atomic bool worker_exited;
	_Atomic bool done_notified;
	_Atomic int64_t deadline_ns;      /* drain deadline (monotonic), once stopping */
	_Atomic int64_t heartbeat_source; /* monotonic ns of the last loop turn */
	_Atomic int64_t heartbeat_worker; /* the same, of the worker outside a sink call */

	struct metric_series *latency;
	int64_t *latency_bounds_ns; /* bucket upper bounds in ns */
	size_t nlatency;

	struct dead_letter *dead_letter; /* always; without a file it counts and warns */
	struct batch_owner owner;        /* what its batches call back */
	struct tap_hub *taps;            /* live taps on its stages (runtime/tap.h) */
	pthread_t source_thread, worker_thread;
	bool threads_started;
};

/* Makes a pipeline of `stages` (the caller keeps the array, which must
 * outlive the pipeline).
 * Allocates the batch pool and registers metrics. Returns NULL on failure. */
struct pipeline *pipeline_new(const struct pipeline_config *cfg, struct cv_stage *stages,
                              size_t nstages, struct metrics *registry);
/* Inits every stage not initialised yet, sink first. 0 or negative (logged);
 * pipeline_free() destroys those that were. */
int pipeline_init_stages(struct pipeline *p);
/* Inits (if not done) and starts every stage, then the threads. 0 or
 * negative (logged). */
int pipeline_start(struct pipeline *p);
/* Asks the pipeline to stop: sources stop, queued data drains until
 * `deadline_ns` (monotonic). Safe from any thread. */
void pipeline_request_stop(struct pipeline *p, int64_t deadline_ns);
/* True once both threads returned (or never started). */
bool pipeline_threads_done(const struct pipeline *p);
/* Joins the threads; returns the count of batches still unsettled. */
uint32_t pipeline_join(struct pipeline *p);
/* Destroys the stages (sink first, source last) and frees everything. */
void pipeline_free(struct pipeline *p);

/* True when every stage started and reports healthy; `why` names the first
 * that is not. */
bool pipeline_ready(const struct pipeline *p, const char **why);
/* True when the threads are alive and no plugin call is stuck longer than
 * `stuck_ns`: not when a source or transform call, the source's loop, or the
 * worker's loop outside a sink call has not moved for that long (a sink
 * blocked in write or flush is alive). `why` names the stage, "source loop"
 * or "worker loop". */
bool pipeline_alive(const struct pipeline *p, int64_t stuck_ns, const char **why);

/* The live stages in order: the source, the transforms the worker runs now,
 * the sink. Call from the engine's thread, or with the engine's pipeline set
 * locked (a reload destroys replaced transforms under that lock). */
size_t pipeline_stage_count(const struct pipeline *p);
struct cv_stage *pipeline_stage(const struct pipeline *p, size_t i);
/* Calls fn for every stage that may still update metrics: the live ones,
 * plus transforms handed over or replaced but not destroyed yet. */
void pipeline_each_stage(struct pipeline *p, void (*fn)(void *ctx, const struct cv_stage *st),
                         void *ctx);

/* Attaches set's stages to the pipeline (labels, metrics), inits and starts
 * them. On failure destroys those inited, sets *failed to the index of the
 * stage that failed and returns negative (logged); the caller keeps the set. */
int pipeline_prepare_transforms(struct pipeline *p, struct transform_set *set, size_t *failed);
/* Hands a prepared set to the worker, which installs it between two
 * batches; the set replaced (or a set handed earlier and not installed yet)
 * is retired. The pipeline owns `set` from here (release frees it). */
void pipeline_swap_transforms(struct pipeline *p, struct transform_set *set);
/* Destroys and releases the retired sets that no unsettled batch uses.
 * Returns how many. Engine thread, with the pipeline set locked. */
size_t pipeline_reap_transforms(struct pipeline *p);

/* Sink records delivered so far / source records out so far (for summaries). */
uint64_t pipeline_source_out(const struct pipeline *p);
uint64_t pipeline_sink_delivered(const struct pipeline *p);

#endif
