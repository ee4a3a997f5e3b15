/* engine.h - runs every pipeline of a loaded spec: serves /metrics,
 * /healthz, /readyz and POST /-/reload, handles SIGINT/SIGTERM with a
 * graceful drain and SIGHUP with a reload, logs a rate summary, and exits
 * when every pipeline has ended. */
#ifndef CONVEYOR_ENGINE_H
#define CONVEYOR_ENGINE_H

#include <stdint.h>

#include "spec/spec.h"
#include "spec/spec_watch.h"

struct engine_options {
	const char *listen_override; /* --listen, or NULL */
	int64_t duration_ns;         /* --duration, 0 for none */
	/* The spec file a reload reads again; NULL for the built-in demo,
	 * which ignores reloads. */
	const char *spec_file;
	struct plugin_loader *loader; /* loads a reloaded spec's plugins */
	struct spec_watch *watch;     /* --watch: reload when it sees a change; or NULL */
	/* Applies a reloaded spec's log settings (the environment still wins). */
	void (*apply_log)(const struct engine_spec *spec);
};

/* Blocks the signals the engine takes through its loop (SIGINT, SIGTERM,
 * SIGHUP, SIGUSR1, SIGUSR2 and others that would kill it) in the calling
 * thread, so that threads started later inherit the mask. Call first. */
void engine_block_signals(void);

/* Runs the spec (which it takes over and frees) until its sources end or a
 * signal or the duration stops it. Returns the process exit code: 0 clean,
 * 1 runtime failure. */
int engine_run(struct engine_spec *spec, const struct engine_options *opts);

#endif
