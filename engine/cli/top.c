/* top.c - `conveyor top`: a live table of a running engine's stages, read
 * from its JSON API (GET /api/v1/pipelines) every interval.
 *
 * Rates are the difference of two reads over the time between them; the
 * p99 columns are quantiles of the histogram buckets filled in that time.
 * The full-screen view uses the terminal's alternate screen and cursor
 * addressing (no curses): one frame is composed in memory and written at
 * once, a line per row, each cut to the terminal's width. `--once` takes
 * two reads one interval apart and prints the same table as plain text. */
#include "cli/top.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/strbuf.h"
#include "base/units.h"
#include "cli/http_client.h"
#include "metrics/metrics.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

#define DEFAULT_URL    "http://127.0.0.1:8000"
#define FETCH_TIMEOUT  3000 /* ms */
#define MAX_BUCKETS    64
#define NAME_MAX_BYTES 128

struct hist {
	size_t n; /* finite bounds; 0: none (instrumentation off) */
	double le[MAX_BUCKETS];
	double cum[MAX_BUCKETS + 1];
};

struct row {
	char pipeline[NAME_MAX_BYTES], stage[NAME_MAX_BYTES], plugin[NAME_MAX_BYTES];
	char kind[16];
	size_t order;                           /* position in the API's pipeline and stage order */
	bool first;                             /* the pipeline's first stage */
	double in, out, dropped, errors, queue; /* NAN: not reported */
	double max_records;
	struct hist dur;
	struct hist lat; /* the pipeline's */
};

struct sample {
	double t; /* monotonic seconds of the read */
	char version[32];
	double uptime;
	struct row *rows;
	size_t nrows;
};

/* One displayed row: a stage and its rates over the last interval. */
struct line {
	const struct row *r;
	double in_s, out_s, drop_s, err_s, fill, p99_call, p99_e2e;
};

enum sort_key { SORT_ORDER, SORT_IN, SORT_OUT, SORT_ERRORS, SORT_QUEUE, SORT_CALL, SORT_N };
static const char *const sort_names[] = {"pipeline order", "in/s",  "out/s",
                                         "errors/s",       "queue", "p99 in plugin"};

static volatile sig_atomic_t quit_flag, resize_flag;

static void on_quit(int sig)
{
	(void)sig;
	quit_flag = 1;
}

static void on_winch(int sig)
{
	(void)sig;
	resize_flag = 1;
}

static double mono_s(void)
{
	return (double)clock_monotonic_ns() * 1e-9;
}

static void copy_name(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "?");
}

static double num_or_nan(const struct json_value *v)
{
	return json_number(v, NAN);
}

static void read_hist(const struct json_value *v, struct hist *h)
{
	h->n = 0;
	const struct json_value *le = json_get(v, "le"), *counts = json_get(v, "counts");
	if (!le || !counts || le->type != JSON_ARRAY || counts->type != JSON_ARRAY ||
	    counts->count != le->count + 1 || le->count > MAX_BUCKETS)
		return;
	for (size_t i = 0; i < le->count; i++)
		h->le[i] = json_number(&le->items[i], 0);
	for (size_t i = 0; i <= le->count; i++)
		h->cum[i] = json_number(&counts->items[i], 0);
	h->n = le->count;
}

static void sample_free(struct sample *s)
{
	free(s->rows);
	memset(s, 0, sizeof *s);
}

/* Reads the API once into s. 0, or -1 with a message in err. */
static int sample_read(const struct http_url *u, struct sample *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	struct strbuf body = {0};
	int status = 0;
	if (http_get(u, "/api/v1/pipelines", FETCH_TIMEOUT, &status, &body, err, errlen) < 0) {
		strbuf_free(&body);
		return -1;
	}
	s->t = mono_s();
	if (status != 200) {
		snprintf(err, errlen, "GET /api/v1/pipelines answered %d%s", status,
		         status == 404 ? " (an engine older than the JSON API?)" : "");
		strbuf_free(&body);
		return -1;
	}
	char jerr[128];
	struct json_value *doc =
	        json_parse(body.data ? body.data : "", body.len, jerr, sizeof jerr);
	strbuf_free(&body);
	if (!doc) {
		snprintf(err, errlen, "the JSON API's answer is not JSON: %s", jerr);
		return -1;
	}
	copy_name(s->version, sizeof s->version, json_string(json_get(doc, "version"), "?"));
	s->uptime = json_number(json_get(doc, "uptime_seconds"), NAN);
	const struct json_value *pipes = json_get(doc, "pipelines");
	size_t total = 0;
	for (size_t i = 0; pipes && pipes->type == JSON_ARRAY && i < pipes->count; i++) {
		const struct json_value *st = json_get(&pipes->items[i], "stages");
		total += st && st->type == JSON_ARRAY ? st->count : 0;
	}
	s->rows = calloc(total ? total : 1, sizeof *s->rows);
	if (!s->rows) {
		json_free(doc);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; pipes && pipes->type == JSON_ARRAY && i < pipes->count; i++) {
		const struct json_value *p = &pipes->items[i];
		const struct json_value *st = json_get(p, "stages");
		for (size_t j = 0; st && st->type == JSON_ARRAY && j < st->count; j++) {
			const struct json_value *v = &st->items[j];
			struct row *r = &s->rows[s->nrows];
			r->order = s->nrows++;
			r->first = j == 0;
			copy_name(r->pipeline, sizeof r->pipeline,
			          json_string(json_get(p, "name"), "?"));
			copy_name(r->stage, sizeof r->stage, json_string(json_get(v, "name"), "?"));
			copy_name(r->plugin, sizeof r->plugin,
			          json_string(json_get(v, "plugin"), "?"));
			copy_name(r->kind, sizeof r->kind, json_string(json_get(v, "kind"), "?"));
			r->in = num_or_nan(json_get(v, "records_in_total"));
			r->out = num_or_nan(json_get(v, "records_out_total"));
			r->dropped = num_or_nan(json_get(v, "records_dropped_total"));
			r->errors = num_or_nan(json_get(v, "errors_total"));
			r->queue = num_or_nan(json_get(v, "queue_records"));
			r->max_records = num_or_nan(json_get(p, "max_records"));
			read_hist(json_get(v, "duration_seconds"), &r->dur);
			read_hist(json_get(p, "latency_seconds"), &r->lat);
		}
	}
	json_free(doc);
	return 0;
}

static const struct row *find_row(const struct sample *s, const struct row *r)
{
	if (!s)
		return NULL;
	/* Usually the same position; by name when the topology changed. */
	if (r->order < s->nrows && strcmp(s->rows[r->order].pipeline, r->pipeline) == 0 &&
	    strcmp(s->rows[r->order].stage, r->stage) == 0)
		return &s->rows[r->order];
	for (size_t i = 0; i < s->nrows; i++)
		if (strcmp(s->rows[i].pipeline, r->pipeline) == 0 &&
		    strcmp(s->rows[i].stage, r->stage) == 0)
			return &s->rows[i];
	return NULL;
}

static double rate(double cur, double prev, double dt)
{
	if (isnan(cur) || isnan(prev) || dt <= 0)
		return NAN;
	return cur >= prev ? (cur - prev) / dt : NAN; /* a restart: no rate */
}

/* p99 of what a histogram gained since prev. */
static double delta_p99(const struct hist *cur, const struct hist *prev)
{
	if (!cur->n || !prev || prev->n != cur->n)
		return NAN;
	uint64_t d[MAX_BUCKETS + 1];
	for (size_t i = 0; i <= cur->n; i++) {
		double x = cur->cum[i] - prev->cum[i];
		d[i] = x > 0 ? (uint64_t)x : 0;
	}
	return metrics_histogram_quantile(0.99, cur->le, d, cur->n);
}

static void make_lines(const struct sample *cur, const struct sample *prev, struct line *lines)
{
	double dt = prev ? cur->t - prev->t : 0;
	for (size_t i = 0; i < cur->nrows; i++) {
		const struct row *r = &cur->rows[i];
		const struct row *p = find_row(prev, r);
		struct line *l = &lines[i];
		l->r = r;
		l->in_s = p && strcmp(r->kind, "source") != 0 ? rate(r->in, p->in, dt) : NAN;
		l->out_s = p ? rate(r->out, p->out, dt) : NAN;
		l->drop_s = p ? rate(r->dropped, p->dropped, dt) : NAN;
		l->err_s = p ? rate(r->errors, p->errors, dt) : NAN;
		l->fill = strcmp(r->kind, "source") != 0 && !isnan(r->queue) && r->max_records > 0
		                  ? r->queue / r->max_records
		                  : NAN;
		l->p99_call = p ? delta_p99(&r->dur, &p->dur) : NAN;
		l->p99_e2e = p ? delta_p99(&r->lat, &p->lat) : NAN;
	}
}

static enum sort_key g_sort;

static double sort_value(const struct line *l)
{
	double v;
	switch (g_sort) {
	case SORT_IN: v = l->in_s; break;
	case SORT_OUT: v = l->out_s; break;
	case SORT_ERRORS: v = l->err_s; break;
	case SORT_QUEUE: v = l->fill; break;
	case SORT_CALL: v = l->p99_call; break;
	default: v = 0;
	}
	return isnan(v) ? -1 : v;
}

static int cmp_lines(const void *a, const void *b)
{
	const struct line *x = a, *y = b;
	double vx = sort_value(x), vy = sort_value(y);
	if (vx != vy)
		return vx > vy ? -1 : 1;
	return x->r->order < y->r->order ? -1 : x->r->order > y->r->order;
}

/* ---- cells ---- */

static void fmt_rate(char *out, size_t size, double v)
{
	if (isnan(v))
		snprintf(out, size, "-");
	else if (v < 10 && v != floor(v))
		snprintf(out, size, "%.1f", v);
	else if (v < 1e4)
		snprintf(out, size, "%.0f", v);
	else if (v < 1e5)
		snprintf(out, size, "%.1fk", v / 1e3);
	else if (v < 1e7)
		snprintf(out, size, "%.0fk", v / 1e3);
	else if (v < 1e8)
		snprintf(out, size, "%.1fM", v / 1e6);
	else
		snprintf(out, size, "%.0fM", v / 1e6);
}

static void fmt_secs(char *out, size_t size, double v)
{
	if (isnan(v))
		snprintf(out, size, "-");
	else if (v < 1e-3)
		snprintf(out, size, "%.0fus", v * 1e6);
	else if (v < 1e-2)
		snprintf(out, size, "%.1fms", v * 1e3);
	else if (v < 1)
		snprintf(out, size, "%.0fms", v * 1e3);
	else
		snprintf(out, size, "%.2fs", v);
}

static void fmt_pct(char *out, size_t size, double v)
{
	if (isnan(v))
		snprintf(out, size, "-");
	else
		snprintf(out, size, "%.0f%%", v * 100);
}

static const char *kind_short(const char *kind, bool wide)
{
	if (wide)
		return kind;
	if (strcmp(kind, "source") == 0)
		return "src";
	if (strcmp(kind, "transform") == 0)
		return "xfm";
	if (strcmp(kind, "sink") == 0)
		return "sink";
	return kind;
}

/* Display width of UTF-8 text: one column per character. */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Appends s in exactly `width` columns: cut with '~' when longer, padded
 * on the right (left-aligned) or the left. */
static void cell(struct strbuf *out, const char *s, size_t width, bool right)
{
	size_t w = text_width(s);
	if (w > width) {
		size_t cols = 0, i = 0;
		for (; s[i] && width; i++) {
			if (((unsigned char)s[i] & 0xc0) != 0x80 && cols++ == width - 1)
				break;
		}
		strbuf_append(out, s, i);
		if (width)
			strbuf_append(out, "~", 1);
		return;
	}
	if (right)
		strbuf_printf(out, "%*s", (int)(width - w), "");
	strbuf_puts(out, s);
	if (!right)
		strbuf_printf(out, "%*s", (int)(width - w), "");
}

enum col {
	C_PIPE,
	C_STAGE,
	C_PLUGIN,
	C_KIND,
	C_IN,
	C_OUT,
	C_DROP,
	C_ERR,
	C_QUEUE,
	C_CALL,
	C_E2E,
	C_N
};
static const char *const col_head[C_N] = {"PIPELINE", "STAGE",   "PLUGIN", "KIND",
                                          "IN/s",     "OUT/s",   "DROP/s", "ERR/s",
                                          "QUEUE",    "P99CALL", "P99E2E"};
static const size_t col_min[C_N] = {4, 5, 4, 4, 6, 6, 6, 5, 5, 7, 6};

struct layout {
	size_t w[C_N];
	bool wide_kind;
};

/* Column widths for `width` terminal columns (0: no limit, the natural
 * widths): numbers keep their room, names share the rest. */
static void plan(struct layout *lay, const struct line *lines, size_t n, size_t width)
{
	size_t nat[3] = {strlen(col_head[C_PIPE]), strlen(col_head[C_STAGE]),
	                 strlen(col_head[C_PLUGIN])};
	for (size_t i = 0; i < n; i++) {
		const struct row *r = lines[i].r;
		size_t w[3] = {text_width(r->pipeline), text_width(r->stage),
		               text_width(r->plugin)};
		for (int k = 0; k < 3; k++)
			nat[k] = w[k] > nat[k] ? w[k] : nat[k];
	}
	lay->wide_kind = width == 0 || width >= 100;
	for (int c = C_KIND; c < C_N; c++)
		lay->w[c] = col_min[c] > strlen(col_head[c]) ? col_min[c] : strlen(col_head[c]);
	lay->w[C_KIND] = lay->wide_kind ? 9 : 4;
	size_t fixed = C_N - 1; /* separators */
	for (int c = C_KIND; c < C_N; c++)
		fixed += lay->w[c];
	size_t cap = 24;
	for (int k = 0; k < 3; k++)
		nat[k] = width == 0 ? nat[k] : (nat[k] > cap ? cap : nat[k]);
	if (width == 0 || nat[0] + nat[1] + nat[2] + fixed <= width) {
		for (int k = 0; k < 3; k++)
			lay->w[k] = nat[k];
		return;
	}
	/* Too narrow: the stage name keeps the most, then the pipeline, then
	 * the plugin, none under its minimum. */
	size_t avail = width > fixed + col_min[0] + col_min[1] + col_min[2]
	                       ? width - fixed
	                       : col_min[0] + col_min[1] + col_min[2];
	size_t w0 = avail * 30 / 100, w2 = avail * 28 / 100;
	w0 = w0 < col_min[0] ? col_min[0] : (w0 > nat[0] ? nat[0] : w0);
	w2 = w2 < col_min[2] ? col_min[2] : (w2 > nat[2] ? nat[2] : w2);
	size_t w1 = avail - w0 - w2;
	if (w1 > nat[1]) {
		/* Spare room goes back to the others. */
		size_t spare = w1 - nat[1];
		w1 = nat[1];
		size_t more0 = nat[0] - w0 < spare ? nat[0] - w0 : spare;
		w0 += more0;
		spare -= more0;
		w2 += nat[2] - w2 < spare ? nat[2] - w2 : spare;
	}
	lay->w[C_PIPE] = w0;
	lay->w[C_STAGE] = w1 < col_min[1] ? col_min[1] : w1;
	lay->w[C_PLUGIN] = w2;
}

static void render_header_row(struct strbuf *out, const struct layout *lay)
{
	for (int c = 0; c < C_N; c++) {
		if (c)
			strbuf_append(out, " ", 1);
		cell(out, col_head[c], lay->w[c], c >= C_IN);
	}
}

static void render_row(struct strbuf *out, const struct layout *lay, const struct line *l,
                       bool show_pipeline)
{
	char v[C_N][32];
	const struct row *r = l->r;
	fmt_rate(v[C_IN], sizeof v[0], l->in_s);
	fmt_rate(v[C_OUT], sizeof v[0], l->out_s);
	fmt_rate(v[C_DROP], sizeof v[0], l->drop_s);
	fmt_rate(v[C_ERR], sizeof v[0], l->err_s);
	fmt_pct(v[C_QUEUE], sizeof v[0], l->fill);
	fmt_secs(v[C_CALL], sizeof v[0], l->p99_call);
	if (show_pipeline)
		fmt_secs(v[C_E2E], sizeof v[0], l->p99_e2e);
	else
		v[C_E2E][0] = '\0';
	const char *text[C_N] = {show_pipeline ? r->pipeline : "", r->stage, r->plugin,
	                         kind_short(r->kind, lay->wide_kind)};
	for (int c = 0; c < C_N; c++) {
		if (c)
			strbuf_append(out, " ", 1);
		cell(out, c < C_IN ? text[c] : v[c], lay->w[c], c >= C_IN);
	}
}

static void fmt_uptime(char *out, size_t size, double s)
{
	if (isnan(s))
		snprintf(out, size, "?");
	else if (s < 3600)
		snprintf(out, size, "%dm%02ds", (int)s / 60, (int)s % 60);
	else if (s < 86400)
		snprintf(out, size, "%dh%02dm", (int)(s / 3600), (int)s % 3600 / 60);
	else
		snprintf(out, size, "%dd%02dh", (int)(s / 86400), (int)s % 86400 / 3600);
}

/* The rows of the table, sorted, with the pipeline named on the first row
 * of each (or on every row when sorted by a number). */
static void render_table(struct strbuf *out, const struct layout *lay, struct line *lines, size_t n,
                         size_t max_rows)
{
	qsort(lines, n, sizeof *lines, cmp_lines);
	size_t shown = n <= max_rows ? n : (max_rows ? max_rows - 1 : 0);
	for (size_t i = 0; i < shown; i++) {
		bool show = g_sort != SORT_ORDER || lines[i].r->first || i == 0;
		render_row(out, lay, &lines[i], show);
		strbuf_puts(out, "\n");
	}
	if (shown < n)
		strbuf_printf(out, "... %zu more stages (a taller terminal shows them)\n",
		              n - shown);
}

/* Copies in to out without the spaces that end its lines. */
static void rstrip_lines(const struct strbuf *in, struct strbuf *out)
{
	size_t start = 0;
	for (size_t i = 0; i < in->len; i++) {
		if (in->data[i] != '\n')
			continue;
		size_t end = i;
		while (end > start && in->data[end - 1] == ' ')
			end--;
		strbuf_append(out, in->data + start, end - start);
		strbuf_append(out, "\n", 1);
		start = i + 1;
	}
}

/* ---- the plain table (--once) ---- */

static int run_once(const struct http_url *u, const char *url, int64_t interval_ns)
{
	char err[512];
	struct sample a, b;
	if (sample_read(u, &a, err, sizeof err) < 0) {
		fprintf(stderr, "conveyor top: cannot read %s: %s\n", url, err);
		return EXIT_RUNTIME;
	}
	struct timespec ts = {.tv_sec = interval_ns / 1000000000,
	                      .tv_nsec = interval_ns % 1000000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !quit_flag)
		;
	if (sample_read(u, &b, err, sizeof err) < 0) {
		fprintf(stderr, "conveyor top: cannot read %s: %s\n", url, err);
		sample_free(&a);
		return EXIT_RUNTIME;
	}
	struct line *lines = calloc(b.nrows ? b.nrows : 1, sizeof *lines);
	if (!lines) {
		sample_free(&a);
		sample_free(&b);
		return EXIT_RUNTIME;
	}
	make_lines(&b, &a, lines);
	struct layout lay;
	plan(&lay, lines, b.nrows, 0);
	char up[32];
	fmt_uptime(up, sizeof up, b.uptime);
	struct strbuf out = {0};
	strbuf_printf(&out, "conveyor %s at %s, up %s; rates over %.1fs\n", b.version, url, up,
	              b.t - a.t);
	render_header_row(&out, &lay);
	strbuf_puts(&out, "\n");
	render_table(&out, &lay, lines, b.nrows, b.nrows);
	/* Trailing spaces of the padding are noise in a plain table. */
	struct strbuf clean = {0};
	rstrip_lines(&out, &clean);
	fwrite(clean.data, 1, clean.len, stdout);
	strbuf_free(&clean);
	strbuf_free(&out);
	free(lines);
	sample_free(&a);
	sample_free(&b);
	return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

/* ---- the full-screen view ---- */

static struct termios saved_tio;

static void term_enter(void)
{
	struct termios raw;
	tcgetattr(STDIN_FILENO, &saved_tio);
	raw = saved_tio;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	/* Alternate screen, cursor hidden. */
	fputs("\033[?1049h\033[?25l", stdout);
	fflush(stdout);
}

static void term_leave(void)
{
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
}

static void term_size(size_t *cols, size_t *rows)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
	} else {
		*cols = 80;
		*rows = 24;
	}
}

/* A line of the screen: cut to width, then cleared to its end. */
static void screen_line(struct strbuf *out, const char *text, size_t width, const char *attr)
{
	struct strbuf l = {0};
	cell(&l, text, width, false);
	strbuf_puts(out, attr);
	strbuf_append(out, l.data ? l.data : "", l.len);
	strbuf_puts(out, attr[0] ? "\033[0m\033[K\r\n" : "\033[K\r\n");
	strbuf_free(&l);
}

struct view {
	const char *url;
	double interval;
	bool paused;
	char status[1024];
	struct sample cur, prev;
	bool have_prev;
};

static void draw(struct view *v)
{
	size_t cols, rows;
	term_size(&cols, &rows);
	struct strbuf out = {0};
	strbuf_puts(&out, "\033[H");
	char up[32], head[512];
	fmt_uptime(up, sizeof up, v->cur.uptime);
	/* What changes with the keys first: the end may be cut. */
	snprintf(head, sizeof head, "conveyor top%s  sort: %s  every %gs  up %s  %s  v%s",
	         v->paused ? "  PAUSED" : "", sort_names[g_sort], v->interval, up, v->url,
	         v->cur.version);
	screen_line(&out, head, cols, "\033[1m");
	struct line *lines = calloc(v->cur.nrows ? v->cur.nrows : 1, sizeof *lines);
	if (lines) {
		make_lines(&v->cur, v->have_prev ? &v->prev : NULL, lines);
		struct layout lay;
		plan(&lay, lines, v->cur.nrows, cols);
		struct strbuf hr = {0};
		render_header_row(&hr, &lay);
		screen_line(&out, hr.data ? hr.data : "", cols, "\033[7m");
		strbuf_free(&hr);
		size_t room = rows > 3 ? rows - 3 : 0;
		struct strbuf table = {0};
		render_table(&table, &lay, lines, v->cur.nrows, room);
		/* Each table line through screen_line for the width and the clearing. */
		char *save = NULL;
		size_t used = 0;
		for (char *l = table.data ? strtok_r(table.data, "\n", &save) : NULL; l;
		     l = strtok_r(NULL, "\n", &save), used++)
			screen_line(&out, l, cols, "");
		for (; used < room; used++)
			strbuf_puts(&out, "\033[K\r\n");
		strbuf_free(&table);
		free(lines);
	}
	char foot[1100];
	snprintf(foot, sizeof foot, "q quit  p pause  s sort%s%s", v->status[0] ? "  |  " : "",
	         v->status);
	struct strbuf f = {0};
	cell(&f, foot, cols, false);
	strbuf_printf(&out, "\033[%zu;1H", rows);
	strbuf_append(&out, f.data ? f.data : "", f.len);
	strbuf_puts(&out, "\033[K");
	strbuf_free(&f);
	fwrite(out.data, 1, out.len, stdout);
	fflush(stdout);
	strbuf_free(&out);
}

static void poll_once(struct view *v, const struct http_url *u)
{
	struct sample s;
	char err[256];
	if (sample_read(u, &s, err, sizeof err) < 0) {
		snprintf(v->status, sizeof v->status, "cannot read %s: %s; retrying", v->url, err);
		return;
	}
	v->status[0] = '\0';
	if (v->have_prev)
		sample_free(&v->prev);
	v->prev = v->cur;
	v->have_prev = true;
	v->cur = s;
}

static int run_live(const struct http_url *u, const char *url, int64_t interval_ns)
{
	struct view v = {.url = url, .interval = (double)interval_ns * 1e-9};
	char err[512];
	if (sample_read(u, &v.cur, err, sizeof err) < 0) {
		fprintf(stderr, "conveyor top: cannot read %s: %s\n", url, err);
		return EXIT_RUNTIME;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fputs("conveyor top: the live view needs a terminal; use --once for a plain "
		      "table\n",
		      stderr);
		sample_free(&v.cur);
		return EXIT_USAGE;
	}
	struct sigaction sa = {.sa_handler = on_winch};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);
	term_enter();
	double next = mono_s() + v.interval;
	bool dirty = true;
	while (!quit_flag) {
		if (resize_flag) {
			resize_flag = 0;
			fputs("\033[2J", stdout);
			dirty = true;
		}
		if (dirty) {
			draw(&v);
			dirty = false;
		}
		double now = mono_s();
		if (!v.paused && now >= next) {
			poll_once(&v, u);
			next += v.interval;
			if (next < now)
				next = now + v.interval;
			dirty = true;
			continue;
		}
		double wait = v.paused ? 1.0 : next - now;
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		if (poll(&pfd, 1, (int)(wait * 1000) + 1) <= 0)
			continue;
		char keys[32];
		ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
		if (n == 0)
			break; /* the terminal went away */
		for (ssize_t i = 0; i < n; i++) {
			switch (keys[i]) {
			case 'q':
			case 'Q': quit_flag = 1; break;
			case 'p':
			case 'P':
			case ' ':
				v.paused = !v.paused;
				if (!v.paused)
					next = mono_s();
				break;
			case 's':
			case 'S': g_sort = (enum sort_key)((g_sort + 1) % SORT_N); break;
			default: continue;
			}
			dirty = true;
		}
	}
	term_leave();
	sample_free(&v.cur);
	if (v.have_prev)
		sample_free(&v.prev);
	return 0;
}

static void top_usage(FILE *out)
{
	fputs("usage: conveyor top [--url URL] [--interval 1s] [--once]\n"
	      "\n"
	      "A live table of a running engine's stages (default URL " DEFAULT_URL "):\n"
	      "records in/out/dropped/errors per second, queue fill, p99 time in the\n"
	      "plugin and the pipeline's p99 end-to-end latency, over the last interval.\n"
	      "Keys: q quit, p or space pause, s change the sort.\n"
	      "--once  reads twice, one interval apart, prints one plain table, exits\n",
	      out);
}

int cmd_top(int argc, char **argv)
{
	const char *url = DEFAULT_URL;
	int64_t interval_ns = 1000000000;
	bool once = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
			if (units_parse_duration(argv[++i], &interval_ns) < 0 ||
			    interval_ns < 100000000 || interval_ns > 3600000000000LL) {
				fprintf(stderr,
				        "conveyor top: --interval: expected a duration from 100ms "
				        "to "
				        "1h, such as 1s, got \"%s\"\n",
				        argv[i]);
				return EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "--once") == 0) {
			once = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			top_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "conveyor top: unknown argument %s\n", argv[i]);
			top_usage(stderr);
			return EXIT_USAGE;
		}
	}
	struct http_url u;
	char err[512];
	if (http_url_parse(url, &u, err, sizeof err) < 0) {
		fprintf(stderr, "conveyor top: --url: %s\n", err);
		return EXIT_USAGE;
	}
	struct sigaction sa = {.sa_handler = on_quit};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (once)
		return run_once(&u, url, interval_ns);
	return run_live(&u, url, interval_ns);
}
