#include "runtime/plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct plugin_loader {
	char **dirs;
	size_t ndirs;
	struct plugin_module *modules;
};

struct plugin_loader *plugin_loader_new(void)
{
	return calloc(1, sizeof(struct plugin_loader));
}

void plugin_loader_free(struct plugin_loader *pl)
{
	if (!pl)
		return;
	for (size_t i = 0; i < pl->ndirs; i++)
		free(pl->dirs[i]);
	free(pl->dirs);
	struct plugin_module *m = pl->modules;
	while (m) {
		struct plugin_module *next = m->next;
		dlclose(m->handle);
		free(m->path);
		free(m);
		m = next;
	}
	free(pl);
}

static int add_one_dir(struct plugin_loader *pl, const char *dir, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < pl->ndirs; i++)
		if (strlen(pl->dirs[i]) == len && strncmp(pl->dirs[i], dir, len) == 0)
			return 0;
	char **dirs = realloc(pl->dirs, (pl->ndirs + 1) * sizeof *dirs);
	if (!dirs)
		return CV_ENOMEM;
	pl->dirs = dirs;
	pl->dirs[pl->ndirs] = strndup(dir, len);
	if (!pl->dirs[pl->ndirs])
		return CV_ENOMEM;
	pl->ndirs++;
	return 0;
}

int plugin_loader_add_dir(struct plugin_loader *pl, const char *dir)
{
	while (*dir) {
		const char *colon = strchr(dir, ':');
		size_t len = colon ? (size_t)(colon - dir) : strlen(dir);
		if (add_one_dir(pl, dir, len) < 0)
			return CV_ENOMEM;
		dir += len;
		if (*dir == ':')
			dir++;
	}
	return 0;
}

void plugin_loader_add_env(struct plugin_loader *pl)
{
	const char *env = getenv("CONVEYOR_PLUGIN_PATH");
	if (env)
		plugin_loader_add_dir(pl, env);
}

void plugin_loader_add_defaults(struct plugin_loader *pl)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	char dir[PATH_MAX + 32];
	snprintf(dir, sizeof dir, "%s/plugins", exe);
	add_one_dir(pl, dir, strlen(dir));
	snprintf(dir, sizeof dir, "%s/../lib/conveyor/plugins", exe);
	add_one_dir(pl, dir, strlen(dir));
}

const char *plugin_kind_name(enum cv_plugin_kind kind)
{
	switch (kind) {
	case CV_KIND_SOURCE: return "source";
	case CV_KIND_TRANSFORM: return "transform";
	case CV_KIND_SINK: return "sink";
	}
	return "unknown";
}

/* A descriptor is at least as large as ABI 1.0's (which ends before
 * `check`), and not absurdly larger than this host's: a size beyond that is
 * garbage, not a newer minor (which is refused by its number anyway). */
#define MIN_DESCRIPTOR_SIZE offsetof(struct cv_plugin, check)
#define MAX_DESCRIPTOR_SIZE (64u << 10)

int plugin_descriptor_check(const struct cv_plugin *d, const char *path, char *err, size_t errlen)
{
	if (d->abi_major != CV_ABI_MAJOR || d->abi_minor > CV_ABI_MINOR) {
		snprintf(err, errlen,
		         "%s: plugin built for ABI %u.%u, but this host supports ABI %d.%d%s", path,
		         d->abi_major, d->abi_minor, CV_ABI_MAJOR, CV_ABI_MINOR,
		         d->abi_major != CV_ABI_MAJOR ? " (major versions differ)"
		                                      : " (the plugin is newer than the host)");
		return -1;
	}
	if (d->struct_size < MIN_DESCRIPTOR_SIZE || d->struct_size > MAX_DESCRIPTOR_SIZE) {
		snprintf(err, errlen,
		         "%s: descriptor size %u bytes is not a Conveyor descriptor's (%zu for ABI "
		         "1.0 to %u)",
		         path, d->struct_size, MIN_DESCRIPTOR_SIZE, MAX_DESCRIPTOR_SIZE);
		return -1;
	}
	/* Since ABI 1.1 a stage may have neither init nor destroy (its state is
	 * then the host's cv_context); init always comes with its destroy. */
	bool lifecycle_ok = d->init ? d->destroy != NULL : d->abi_minor >= 1 && !d->destroy;
	if (!d->name || !*d->name || !lifecycle_ok) {
		snprintf(err, errlen, "%s: descriptor lacks a name, init or destroy", path);
		return -1;
	}
	for (const char *c = d->name; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
			snprintf(err, errlen, "%s: plugin name \"%s\" is not [a-z0-9_]+", path,
			         d->name);
			return -1;
		}
	}
	const char *missing = NULL;
	switch (d->kind) {
	case CV_KIND_SOURCE:
		if (!d->read)
			missing = "read";
		break;
	case CV_KIND_TRANSFORM:
		if (!d->process)
			missing = "process";
		break;
	case CV_KIND_SINK:
		if (!d->write)
			missing = "write";
		break;
	default:
		snprintf(err, errlen, "%s: plugin %s has an unknown kind %d", path, d->name,
		         (int)d->kind);
		return -1;
	}
	if (missing) {
		snprintf(err, errlen, "%s: %s plugin %s has no %s callback", path,
		         plugin_kind_name(d->kind), d->name, missing);
		return -1;
	}
	if (d->config_size > 0 && !d->options) {
		snprintf(err, errlen, "%s: config_size without options", path);
		return -1;
	}
	return 0;
}

static struct plugin_module *load_path(struct plugin_loader *pl, const char *path, char *err,
                                       size_t errlen)
{
	char real[PATH_MAX];
	if (!realpath(path, real)) {
		snprintf(err, errlen, "%s: cannot open plugin: %m", path);
		return NULL;
	}
	for (struct plugin_module *m = pl->modules; m; m = m->next)
		if (strcmp(m->path, real) == 0)
			return m;
	/* RTLD_NODELETE keeps plugin code mapped until exit, so sanitizer and
	 * valgrind reports can name plugin frames. */
	void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!h) {
		snprintf(err, errlen, "%s: cannot load plugin: %s", path, dlerror());
		return NULL;
	}
	const struct cv_plugin *d = dlsym(h, "cv_plugin_descriptor");
	if (!d) {
		snprintf(err, errlen, "%s: not a Conveyor plugin (no symbol %s)", path,
		         CV_PLUGIN_SYMBOL);
		dlclose(h);
		return NULL;
	}
	if (plugin_descriptor_check(d, path, err, errlen) < 0) {
		dlclose(h);
		return NULL;
	}
	struct plugin_module *m = calloc(1, sizeof *m);
	if (!m || !(m->path = strdup(real))) {
		free(m);
		dlclose(h);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	size_t n = d->struct_size < sizeof m->desc ? d->struct_size : sizeof m->desc;
	memcpy(&m->desc, d, n);
	m->handle = h;
	m->next = pl->modules;
	pl->modules = m;
	return m;
}

const struct plugin_module *plugin_loader_get(struct plugin_loader *pl, const char *name, char *err,
                                              size_t errlen)
{
	if (strchr(name, '/'))
		return load_path(pl, name, err, errlen);
	for (struct plugin_module *m = pl->modules; m; m = m->next)
		if (strcmp(m->desc.name, name) == 0)
			return m;
	for (size_t i = 0; i < pl->ndirs; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s.so", pl->dirs[i], name);
		if (access(path, F_OK) != 0)
			continue;
		struct plugin_module *m = load_path(pl, path, err, errlen);
		if (m && strcmp(m->desc.name, name) != 0) {
			snprintf(err, errlen, "%s: file is named %s but the plugin calls itself %s",
			         path, name, m->desc.name);
			return NULL;
		}
		return m;
	}
	struct {
		char text[1024];
		size_t len;
	} dirs = {.len = 0};
	dirs.text[0] = '\0';
	for (size_t i = 0; i < pl->ndirs && dirs.len < sizeof dirs.text - 1; i++)
		dirs.len += (size_t)snprintf(dirs.text + dirs.len, sizeof dirs.text - dirs.len,
		                             "%s%s", i ? ", " : "", pl->dirs[i]);
	snprintf(err, errlen, "unknown plugin \"%s\" (searched: %s)", name,
	         pl->ndirs ? dirs.text : "no plugin directories");
	return NULL;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void plugin_loader_scan(struct plugin_loader *pl,
                        void (*fn)(void *ctx, const char *name, const struct plugin_module *m,
                                   const char *error),
                        void *ctx)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < pl->ndirs; i++) {
		DIR *d = opendir(pl->dirs[i]);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d))) {
			size_t len = strlen(e->d_name);
			if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0 ||
			    strncmp(e->d_name, "lib", 3) == 0)
				continue;
			char *nm = strndup(e->d_name, len - 3);
			if (!nm)
				continue;
			int dup = 0;
			for (size_t j = 0; j < n; j++)
				dup |= strcmp(names[j], nm) == 0;
			if (dup) {
				free(nm);
				continue;
			}
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				char **grown = realloc(names, cap * sizeof *names);
				if (!grown) {
					free(nm);
					break;
				}
				names = grown;
			}
			names[n++] = nm;
		}
		closedir(d);
	}
	qsort(names, n, sizeof *names, name_cmp);
	for (size_t i = 0; i < n; i++) {
		char err[1024] = "";
		const struct plugin_module *m = plugin_loader_get(pl, names[i], err, sizeof err);
		fn(ctx, names[i], m, m ? NULL : err);
		free(names[i]);
	}
	free(names);
}
