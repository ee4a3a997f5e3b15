/*
 * console - prints records on stdout, for demos and debugging.
 *
 * format text (default), one human line per record:
 *   2026-11-26T12:00:00.123Z conveyor_speed line_id=line-3 speed_ms=0.000 seq=1234
 *   mean=2.004 stddev=0.051 zscore=-39.300 ANOMALY
 * (floats with 3 decimals; a true `anomaly` field is shown as ANOMALY, a
 * false one not at all). format json or influx: the shared encoders.
 *
 * Each batch is built in one buffer and written with one fwrite and one
 * fflush, so lines appear promptly and batches do not interleave. With
 * only_anomalies, records whose `anomaly` field is not true are skipped, but
 * still acknowledged as delivered: they were handled as asked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <conveyor/plugin.h>

#include "record_format.h"

enum console_format {
	CONSOLE_JSON = 0,
	CONSOLE_INFLUX = 1,
	CONSOLE_TEXT = 2,
};

struct console_config {
	int format;
	bool only_anomalies;
};

struct console {
	struct cv_stage *stage;
	const struct cv_host_api *api;
	int format;
	bool only_anomalies;
	struct cv_buf buf;
	/* The date and time text of `cached_sec`, reused within a second. */
	int64_t cached_sec;
	char cached_time[24];
};

static int console_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                        void **state)
{
	const struct console_config *cfg = config;
	struct console *c = calloc(1, sizeof *c);
	if (!c)
		return CV_ENOMEM;
	c->stage = stage;
	c->api = api;
	c->format = cfg->format;
	c->only_anomalies = cfg->only_anomalies;
	c->cached_sec = INT64_MIN;
	*state = c;
	return 0;
}

static void console_destroy(void *state)
{
	struct console *c = state;
	if (!c)
		return;
	cv_buf_free(&c->buf);
	free(c);
}

/* Appends `s` with control characters made visible, so one record stays on
 * one line. Returns 0 or CV_ENOMEM. */
static int append_visible(struct cv_buf *b, const char *s, size_t n)
{
	if (cv_buf_reserve(b, 4 * n))
		return CV_ENOMEM;
	char *p = b->data + b->len;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != 0x7f) {
			*p++ = (char)ch;
			continue;
		}
		*p++ = '\\';
		switch (ch) {
		case '\n': *p++ = 'n'; break;
		case '\r': *p++ = 'r'; break;
		case '\t': *p++ = 't'; break;
		default:
			*p++ = 'x';
			*p++ = "0123456789abcdef"[ch >> 4];
			*p++ = "0123456789abcdef"[ch & 15];
		}
	}
	b->len = (size_t)(p - b->data);
	return 0;
}

static int append_time(struct console *c, int64_t ns)
{
	int64_t sec = ns / 1000000000, frac = ns % 1000000000;
	if (frac < 0) {
		sec--;
		frac += 1000000000;
	}
	if (sec != c->cached_sec) {
		time_t t = (time_t)sec;
		struct tm tm;
		if (!gmtime_r(&t, &tm) ||
		    strftime(c->cached_time, sizeof c->cached_time, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			snprintf(c->cached_time, sizeof c->cached_time, "@%lld", (long long)sec);
		c->cached_sec = sec;
	}
	char ms[8];
	snprintf(ms, sizeof ms, ".%03dZ", (int)(frac / 1000000));
	if (cv_buf_append(&c->buf, c->cached_time, strlen(c->cached_time)) ||
	    cv_buf_append(&c->buf, ms, 5))
		return CV_ENOMEM;
	return 0;
}

static int append_text(struct console *c, const struct cv_record *r)
{
	struct cv_buf *b = &c->buf;
	bool anomaly = false;
	int rc = append_time(c, r->timestamp);
	rc = rc ? rc : cv_buf_append(b, " ", 1);
	rc = rc ? rc : append_visible(b, r->measurement, r->measurement_len);
	for (uint16_t i = 0; i < r->ntags && !rc; i++) {
		const struct cv_tag *t = &r->tags[i];
		rc = cv_buf_append(b, " ", 1);
		rc = rc ? rc : append_visible(b, t->key, t->key_len);
		rc = rc ? rc : cv_buf_append(b, "=", 1);
		rc = rc ? rc : append_visible(b, t->value, t->value_len);
	}
	for (uint16_t i = 0; i < r->nfields && !rc; i++) {
		const struct cv_field *f = &r->fields[i];
		if (f->type == CV_FIELD_BOOL && f->key_len == 7 &&
		    memcmp(f->key, "anomaly", 7) == 0) {
			anomaly = f->v.b;
			continue;
		}
		char num[48];
		int n = 0;
		rc = cv_buf_append(b, " ", 1);
		rc = rc ? rc : append_visible(b, f->key, f->key_len);
		rc = rc ? rc : cv_buf_append(b, "=", 1);
		if (rc)
			break;
		switch (f->type) {
		case CV_FIELD_FLOAT:
			/* Fixed decimals read best; huge values would not fit. */
			n = snprintf(num, sizeof num,
			             f->v.f < 1e15 && f->v.f > -1e15 ? "%.3f" : "%.6g", f->v.f);
			break;
		case CV_FIELD_INT: n = cv_format_int64(num, f->v.i); break;
		case CV_FIELD_BOOL:
			n = snprintf(num, sizeof num, "%s", f->v.b ? "true" : "false");
			break;
		case CV_FIELD_STRING:
			rc = cv_buf_append(b, "\"", 1);
			rc = rc ? rc : append_visible(b, f->v.s, f->str_len);
			rc = rc ? rc : cv_buf_append(b, "\"", 1);
			break;
		default: n = snprintf(num, sizeof num, "?"); break;
		}
		if (!rc && n > 0)
			rc = cv_buf_append(b, num, (size_t)n);
	}
	if (!rc && anomaly)
		rc = cv_buf_append(b, " ANOMALY", 8);
	return rc;
}

static bool is_anomaly(const struct cv_record *r)
{
	const struct cv_field *f = cv_record_find_field(r, "anomaly", 7);
	return f && f->type == CV_FIELD_BOOL && f->v.b;
}

static int console_write(void *state, struct cv_batch *batch)
{
	struct console *c = state;
	const struct cv_host_api *api = c->api;
	cv_buf_reset(&c->buf);
	for (uint32_t i = 0; i < batch->count; i++) {
		const struct cv_record *r = &batch->records[i];
		if (r->flags & CV_RECORD_DROPPED)
			continue;
		if (c->only_anomalies && !is_anomaly(r))
			continue;
		size_t mark = c->buf.len;
		int rc;
		switch (c->format) {
		case CONSOLE_JSON: rc = cv_record_encode_json(&c->buf, r); break;
		case CONSOLE_INFLUX: rc = cv_record_encode_influx(&c->buf, r); break;
		default: rc = append_text(c, r); break;
		}
		if (rc == CV_EINVAL) {
			api->ack_record(
			        batch, i, CV_ACK_REJECTED,
			        c->format == CONSOLE_JSON
			                ? "console: record cannot be encoded as JSON"
			                : "console: record cannot be encoded as line protocol");
			continue;
		}
		if (rc == 0)
			rc = cv_buf_append(&c->buf, "\n", 1);
		if (rc) {
			c->buf.len = mark;
			api->log(c->stage, CV_LOG_ERROR, "console: out of memory");
			return CV_ENOMEM;
		}
	}
	if (c->buf.len == 0)
		return 0;
	if (fwrite(c->buf.data, 1, c->buf.len, stdout) != c->buf.len || fflush(stdout) != 0) {
		clearerr(stdout);
		api->log(c->stage, CV_LOG_ERROR, "console: writing to stdout failed");
		return CV_EIO;
	}
	return 0;
}

static const char *const console_formats[] = {"json", "influx", "text", NULL};

static const struct cv_option console_options[] = {
        {.name = "format",
         .type = CV_OPT_ENUM,
         .default_value = "text",
         .enum_values = console_formats,
         .offset = offsetof(struct console_config, format),
         .description = "text: one readable line per record (time, measurement, tags, fields, "
                        "ANOMALY); json: one JSON object per line; influx: line protocol"},
        {.name = "only_anomalies",
         .type = CV_OPT_BOOL,
         .default_value = "false",
         .offset = offsetof(struct console_config, only_anomalies),
         .description = "print only records whose `anomaly` field is true (the others are "
                        "still acknowledged as delivered)"},
        {0},
};

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "console",
        .version = "0.1.0",
        .description = "prints records on stdout as text, JSON or line protocol, one batch per "
                       "write",
        .kind = CV_KIND_SINK,
        .options = console_options,
        .config_size = sizeof(struct console_config),
        .init = console_init,
        .destroy = console_destroy,
        .write = console_write,
};
