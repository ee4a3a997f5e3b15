/* host_api.h - the table of services handed to every plugin. */
#ifndef CONVEYOR_HOST_API_H
#define CONVEYOR_HOST_API_H

#include <conveyor/plugin.h>

extern const struct cv_host_api host_api;

struct cv_stage;
/* Frees the metric handles a stage's plugin registered (the series stay). */
void host_api_free_metrics(struct cv_stage *st);

struct metric_series;
/* Calls fn for each series a stage's plugin registered without an extra
 * label (labelled ones have one series per value: /metrics shows them),
 * newest first. `name` is the metric's name. */
void host_api_each_metric(const struct cv_stage *st,
                          void (*fn)(void *ctx, const char *name, const struct metric_series *s),
                          void *ctx);

#endif
