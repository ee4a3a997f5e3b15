#include "base/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Atomic: a reload changes them while other threads log. */
static _Atomic int log_min_level = CV_LOG_INFO;
static _Atomic int log_fmt = LOG_FORMAT_JSON;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_configure(enum cv_log_level level, enum log_format format)
{
	atomic_store_explicit(&log_min_level, (int)level, memory_order_relaxed);
	atomic_store_explicit(&log_fmt, (int)format, memory_order_relaxed);
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return CV_LOG_WARN;
	return -1;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(s, "auto") == 0)
		*out = isatty(STDERR_FILENO) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

bool log_enabled(enum cv_log_level level)
{
	return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

/* Appends s JSON-escaped into buf[*pos..cap), truncating at the end. */
static void put_json(char *buf, size_t *pos, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; *s && *pos + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[(*pos)++] = '\\';
			buf[(*pos)++] = (char)c;
		} else if (c == '\n') {
			buf[(*pos)++] = '\\';
			buf[(*pos)++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(buf + *pos, "\\u00", 4);
			buf[*pos + 4] = hex[c >> 4];
			buf[*pos + 5] = hex[c & 15];
			*pos += 6;
		} else {
			buf[(*pos)++] = (char)c;
		}
	}
}

static void put_raw(char *buf, size_t *pos, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (n > cap - *pos - 2)
		n = cap - *pos - 2;
	memcpy(buf + *pos, s, n);
	*pos += n;
}

void log_vwrite(enum cv_log_level level, const char *pipeline, const char *stage, const char *fmt,
                va_list ap)
{
	if (!log_enabled(level))
		return;
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[80];
	snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

	char line[4096];
	size_t pos = 0, cap = sizeof line;
	if (atomic_load_explicit(&log_fmt, memory_order_relaxed) == LOG_FORMAT_JSON) {
		put_raw(line, &pos, cap, "{\"time\":\"");
		put_raw(line, &pos, cap, when);
		put_raw(line, &pos, cap, "\",\"level\":\"");
		put_raw(line, &pos, cap, level_names[level]);
		put_raw(line, &pos, cap, "\",\"message\":\"");
		put_json(line, &pos, cap, msg);
		if (pipeline) {
			put_raw(line, &pos, cap, "\",\"pipeline\":\"");
			put_json(line, &pos, cap, pipeline);
		}
		if (stage) {
			put_raw(line, &pos, cap, "\",\"stage\":\"");
			put_json(line, &pos, cap, stage);
		}
		put_raw(line, &pos, cap, "\"}");
	} else {
		static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
		put_raw(line, &pos, cap, when);
		put_raw(line, &pos, cap, " ");
		put_raw(line, &pos, cap, tags[level]);
		put_raw(line, &pos, cap, " ");
		if (pipeline) {
			put_raw(line, &pos, cap, "[");
			put_raw(line, &pos, cap, pipeline);
			if (stage) {
				put_raw(line, &pos, cap, "/");
				put_raw(line, &pos, cap, stage);
			}
			put_raw(line, &pos, cap, "] ");
		}
		put_raw(line, &pos, cap, msg);
	}
	line[pos++] = '\n';
	ssize_t off = 0;
	while ((size_t)off < pos) {
		ssize_t n = write(STDERR_FILENO, line + off, pos - (size_t)off);
		if (n <= 0)
			break;
		off += n;
	}
}

void log_write(enum cv_log_level level, const char *pipeline, const char *stage, const char *fmt,
               ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(level, pipeline, stage, fmt, ap);
	va_end(ap);
}
