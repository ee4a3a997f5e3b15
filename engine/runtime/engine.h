/* engine.h - runs every pipeline of a loaded spec: serves /metrics,
 * /healthz and /readyz, handles SIGINT/SIGTERM with a graceful drain, logs a
 * rate summary, and exits when every pipeline has ended. */
#ifndef CONVEYOR_ENGINE_H
#define CONVEYOR_ENGINE_H

#include <stdint.h>

#include "spec/spec.h"

struct engine_options {
	const char *listen_override; /* --listen, or NULL */
	int64_t duration_ns;         /* --duration, 0 for none */
};

/* Runs the spec until its sources end or a signal or the duration stops it.
 * Returns the process exit code: 0 clean, 1 runtime failure. */
int engine_run(struct engine_spec *spec, const struct engine_options *opts);

#endif
