/* stage.h - one stage of one pipeline as the host sees it: the plugin, its
 * state and config, its health, and the instrumentation the host wraps
 * around every call. This struct is `struct cv_stage`, opaque to plugins. */
#ifndef CONVEYOR_STAGE_H
#define CONVEYOR_STAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <conveyor/plugin.h>

#include "metrics/metrics.h"

struct dead_letter;
struct pipeline;
struct tap;

/* The host-injected metrics of a stage; all NULL when instrumentation is off. */
struct stage_metrics {
	struct metric_series *in;
	struct metric_series *out;
	struct metric_series *dropped;
	struct metric_series *errors;
	struct metric_series *batches;
	struct metric_series *duration;
	struct metric_series *queue;
};

struct cv_stage {
	struct pipeline *pipeline;       /* for the runtime; the host API uses the two below */
	const _Atomic bool *stop;        /* the pipeline is stopping; NULL: never */
	struct dead_letter *dead_letter; /* the pipeline's; NULL: none */
	const char *pipeline_name;
	const char *name;
	const struct cv_plugin *plugin;
	const void *config;
	void *state;
	struct cv_context context; /* the state of a plugin without init (ABI 1.1) */
	struct metrics *registry;  /* for plugin-registered metrics */
	bool initialised;
	bool started;
	_Atomic bool healthy;
	_Atomic int64_t busy_since; /* ns: inside a plugin callback since; 0 when not */
	struct stage_metrics m;
	struct cv_metric *plugin_metrics; /* registered by the plugin; freed here */
	/* Totals kept even with instrumentation off, for the rate summary. */
	_Atomic uint64_t total_out;
	_Atomic uint64_t total_dropped;
	_Atomic uint64_t total_errors;
	_Atomic uint64_t total_dead_lettered;
	/* Live taps on the records leaving the stage (runtime/tap.h); the list
	 * is guarded by the pipeline's tap hub. */
	_Atomic bool tapped;
	struct tap *taps;
};

/* Registers the stage's host metrics in `registry` (labels pipeline, stage,
 * plugin, kind). Returns 0 or CV_ENOMEM. */
int stage_metrics_register(struct cv_stage *st, struct metrics *registry);

/* Adds src's totals to dst's: a stage's successor after a reload continues
 * its counts (the metric series are shared through their labels). */
void stage_carry_totals(struct cv_stage *dst, const struct cv_stage *src);

/* Inits the plugin with its config (a plugin without init gets the stage's
 * cv_context as its state); logs the code's name and returns it on failure. */
int stage_init(struct cv_stage *st);
/* Calls the plugin's destroy if it was initialised. */
void stage_destroy(struct cv_stage *st);

struct batch;

/* Runs the transform's process on `b`; the dead letters it writes on this
 * thread meanwhile go with the batch (stage_dead_letter). */
int stage_process(struct cv_stage *st, struct batch *b);

/* The stage dead-letters input (`raw`, a `record`, or both). With a batch
 * (a transform's reject) or while the stage's process runs on this thread,
 * the entry goes with the batch, written before its source acknowledges
 * it; otherwise (a source, a sink) it is written at once. A source's input
 * never became a record, so it counts as dropped here. */
void stage_dead_letter(struct cv_stage *st, struct batch *b, const void *raw, size_t raw_len,
                       const struct cv_record *record, const char *reason);

#endif
