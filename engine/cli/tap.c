/* tap.c - `conveyor tap`: the records leaving a stage of a running engine,
 * live, one per line on stdout, from GET /api/v1/tap. The engine's status
 * lines (see http/tap_stream.h) are not printed: the last one says how
 * many records the tap missed, which goes to stderr at the end. */
#include "cli/tap.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/strbuf.h"
#include "base/units.h"
#include "cli/http_client.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

#define DEFAULT_URL "http://127.0.0.1:8000"
/* The engine sends a status line every second: this long without a byte
 * means it is gone. */
#define IDLE_TIMEOUT_MS 10000
#define LINE_MAX_BYTES  (1 << 20)

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct tap_client {
	bool influx;
	struct strbuf line; /* a line not ended yet */
	uint64_t printed;   /* records written to stdout */
	bool have_status;   /* a status line came */
	double records, missed, unencodable;
	char end[64];        /* the final status line's "end", or "" */
	bool out_failed;     /* stdout closed (a pipe into head, say) */
	struct strbuf error; /* the body of a refusal */
	int status;
};

static void read_status(struct tap_client *c, const char *json, size_t len)
{
	struct json_value *v = json_parse(json, len, NULL, 0);
	const struct json_value *t = json_get(v, "tap");
	if (t) {
		c->have_status = true;
		c->records = json_number(json_get(t, "records"), c->records);
		c->missed = json_number(json_get(t, "missed"), c->missed);
		c->unencodable = json_number(json_get(t, "unencodable"), c->unencodable);
		snprintf(c->end, sizeof c->end, "%s", json_string(json_get(t, "end"), ""));
	}
	json_free(v);
}

static void one_line(struct tap_client *c, const char *s, size_t len)
{
	if (len == 0)
		return;
	if (!c->influx && len > 8 && memcmp(s, "{\"tap\":{", 8) == 0) {
		read_status(c, s, len);
		return;
	}
	if (c->influx && len > 6 && memcmp(s, "# tap ", 6) == 0) {
		read_status(c, s + 6, len - 6);
		return;
	}
	if (fwrite(s, 1, len, stdout) != len || fputc('\n', stdout) == EOF) {
		c->out_failed = true;
		return;
	}
	c->printed++;
}

static int on_body(void *ctx, const char *data, size_t len)
{
	struct tap_client *c = ctx;
	if (c->status != 200) {
		strbuf_append(&c->error, data, len < 4096 ? len : 4096);
		return 0;
	}
	size_t start = 0;
	for (size_t i = 0; i < len && !c->out_failed; i++) {
		if (data[i] != '\n')
			continue;
		if (c->line.len) {
			strbuf_append(&c->line, data + start, i - start);
			one_line(c, c->line.data, c->line.len);
			strbuf_reset(&c->line);
		} else {
			one_line(c, data + start, i - start);
		}
		start = i + 1;
	}
	if (start < len && c->line.len + (len - start) <= LINE_MAX_BYTES)
		strbuf_append(&c->line, data + start, len - start);
	/* Live: what came goes out now, also into a pipe. */
	if (fflush(stdout) != 0)
		c->out_failed = true;
	return c->out_failed;
}

/* Appends s percent-encoded for a query string. */
static void query_escape(struct strbuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			strbuf_append(out, (const char *)p, 1);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			strbuf_append(out, e, 3);
		}
	}
}

static void tap_usage(FILE *out)
{
	fputs("usage: conveyor tap [--url URL] PIPELINE [STAGE] [--limit N] "
	      "[--format json|influx]\n"
	      "\n"
	      "Prints the records leaving STAGE of PIPELINE in a running engine (default\n"
	      "URL " DEFAULT_URL "), live, one per line, until --limit records or\n"
	      "Ctrl-C. Without STAGE: the records reaching the sink. The engine must allow\n"
	      "it (engine.http.tap: true). A tap never slows the pipeline: records it\n"
	      "cannot keep up with are missed, and counted on stderr at the end.\n",
	      out);
}

int cmd_tap(int argc, char **argv)
{
	const char *url = DEFAULT_URL, *pipeline = NULL, *stage = NULL, *format = "json";
	int64_t limit = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			if (units_parse_int(argv[++i], &limit) < 0 || limit < 0) {
				fprintf(stderr,
				        "conveyor tap: --limit: expected a whole number (0 for "
				        "none), got \"%s\"\n",
				        argv[i]);
				return EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			format = argv[++i];
			if (strcmp(format, "json") != 0 && strcmp(format, "influx") != 0) {
				fprintf(stderr,
				        "conveyor tap: --format: expected json or influx, got "
				        "\"%s\"\n",
				        format);
				return EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			tap_usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "conveyor tap: unknown option %s\n", argv[i]);
			tap_usage(stderr);
			return EXIT_USAGE;
		} else if (!pipeline) {
			pipeline = argv[i];
		} else if (!stage) {
			stage = argv[i];
		} else {
			fprintf(stderr, "conveyor tap: one pipeline and one stage, got also %s\n",
			        argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!pipeline) {
		fputs("conveyor tap: which pipeline? (conveyor top lists them)\n", stderr);
		tap_usage(stderr);
		return EXIT_USAGE;
	}
	struct http_url u;
	char err[512];
	if (http_url_parse(url, &u, err, sizeof err) < 0) {
		fprintf(stderr, "conveyor tap: --url: %s\n", err);
		return EXIT_USAGE;
	}
	struct strbuf path = {0};
	strbuf_puts(&path, "/api/v1/tap?pipeline=");
	query_escape(&path, pipeline);
	if (stage) {
		strbuf_puts(&path, "&stage=");
		query_escape(&path, stage);
	}
	strbuf_printf(&path, "&limit=%lld&format=%s", (long long)limit, format);

	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct tap_client c = {.influx = strcmp(format, "influx") == 0};
	int rc = http_get_stream(&u, path.data, IDLE_TIMEOUT_MS, &stop_flag, &c.status, on_body, &c,
	                         err, sizeof err);
	strbuf_free(&path);
	int code = 0;
	if (c.status != 200 && c.status != 0) {
		/* The engine's refusal says why (tapping off, no such stage). */
		while (c.error.len && (c.error.data[c.error.len - 1] == '\n'))
			c.error.data[--c.error.len] = '\0';
		fprintf(stderr, "conveyor tap: %s answered %d: %s\n", url, c.status,
		        c.error.len ? c.error.data : "(no reason given)");
		code = c.status == 400 || c.status == 404 ? EXIT_USAGE : EXIT_RUNTIME;
	} else if (rc < 0) {
		fprintf(stderr, "conveyor tap: %s: %s\n", url, err);
		code = EXIT_RUNTIME;
	} else {
		const char *why = stop_flag                     ? "interrupted"
		                  : c.out_failed                ? "output closed"
		                  : strcmp(c.end, "limit") == 0 ? "limit reached"
		                  : c.end[0]                    ? c.end
		                                                : "the engine closed the tap";
		fprintf(stderr, "conveyor tap: %llu records from %s%s%s (%s)",
		        (unsigned long long)c.printed, pipeline, stage ? "/" : "",
		        stage ? stage : "", why);
		if (c.missed > 0)
			fprintf(stderr,
			        "; %s%.0f missed: the tap could not keep up (records are sampled, "
			        "never held back)",
			        c.end[0] ? "" : "at least ", c.missed);
		if (c.unencodable > 0)
			fprintf(stderr, "; %.0f not expressible as %s", c.unencodable, format);
		fputc('\n', stderr);
	}
	strbuf_free(&c.line);
	strbuf_free(&c.error);
	return code;
}
