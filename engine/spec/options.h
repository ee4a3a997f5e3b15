/* options.h - validates a stage's options against a plugin's option schema,
 * fills the plugin's config struct, and prints the schema as documentation.
 */
#ifndef CONVEYOR_OPTIONS_H
#define CONVEYOR_OPTIONS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include <conveyor/plugin.h>

#include "base/diag.h"
#include "spec/spec_tree.h"

/* A filled config: `data` is config_size bytes (as the plugin's struct), and
 * everything its pointers reference is owned here. */
struct options_config {
	void *data;
	void *arena; /* private: strings, lists, maps */
};

/* Validates the map node `stage` (one source/transform/sink entry of a spec)
 * against `options`, skipping the host's own keys listed in `reserved`
 * (NULL-terminated, e.g. "plugin", "name"). Dotted option names match nested
 * maps (tls: {ca_file: x}) or dotted keys ("tls.ca_file": x). A secret option
 * NAME also accepts NAME_file (content read, trailing newline stripped).
 * Reports every problem to `diag` at the offending node: unknown keys (listing
 * the valid ones), missing required options, wrong types, values out of range
 * or not in the enum, bad durations and sizes. Never prints a secret's value.
 * On success fills `out` (config_size bytes, defaults applied) and returns 0;
 * else -1. Free with options_config_free(). */
int options_fill(const char *file, const struct spec_node *stage, const struct cv_option *options,
                 size_t config_size, const char *const *reserved, struct diag *diag,
                 struct options_config *out);

/* How options_fill_plugin() treats what lies outside the spec. */
enum options_flag {
	/* `conveyor validate`: a secret's NAME_file is not read (specs are
	 * validated away from where they run); a string secret then holds
	 * OPTIONS_SECRET_PLACEHOLDER. */
	OPTIONS_NO_FILES = 1u << 0,
};
#define OPTIONS_SECRET_PLACEHOLDER "(secret file, not read by validate)"

/* options_fill() for the stage of `plugin`, then the plugin's cross-option
 * `check` (ABI 1.1; absent in older descriptors), given `api`, whose
 * check_error() reports at the spec position of the option it names.
 * Returns 0 or -1 as options_fill(); on -1 `out` holds nothing. */
int options_fill_plugin(const char *file, const struct spec_node *stage,
                        const struct cv_plugin *plugin, const struct cv_host_api *api,
                        const char *const *reserved, unsigned flags, struct diag *diag,
                        struct options_config *out);

/* The host's side of cv_host_api.check_error and .option_given: valid only
 * during the plugin's check. */
void options_check_verror(struct cv_check *check, const char *option, const char *fmt, va_list ap);
bool options_check_given(const struct cv_check *check, const char *option);

void options_config_free(struct options_config *cfg);

/* Prints the options as a table: name, type, default, required/secret,
 * range or enum values, description. */
void options_print(FILE *out, const struct cv_option *options);

/* "string", "int", "duration"... */
const char *options_type_name(enum cv_option_type type);

#endif
