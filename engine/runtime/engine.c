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

#include "runtime/host_api.h"
#include "http/api.h"
#include "http/http_server.h"
#include "base/log.h"
#include "metrics/metrics.h"
#include "runtime/pipeline.h"
#include "runtime/tap.h"

/* A plugin call or a source loop stuck this long makes /healthz fail. */
#define STUCK_NS (60 * 1000000000LL)

struct engine {
	struct engine_spec *spec;
	struct metrics *registry;
	struct pipeline **pipelines;
	struct cv_stage **stages; /* per pipeline, the array the pipeline uses */
	size_t npipelines;
	_Atomic bool all_started;
	int64_t started_ns; /* monotonic: uptime in the JSON API */
	int done_fd;        /* an eventfd a pipeline's last thread writes as it ends */
};

static void pipeline_done(void *ctx)
{
	struct engine *e = ctx;
	uint64_t one = 1;
	if (write(e->done_fd, &one, sizeof one) < 0) {
		/* Only EAGAIN (the counter is full): the engine wakes anyway. */
	}
}

static int http_metrics(void *ctx, struct strbuf *out)
{
	struct engine *e = ctx;
	return metrics_render(e->registry, out);
}

static int http_api_pipelines(void *ctx, struct strbuf *out)
{
	struct engine *e = ctx;
	struct api_view v = {.pipelines = e->pipelines,
	                     .npipelines = e->npipelines,
	                     .started_ns = e->started_ns,
	                     .tap_allowed = e->spec->http_tap};
	return api_render_pipelines(&v, out);
}

static int http_tap_open(void *ctx, const char *pipeline, const char *stage, enum tap_format format,
                         uint64_t limit, struct tap **out, const char **stage_name,
                         struct strbuf *why)
{
	struct engine *e = ctx;
	if (!e->spec->http_tap) {
		strbuf_puts(why,
		            "tapping is off: records can be sensitive; set engine.http.tap: true "
		            "in the spec to allow it");
		return 403;
	}
	struct pipeline *p = NULL;
	for (size_t i = 0; i < e->npipelines && !p; i++)
		if (e->pipelines[i] && strcmp(e->pipelines[i]->cfg.name, pipeline) == 0)
			p = e->pipelines[i];
	if (!p) {
		strbuf_printf(why, "tap: no pipeline \"%s\"; pipelines:", pipeline);
		for (size_t i = 0; i < e->npipelines; i++)
			strbuf_printf(why, " %s", e->pipelines[i]->cfg.name);
		return 404;
	}
	struct cv_stage *st = stage ? NULL : &p->stages[p->nstages - 1];
	for (size_t i = 0; i < p->nstages && !st; i++)
		if (strcmp(p->stages[i].name, stage) == 0)
			st = &p->stages[i];
	if (!st) {
		strbuf_printf(why, "tap: pipeline %s has no stage \"%s\"; stages:", pipeline,
		              stage);
		for (size_t i = 0; i < p->nstages; i++)
			strbuf_printf(why, " %s", p->stages[i].name);
		return 404;
	}
	const char *err = NULL;
	*out = tap_attach(p, st, format, limit, &err);
	if (!*out) {
		strbuf_printf(why, "tap: %s", err);
		return 503;
	}
	*stage_name = st->name;
	return 200;
}

static bool http_healthy(void *ctx, struct strbuf *why)
{
	struct engine *e = ctx;
	for (size_t i = 0; i < e->npipelines; i++) {
		const char *what = NULL;
		if (e->pipelines[i] && !pipeline_alive(e->pipelines[i], STUCK_NS, &what)) {
			strbuf_printf(why, "pipeline %s: %s is stuck\n", e->spec->pipelines[i].name,
			              what);
			return false;
		}
	}
	strbuf_puts(why, "ok\n");
	return true;
}

static bool http_ready(void *ctx, struct strbuf *why)
{
	struct engine *e = ctx;
	if (!atomic_load(&e->all_started)) {
		strbuf_puts(why, "starting\n");
		return false;
	}
	for (size_t i = 0; i < e->npipelines; i++) {
		const char *what = NULL;
		if (!pipeline_ready(e->pipelines[i], &what)) {
			strbuf_printf(why, "pipeline %s: stage %s is not ready\n",
			              e->spec->pipelines[i].name, what);
			return false;
		}
	}
	strbuf_puts(why, "ready\n");
	return true;
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

static int build_pipelines(struct engine *e)
{
	struct engine_spec *spec = e->spec;
	e->npipelines = spec->npipelines;
	e->pipelines = calloc(spec->npipelines, sizeof *e->pipelines);
	e->stages = calloc(spec->npipelines, sizeof *e->stages);
	if (!e->pipelines || !e->stages)
		return -1;
	for (size_t i = 0; i < spec->npipelines; i++) {
		const struct pipeline_spec *ps = &spec->pipelines[i];
		struct cv_stage *stages = calloc(ps->nstages, sizeof *stages);
		if (!stages)
			return -1;
		e->stages[i] = stages;
		for (size_t j = 0; j < ps->nstages; j++) {
			stages[j].name = ps->stages[j].name;
			stages[j].plugin = &ps->stages[j].module->desc;
			stages[j].config = ps->stages[j].config.data;
		}
		struct pipeline_config cfg = {
		        .name = ps->name,
		        .batch_records = ps->batch_records,
		        .max_records = ps->max_records,
		        .max_bytes = ps->max_bytes,
		        .linger_ns = ps->linger_ns,
		        .metrics_enabled = spec->metrics_enabled,
		        .dead_letter_path = ps->dead_letter_path,
		        .on_done = pipeline_done,
		        .on_done_ctx = e,
		};
		e->pipelines[i] = pipeline_new(&cfg, stages, ps->nstages, e->registry);
		if (!e->pipelines[i]) {
			log_write(CV_LOG_ERROR, ps->name, NULL, "cannot set up the pipeline");
			return -1;
		}
	}
	return 0;
}

static void log_summary(struct engine *e, uint64_t *last_in, uint64_t *last_out, int64_t elapsed_ns)
{
	double secs = (double)elapsed_ns * 1e-9;
	for (size_t i = 0; i < e->npipelines; i++) {
		struct pipeline *p = e->pipelines[i];
		uint64_t in = pipeline_source_out(p), out = pipeline_sink_delivered(p);
		uint64_t dropped = 0, errors = 0;
		for (size_t j = 0; j < p->nstages; j++) {
			dropped += atomic_load(&p->stages[j].total_dropped);
			errors += atomic_load(&p->stages[j].total_errors);
		}
		log_write(CV_LOG_INFO, p->cfg.name, NULL,
		          "rate: %.0f records/s in, %.0f records/s delivered; totals: %llu in, "
		          "%llu delivered, %llu dropped, %llu errors",
		          (double)(in - last_in[i]) / secs, (double)(out - last_out[i]) / secs,
		          (unsigned long long)in, (unsigned long long)out,
		          (unsigned long long)dropped, (unsigned long long)errors);
		last_in[i] = in;
		last_out[i] = out;
	}
}

/* Past the drain deadline, a pipeline still running has a stage stuck in a
 * call (say, a sink blocked on a dead peer): the engine exits without it. */
#define ABANDON_GRACE_NS (500 * 1000000LL)

static int64_t stop_all(struct engine *e, int64_t timeout_ns)
{
	int64_t deadline = host_monotonic_ns() + timeout_ns;
	for (size_t i = 0; i < e->npipelines; i++)
		pipeline_request_stop(e->pipelines[i], deadline);
	return deadline;
}

/* Ends the process with pipelines whose threads are stuck in a plugin call:
 * the finished ones are joined and freed (their sources commit what was
 * delivered); the stuck ones still use their plugins' memory, so nothing
 * shared is freed and the process exits here. */
static _Noreturn void exit_abandoning(struct engine *e)
{
	size_t stuck = 0;
	for (size_t i = 0; i < e->npipelines; i++) {
		struct pipeline *p = e->pipelines[i];
		if (!pipeline_threads_done(p)) {
			stuck++;
			log_write(CV_LOG_ERROR, p->cfg.name, NULL,
			          "pipeline did not drain: a stage is stuck in a call");
			continue;
		}
		pipeline_join(p);
		pipeline_free(p);
	}
	log_error("stopped; %zu pipelines abandoned", stuck);
	fflush(NULL);
	_exit(1);
}

int engine_run(struct engine_spec *spec, const struct engine_options *opts)
{
	struct engine e = {.spec = spec, .started_ns = host_monotonic_ns()};
	int exit_code = 0;
	bool ran = false; /* reached the end of a run: log "stopped" */
	struct http_server *http = NULL;
	uint64_t *last_in = NULL, *last_out = NULL;

	/* Signals are taken synchronously by this thread alone. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	e.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sfd < 0 || e.done_fd < 0) {
		log_error("cannot create the engine's signal and event descriptors: %s",
		          strerror(errno));
		exit_code = 1;
		goto out;
	}

	e.registry = metrics_new();
	if (!e.registry) {
		exit_code = 1;
		goto out;
	}
	register_build_info(e.registry);
	metrics_add_collector(e.registry, process_metrics_collect, NULL);
	if (build_pipelines(&e) < 0) {
		exit_code = 1;
		goto out;
	}
	const char *listen = opts->listen_override ? opts->listen_override : spec->http_listen;
	if (listen && *listen) {
		struct http_handlers h = {.ctx = &e,
		                          .metrics = http_metrics,
		                          .healthy = http_healthy,
		                          .ready = http_ready,
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
		log_info("console: http://%s/ ; terminal view: conveyor top --url http://%s%s",
		         listen, listen, spec->http_tap ? " ; taps allowed (engine.http.tap)" : "");
		if (spec->http_tap && !listen_is_loopback(listen))
			log_warn("engine.http.tap is on and %s is not a loopback address: anyone "
			         "who reaches it can read this engine's records",
			         listen);
	}
	for (size_t i = 0; i < e.npipelines; i++) {
		if (pipeline_start(e.pipelines[i]) < 0) {
			exit_code = 1;
			stop_all(&e, spec->shutdown_timeout_ns);
			goto out;
		}
		log_write(CV_LOG_INFO, e.pipelines[i]->cfg.name, NULL,
		          "pipeline started (%zu stages)", e.pipelines[i]->nstages);
	}
	atomic_store(&e.all_started, true);

	last_in = calloc(e.npipelines, sizeof *last_in);
	last_out = calloc(e.npipelines, sizeof *last_out);
	int64_t start = host_monotonic_ns();
	int64_t last_summary = start;
	bool stopping = false, abandon = false;
	int64_t stop_deadline = INT64_MAX;
	for (;;) {
		/* Wakes on a signal, on a pipeline ending, or on the tick that
		 * drives --duration, the summary and the stop deadline. */
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
		int64_t now = host_monotonic_ns();
		if (sig == SIGINT || sig == SIGTERM) {
			if (stopping) {
				log_warn("second signal: exiting now without draining");
				exit_code = 1;
				abandon = true;
				break;
			}
			log_info("%s received: stopping sources, draining within %.1fs",
			         sig == SIGINT ? "SIGINT" : "SIGTERM",
			         (double)spec->shutdown_timeout_ns * 1e-9);
			stopping = true;
			stop_deadline = stop_all(&e, spec->shutdown_timeout_ns);
		}
		if (!stopping && opts->duration_ns > 0 && now - start >= opts->duration_ns) {
			log_info("duration reached: stopping sources, draining");
			stopping = true;
			stop_deadline = stop_all(&e, spec->shutdown_timeout_ns);
		}
		if (spec->summary_interval_ns > 0 &&
		    now - last_summary >= spec->summary_interval_ns && last_in && last_out) {
			log_summary(&e, last_in, last_out, now - last_summary);
			last_summary = now;
		}
		/* Pipelines whose threads ended (finite sources, or stopped). */
		bool all_done = true;
		for (size_t i = 0; i < e.npipelines; i++) {
			all_done &= pipeline_threads_done(e.pipelines[i]);
		}
		if (all_done)
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
	if (abandon)
		exit_abandoning(&e);
	for (size_t i = 0; i < e.npipelines; i++) {
		uint32_t left = pipeline_join(e.pipelines[i]);
		if (left) {
			exit_code = 1;
			log_write(CV_LOG_ERROR, e.pipelines[i]->cfg.name, NULL,
			          "%u batches unacknowledged at exit", left);
		}
	}
	if (spec->summary_interval_ns > 0 && last_in && last_out)
		log_summary(&e, last_in, last_out, host_monotonic_ns() - last_summary);
	ran = true;
out:
	http_server_stop(http);
	/* Freeing a pipeline destroys its plugins: sinks close, sources make
	 * their last commits (and log them) here, before "stopped". */
	for (size_t i = 0; i < e.npipelines; i++) {
		pipeline_free(e.pipelines ? e.pipelines[i] : NULL);
		free(e.stages ? e.stages[i] : NULL);
	}
	if (ran)
		log_info("stopped; peak RSS %.1f MiB", (double)peak_rss_kib() / 1024.0);
	free(e.pipelines);
	free(e.stages);
	free(last_in);
	free(last_out);
	metrics_free(e.registry);
	if (sfd >= 0)
		close(sfd);
	if (e.done_fd >= 0)
		close(e.done_fd);
	return exit_code;
}
