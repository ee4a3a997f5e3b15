/* reload.h - the pipelines an engine runs, as owned definitions it can
 * compare with a new spec, and the plan of a reload: which pipelines are
 * kept, get new transforms, restart, start or stop.
 *
 * Preparing a plan is all or nothing: the new spec is loaded and checked,
 * and every new stage is made and initialised, before anything running is
 * touched; on failure everything prepared is freed and the running
 * pipelines never knew. The engine then commits the plan (engine.c). */
#ifndef CONVEYOR_RELOAD_H
#define CONVEYOR_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "metrics/metrics.h"
#include "runtime/pipeline.h"
#include "spec/spec.h"

/* One stage as the spec defined it; owns its name and filled config. */
struct stage_def {
	char *name;
	const struct plugin_module *module; /* the loader's, kept loaded */
	struct options_config config;
};

/* One pipeline as the engine runs it (or is about to). */
struct engine_pipeline {
	char *name;
	struct stage_def *defs;  /* [0] source, transforms, [n-1] sink, as first made */
	struct cv_stage *stages; /* the array the pipeline runs on, n entries */
	size_t nstages;
	uint32_t batch_records, max_records;
	uint64_t max_bytes;
	int64_t linger_ns;
	char *dead_letter_path;
	struct pipeline *p;
	/* The transforms it runs now: defs[1..n-2], or a swapped set's. */
	const struct stage_def *xf_defs;
	size_t nxf;
	bool started;
	/* The pipeline of the same name it replaces, still draining: this one
	 * starts once that one ended and committed. */
	struct engine_pipeline *pred;
	uint64_t last_in, last_out; /* for the rate summary */
};

/* What the running engine holds that a reload is compared with. */
struct reload_base {
	struct engine_pipeline **running; /* in spec order */
	size_t nrunning;
	struct metrics *registry;
	bool metrics_enabled;
	const char *http_listen; /* the spec's, as running */
	bool listen_overridden;  /* --listen: the spec's listen does not apply */
	void (*on_done)(void *ctx);
	void *on_done_ctx;
};

enum reload_action {
	RELOAD_KEEP,    /* unchanged: not touched */
	RELOAD_SWAP,    /* only its transforms changed: swapped between batches */
	RELOAD_RESTART, /* changed: the old drains and commits, then `next` starts */
	RELOAD_ADD,     /* new: `next` starts */
};

struct reload_step {
	enum reload_action action;
	struct engine_pipeline *old;  /* KEEP, SWAP, RESTART */
	struct engine_pipeline *next; /* RESTART, ADD: made and initialised */
	struct transform_set *xf;     /* SWAP: prepared */
	const struct stage_def *xf_defs;
	size_t nxf;
};

struct reload_plan {
	struct engine_spec *spec;  /* the new spec (engine settings); configs moved out */
	struct reload_step *steps; /* in the new spec's order */
	size_t nsteps;
	struct engine_pipeline **removed; /* running ones the new spec lacks */
	size_t nremoved;
};

/* Makes the plan that turns `base` into `spec`, which it takes over:
 * compares pipelines by name, makes and inits the stages of added and
 * changed pipelines and of swapped transforms. Returns 0 and *out, or -1
 * (the plugin's error is logged) with everything prepared freed and `spec`
 * freed. */
int reload_plan_build(struct engine_spec *spec, const struct reload_base *base,
                      struct reload_plan **out);
/* Loads `file` with `loader`, refuses engine settings that cannot change
 * while running (http.listen, metrics.enabled), then builds the plan. On
 * failure logs each error as FILE:LINE:COLUMN: error: ..., appends them to
 * `why` (may be NULL) and returns -1. */
int reload_prepare(const char *file, struct plugin_loader *loader, const struct reload_base *base,
                   struct reload_plan **out, struct strbuf *why);
/* Frees a plan that will not be applied: every pipeline and transform set
 * it prepared (none started), and its spec. */
void reload_plan_abort(struct reload_plan *plan);
/* Frees a committed plan's shell and spec: the engine owns what it made. */
void reload_plan_free(struct reload_plan *plan);

/* Destroys the pipeline (its stages, sink first; sources commit) and frees
 * the definition. NULL is fine. */
void engine_pipeline_free(struct engine_pipeline *ep);

#endif
