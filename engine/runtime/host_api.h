/* host_api.h - the table of services handed to every plugin. */
#ifndef CONVEYOR_HOST_API_H
#define CONVEYOR_HOST_API_H

#include <conveyor/plugin.h>

extern const struct cv_host_api host_api;

struct cv_stage;
/* Frees the metric handles a stage's plugin registered (the series stay). */
void host_api_free_metrics(struct cv_stage *st);

int64_t host_now_ns(void);
int64_t host_monotonic_ns(void);

#endif
