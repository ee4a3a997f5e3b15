/* plugin_loader.h - finds plugin shared objects on the plugin path, loads
 * them with dlopen, checks their ABI and keeps them loaded until exit. */
#ifndef CONVEYOR_PLUGIN_LOADER_H
#define CONVEYOR_PLUGIN_LOADER_H

#include <stddef.h>

#include <conveyor/plugin.h>

struct plugin_module {
	char *path;
	void *handle;
	/* The descriptor, copied into a full-size struct: members a plugin built
	 * against an older, shorter ABI lacks are zero. */
	struct cv_plugin desc;
	struct plugin_module *next;
};

struct plugin_loader;

struct plugin_loader *plugin_loader_new(void);
/* Frees the registry and dlcloses every module. */
void plugin_loader_free(struct plugin_loader *pl);
/* Appends a directory to search (a colon-separated list is split). Returns 0
 * or CV_ENOMEM. */
int plugin_loader_add_dir(struct plugin_loader *pl, const char *dir);
/* Adds $CONVEYOR_PLUGIN_PATH, then the spec's dirs are added by the caller,
 * then plugin_loader_add_defaults() adds <exe dir>/plugins and
 * <exe dir>/../lib/conveyor/plugins. */
void plugin_loader_add_env(struct plugin_loader *pl);
void plugin_loader_add_defaults(struct plugin_loader *pl);

/* Loads the plugin `name` (NAME.so on the path) or `name` as a path when it
 * contains a '/'. On failure returns NULL with a message in err (not found,
 * dlopen error, no descriptor, ABI mismatch naming both versions, a kind
 * without its callbacks). A module loaded once is returned again. */
const struct plugin_module *plugin_loader_get(struct plugin_loader *pl, const char *name, char *err,
                                              size_t errlen);

/* Checks a descriptor as loading does; 0 or -1 with err. Exposed for tests. */
int plugin_descriptor_check(const struct cv_plugin *d, const char *path, char *err, size_t errlen);

/* Calls fn for every loadable plugin found on the path, sorted by name
 * (first found wins for duplicate names); broken ones call fn with NULL
 * module and an error text. */
void plugin_loader_scan(struct plugin_loader *pl,
                        void (*fn)(void *ctx, const char *name, const struct plugin_module *m,
                                   const char *error),
                        void *ctx);

const char *plugin_kind_name(enum cv_plugin_kind kind);

#endif
