/* spec.h - a pipeline spec file turned into the engine's configuration:
 * engine settings, and per pipeline its stages with their plugins resolved
 * and options validated and filled. Knows nothing of threads. */
#ifndef CONVEYOR_SPEC_H
#define CONVEYOR_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "base/diag.h"
#include "base/log.h"
#include "spec/options.h"
#include "runtime/plugin_loader.h"
#include "spec/spec_tree.h"

struct stage_spec {
	const char *name; /* the stage label: `name`, else the plugin's name */
	const struct plugin_module *module;
	struct options_config config;
	int line, column;
};

struct pipeline_spec {
	const char *name;
	int line, column;          /* of its name */
	struct stage_spec *stages; /* [0] source, transforms..., [n-1] sink */
	size_t nstages;
	uint32_t batch_records;
	uint32_t max_records;
	uint64_t max_bytes;
	int64_t linger_ns; /* -1: the engine's default */
	const char *dead_letter_path;
};

struct engine_spec {
	const char *file;
	const char *http_listen; /* "" disables (written "off" or "") */
	bool http_lifecycle;     /* POST /-/reload allowed */
	bool http_tap;           /* engine.http.tap: GET /api/v1/tap is allowed */
	enum cv_log_level log_level;
	enum log_format log_format;
	bool log_level_set, log_format_set;
	int64_t shutdown_timeout_ns;
	bool metrics_enabled;
	int64_t summary_interval_ns;
	struct pipeline_spec *pipelines;
	size_t npipelines;
	struct spec_doc *doc;
};

/* Loads a spec from `text` (or the file when text is NULL). Plugin
 * directories from engine.plugin_path are added to `loader` (relative paths
 * resolve against the working directory, then the spec's folder), then
 * plugins are loaded and options validated. Every error goes to `diag`.
 * Returns 0 and *out, or -1. */
int engine_spec_load(const char *file, const char *text, size_t len, struct plugin_loader *loader,
                     struct diag *diag, struct engine_spec **out);
/* engine_spec_load() for `conveyor validate`: the same checks, plugins'
 * cross-option checks included, but no file the spec names is read (specs
 * are validated away from where they run): a secret's NAME_file holds a
 * placeholder. The result is for reporting only, never for running. */
int engine_spec_validate(const char *file, struct plugin_loader *loader, struct diag *diag,
                         struct engine_spec **out);
void engine_spec_free(struct engine_spec *spec);

#endif
