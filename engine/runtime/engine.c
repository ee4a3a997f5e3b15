#include "runtime/engine.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include "base/clock.h"
#include "http/api.h"
#include "http/http_server.h"
#include "base/log.h"
#include "metrics/metrics.h"
#include "runtime/pipeline.h"
#include "runtime/reload.h"
#include "runtime/summary.h"
#include "runtime/tap.h"

/* A plugin call or a source loop stuck this long makes /healthz fail. */
#define STUCK_NS (60 * 1000000000LL)
/* --watch looks at the spec file this often. */
#define WATCH_INTERVAL_NS (1000 * 1000000LL)
/* POST /-/reload waits this long for the engine's answer. */
#define RELOAD_ANSWER_TIMEOUT_S 60

/* What a reload may change in the engine itself. */
struct engine_settings {
	char *http_listen;
	_Atomic bool lifecycle;
	_Atomic bool tap; /* GET /api/v1/tap allowed */
	int64_t shutdown_timeout_ns;
	int64_t summary_interval_ns;
	bool metrics_enabled;
};

/* POST /-/reload requests, from the HTTP thread to the engine's loop and
 * back: requests asked, reloads done for them, the last answer. */
struct reload_box {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t asked, answered;
	unsigned status;
	struct strbuf answer;
	bool closed;
};

struct engine {
	const struct engine_options *opts;
	struct engine_settings set;
	struct metrics *registry;
	/* The pipeline set. The engine's thread changes it under mu; the HTTP
	 * thread reads it under mu. `running` is in spec order; `draining`
	 * holds pipelines a reload removed or replaced, until they ended. */
	pthread_mutex_t mu;
	struct engine_pipeline **running;
	size_t nrunning;
	struct engine_pipeline **draining;
	size_t ndraining;
	_Atomic bool all_started;
	_Atomic bool stopping;
	bool start_failed;
	bool records_failed; /* a record of a stopped pipeline ended failed */
	int64_t started_ns;  /* monotonic: uptime in the JSON API */
	int done_fd;         /* an eventfd: a pipeline ended, or a reload was asked */
	struct reload_box box;
	struct metric_series *m_reload_ok, *m_reload_time, *m_reloads_ok, *m_reloads_failed;
};

static const int engine_signals[] = {SIGINT,  SIGTERM, SIGHUP, SIGUSR1,
                                     SIGUSR2, SIGALRM, SIGIO,  SIGPWR};

void engine_block_signals(void)
{
	sigset_t sigs;
	sigemptyset(&sigs);
	for (size_t i = 0; i < sizeof engine_signals / sizeof engine_signals[0]; i++)
		sigaddset(&sigs, engine_signals[i]);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void wake(struct engine *e)
{
	uint64_t one = 1;
	if (write(e->done_fd, &one, sizeof one) < 0) {
		/* Only EAGAIN (the counter is full): the engine wakes anyway. */
	}
}

static void pipeline_done(void *ctx)
{
	wake(ctx);
}

static int http_metrics(void *ctx, struct strbuf *out)
{
	struct engine *e = ctx;
	return metrics_render(e->registry, out);
}

/* The HTTP thread reads the running set under e->mu: a reload changes it,
 * and destroys replaced transforms, under that lock. */
static int http_api_pipelines(void *ctx, struct strbuf *out)
{
	struct engine *e = ctx;
	pthread_mutex_lock(&e->mu);
	struct pipeline **ps = calloc(e->nrunning ? e->nrunning : 1, sizeof *ps);
	int rc = CV_ENOMEM;
	if (ps) {
		for (size_t i = 0; i < e->nrunning; i++)
			ps[i] = e->running[i]->p;
		struct api_view v = {.pipelines = ps,
		                     .npipelines = e->nrunning,
		                     .started_ns = e->started_ns,
		                     .tap_allowed = atomic_load(&e->set.tap)};
		rc = api_render_pipelines(&v, out);
	}
	pthread_mutex_unlock(&e->mu);
	free(ps);
	return rc;
}

static struct cv_stage *find_stage(struct pipeline *p, const char *name)
{
	size_t n = pipeline_stage_count(p);
	if (!name)
		return pipeline_stage(p, n - 1); /* what reaches the sink */
	for (size_t i = 0; i < n; i++)
		if (strcmp(pipeline_stage(p, i)->name, name) == 0)
			return pipeline_stage(p, i);
	return NULL;
}

static int tap_open_locked(struct engine *e, const char *pipeline, const char *stage,
                           enum tap_format format, uint64_t limit, struct tap **out,
                           const char **stage_name, struct strbuf *why)
{
	struct pipeline *p = NULL;
	for (size_t i = 0; i < e->nrunning && !p; i++)
		if (e->running[i]->p && strcmp(e->running[i]->name, pipeline) == 0)
			p = e->running[i]->p;
	if (!p) {
		strbuf_printf(why, "tap: no pipeline \"%s\"; pipelines:", pipeline);
		for (size_t i = 0; i < e->nrunning; i++)
			strbuf_printf(why, " %s", e->running[i]->name);
		return 404;
	}
	struct cv_stage *st = find_stage(p, stage);
	if (!st) {
		strbuf_printf(why, "tap: pipeline %s has no stage \"%s\"; stages:", pipeline,
		              stage);
		for (size_t i = 0, n = pipeline_stage_count(p); i < n; i++)
			strbuf_printf(why, " %s", pipeline_stage(p, i)->name);
		return 404;
	}
	const char *err = NULL;
	*out = tap_attach(p, st, format, limit, &err);
	if (!*out) {
		strbuf_printf(why, "tap: %s", err);
		return 503;
	}
	/* A copy: once e->mu is released a reload may free the stage. */
	static _Thread_local char name[256];
	snprintf(name, sizeof name, "%s", st->name);
	*stage_name = name;
	return 200;
}

static int http_tap_open(void *ctx, const char *pipeline, const char *stage, enum tap_format format,
                         uint64_t limit, struct tap **out, const char **stage_name,
                         struct strbuf *why)
{
	struct engine *e = ctx;
	if (!atomic_load(&e->set.tap)) {
		strbuf_puts(why,
		            "tapping is off: records can be sensitive; set engine.http.tap: true "
		            "in the spec to allow it");
		return 403;
	}
	pthread_mutex_lock(&e->mu);
	int status = tap_open_locked(e, pipeline, stage, format, limit, out, stage_name, why);
	pthread_mutex_unlock(&e->mu);
	return status;
}

static bool http_healthy(void *ctx, struct strbuf *why)
{
	struct engine *e = ctx;
	bool ok = true;
	pthread_mutex_lock(&e->mu);
	for (size_t k = 0; k < 2 && ok; k++) {
		struct engine_pipeline **set = k ? e->draining : e->running;
		size_t n = k ? e->ndraining : e->nrunning;
		for (size_t i = 0; i < n && ok; i++) {
			const char *what = NULL;
			if (set[i]->started && !pipeline_alive(set[i]->p, STUCK_NS, &what)) {
				strbuf_printf(why, "pipeline %s: %s is stuck\n", set[i]->name,
				              what);
				ok = false;
			}
		}
	}
	pthread_mutex_unlock(&e->mu);
	if (ok)
		strbuf_puts(why, "ok\n");
	return ok;
}

static bool http_ready(void *ctx, struct strbuf *why)
{
	struct engine *e = ctx;
	if (!atomic_load(&e->all_started)) {
		strbuf_puts(why, "starting\n");
		return false;
	}
	bool ok = true;
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < e->nrunning && ok; i++) {
		const struct engine_pipeline *ep = e->running[i];
		const char *what = NULL;
		if (!ep->started) {
			strbuf_printf(why,
			              "pipeline %s: restarting (the one it replaces is draining)\n",
			              ep->name);
			ok = false;
		} else if (!pipeline_ready(ep->p, &what)) {
			strbuf_printf(why, "pipeline %s: stage %s is not ready\n", ep->name, what);
			ok = false;
		}
	}
	pthread_mutex_unlock(&e->mu);
	if (ok)
		strbuf_puts(why, "ready\n");
	return ok;
}

/* POST /-/reload, on the HTTP thread: asks the engine's loop and waits for
 * its answer (the loop stays free for signals while a pipeline drains). */
static unsigned http_reload(void *ctx, struct strbuf *out)
{
	struct engine *e = ctx;
	if (!atomic_load(&e->set.lifecycle)) {
		strbuf_puts(out, "the lifecycle API is off: set engine.http.lifecycle: true in the "
		                 "spec to allow POST /-/reload\n");
		return 403;
	}
	struct reload_box *b = &e->box;
	pthread_mutex_lock(&b->mu);
	uint64_t ticket = ++b->asked;
	wake(e);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += RELOAD_ANSWER_TIMEOUT_S;
	while (b->answered < ticket && !b->closed)
		if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT)
			break;
	unsigned status = 503;
	if (b->answered >= ticket) {
		status = b->status;
		strbuf_append(out, b->answer.data ? b->answer.data : "", b->answer.len);
	} else {
		strbuf_puts(out, b->closed ? "the engine is stopping\n"
		                           : "the reload is taking long; see the engine's log\n");
	}
	pthread_mutex_unlock(&b->mu);
	return status;
}

/* Answers every POST /-/reload asked up to `upto`. */
static void answer_reloads(struct engine *e, uint64_t upto, unsigned status, const char *text)
{
	struct reload_box *b = &e->box;
	pthread_mutex_lock(&b->mu);
	if (upto > b->answered) {
		b->answered = upto;
		b->status = status;
		b->answer.len = 0;
		strbuf_puts(&b->answer, text);
	}
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void register_build_info(struct metrics *m)
{
	static const char *const names[] = {"version", "abi"};
	char abi[16];
	snprintf(abi, sizeof abi, "%d.%d", CV_ABI_MAJOR, CV_ABI_MINOR);
	const char *values[] = {CONVEYOR_VERSION, abi};
	struct metric_family *f =
	        metrics_family(m, METRIC_GAUGE, "conveyor_build_info",
	                       "Conveyor build information; always 1.", names, 2, NULL, 0);
	struct metric_series *s = f ? metrics_series(f, values) : NULL;
	if (s)
		metric_set(s, 1);
}

static double wall_seconds(void)
{
	return (double)clock_now_ns() * 1e-9;
}

/* The reload metrics; the spec loaded at start counts as a good config. */
static int register_reload_metrics(struct engine *e)
{
	static const char *const result[] = {"result"};
	struct metric_family *ok =
	        metrics_family(e->registry, METRIC_GAUGE, "conveyor_config_last_reload_successful",
	                       "Whether the last configuration reload succeeded (1) or failed (0).",
	                       NULL, 0, NULL, 0);
	struct metric_family *when = metrics_family(
	        e->registry, METRIC_GAUGE, "conveyor_config_last_reload_success_timestamp_seconds",
	        "Time of the last successful configuration load, in seconds since "
	        "the Unix epoch.",
	        NULL, 0, NULL, 0);
	struct metric_family *total = metrics_family(
	        e->registry, METRIC_COUNTER, "conveyor_config_reloads_total",
	        "Configuration reloads, by result (success, failure).", result, 1, NULL, 0);
	const char *success[] = {"success"}, *failure[] = {"failure"};
	e->m_reload_ok = ok ? metrics_series(ok, NULL) : NULL;
	e->m_reload_time = when ? metrics_series(when, NULL) : NULL;
	e->m_reloads_ok = total ? metrics_series(total, success) : NULL;
	e->m_reloads_failed = total ? metrics_series(total, failure) : NULL;
	if (!e->m_reload_ok || !e->m_reload_time || !e->m_reloads_ok || !e->m_reloads_failed)
		return -1;
	metric_set(e->m_reload_ok, 1);
	metric_set(e->m_reload_time, wall_seconds());
	return 0;
}

/* VmHWM of this process in KiB (getrusage's maxrss would include what the
 * parent used before exec). */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	long kib = 0;
	char line[256];
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* True for 127.x.x.x, [::1] and localhost: only this machine reaches it. */
static bool listen_is_loopback(const char *listen)
{
	return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0 ||
	       strncmp(listen, "localhost:", 10) == 0;
}

static int settings_take(struct engine_settings *set, const struct engine_spec *spec)
{
	char *listen = strdup(spec->http_listen ? spec->http_listen : "");
	if (!listen)
		return -1;
	free(set->http_listen);
	set->http_listen = listen;
	atomic_store(&set->lifecycle, spec->http_lifecycle);
	atomic_store(&set->tap, spec->http_tap);
	set->shutdown_timeout_ns = spec->shutdown_timeout_ns;
	set->summary_interval_ns = spec->summary_interval_ns;
	set->metrics_enabled = spec->metrics_enabled;
	return 0;
}

static struct reload_base base_of(struct engine *e)
{
	return (struct reload_base){.running = e->running,
	                            .nrunning = e->nrunning,
	                            .registry = e->registry,
	                            .metrics_enabled = e->set.metrics_enabled,
	                            .http_listen = e->set.http_listen,
	                            .listen_overridden = e->opts->listen_override != NULL,
	                            .on_done = pipeline_done,
	                            .on_done_ctx = e};
}

static void log_summary(struct engine *e, int64_t elapsed_ns)
{
	double secs = (double)elapsed_ns * 1e-9;
	for (size_t i = 0; i < e->nrunning; i++) {
		struct engine_pipeline *ep = e->running[i];
		if (!ep->started)
			continue;
		struct pipeline *p = ep->p;
		uint64_t in = pipeline_source_out(p), out = pipeline_sink_delivered(p);
		uint64_t dropped = 0, errors = 0;
		for (size_t j = 0, n = pipeline_stage_count(p); j < n; j++) {
			const struct cv_stage *st = pipeline_stage(p, j);
			dropped += atomic_load(&st->total_dropped);
			errors += atomic_load(&st->total_errors);
		}
		log_write(CV_LOG_INFO, p->cfg.name, NULL,
		          "rate: %.0f records/s in, %.0f records/s delivered; totals: %llu in, "
		          "%llu delivered, %llu dropped, %llu errors",
		          (double)(in - ep->last_in) / secs, (double)(out - ep->last_out) / secs,
		          (unsigned long long)in, (unsigned long long)out,
		          (unsigned long long)dropped, (unsigned long long)errors);
		ep->last_in = in;
		ep->last_out = out;
	}
}

/* Past the drain deadline, a pipeline still running has a stage stuck in a
 * call (say, a sink blocked on a dead peer): the engine exits without it. */
#define ABANDON_GRACE_NS (500 * 1000000LL)

static int64_t stop_all(struct engine *e, int64_t timeout_ns)
{
	int64_t deadline = clock_monotonic_ns() + timeout_ns;
	atomic_store(&e->stopping, true);
	for (size_t i = 0; i < e->nrunning; i++)
		if (e->running[i]->started)
			pipeline_request_stop(e->running[i]->p, deadline);
	for (size_t i = 0; i < e->ndraining; i++)
		pipeline_request_stop(e->draining[i]->p, deadline);
	return deadline;
}

static int start_pipeline(struct engine *e, struct engine_pipeline *ep)
{
	int rc = pipeline_start(ep->p);
	/* A pipeline that failed to start counts as ended; /readyz says which
	 * stage never started. */
	pthread_mutex_lock(&e->mu);
	ep->started = true;
	pthread_mutex_unlock(&e->mu);
	if (rc < 0) {
		e->start_failed = true;
		log_write(CV_LOG_ERROR, ep->name, NULL, "pipeline failed to start");
		return rc;
	}
	log_write(CV_LOG_INFO, ep->name, NULL, "pipeline started (%zu stages)",
	          pipeline_stage_count(ep->p));
	return 0;
}

/* ---- the series of what no longer runs leave /metrics ---- */

struct live_labels {
	const char **pipelines;
	size_t npipelines;
	const char *(*stages)[3]; /* pipeline, stage, plugin */
	size_t nstages, cap;
	bool failed;
};

static void live_add_stage(void *ctx, const struct cv_stage *st)
{
	struct live_labels *l = ctx;
	if (l->nstages == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 32;
		void *more = realloc(l->stages, cap * sizeof *l->stages);
		if (!more) {
			l->failed = true;
			return;
		}
		l->stages = more;
		l->cap = cap;
	}
	l->stages[l->nstages][0] = st->pipeline_name;
	l->stages[l->nstages][1] = st->name;
	l->stages[l->nstages][2] = st->plugin->name;
	l->nstages++;
}

static ssize_t label_index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (ssize_t)i;
	return -1;
}

static bool series_dead(void *ctx, const char *const *names, const char *const *values, size_t n)
{
	const struct live_labels *l = ctx;
	ssize_t ip = label_index(names, n, "pipeline");
	if (ip < 0)
		return false;
	bool known = false;
	for (size_t i = 0; i < l->npipelines && !known; i++)
		known = strcmp(l->pipelines[i], values[ip]) == 0;
	if (!known)
		return true;
	ssize_t is = label_index(names, n, "stage"), ig = label_index(names, n, "plugin");
	if (is < 0 || ig < 0)
		return false;
	for (size_t i = 0; i < l->nstages; i++)
		if (strcmp(l->stages[i][0], values[ip]) == 0 &&
		    strcmp(l->stages[i][1], values[is]) == 0 &&
		    strcmp(l->stages[i][2], values[ig]) == 0)
			return false;
	return true;
}

/* Removes the series of pipelines and stages that no longer exist. */
static void sweep_series(struct engine *e)
{
	struct live_labels l = {0};
	l.pipelines = calloc(e->nrunning + e->ndraining + 1, sizeof *l.pipelines);
	if (!l.pipelines)
		return;
	for (size_t k = 0; k < 2; k++) {
		struct engine_pipeline **set = k ? e->draining : e->running;
		size_t n = k ? e->ndraining : e->nrunning;
		for (size_t i = 0; i < n; i++) {
			l.pipelines[l.npipelines++] = set[i]->name;
			pipeline_each_stage(set[i]->p, live_add_stage, &l);
		}
	}
	if (!l.failed)
		metrics_remove_series(e->registry, series_dead, &l);
	free(l.pipelines);
	free(l.stages);
}

/* ---- reload ---- */

static void list_add(struct strbuf *list, const char *name)
{
	strbuf_printf(list, "%s%s", list->len ? ", " : "", name);
}

/* A draining pipeline of this name no running pipeline waits for. */
static struct engine_pipeline *orphan_draining(struct engine *e, const char *name)
{
	for (size_t i = e->ndraining; i-- > 0;) {
		struct engine_pipeline *d = e->draining[i];
		bool waited = false;
		for (size_t j = 0; j < e->nrunning && !waited; j++)
			waited = e->running[j]->pred == d;
		if (!waited && strcmp(d->name, name) == 0)
			return d;
	}
	return NULL;
}

/* Applies a prepared plan: the new set replaces the old under the lock;
 * what leaves it drains (or, never started, is freed); what can start
 * starts. Writes the reload's one-line account to `text`. */
static int commit(struct engine *e, struct reload_plan *plan, struct strbuf *text)
{
	struct strbuf kept = {0}, swapped = {0}, restarted = {0}, added = {0}, removed = {0};
	struct engine_pipeline **next = calloc(plan->nsteps ? plan->nsteps : 1, sizeof *next);
	struct engine_pipeline **unused = calloc(e->nrunning + 1, sizeof *unused);
	size_t nunused = 0;
	/* Under the lock: the HTTP thread may be reading the old array. */
	pthread_mutex_lock(&e->mu);
	struct engine_pipeline **drain =
	        realloc(e->draining, (e->ndraining + e->nrunning + 1) * sizeof *drain);
	if (drain)
		e->draining = drain;
	if (!next || !drain || !unused) {
		/* Out of memory after preparing: keep running what runs. */
		pthread_mutex_unlock(&e->mu);
		free(next);
		free(unused);
		return -1;
	}
	int64_t deadline = clock_monotonic_ns() + plan->spec->shutdown_timeout_ns;
	for (size_t i = 0; i < plan->nsteps; i++) {
		struct reload_step *st = &plan->steps[i];
		switch (st->action) {
		case RELOAD_KEEP:
			next[i] = st->old;
			list_add(&kept, st->old->name);
			break;
		case RELOAD_SWAP:
			pipeline_swap_transforms(st->old->p, st->xf);
			st->old->xf_defs = st->xf_defs;
			st->old->nxf = st->nxf;
			next[i] = st->old;
			list_add(&swapped, st->old->name);
			break;
		case RELOAD_RESTART:
			if (st->old->started) {
				st->next->pred = st->old;
				e->draining[e->ndraining++] = st->old;
			} else {
				st->next->pred = st->old->pred;
				unused[nunused++] = st->old;
			}
			next[i] = st->next;
			list_add(&restarted, st->next->name);
			break;
		case RELOAD_ADD:
			st->next->pred = orphan_draining(e, st->next->name);
			next[i] = st->next;
			list_add(&added, st->next->name);
			break;
		}
	}
	for (size_t i = 0; i < plan->nremoved; i++) {
		struct engine_pipeline *r = plan->removed[i];
		if (r->started)
			e->draining[e->ndraining++] = r;
		else
			unused[nunused++] = r;
		list_add(&removed, r->name);
	}
	free(e->running);
	e->running = next;
	e->nrunning = plan->nsteps;
	pthread_mutex_unlock(&e->mu);

	for (size_t i = 0; i < e->ndraining; i++)
		pipeline_request_stop(e->draining[i]->p, deadline);
	for (size_t i = 0; i < nunused; i++)
		engine_pipeline_free(unused[i]);
	free(unused);
	for (size_t i = 0; i < e->nrunning; i++)
		if (!e->running[i]->started && !e->running[i]->pred)
			start_pipeline(e, e->running[i]);
	strbuf_printf(text, "kept: %s; swapped: %s; restarted: %s; added: %s; removed: %s",
	              kept.len ? kept.data : "-", swapped.len ? swapped.data : "-",
	              restarted.len ? restarted.data : "-", added.len ? added.data : "-",
	              removed.len ? removed.data : "-");
	strbuf_free(&kept);
	strbuf_free(&swapped);
	strbuf_free(&restarted);
	strbuf_free(&added);
	strbuf_free(&removed);
	return 0;
}

/* Reloads the spec file; returns the HTTP status that says how it went,
 * with the account or the errors in `out`. */
static unsigned reload(struct engine *e, const char *trigger, struct strbuf *out)
{
	const char *file = e->opts->spec_file;
	if (!file) {
		log_info("%s: reload ignored: the built-in demo has no spec file to read again",
		         trigger);
		strbuf_puts(out, "reload ignored: the built-in demo has no spec file\n");
		return 409;
	}
	struct reload_base base = base_of(e);
	struct reload_plan *plan = NULL;
	struct strbuf errors = {0};
	if (reload_prepare(file, e->opts->loader, &base, &plan, &errors) < 0) {
		metric_inc(e->m_reloads_failed, 1);
		metric_set(e->m_reload_ok, 0);
		log_error("reload of %s (%s) failed; the running pipelines are untouched", file,
		          trigger);
		strbuf_printf(out, "reload failed; the running pipelines are untouched\n%s",
		              errors.data ? errors.data : "");
		strbuf_free(&errors);
		sweep_series(e); /* what the failed preparation registered */
		return 500;
	}
	strbuf_free(&errors);
	struct strbuf account = {0};
	if (commit(e, plan, &account) < 0) {
		reload_plan_abort(plan);
		sweep_series(e);
		metric_inc(e->m_reloads_failed, 1);
		metric_set(e->m_reload_ok, 0);
		log_error("reload of %s (%s) failed: out of memory; the running pipelines are "
		          "untouched",
		          file, trigger);
		strbuf_puts(out, "reload failed: out of memory\n");
		return 500;
	}
	/* The listen address is the same (or refused): only a copy can fail. */
	settings_take(&e->set, plan->spec);
	metric_inc(e->m_reloads_ok, 1);
	metric_set(e->m_reload_ok, 1);
	metric_set(e->m_reload_time, wall_seconds());
	log_info("reloaded %s (%s): %s", file, trigger, account.data ? account.data : "");
	/* After the account: a reload to a quieter level still says so. */
	if (e->opts->apply_log)
		e->opts->apply_log(plan->spec);
	reload_plan_free(plan);
	strbuf_printf(out, "reloaded: %s\n", account.data ? account.data : "");
	strbuf_free(&account);
	sweep_series(e);
	return 200;
}

/* Each turn of the loop: destroys replaced transforms no batch uses any
 * more, and frees the drained pipelines a reload removed or replaced
 * (their sources commit here), then starts their successors. */
static void progress(struct engine *e, bool stopping)
{
	size_t reaped = 0;
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < e->nrunning; i++)
		if (e->running[i]->started)
			reaped += pipeline_reap_transforms(e->running[i]->p);
	pthread_mutex_unlock(&e->mu);
	bool freed = false;
	for (size_t i = 0; i < e->ndraining;) {
		struct engine_pipeline *d = e->draining[i];
		if (!pipeline_threads_done(d->p)) {
			i++;
			continue;
		}
		struct engine_pipeline *succ = NULL;
		pthread_mutex_lock(&e->mu);
		memmove(&e->draining[i], &e->draining[i + 1],
		        (e->ndraining - i - 1) * sizeof *e->draining);
		e->ndraining--;
		for (size_t j = 0; j < e->nrunning && !succ; j++)
			if (e->running[j]->pred == d)
				succ = e->running[j];
		pthread_mutex_unlock(&e->mu);
		uint32_t left = pipeline_join(d->p);
		if (left)
			log_write(CV_LOG_ERROR, d->name, NULL,
			          "%u batches unacknowledged when the pipeline stopped", left);
		if (summary_log_stop(&d->p, 1))
			e->records_failed = true;
		if (succ) {
			/* Counters continue: the same labels share their series
			 * already, and the totals carry over by stage. */
			for (size_t a = 0, na = pipeline_stage_count(succ->p); a < na; a++)
				for (size_t b = 0, nb = pipeline_stage_count(d->p); b < nb; b++) {
					struct cv_stage *to = pipeline_stage(succ->p, a);
					const struct cv_stage *from = pipeline_stage(d->p, b);
					if (strcmp(to->name, from->name) == 0 &&
					    to->plugin == from->plugin)
						stage_carry_totals(to, from);
				}
			succ->last_in = d->last_in;
			succ->last_out = d->last_out;
		}
		char name[256];
		snprintf(name, sizeof name, "%s", d->name);
		engine_pipeline_free(d);
		/* Its series leave before the line that says it has gone. */
		sweep_series(e);
		log_write(CV_LOG_INFO, name, NULL, "%s",
		          !succ      ? "the removed pipeline drained and stopped"
		          : stopping ? "the replaced pipeline drained and stopped; the engine is "
		                       "stopping, so its successor does not start"
		                     : "the replaced pipeline drained and stopped; its successor "
		                       "starts");
		freed = true;
		if (succ) {
			succ->pred = NULL;
			if (!stopping)
				start_pipeline(e, succ);
		}
	}
	if (reaped || freed)
		sweep_series(e);
}

/* Ends the process with pipelines whose threads are stuck in a plugin call:
 * the finished ones are joined and freed (their sources commit what was
 * delivered); the stuck ones still use their plugins' memory, so nothing
 * shared is freed and the process exits here. */
static _Noreturn void exit_abandoning(struct engine *e)
{
	size_t stuck = 0;
	for (size_t k = 0; k < 2; k++) {
		struct engine_pipeline **set = k ? e->draining : e->running;
		size_t n = k ? e->ndraining : e->nrunning;
		for (size_t i = 0; i < n; i++) {
			struct pipeline *p = set[i]->p;
			if (!pipeline_threads_done(p)) {
				stuck++;
				log_write(CV_LOG_ERROR, set[i]->name, NULL,
				          "pipeline did not drain: a stage is stuck in a call");
				continue;
			}
			pipeline_join(p);
			pipeline_free(p);
		}
	}
	log_error("stopped; %zu pipelines abandoned", stuck);
	fflush(NULL);
	_exit(1);
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGINT: return "SIGINT";
	case SIGTERM: return "SIGTERM";
	case SIGHUP: return "SIGHUP";
	case SIGUSR1: return "SIGUSR1";
	case SIGUSR2: return "SIGUSR2";
	case SIGALRM: return "SIGALRM";
	case SIGIO: return "SIGIO";
	case SIGPWR: return "SIGPWR";
	}
	return "a signal";
}

static bool all_done(struct engine *e, bool stopping)
{
	if (e->ndraining)
		return false;
	for (size_t i = 0; i < e->nrunning; i++) {
		const struct engine_pipeline *ep = e->running[i];
		if (ep->started ? !pipeline_threads_done(ep->p) : !stopping)
			return false;
	}
	return true;
}

int engine_run(struct engine_spec *spec, const struct engine_options *opts)
{
	struct engine e = {.opts = opts, .done_fd = -1, .started_ns = clock_monotonic_ns()};
	int exit_code = 0;
	bool ran = false; /* reached the end of a run: log "stopped" */
	struct http_server *http = NULL;
	pthread_mutex_init(&e.mu, NULL);
	pthread_mutex_init(&e.box.mu, NULL);
	pthread_cond_init(&e.box.cv, NULL);

	/* Signals are taken synchronously by this thread alone. */
	engine_block_signals();
	sigset_t sigs;
	sigemptyset(&sigs);
	for (size_t i = 0; i < sizeof engine_signals / sizeof engine_signals[0]; i++)
		sigaddset(&sigs, engine_signals[i]);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	e.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sfd < 0 || e.done_fd < 0) {
		log_error("cannot create the engine's signal and event descriptors: %s",
		          strerror(errno));
		exit_code = 1;
		engine_spec_free(spec);
		goto out;
	}

	e.registry = metrics_new();
	if (!e.registry || settings_take(&e.set, spec) < 0) {
		exit_code = 1;
		engine_spec_free(spec);
		goto out;
	}
	register_build_info(e.registry);
	metrics_add_collector(e.registry, process_metrics_collect, NULL);
	if (register_reload_metrics(&e) < 0) {
		exit_code = 1;
		engine_spec_free(spec);
		goto out;
	}
	/* The first set is a reload from nothing: every pipeline is added. */
	struct reload_base base = base_of(&e);
	struct reload_plan *plan = NULL;
	if (reload_plan_build(spec, &base, &plan) < 0) {
		exit_code = 1;
		goto out;
	}
	e.running = calloc(plan->nsteps ? plan->nsteps : 1, sizeof *e.running);
	if (!e.running) {
		reload_plan_abort(plan);
		exit_code = 1;
		goto out;
	}
	for (size_t i = 0; i < plan->nsteps; i++) {
		e.running[e.nrunning++] = plan->steps[i].next;
		plan->steps[i].next = NULL;
	}
	reload_plan_free(plan);

	const char *listen = opts->listen_override ? opts->listen_override : e.set.http_listen;
	if (listen && *listen) {
		struct http_handlers h = {.ctx = &e,
		                          .metrics = http_metrics,
		                          .healthy = http_healthy,
		                          .ready = http_ready,
		                          .reload = http_reload,
		                          .api_pipelines = http_api_pipelines,
		                          .tap_open = http_tap_open};
		char err[256];
		if (http_server_start(listen, &h, &http, err, sizeof err) < 0) {
			log_error("cannot serve HTTP on %s: %s", listen, err);
			exit_code = 1;
			goto out;
		}
		log_info("serving /metrics, /healthz and /readyz on %s (port %u)", listen,
		         http_server_port(http));
		bool tap = atomic_load(&e.set.tap);
		/* The address with the port bound (port 0 picks one). */
		const char *colon = strrchr(listen, ':');
		int host_len = colon ? (int)(colon - listen) : (int)strlen(listen);
		char where[320];
		const char *host = listen;
		if (host_len == 0 || (host_len == 7 && strncmp(listen, "0.0.0.0", 7) == 0)) {
			host = "127.0.0.1"; /* all IPv4 addresses: this machine's included */
			host_len = 9;
		}
		snprintf(where, sizeof where, "%.*s:%u", host_len, host, http_server_port(http));
		log_info("console: http://%s/ ; terminal view: conveyor top --url http://%s%s",
		         where, where, tap ? " ; taps allowed (engine.http.tap)" : "");
		if (tap && !listen_is_loopback(listen))
			log_warn("engine.http.tap is on and %s is not a loopback address: anyone "
			         "who reaches it can read this engine's records",
			         listen);
	}
	for (size_t i = 0; i < e.nrunning; i++) {
		if (start_pipeline(&e, e.running[i]) < 0) {
			exit_code = 1;
			stop_all(&e, e.set.shutdown_timeout_ns);
			goto out;
		}
	}
	atomic_store(&e.all_started, true);

	int64_t start = clock_monotonic_ns();
	int64_t last_summary = start, last_watch = start;
	bool stopping = false, abandon = false;
	int64_t stop_deadline = INT64_MAX;
	for (;;) {
		/* Wakes on a signal, on a pipeline ending, on a reload asked over
		 * HTTP, or on the tick that drives --duration, --watch, the
		 * summary, reload progress and the stop deadline. */
		struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN},
		                        {.fd = e.done_fd, .events = POLLIN}};
		int sig = 0;
		if (poll(fds, 2, 100) > 0) {
			struct signalfd_siginfo si;
			if ((fds[0].revents & POLLIN) && read(sfd, &si, sizeof si) == sizeof si)
				sig = (int)si.ssi_signo;
			uint64_t n;
			if ((fds[1].revents & POLLIN) && read(e.done_fd, &n, sizeof n) < 0)
				n = 0;
		}
		int64_t now = clock_monotonic_ns();
		const char *reload_trigger = NULL;
		if (sig == SIGINT || sig == SIGTERM) {
			if (stopping) {
				log_warn("second signal: exiting now without draining");
				exit_code = 1;
				abandon = true;
				break;
			}
			log_info("%s received: stopping sources, draining within %.1fs",
			         signal_name(sig), (double)e.set.shutdown_timeout_ns * 1e-9);
			stopping = true;
			stop_deadline = stop_all(&e, e.set.shutdown_timeout_ns);
		} else if (sig == SIGHUP) {
			if (stopping)
				log_info("SIGHUP received while stopping: reload ignored");
			else
				reload_trigger = "SIGHUP";
		} else if (sig) {
			log_info("%s received: ignored (SIGHUP reloads the spec; SIGINT or SIGTERM "
			         "stops)",
			         signal_name(sig));
		}
		if (opts->watch && !stopping && now - last_watch >= WATCH_INTERVAL_NS) {
			last_watch = now;
			if (spec_watch_changed(opts->watch) && !reload_trigger)
				reload_trigger = "the spec file changed";
		}
		pthread_mutex_lock(&e.box.mu);
		uint64_t asked = e.box.asked > e.box.answered ? e.box.asked : 0;
		pthread_mutex_unlock(&e.box.mu);
		if (asked && stopping)
			answer_reloads(&e, asked, 503, "the engine is stopping\n");
		else if (asked && !reload_trigger)
			reload_trigger = "POST /-/reload";
		if (reload_trigger) {
			struct strbuf answer = {0};
			unsigned status = reload(&e, reload_trigger, &answer);
			if (asked)
				answer_reloads(&e, asked, status, answer.data ? answer.data : "");
			strbuf_free(&answer);
			now = clock_monotonic_ns();
		}
		if (!stopping && opts->duration_ns > 0 && now - start >= opts->duration_ns) {
			log_info("duration reached: stopping sources, draining");
			stopping = true;
			stop_deadline = stop_all(&e, e.set.shutdown_timeout_ns);
		}
		if (e.set.summary_interval_ns > 0 &&
		    now - last_summary >= e.set.summary_interval_ns) {
			log_summary(&e, now - last_summary);
			last_summary = now;
		}
		progress(&e, stopping);
		/* Pipelines whose threads ended (finite sources, or stopped). */
		if (all_done(&e, stopping))
			break;
		if (stopping && now - stop_deadline >= ABANDON_GRACE_NS) {
			log_error(
			        "shutdown timeout passed with a stage still busy; exiting without "
			        "waiting for it (unacknowledged records are delivered again after "
			        "restart)");
			exit_code = 1;
			abandon = true;
			break;
		}
	}
	atomic_store(&e.stopping, true);
	answer_reloads(&e, UINT64_MAX, 503, "the engine is stopping\n");
	if (abandon)
		exit_abandoning(&e);
	for (size_t i = 0; i < e.nrunning; i++) {
		uint32_t left = pipeline_join(e.running[i]->p);
		if (left) {
			exit_code = 1;
			log_write(CV_LOG_ERROR, e.running[i]->name, NULL,
			          "%u batches unacknowledged at exit", left);
		}
	}
	if (e.set.summary_interval_ns > 0)
		log_summary(&e, clock_monotonic_ns() - last_summary);
	for (size_t i = 0; i < e.nrunning; i++)
		if (summary_log_stop(&e.running[i]->p, 1))
			e.records_failed = true;
	if (e.start_failed || e.records_failed)
		exit_code = 1; /* a stage did not start, or a record ended failed */
	ran = true;
out:
	/* No POST /-/reload waits for an engine that is gone. */
	pthread_mutex_lock(&e.box.mu);
	e.box.closed = true;
	pthread_cond_broadcast(&e.box.cv);
	pthread_mutex_unlock(&e.box.mu);
	http_server_stop(http);
	/* Freeing a pipeline destroys its plugins: sinks close, sources make
	 * their last commits (and log them) here, before "stopped". */
	for (size_t i = 0; i < e.nrunning; i++)
		engine_pipeline_free(e.running[i]);
	for (size_t i = 0; i < e.ndraining; i++)
		engine_pipeline_free(e.draining[i]);
	if (ran)
		log_info("stopped; peak RSS %.1f MiB", (double)peak_rss_kib() / 1024.0);
	free(e.running);
	free(e.draining);
	free(e.set.http_listen);
	strbuf_free(&e.box.answer);
	metrics_free(e.registry);
	pthread_cond_destroy(&e.box.cv);
	pthread_mutex_destroy(&e.box.mu);
	pthread_mutex_destroy(&e.mu);
	if (sfd >= 0)
		close(sfd);
	if (e.done_fd >= 0)
		close(e.done_fd);
	return exit_code;
}
