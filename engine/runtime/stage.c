#include "runtime/stage.h"

#include <stdlib.h>

#include "base/log.h"
#include "runtime/batch.h"
#include "runtime/dead_letter.h"
#include "runtime/host_api.h"
#include "runtime/plugin_loader.h"

int stage_metrics_register(struct cv_stage *st, struct metrics *registry)
{
	static const char *const names[] = {"pipeline", "stage", "plugin", "kind"};
	const char *values[] = {st->pipeline_name, st->name, st->plugin->name,
	                        plugin_kind_name(st->plugin->kind)};
	struct {
		struct metric_series **slot;
		enum metric_type type;
		const char *name;
		const char *help;
	} defs[] = {
	        {&st->m.in, METRIC_COUNTER, "conveyor_stage_records_in_total",
	         "Records handed to the stage (transforms, sinks)."},
	        {&st->m.out, METRIC_COUNTER, "conveyor_stage_records_out_total",
	         "Records the stage emitted (sources, transforms) or delivered (sinks, on "
	         "acknowledgement)."},
	        {&st->m.dropped, METRIC_COUNTER, "conveyor_stage_records_dropped_total",
	         "Records filtered out or rejected."},
	        {&st->m.errors, METRIC_COUNTER, "conveyor_stage_errors_total",
	         "Failed calls and failed deliveries."},
	        {&st->m.batches, METRIC_COUNTER, "conveyor_stage_batches_total",
	         "Calls into the plugin."},
	        {&st->m.duration, METRIC_HISTOGRAM, "conveyor_stage_duration_seconds",
	         "Time spent inside the plugin per call."},
	        {&st->m.queue, METRIC_GAUGE, "conveyor_stage_queue_records",
	         "Records waiting in front of the stage."},
	};
	for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
		struct metric_family *f = metrics_family(registry, defs[i].type, defs[i].name,
		                                         defs[i].help, names, 4, NULL, 0);
		if (!f || !(*defs[i].slot = metrics_series(f, values)))
			return CV_ENOMEM;
	}
	return 0;
}

void stage_carry_totals(struct cv_stage *dst, const struct cv_stage *src)
{
	atomic_fetch_add(&dst->total_out, atomic_load(&src->total_out));
	atomic_fetch_add(&dst->total_dropped, atomic_load(&src->total_dropped));
	atomic_fetch_add(&dst->total_errors, atomic_load(&src->total_errors));
	atomic_fetch_add(&dst->total_dead_lettered, atomic_load(&src->total_dead_lettered));
}

int stage_init(struct cv_stage *st)
{
	void *state = &st->context;
	st->context = (struct cv_context){.stage = st, .api = &host_api, .config = st->config};
	int rc = st->plugin->init ? st->plugin->init(st, &host_api, st->config, &state) : 0;
	if (rc < 0) {
		log_write(CV_LOG_ERROR, st->pipeline_name, st->name,
		          "plugin %s failed to initialise (%s)", st->plugin->name,
		          cv_error_name(rc));
		return rc;
	}
	st->state = state;
	st->initialised = true;
	return 0;
}

void stage_destroy(struct cv_stage *st)
{
	if (st->initialised) {
		if (st->plugin->destroy)
			st->plugin->destroy(st->state);
		st->initialised = false;
		st->state = NULL;
	}
	host_api_free_metrics(st);
}

/* The batch a transform's process is running on, on this thread. */
static _Thread_local struct batch *processing;

int stage_process(struct cv_stage *st, struct batch *b)
{
	processing = b;
	int rc = st->plugin->process(st->state, &b->pub);
	processing = NULL;
	return rc;
}

void stage_dead_letter(struct cv_stage *st, struct batch *b, const void *raw, size_t raw_len,
                       const struct cv_record *record, const char *reason)
{
	/* A transform drops the record too, and the pipeline counts it then. */
	atomic_fetch_add_explicit(&st->total_dead_lettered, 1, memory_order_relaxed);
	if (st->plugin->kind == CV_KIND_SOURCE) {
		atomic_fetch_add_explicit(&st->total_dropped, 1, memory_order_relaxed);
		if (st->m.dropped)
			metric_inc(st->m.dropped, 1);
	}
	if (!b && st->plugin->kind == CV_KIND_TRANSFORM)
		b = processing;
	if (b)
		batch_dead_letter(b, st->name, reason, record, raw, raw_len);
	else
		dead_letter_write(st->dead_letter, st->name, "dead letter", reason, record, raw,
		                  raw_len);
}
