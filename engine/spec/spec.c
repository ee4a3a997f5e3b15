#include "spec/spec.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/units.h"
#include "http/http_server.h"
#include "runtime/host_api.h"

static const char *const TOP_KEYS[] = {"version", "engine", "pipelines", NULL};
static const char *const ENGINE_KEYS[] = {
        "http", "log", "plugin_path", "shutdown_timeout", "metrics", "summary_interval", NULL};
static const char *const PIPELINE_KEYS[] = {"source", "transforms",  "sink",
                                            "queue",  "dead_letter", NULL};
static const char *const QUEUE_KEYS[] = {"max_records", "max_bytes", "batch_records", "linger",
                                         NULL};
static const char *const STAGE_RESERVED[] = {"plugin", "name", NULL};

struct loader_ctx {
	const char *file;
	struct diag *diag;
	struct plugin_loader *loader;
	struct engine_spec *spec;
	unsigned options_flags; /* enum options_flag */
};

static void list_keys(char *buf, size_t len, const char *const *keys)
{
	size_t pos = 0;
	buf[0] = '\0';
	for (size_t i = 0; keys[i] && pos < len; i++)
		pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? ", " : "", keys[i]);
}

/* Reports keys of `map` not in `keys`; returns the count. */
static int check_keys(struct loader_ctx *c, const struct spec_node *map, const char *what,
                      const char *const *keys)
{
	int bad = 0;
	for (size_t i = 0; i < map->npairs; i++) {
		const struct spec_node *k = map->pairs[i].key;
		bool ok = false;
		for (size_t j = 0; keys[j] && !ok; j++)
			ok = strcmp(k->scalar, keys[j]) == 0;
		if (!ok) {
			char valid[512];
			list_keys(valid, sizeof valid, keys);
			diag_error(c->diag, c->file, k->line, k->column,
			           "unknown key \"%s\" in %s; valid keys: %s", k->scalar, what,
			           valid);
			bad++;
		}
	}
	return bad;
}

static const struct spec_node *expect(struct loader_ctx *c, const struct spec_node *n,
                                      enum spec_node_type type, const char *what)
{
	if (!n)
		return NULL;
	if (n->type != type) {
		diag_error(c->diag, c->file, n->line, n->column, "%s must be a %s, not a %s", what,
		           spec_node_type_name(type), spec_node_type_name(n->type));
		return NULL;
	}
	return n;
}

static void scalar_error(struct loader_ctx *c, const struct spec_node *n, const char *what,
                         const char *expected)
{
	if (n->interpolated)
		diag_error(c->diag, c->file, n->line, n->column, "%s: expected %s", what, expected);
	else
		diag_error(c->diag, c->file, n->line, n->column, "%s: expected %s, got \"%s\"",
		           what, expected, n->scalar);
}

static int get_duration(struct loader_ctx *c, const struct spec_node *map, const char *key,
                        int64_t *out)
{
	const struct spec_node *n = expect(c, spec_map_get(map, key), SPEC_SCALAR, key);
	if (!n)
		return 0;
	if (units_parse_duration(n->scalar, out) < 0) {
		scalar_error(c, n, key, "a duration such as 500ms, 10s or 1m");
		return -1;
	}
	return 0;
}

static int get_bool(struct loader_ctx *c, const struct spec_node *map, const char *key, bool *out)
{
	const struct spec_node *n = expect(c, spec_map_get(map, key), SPEC_SCALAR, key);
	if (n && units_parse_bool(n->scalar, out) < 0) {
		scalar_error(c, n, key, "true or false");
		return -1;
	}
	return 0;
}

static int get_count(struct loader_ctx *c, const struct spec_node *map, const char *key,
                     uint32_t min, uint32_t max, uint32_t *out)
{
	const struct spec_node *n = expect(c, spec_map_get(map, key), SPEC_SCALAR, key);
	int64_t v;
	if (!n)
		return 0;
	if (units_parse_int(n->scalar, &v) < 0 || v < min || v > max) {
		char range[64];
		snprintf(range, sizeof range, "a whole number from %u to %u", min, max);
		scalar_error(c, n, key, range);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static void add_plugin_dir(struct loader_ctx *c, const struct spec_node *n)
{
	const char *dir = n->scalar;
	if (dir[0] != '/' && access(dir, F_OK) != 0) {
		/* Not relative to the working directory: try the spec's folder. */
		const char *slash = strrchr(c->file, '/');
		if (slash) {
			char path[PATH_MAX];
			snprintf(path, sizeof path, "%.*s/%s", (int)(slash - c->file), c->file,
			         dir);
			plugin_loader_add_dir(c->loader, path);
			return;
		}
	}
	plugin_loader_add_dir(c->loader, dir);
}

/* engine.http.listen: HOST:PORT, checked as the server will parse it; "off"
 * or "" turns the HTTP server off. */
static void set_listen(struct loader_ctx *c, const struct spec_node *l)
{
	if (strcmp(l->scalar, "off") == 0 || !*l->scalar) {
		c->spec->http_listen = "";
		return;
	}
	char err[256];
	if (http_listen_check(l->scalar, err, sizeof err) < 0) {
		if (l->interpolated)
			diag_error(c->diag, c->file, l->line, l->column,
			           "engine.http.listen: not a HOST:PORT address or off (the value "
			           "comes from the environment)");
		else
			diag_error(c->diag, c->file, l->line, l->column, "engine.http.listen: %s",
			           err);
		return;
	}
	c->spec->http_listen = l->scalar;
}

static void load_engine(struct loader_ctx *c, const struct spec_node *eng)
{
	struct engine_spec *s = c->spec;
	if (!expect(c, eng, SPEC_MAP, "engine"))
		return;
	check_keys(c, eng, "engine", ENGINE_KEYS);
	const struct spec_node *http = expect(c, spec_map_get(eng, "http"), SPEC_MAP, "http");
	if (http) {
		static const char *const keys[] = {"listen", "lifecycle", "tap", NULL};
		check_keys(c, http, "engine.http", keys);
		const struct spec_node *l =
		        expect(c, spec_map_get(http, "listen"), SPEC_SCALAR, "listen");
		if (l)
			set_listen(c, l);
		get_bool(c, http, "lifecycle", &s->http_lifecycle);
		get_bool(c, http, "tap", &s->http_tap);
	}
	const struct spec_node *log = expect(c, spec_map_get(eng, "log"), SPEC_MAP, "log");
	if (log) {
		static const char *const keys[] = {"level", "format", NULL};
		check_keys(c, log, "engine.log", keys);
		const struct spec_node *lv =
		        expect(c, spec_map_get(log, "level"), SPEC_SCALAR, "level");
		if (lv) {
			int level = log_level_parse(lv->scalar);
			if (level < 0)
				scalar_error(c, lv, "level", "one of debug, info, warn, error");
			else {
				s->log_level = (enum cv_log_level)level;
				s->log_level_set = true;
			}
		}
		const struct spec_node *fm =
		        expect(c, spec_map_get(log, "format"), SPEC_SCALAR, "format");
		if (fm) {
			if (log_format_parse(fm->scalar, &s->log_format) < 0)
				scalar_error(c, fm, "format", "one of json, text, auto");
			else
				s->log_format_set = true;
		}
	}
	const struct spec_node *pp = spec_map_get(eng, "plugin_path");
	if (pp && pp->type == SPEC_SCALAR) {
		add_plugin_dir(c, pp);
	} else if (expect(c, pp, SPEC_SEQ, "plugin_path")) {
		for (size_t i = 0; i < pp->nitems; i++)
			if (expect(c, pp->items[i], SPEC_SCALAR, "plugin_path entry"))
				add_plugin_dir(c, pp->items[i]);
	}
	get_duration(c, eng, "shutdown_timeout", &s->shutdown_timeout_ns);
	get_duration(c, eng, "summary_interval", &s->summary_interval_ns);
	const struct spec_node *m = expect(c, spec_map_get(eng, "metrics"), SPEC_MAP, "metrics");
	if (m) {
		static const char *const keys[] = {"enabled", NULL};
		check_keys(c, m, "engine.metrics", keys);
		get_bool(c, m, "enabled", &s->metrics_enabled);
	}
}

static void warn_insecure(struct loader_ctx *c, const struct spec_node *stage, const char *name)
{
	const struct spec_node *tls = spec_map_get(stage, "tls");
	const struct spec_node *v = tls && tls->type == SPEC_MAP
	                                    ? spec_map_get(tls, "insecure_skip_verify")
	                                    : spec_map_get(stage, "tls.insecure_skip_verify");
	bool on = false;
	if (v && v->type == SPEC_SCALAR && units_parse_bool(v->scalar, &on) == 0 && on)
		diag_warning(c->diag, c->file, v->line, v->column,
		             "stage %s: TLS certificate verification is disabled "
		             "(insecure_skip_verify); connections can be intercepted",
		             name);
}

static int load_stage(struct loader_ctx *c, const struct spec_node *n, const char *where,
                      enum cv_plugin_kind kind, struct stage_spec *out)
{
	if (!expect(c, n, SPEC_MAP, where))
		return -1;
	out->line = n->line;
	out->column = n->column;
	const struct spec_node *pn = spec_map_get(n, "plugin");
	if (!pn) {
		diag_error(c->diag, c->file, n->line, n->column,
		           "%s: missing required key \"plugin\"", where);
		return -1;
	}
	if (!expect(c, pn, SPEC_SCALAR, "plugin"))
		return -1;
	char err[1024];
	const struct plugin_module *m = plugin_loader_get(c->loader, pn->scalar, err, sizeof err);
	if (!m) {
		diag_error(c->diag, c->file, pn->line, pn->column, "%s", err);
		return -1;
	}
	if (m->desc.kind != kind) {
		diag_error(c->diag, c->file, pn->line, pn->column,
		           "plugin %s is a %s, but %s needs a %s", m->desc.name,
		           plugin_kind_name(m->desc.kind), where, plugin_kind_name(kind));
		return -1;
	}
	out->module = m;
	out->name = m->desc.name;
	const struct spec_node *nn = spec_map_get(n, "name");
	if (nn && expect(c, nn, SPEC_SCALAR, "name"))
		out->name = nn->scalar;
	warn_insecure(c, n, out->name);
	return options_fill_plugin(c->file, n, &m->desc, &host_api, STAGE_RESERVED,
	                           c->options_flags, c->diag, &out->config);
}

static void load_pipeline(struct loader_ctx *c, const struct spec_node *key,
                          const struct spec_node *n, struct pipeline_spec *p)
{
	p->name = key->scalar;
	p->line = key->line;
	p->column = key->column;
	p->linger_ns = -1;
	if (!expect(c, n, SPEC_MAP, "a pipeline"))
		return;
	check_keys(c, n, "a pipeline", PIPELINE_KEYS);
	const struct spec_node *src = spec_map_get(n, "source");
	const struct spec_node *snk = spec_map_get(n, "sink");
	const struct spec_node *tr = spec_map_get(n, "transforms");
	if (!src)
		diag_error(c->diag, c->file, n->line, n->column,
		           "pipeline %s: missing required key \"source\"", p->name);
	if (!snk)
		diag_error(c->diag, c->file, n->line, n->column,
		           "pipeline %s: missing required key \"sink\"", p->name);
	size_t ntr = 0;
	if (tr && expect(c, tr, SPEC_SEQ, "transforms"))
		ntr = tr->nitems;
	p->stages = calloc(ntr + 2, sizeof *p->stages);
	if (!p->stages) {
		diag_error(c->diag, c->file, n->line, n->column, "out of memory");
		return;
	}
	p->nstages = ntr + 2;
	if (src)
		load_stage(c, src, "source", CV_KIND_SOURCE, &p->stages[0]);
	for (size_t i = 0; i < ntr; i++)
		load_stage(c, tr->items[i], "a transform", CV_KIND_TRANSFORM, &p->stages[1 + i]);
	if (snk)
		load_stage(c, snk, "sink", CV_KIND_SINK, &p->stages[ntr + 1]);
	/* Stage names label metrics: they must be unique in the pipeline. */
	for (size_t i = 0; i < p->nstages; i++)
		for (size_t j = 0; j < i; j++)
			if (p->stages[i].name && p->stages[j].name &&
			    strcmp(p->stages[i].name, p->stages[j].name) == 0)
				diag_error(c->diag, c->file, p->stages[i].line, p->stages[i].column,
				           "pipeline %s: two stages are named \"%s\"; give one a "
				           "`name:`",
				           p->name, p->stages[i].name);
	const struct spec_node *q = expect(c, spec_map_get(n, "queue"), SPEC_MAP, "queue");
	if (q) {
		check_keys(c, q, "queue", QUEUE_KEYS);
		get_count(c, q, "batch_records", 1, 1u << 20, &p->batch_records);
		get_count(c, q, "max_records", 2, UINT32_MAX >> 1, &p->max_records);
		const struct spec_node *mb =
		        expect(c, spec_map_get(q, "max_bytes"), SPEC_SCALAR, "max_bytes");
		if (mb &&
		    (units_parse_size(mb->scalar, &p->max_bytes) < 0 || p->max_bytes < (1u << 20)))
			scalar_error(c, mb, "max_bytes", "a size of at least 1MiB, such as 64MiB");
		get_duration(c, q, "linger", &p->linger_ns);
		if (p->batch_records && p->max_records && p->max_records < 2 * p->batch_records)
			diag_error(c->diag, c->file, q->line, q->column,
			           "queue.max_records (%u) must hold at least two batches of "
			           "batch_records (%u)",
			           p->max_records, p->batch_records);
	}
	const struct spec_node *dl = spec_map_get(n, "dead_letter");
	if (expect(c, dl, SPEC_MAP, "dead_letter")) {
		static const char *const keys[] = {"path", NULL};
		check_keys(c, dl, "dead_letter", keys);
		const struct spec_node *path =
		        expect(c, spec_map_get(dl, "path"), SPEC_SCALAR, "path");
		if (path)
			p->dead_letter_path = path->scalar;
		else if (!spec_map_get(dl, "path"))
			diag_error(c->diag, c->file, dl->line, dl->column,
			           "dead_letter: missing required key \"path\"");
	}
}

static int load(const char *file, const char *text, size_t len, struct plugin_loader *loader,
                unsigned options_flags, struct diag *diag, struct engine_spec **out)
{
	*out = NULL;
	struct engine_spec *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->http_listen = "127.0.0.1:8000";
	s->log_level = CV_LOG_INFO;
	s->log_format = LOG_FORMAT_JSON;
	s->shutdown_timeout_ns = 10 * 1000000000LL;
	s->metrics_enabled = true;
	int errors_before = diag->errors;
	int rc = text ? spec_doc_parse(file, text, len, diag, &s->doc)
	              : spec_doc_load(file, diag, &s->doc);
	if (rc < 0) {
		engine_spec_free(s);
		return -1;
	}
	s->file = s->doc->file;
	struct loader_ctx c = {.file = s->file,
	                       .diag = diag,
	                       .loader = loader,
	                       .spec = s,
	                       .options_flags = options_flags};
	const struct spec_node *root = s->doc->root;
	if (!root) {
		diag_error(diag, s->file, 1, 1,
		           "the spec is empty; it needs version: 1 and pipelines");
		engine_spec_free(s);
		return -1;
	}
	if (!expect(&c, root, SPEC_MAP, "the spec")) {
		engine_spec_free(s);
		return -1;
	}
	check_keys(&c, root, "the spec", TOP_KEYS);
	const struct spec_node *v = spec_map_get(root, "version");
	if (!v)
		diag_error(diag, s->file, root->line, root->column,
		           "missing required key \"version\" (this engine reads version: 1)");
	else if (v->type != SPEC_SCALAR || strcmp(v->scalar, "1") != 0)
		diag_error(diag, s->file, v->line, v->column,
		           "unsupported spec version; this engine reads version: 1");
	plugin_loader_add_env(loader);
	load_engine(&c, spec_map_get(root, "engine"));
	plugin_loader_add_defaults(loader);
	const struct spec_node *pl = spec_map_get(root, "pipelines");
	if (!pl) {
		diag_error(diag, s->file, root->line, root->column,
		           "missing required key \"pipelines\"");
	} else if (expect(&c, pl, SPEC_MAP, "pipelines")) {
		if (pl->npairs == 0)
			diag_error(diag, s->file, pl->line, pl->column, "no pipelines defined");
		s->pipelines = calloc(pl->npairs ? pl->npairs : 1, sizeof *s->pipelines);
		if (s->pipelines) {
			s->npipelines = pl->npairs;
			for (size_t i = 0; i < pl->npairs; i++)
				load_pipeline(&c, pl->pairs[i].key, pl->pairs[i].value,
				              &s->pipelines[i]);
		}
	}
	if (diag->errors > errors_before) {
		engine_spec_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

int engine_spec_load(const char *file, const char *text, size_t len, struct plugin_loader *loader,
                     struct diag *diag, struct engine_spec **out)
{
	return load(file, text, len, loader, 0, diag, out);
}

int engine_spec_validate(const char *file, struct plugin_loader *loader, struct diag *diag,
                         struct engine_spec **out)
{
	return load(file, NULL, 0, loader, OPTIONS_NO_FILES, diag, out);
}

void engine_spec_free(struct engine_spec *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->npipelines; i++) {
		struct pipeline_spec *p = &s->pipelines[i];
		for (size_t j = 0; j < p->nstages; j++)
			options_config_free(&p->stages[j].config);
		free(p->stages);
	}
	free(s->pipelines);
	spec_doc_free(s->doc);
	free(s);
}
