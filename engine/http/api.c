/* api.c - the JSON of GET /api/v1/pipelines. Names mirror the metric names
 * of DESIGN.md without their prefix, so a number here and its series on
 * /metrics are the same read of the same counter. */
#include "http/api.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/plugin.h>

#include "base/clock.h"
#include "metrics/metrics.h"
#include "runtime/host_api.h"
#include "runtime/pipeline.h"
#include "runtime/plugin_loader.h"
#include "runtime/tap.h"

static void j_str(struct strbuf *out, const char *s)
{
	strbuf_append(out, "\"", 1);
	strbuf_json_escape(out, s ? s : "", s ? strlen(s) : 0);
	strbuf_append(out, "\"", 1);
}

/* A JSON number, or null for what JSON cannot write (NaN, infinities). */
static void j_num(struct strbuf *out, double v)
{
	if (isfinite(v))
		metrics_append_double(out, v);
	else
		strbuf_puts(out, "null");
}

static void j_key(struct strbuf *out, const char *key)
{
	j_str(out, key);
	strbuf_append(out, ":", 1);
}

/* {"count":N,"sum":S,"p50":x,"p99":y,"le":[bounds],"counts":[cumulative..., total]} */
static void j_histogram(struct strbuf *out, const struct metric_series *s)
{
	if (!s) {
		strbuf_puts(out, "null");
		return;
	}
	const double *bounds = NULL;
	size_t n = metric_histogram_read(s, NULL, NULL, NULL);
	uint64_t stack[64];
	uint64_t *cum = n < 64 ? stack : malloc((n + 1) * sizeof *cum);
	double sum = 0;
	if (!cum) {
		out->failed = 1;
		return;
	}
	metric_histogram_read(s, &bounds, cum, &sum);
	strbuf_printf(out, "{\"count\":%llu,\"sum\":", (unsigned long long)cum[n]);
	j_num(out, sum);
	strbuf_puts(out, ",\"p50\":");
	j_num(out, metrics_histogram_quantile(0.5, bounds, cum, n));
	strbuf_puts(out, ",\"p99\":");
	j_num(out, metrics_histogram_quantile(0.99, bounds, cum, n));
	strbuf_puts(out, ",\"le\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_append(out, ",", 1);
		j_num(out, bounds[i]);
	}
	strbuf_puts(out, "],\"counts\":[");
	for (size_t i = 0; i <= n; i++)
		strbuf_printf(out, "%s%llu", i ? "," : "", (unsigned long long)cum[i]);
	strbuf_puts(out, "]}");
	if (cum != stack)
		free(cum);
}

/* A counter or gauge series, or the host's own total when instrumentation
 * is off (NULL total: null). */
static void j_counter(struct strbuf *out, const struct metric_series *s,
                      const _Atomic uint64_t *total)
{
	if (s)
		j_num(out, metric_value(s));
	else if (total)
		strbuf_printf(out, "%llu", (unsigned long long)atomic_load(total));
	else
		strbuf_puts(out, "null");
}

struct plugin_metrics_ctx {
	struct strbuf *out;
	bool first;
};

static void j_plugin_metric(void *ctx, const char *name, const struct metric_series *s)
{
	struct plugin_metrics_ctx *c = ctx;
	if (!c->first)
		strbuf_append(c->out, ",", 1);
	c->first = false;
	j_key(c->out, name);
	if (metric_histogram_read(s, NULL, NULL, NULL) > 0)
		j_histogram(c->out, s);
	else
		j_num(c->out, metric_value(s));
}

static void j_stage(struct strbuf *out, const struct cv_stage *st)
{
	strbuf_append(out, "{", 1);
	j_key(out, "name");
	j_str(out, st->name);
	strbuf_append(out, ",", 1);
	j_key(out, "plugin");
	j_str(out, st->plugin->name);
	strbuf_append(out, ",", 1);
	j_key(out, "kind");
	j_str(out, plugin_kind_name(st->plugin->kind));
	strbuf_printf(out, ",\"started\":%s,\"healthy\":%s,\"taps\":%zu",
	              st->started ? "true" : "false", atomic_load(&st->healthy) ? "true" : "false",
	              tap_count(st));
	strbuf_puts(out, ",\"records_in_total\":");
	j_counter(out, st->m.in, NULL);
	strbuf_puts(out, ",\"records_out_total\":");
	j_counter(out, st->m.out, &st->total_out);
	strbuf_puts(out, ",\"records_dropped_total\":");
	j_counter(out, st->m.dropped, &st->total_dropped);
	strbuf_puts(out, ",\"errors_total\":");
	j_counter(out, st->m.errors, &st->total_errors);
	strbuf_puts(out, ",\"batches_total\":");
	j_counter(out, st->m.batches, NULL);
	strbuf_puts(out, ",\"queue_records\":");
	j_counter(out, st->m.queue, NULL);
	strbuf_puts(out, ",\"duration_seconds\":");
	j_histogram(out, st->m.duration);
	strbuf_puts(out, ",\"plugin_metrics\":{");
	struct plugin_metrics_ctx pm = {.out = out, .first = true};
	host_api_each_metric(st, j_plugin_metric, &pm);
	strbuf_puts(out, "}}");
}

static void j_pipeline(struct strbuf *out, const struct pipeline *p)
{
	strbuf_append(out, "{", 1);
	j_key(out, "name");
	j_str(out, p->cfg.name);
	strbuf_printf(out, ",\"max_records\":%u,\"latency_seconds\":", p->max_records);
	j_histogram(out, p->latency);
	strbuf_puts(out, ",\"stages\":[");
	/* The live stages: transforms a reload swapped in, not the spec's first. */
	for (size_t i = 0, n = pipeline_stage_count(p); i < n; i++) {
		if (i)
			strbuf_append(out, ",", 1);
		j_stage(out, pipeline_stage(p, i));
	}
	strbuf_puts(out, "]}");
}

int api_render_pipelines(const struct api_view *v, struct strbuf *out)
{
	strbuf_puts(out, "{\"version\":");
	j_str(out, CONVEYOR_VERSION);
	strbuf_printf(out, ",\"abi\":\"%d.%d\",\"uptime_seconds\":", CV_ABI_MAJOR, CV_ABI_MINOR);
	j_num(out, (double)(clock_monotonic_ns() - v->started_ns) * 1e-9);
	strbuf_puts(out, ",\"time\":");
	j_num(out, (double)clock_now_ns() * 1e-9);
	strbuf_printf(out, ",\"tap\":%s,\"pipelines\":[", v->tap_allowed ? "true" : "false");
	for (size_t i = 0; i < v->npipelines; i++) {
		if (i)
			strbuf_append(out, ",", 1);
		j_pipeline(out, v->pipelines[i]);
	}
	strbuf_puts(out, "]}\n");
	return out->failed ? -2 : 0;
}
