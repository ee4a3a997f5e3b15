#include "runtime/host_api.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "runtime/batch.h"
#include "runtime/plugin_loader.h"
#include "runtime/stage.h"
#include "spec/options.h"

/* The table needs a function's address; the clock itself is inline. */
static int64_t host_now_ns(void)
{
	return clock_now_ns();
}

static void api_log(struct cv_stage *st, enum cv_log_level level, const char *fmt, ...)
{
	if (level < CV_LOG_DEBUG || level > CV_LOG_ERROR)
		level = CV_LOG_ERROR;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(level, st ? st->pipeline_name : NULL, st ? st->name : NULL, fmt, ap);
	va_end(ap);
}

static bool api_log_enabled(struct cv_stage *st, enum cv_log_level level)
{
	return log_enabled(level);
}

static void api_ack_record(struct cv_batch *pub, uint32_t index, enum cv_ack outcome,
                           const char *reason)
{
	batch_settle(batch_of(pub), index, outcome, reason);
}

static void api_ack_batch(struct cv_batch *pub, enum cv_ack outcome, const char *reason)
{
	batch_settle_all(batch_of(pub), outcome, reason);
}

static void api_dead_letter(struct cv_stage *st, const void *raw, size_t raw_len,
                            const struct cv_record *record, const char *reason)
{
	stage_dead_letter(st, NULL, raw, raw_len, record, reason);
}

static void api_reject(struct cv_stage *st, struct cv_batch *pub, struct cv_record *record,
                       const char *reason)
{
	uintptr_t at = (uintptr_t)record, first = (uintptr_t)pub->records;
	if (!st || !record || at < first || at >= (uintptr_t)(pub->records + pub->count))
		return; /* not a record of this batch */
	if (st->plugin->kind == CV_KIND_SINK) {
		batch_settle(batch_of(pub), (uint32_t)(record - pub->records), CV_ACK_REJECTED,
		             reason);
		return;
	}
	if (record->flags & CV_RECORD_DROPPED)
		return;
	stage_dead_letter(st, batch_of(pub), NULL, 0, record, reason);
	cv_record_drop(pub, record);
}

struct cv_metric {
	struct metric_family *family;
	enum metric_type type;
	struct cv_metric *next; /* the stage's list, freed with the stage */
	const char *values[5];
	bool labelled;
	struct metric_series *plain; /* the series when there is no extra label */
};

static struct cv_metric *api_metric_register(struct cv_stage *st, enum cv_metric_type type,
                                             const char *name, const char *help, const char *label,
                                             const double *buckets, size_t nbuckets)
{
	static const enum metric_type types[] = {METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM};
	if (!st || !st->registry || !name || (unsigned)type > CV_METRIC_HISTOGRAM)
		return NULL;
	const char *names[5] = {"pipeline", "stage", "plugin", "kind", label};
	struct metric_family *f =
	        metrics_family(st->registry, types[type], name, help ? help : name, names,
	                       label ? 5 : 4, buckets, nbuckets);
	if (!f) {
		log_write(CV_LOG_ERROR, st->pipeline_name, st->name,
		          "cannot register metric %s (bad name, or registered with another type)",
		          name);
		return NULL;
	}
	struct cv_metric *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->family = f;
	m->type = types[type];
	m->values[0] = st->pipeline_name;
	m->values[1] = st->name;
	m->values[2] = st->plugin->name;
	m->values[3] = plugin_kind_name(st->plugin->kind);
	m->labelled = label != NULL;
	if (!m->labelled)
		m->plain = metrics_series(f, m->values);
	m->next = st->plugin_metrics;
	st->plugin_metrics = m;
	return m;
}

void host_api_free_metrics(struct cv_stage *st)
{
	struct cv_metric *m = st->plugin_metrics;
	while (m) {
		struct cv_metric *next = m->next;
		free(m);
		m = next;
	}
	st->plugin_metrics = NULL;
}

void host_api_each_metric(const struct cv_stage *st,
                          void (*fn)(void *ctx, const char *name, const struct metric_series *s),
                          void *ctx)
{
	for (const struct cv_metric *m = st->plugin_metrics; m; m = m->next)
		if (!m->labelled && m->plain)
			fn(ctx, metric_family_name(m->family), m->plain);
}

static struct metric_series *series_for(struct cv_metric *m, const char *label_value)
{
	if (!m)
		return NULL;
	if (!m->labelled)
		return m->plain;
	const char *values[5] = {m->values[0], m->values[1], m->values[2], m->values[3],
	                         label_value ? label_value : ""};
	return metrics_series(m->family, values);
}

static void api_metric_add(struct cv_metric *m, const char *label_value, double value)
{
	struct metric_series *s = series_for(m, label_value);
	if (!s)
		return;
	if (m->type == METRIC_HISTOGRAM)
		metric_observe(s, value);
	else
		metric_add(s, value);
}

static void api_metric_set(struct cv_metric *m, const char *label_value, double value)
{
	struct metric_series *s = series_for(m, label_value);
	if (s && m->type == METRIC_GAUGE)
		metric_set(s, value);
}

static void api_set_healthy(struct cv_stage *st, bool healthy, const char *reason)
{
	bool was = atomic_exchange(&st->healthy, healthy);
	if (was != healthy)
		log_write(healthy ? CV_LOG_INFO : CV_LOG_WARN, st->pipeline_name, st->name,
		          "stage is %s%s%s", healthy ? "healthy again" : "failing",
		          reason ? ": " : "", reason ? reason : "");
}

static const char *api_pipeline_name(const struct cv_stage *st)
{
	return st->pipeline_name;
}

static const char *api_stage_name(const struct cv_stage *st)
{
	return st->name;
}

static bool api_stopping(const struct cv_stage *st)
{
	return st->stop && atomic_load_explicit(st->stop, memory_order_relaxed);
}

static void api_check_error(struct cv_check *check, const char *option, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	options_check_verror(check, option, fmt, ap);
	va_end(ap);
}

const struct cv_host_api host_api = {
        .struct_size = sizeof(struct cv_host_api),
        .abi_major = CV_ABI_MAJOR,
        .abi_minor = CV_ABI_MINOR,
        .log = api_log,
        .log_enabled = api_log_enabled,
        .batch_alloc = batch_alloc,
        .batch_strdup = batch_strdup,
        .record_grow_fields = batch_record_grow_fields,
        .ack_record = api_ack_record,
        .ack_batch = api_ack_batch,
        .dead_letter = api_dead_letter,
        .metric_register = api_metric_register,
        .metric_add = api_metric_add,
        .metric_set = api_metric_set,
        .set_healthy = api_set_healthy,
        .now_ns = host_now_ns,
        .pipeline_name = api_pipeline_name,
        .stage_name = api_stage_name,
        .stopping = api_stopping,
        .check_error = api_check_error,
        .option_given = options_check_given,
        .reject = api_reject,
};
