/* main.c - the `conveyor` command line: run, validate, plugins, version;
 * top and tap (cli/top.c, cli/tap.c) read a running engine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http_server.h"
#include "runtime/engine.h"
#include "base/log.h"
#include "spec/options.h"
#include "runtime/plugin_loader.h"
#include "spec/spec.h"
#include "base/units.h"
#include "cli/tap.h"
#include "cli/top.h"

extern const char conveyor_demo_spec[];
extern const unsigned long conveyor_demo_spec_len;

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

static void usage(FILE *out)
{
	fputs("usage: conveyor run [SPEC.yaml] [--listen ADDR|off] [--duration SECONDS] [--watch]\n"
	      "       conveyor validate SPEC.yaml...\n"
	      "       conveyor plugins [NAME]\n"
	      "       conveyor version\n"
	      "       conveyor top [--url URL] [--interval 1s] [--once]\n"
	      "       conveyor tap [--url URL] PIPELINE [STAGE] [--limit N] [--format "
	      "json|influx]\n"
	      "\n"
	      "run       runs every pipeline of SPEC (the built-in demo without one) until\n"
	      "          its sources end, SIGINT/SIGTERM, or --duration; then drains;\n"
	      "          serves /metrics, /healthz, /readyz on engine.http.listen\n"
	      "          (default 127.0.0.1:8000), or --listen ADDR; off: no HTTP server.\n"
	      "          SIGHUP (and --watch, on a change of SPEC's content) reloads SPEC\n"
	      "validate  checks specs against the plugins' option schemas and checks;\n"
	      "          starts nothing and reads no file the spec names\n"
	      "plugins   lists the plugins on the plugin path, or one plugin's options\n"
	      "top       a live view of a running engine's stages (rates, queues, p99)\n"
	      "tap       prints the records leaving a stage of a running engine, live\n"
	      "\n"
	      "Environment: CONVEYOR_PLUGIN_PATH (colon-separated directories),\n"
	      "CONVEYOR_LOG_LEVEL (debug|info|warn|error), CONVEYOR_LOG_FORMAT (json|text|auto).\n"
	      "Exit codes: 0 success, 1 runtime failure, 2 usage or spec error.\n",
	      out);
}

/* Applies the log settings: environment over spec over the default (auto). */
static void configure_log(const struct engine_spec *spec)
{
	enum cv_log_level level = spec && spec->log_level_set ? spec->log_level : CV_LOG_INFO;
	enum log_format format;
	log_format_parse("auto", &format);
	if (spec && spec->log_format_set)
		format = spec->log_format;
	const char *env = getenv("CONVEYOR_LOG_LEVEL");
	if (env && log_level_parse(env) >= 0)
		level = (enum cv_log_level)log_level_parse(env);
	env = getenv("CONVEYOR_LOG_FORMAT");
	if (env)
		log_format_parse(env, &format);
	log_configure(level, format);
}

static int cmd_run(int argc, char **argv)
{
	const char *file = NULL;
	bool watch = false;
	struct engine_options opts = {0};
	/* Before anything starts a thread: a SIGHUP or SIGTERM that comes
	 * while the spec loads waits for the engine's loop. */
	engine_block_signals();
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--watch") == 0) {
			watch = true;
		} else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
			char err[256];
			opts.listen_override = argv[++i];
			if (strcmp(argv[i], "off") == 0) {
				opts.listen_override = ""; /* no HTTP server */
			} else if (http_listen_check(argv[i], err, sizeof err) < 0) {
				fprintf(stderr, "conveyor: --listen: %s (or off)\n", err);
				return EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			if (units_parse_duration(argv[++i], &opts.duration_ns) < 0 ||
			    opts.duration_ns <= 0) {
				fprintf(stderr,
				        "conveyor: --duration: expected seconds or a duration "
				        "such as 30s, got \"%s\"\n",
				        argv[i]);
				return EXIT_USAGE;
			}
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "conveyor: run: unknown option %s\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else if (!file) {
			file = argv[i];
		} else {
			fprintf(stderr, "conveyor: run takes one spec, got another: %s\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (watch && !file) {
		fputs("conveyor: run --watch needs a spec file (the built-in demo has none)\n",
		      stderr);
		return EXIT_USAGE;
	}
	configure_log(NULL);
	/* The watch's baseline is the content about to be loaded. */
	if (watch && !(opts.watch = spec_watch_new(file))) {
		fputs("conveyor: out of memory\n", stderr);
		return EXIT_RUNTIME;
	}
	struct plugin_loader *loader = plugin_loader_new();
	struct diag diag = {.out = stderr};
	struct engine_spec *spec = NULL;
	int rc;
	if (file)
		rc = engine_spec_load(file, NULL, 0, loader, &diag, &spec);
	else
		rc = engine_spec_load("<built-in demo: pipelines/demo.yaml>", conveyor_demo_spec,
		                      conveyor_demo_spec_len, loader, &diag, &spec);
	if (rc < 0) {
		plugin_loader_free(loader);
		spec_watch_free(opts.watch);
		return EXIT_USAGE;
	}
	configure_log(spec);
	if (!file)
		log_info("running the built-in demo (pipelines/demo.yaml); Ctrl-C stops it");
	else if (watch)
		log_info("watching %s: a change of its content reloads it", file);
	opts.spec_file = file;
	opts.loader = loader;
	opts.apply_log = configure_log;
	int code = engine_run(spec, &opts);
	/* The loader last: the plugins' code ran until engine_run returned. */
	plugin_loader_free(loader);
	spec_watch_free(opts.watch);
	return code;
}

static int cmd_validate(int argc, char **argv)
{
	if (argc == 0) {
		fputs("conveyor: validate needs at least one spec file\n", stderr);
		return EXIT_USAGE;
	}
	int bad = 0;
	for (int i = 0; i < argc; i++) {
		struct plugin_loader *loader = plugin_loader_new();
		struct diag diag = {.out = stderr};
		struct engine_spec *spec = NULL;
		if (engine_spec_validate(argv[i], loader, &diag, &spec) < 0) {
			bad++;
		} else {
			size_t stages = 0;
			for (size_t p = 0; p < spec->npipelines; p++)
				stages += spec->pipelines[p].nstages;
			printf("%s: ok (%zu pipelines, %zu stages)\n", argv[i], spec->npipelines,
			       stages);
		}
		engine_spec_free(spec);
		plugin_loader_free(loader);
	}
	return bad ? EXIT_USAGE : 0;
}

static void print_plugin_row(void *ctx, const char *name, const struct plugin_module *m,
                             const char *error)
{
	int *count = ctx;
	if (!m) {
		printf("%-14s %-10s %-9s %-6s %s\n", name, "broken", "-", "-", error);
		return;
	}
	(*count)++;
	printf("%-14s %-10s %-9s %u.%-4u %s\n", m->desc.name, plugin_kind_name(m->desc.kind),
	       m->desc.version ? m->desc.version : "-", m->desc.abi_major, m->desc.abi_minor,
	       m->desc.description ? m->desc.description : "");
}

static int cmd_plugins(int argc, char **argv)
{
	configure_log(NULL);
	struct plugin_loader *loader = plugin_loader_new();
	plugin_loader_add_env(loader);
	plugin_loader_add_defaults(loader);
	int code = 0;
	if (argc == 0) {
		int count = 0;
		printf("%-14s %-10s %-9s %-6s %s\n", "NAME", "KIND", "VERSION", "ABI",
		       "DESCRIPTION");
		plugin_loader_scan(loader, print_plugin_row, &count);
		if (count == 0) {
			fputs("conveyor: no plugins found; set CONVEYOR_PLUGIN_PATH\n", stderr);
			code = EXIT_RUNTIME;
		}
	} else {
		char err[1024];
		const struct plugin_module *m = plugin_loader_get(loader, argv[0], err, sizeof err);
		if (!m) {
			fprintf(stderr, "conveyor: %s\n", err);
			code = EXIT_USAGE;
		} else {
			printf("%s (%s) %s, ABI %u.%u\n%s\nfile: %s\n\noptions:\n", m->desc.name,
			       plugin_kind_name(m->desc.kind),
			       m->desc.version ? m->desc.version : "", m->desc.abi_major,
			       m->desc.abi_minor, m->desc.description ? m->desc.description : "",
			       m->path);
			static const struct cv_option none[] = {{0}};
			options_print(stdout, m->desc.options ? m->desc.options : none);
		}
	}
	plugin_loader_free(loader);
	return code;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 2, argv + 2);
	if (strcmp(cmd, "validate") == 0)
		return cmd_validate(argc - 2, argv + 2);
	if (strcmp(cmd, "plugins") == 0)
		return cmd_plugins(argc - 2, argv + 2);
	if (strcmp(cmd, "top") == 0)
		return cmd_top(argc - 2, argv + 2);
	if (strcmp(cmd, "tap") == 0)
		return cmd_tap(argc - 2, argv + 2);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("conveyor %s (plugin ABI %d.%d)\n", CONVEYOR_VERSION, CV_ABI_MAJOR,
		       CV_ABI_MINOR);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "conveyor: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
