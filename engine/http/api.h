/* api.h - GET /api/v1/pipelines: the topology of the running pipelines and
 * every stage's counters, gauges and histograms as JSON, read from the same
 * metric series /metrics renders (README: "JSON API"). */
#ifndef CONVEYOR_HTTP_API_H
#define CONVEYOR_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"

struct pipeline;

/* What the API shows; the pipelines must outlive the call. */
struct api_view {
	struct pipeline *const *pipelines;
	size_t npipelines;
	int64_t started_ns; /* monotonic, when the engine started: uptime */
	bool tap_allowed;   /* engine.http.tap */
};

/* Appends the JSON document. Returns 0, or -2 when out of memory. */
int api_render_pipelines(const struct api_view *view, struct strbuf *out);

#endif
