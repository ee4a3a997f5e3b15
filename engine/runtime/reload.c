#include "runtime/reload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "runtime/stage.h"

/* ---- comparing a running pipeline with a new spec ---- */

static bool str_equal(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool list_equal(const struct cv_string_list *a, const struct cv_string_list *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (!str_equal(a->items[i], b->items[i]))
			return false;
	return true;
}

/* Maps are equal with the same pairs in any order (keys are unique). */
static bool map_equal(const struct cv_string_map *a, const struct cv_string_map *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++) {
		size_t j = 0;
		while (j < b->count && !str_equal(a->keys[i], b->keys[j]))
			j++;
		if (j == b->count || !str_equal(a->values[i], b->values[j]))
			return false;
	}
	return true;
}

/* Compares two filled configs option by option through the plugin's
 * schema: what a plugin sees, secrets read from files included, not the
 * YAML's spelling of it. */
static bool config_equal(const struct cv_option *options, const void *a, const void *b)
{
	if (!options || a == b)
		return true;
	if (!a || !b)
		return false;
	for (const struct cv_option *o = options; o->name; o++) {
		const char *pa = (const char *)a + o->offset, *pb = (const char *)b + o->offset;
		bool same = true;
		switch (o->type) {
		case CV_OPT_STRING: {
			const char *sa, *sb;
			memcpy(&sa, pa, sizeof sa);
			memcpy(&sb, pb, sizeof sb);
			same = str_equal(sa, sb);
			break;
		}
		case CV_OPT_INT:
		case CV_OPT_DURATION:
		case CV_OPT_SIZE: same = memcmp(pa, pb, sizeof(int64_t)) == 0; break;
		case CV_OPT_DOUBLE: {
			double da, db;
			memcpy(&da, pa, sizeof da);
			memcpy(&db, pb, sizeof db);
			same = da == db || (isnan(da) && isnan(db));
			break;
		}
		case CV_OPT_FIELD_NAME: {
			struct cv_field_name fa, fb;
			memcpy(&fa, pa, sizeof fa);
			memcpy(&fb, pb, sizeof fb);
			same = str_equal(fa.name, fb.name);
			break;
		}
		case CV_OPT_BOOL: same = *(const bool *)pa == *(const bool *)pb; break;
		case CV_OPT_ENUM: same = memcmp(pa, pb, sizeof(int)) == 0; break;
		case CV_OPT_LIST:
			same = list_equal((const struct cv_string_list *)pa,
			                  (const struct cv_string_list *)pb);
			break;
		case CV_OPT_MAP:
			same = map_equal((const struct cv_string_map *)pa,
			                 (const struct cv_string_map *)pb);
			break;
		case CV_OPT_END: break;
		}
		if (!same)
			return false;
	}
	return true;
}

static bool stage_same(const struct stage_def *d, const struct stage_spec *s)
{
	return d->module == s->module && strcmp(d->name, s->name) == 0 &&
	       config_equal(s->module->desc.options, d->config.data, s->config.data);
}

static enum reload_action classify(const struct engine_pipeline *old,
                                   const struct pipeline_spec *ps)
{
	size_t n = old->nstages;
	bool frame = ps->nstages >= 2 && stage_same(&old->defs[0], &ps->stages[0]) &&
	             stage_same(&old->defs[n - 1], &ps->stages[ps->nstages - 1]) &&
	             old->batch_records == ps->batch_records &&
	             old->max_records == ps->max_records && old->max_bytes == ps->max_bytes &&
	             old->linger_ns == ps->linger_ns &&
	             str_equal(old->dead_letter_path, ps->dead_letter_path);
	bool transforms = old->nxf == ps->nstages - 2;
	for (size_t i = 0; transforms && i < old->nxf; i++)
		transforms = stage_same(&old->xf_defs[i], &ps->stages[1 + i]);
	if (frame && transforms)
		return RELOAD_KEEP;
	/* One not started yet (waiting for its predecessor) is simply replaced. */
	return frame && old->started ? RELOAD_SWAP : RELOAD_RESTART;
}

/* ---- making pipelines and transform sets ---- */

static void defs_free(struct stage_def *defs, size_t n)
{
	for (size_t i = 0; defs && i < n; i++) {
		free(defs[i].name);
		options_config_free(&defs[i].config);
	}
	free(defs);
}

/* Copies stage specs [from, from+n) into owned definitions, moving each
 * config out of the spec, and fills the stage array the runtime uses. */
static int defs_take(struct pipeline_spec *ps, size_t from, size_t n, struct stage_def **defs_out,
                     struct cv_stage **stages_out)
{
	struct stage_def *defs = calloc(n ? n : 1, sizeof *defs);
	struct cv_stage *stages = calloc(n ? n : 1, sizeof *stages);
	if (!defs || !stages) {
		free(defs);
		free(stages);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct stage_spec *ss = &ps->stages[from + i];
		defs[i].name = strdup(ss->name);
		defs[i].module = ss->module;
		defs[i].config = ss->config;
		ss->config = (struct options_config){0};
		stages[i].name = defs[i].name;
		stages[i].plugin = &ss->module->desc;
		stages[i].config = defs[i].config.data;
		if (!defs[i].name) {
			defs_free(defs, n);
			free(stages);
			return -1;
		}
	}
	*defs_out = defs;
	*stages_out = stages;
	return 0;
}

void engine_pipeline_free(struct engine_pipeline *ep)
{
	if (!ep)
		return;
	pipeline_free(ep->p);
	defs_free(ep->defs, ep->nstages);
	free(ep->stages);
	free(ep->dead_letter_path);
	free(ep->name);
	free(ep);
}

static void init_error(const char *file, const struct pipeline_spec *ps, size_t stage,
                       struct strbuf *why)
{
	const struct stage_spec *ss = &ps->stages[stage];
	char line[512];
	snprintf(line, sizeof line,
	         "%s:%d:%d: error: pipeline %s: stage %s (plugin %s) failed to initialise; see "
	         "the plugin's message above",
	         file, ss->line, ss->column, ps->name, ss->name, ss->module->desc.name);
	log_error("%s", line);
	if (why)
		strbuf_printf(why, "%s\n", line);
}

/* Makes the pipeline of `ps` and inits its stages; nothing starts. */
static struct engine_pipeline *pipeline_make(const char *file, struct pipeline_spec *ps,
                                             const struct reload_base *base, struct strbuf *why)
{
	struct engine_pipeline *ep = calloc(1, sizeof *ep);
	if (!ep)
		return NULL;
	ep->name = strdup(ps->name);
	ep->nstages = ps->nstages;
	ep->batch_records = ps->batch_records;
	ep->max_records = ps->max_records;
	ep->max_bytes = ps->max_bytes;
	ep->linger_ns = ps->linger_ns;
	if (ps->dead_letter_path && !(ep->dead_letter_path = strdup(ps->dead_letter_path)))
		goto fail;
	if (!ep->name || defs_take(ps, 0, ps->nstages, &ep->defs, &ep->stages) < 0)
		goto fail;
	ep->xf_defs = ep->defs + 1;
	ep->nxf = ep->nstages - 2;
	struct pipeline_config cfg = {
	        .name = ep->name,
	        .batch_records = ep->batch_records,
	        .max_records = ep->max_records,
	        .max_bytes = ep->max_bytes,
	        .linger_ns = ep->linger_ns,
	        .metrics_enabled = base->metrics_enabled,
	        .dead_letter_path = ep->dead_letter_path,
	        .on_done = base->on_done,
	        .on_done_ctx = base->on_done_ctx,
	};
	ep->p = pipeline_new(&cfg, ep->stages, ep->nstages, base->registry);
	if (!ep->p) {
		char line[512];
		snprintf(line, sizeof line, "%s:%d:%d: error: pipeline %s cannot be set up", file,
		         ps->line, ps->column, ps->name);
		log_error("%s", line);
		if (why)
			strbuf_printf(why, "%s\n", line);
		goto fail;
	}
	if (pipeline_init_stages(ep->p) < 0) {
		/* Inits run sink first: the failed one is the last not initialised. */
		size_t bad = ep->nstages - 1;
		while (bad > 0 && ep->stages[bad].initialised)
			bad--;
		init_error(file, ps, bad, why);
		goto fail;
	}
	return ep;
fail:
	engine_pipeline_free(ep);
	return NULL;
}

/* A swapped-in set of transforms with the definitions it owns. */
struct xf_group {
	struct transform_set set; /* first: release() gets it */
	struct stage_def *defs;
};

static void xf_group_release(struct transform_set *set)
{
	struct xf_group *g = (struct xf_group *)set;
	defs_free(g->defs, set->n);
	free(set->stages);
	free(g);
}

static struct xf_group *xf_group_make(const char *file, struct pipeline_spec *ps,
                                      struct engine_pipeline *old, struct strbuf *why)
{
	struct xf_group *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->set.n = ps->nstages - 2;
	g->set.release = xf_group_release;
	if (defs_take(ps, 1, g->set.n, &g->defs, &g->set.stages) < 0) {
		free(g);
		return NULL;
	}
	size_t failed;
	if (pipeline_prepare_transforms(old->p, &g->set, &failed) < 0) {
		init_error(file, ps, 1 + failed, why);
		xf_group_release(&g->set);
		return NULL;
	}
	return g;
}

static void free_steps(struct reload_step *steps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		engine_pipeline_free(steps[i].next);
		if (steps[i].xf) {
			/* Prepared, never handed over: destroy its stages. */
			for (size_t j = 0; j < steps[i].xf->n; j++)
				stage_destroy(&steps[i].xf->stages[j]);
			steps[i].xf->release(steps[i].xf);
		}
	}
	free(steps);
}

static struct engine_pipeline *find_running(const struct reload_base *base, const char *name)
{
	for (size_t i = 0; i < base->nrunning; i++)
		if (strcmp(base->running[i]->name, name) == 0)
			return base->running[i];
	return NULL;
}

static int plan_build(struct engine_spec *spec, const struct reload_base *base,
                      struct reload_plan **out, struct strbuf *why)
{
	*out = NULL;
	struct reload_plan *plan = calloc(1, sizeof *plan);
	if (!plan) {
		engine_spec_free(spec);
		return -1;
	}
	plan->spec = spec;
	plan->steps = calloc(spec->npipelines ? spec->npipelines : 1, sizeof *plan->steps);
	plan->removed = calloc(base->nrunning ? base->nrunning : 1, sizeof *plan->removed);
	if (!plan->steps || !plan->removed)
		goto fail;
	for (size_t i = 0; i < spec->npipelines; i++) {
		struct pipeline_spec *ps = &spec->pipelines[i];
		struct reload_step *st = &plan->steps[plan->nsteps++];
		st->old = find_running(base, ps->name);
		st->action = st->old ? classify(st->old, ps) : RELOAD_ADD;
		if (st->action == RELOAD_RESTART || st->action == RELOAD_ADD) {
			if (!(st->next = pipeline_make(spec->file, ps, base, why)))
				goto fail;
		} else if (st->action == RELOAD_SWAP) {
			struct xf_group *g = xf_group_make(spec->file, ps, st->old, why);
			if (!g)
				goto fail;
			st->xf = &g->set;
			st->xf_defs = g->defs;
			st->nxf = g->set.n;
		}
	}
	for (size_t i = 0; i < base->nrunning; i++) {
		bool kept = false;
		for (size_t j = 0; j < spec->npipelines && !kept; j++)
			kept = strcmp(base->running[i]->name, spec->pipelines[j].name) == 0;
		if (!kept)
			plan->removed[plan->nremoved++] = base->running[i];
	}
	*out = plan;
	return 0;
fail:
	reload_plan_abort(plan);
	return -1;
}

int reload_plan_build(struct engine_spec *spec, const struct reload_base *base,
                      struct reload_plan **out)
{
	return plan_build(spec, base, out, NULL);
}

/* The node at root.k1.k2..., or the deepest one found on the way. */
static const struct spec_node *locate(const struct spec_doc *doc, const char *const *keys)
{
	const struct spec_node *n = doc->root;
	for (; n && *keys; keys++) {
		const struct spec_node *next = n->type == SPEC_MAP ? spec_map_get(n, *keys) : NULL;
		if (!next)
			break;
		n = next;
	}
	return n;
}

static void refuse(struct diag *d, const struct engine_spec *spec, const char *const *keys,
                   const char *what)
{
	const struct spec_node *n = locate(spec->doc, keys);
	diag_error(d, spec->file, n ? n->line : 1, n ? n->column : 1,
	           "%s changed: a restart is needed to apply it; nothing was reloaded", what);
}

/* Engine settings a running engine cannot change. */
static int check_settings(const struct engine_spec *spec, const struct reload_base *base,
                          struct diag *d)
{
	int before = d->errors;
	static const char *const listen[] = {"engine", "http", "listen", NULL};
	static const char *const metrics[] = {"engine", "metrics", "enabled", NULL};
	if (!base->listen_overridden && !str_equal(spec->http_listen, base->http_listen))
		refuse(d, spec, listen, "engine.http.listen");
	if (spec->metrics_enabled != base->metrics_enabled)
		refuse(d, spec, metrics, "engine.metrics.enabled");
	return d->errors > before ? -1 : 0;
}

/* Logs the diagnostics a load wrote (errors and warnings, one per line)
 * and keeps the errors for `why`. */
static void log_diagnostics(const char *text, struct strbuf *why)
{
	while (text && *text) {
		const char *end = strchr(text, '\n');
		size_t n = end ? (size_t)(end - text) : strlen(text);
		if (n) {
			bool warning = memmem(text, n, ": warning: ", 11) != NULL;
			log_write(warning ? CV_LOG_WARN : CV_LOG_ERROR, NULL, NULL, "%.*s", (int)n,
			          text);
			if (why && !warning)
				strbuf_printf(why, "%.*s\n", (int)n, text);
		}
		text += n + (end ? 1 : 0);
	}
}

int reload_prepare(const char *file, struct plugin_loader *loader, const struct reload_base *base,
                   struct reload_plan **out, struct strbuf *why)
{
	*out = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	struct diag diag = {.out = mem};
	struct engine_spec *spec = NULL;
	int rc = engine_spec_load(file, NULL, 0, loader, &diag, &spec);
	if (rc == 0 && check_settings(spec, base, &diag) < 0) {
		engine_spec_free(spec);
		rc = -1;
	}
	if (mem)
		fclose(mem);
	log_diagnostics(text, why);
	if (rc < 0 && !mem) { /* no stream: the last message is all there is */
		log_error("%s", diag.last);
		if (why)
			strbuf_printf(why, "%s\n", diag.last);
	}
	free(text);
	if (rc < 0)
		return -1;
	return plan_build(spec, base, out, why);
}

void reload_plan_abort(struct reload_plan *plan)
{
	if (!plan)
		return;
	free_steps(plan->steps, plan->nsteps);
	free(plan->removed);
	engine_spec_free(plan->spec);
	free(plan);
}

void reload_plan_free(struct reload_plan *plan)
{
	if (!plan)
		return;
	free(plan->steps);
	free(plan->removed);
	engine_spec_free(plan->spec);
	free(plan);
}
