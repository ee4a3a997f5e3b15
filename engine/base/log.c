#include "base/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "text_codec.h"

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

/* A message longer than this is cut; so are pipeline and stage names in
 * the JSON form (the line's buffer holds the worst case of escaping). */
#define LOG_MSG_MAX    2048
#define LOG_NAME_MAX   256
#define LOG_MAX_COUNTS 16
#define LOG_LINE_MAX                                                                               \
	(256 + 64 * LOG_MAX_COUNTS + CV_JSON_ESCAPED_MAX(LOG_MSG_MAX) +                            \
	 2 * CV_JSON_ESCAPED_MAX(LOG_NAME_MAX))

/* Appends the first `max` bytes at most of s, JSON-escaped, at buf + *pos
 * (which has room for CV_JSON_ESCAPED_MAX(max)); bytes that are not UTF-8
 * (a cut character included) become U+FFFD. */
static void put_json(char *buf, size_t *pos, const char *s, size_t max)
{
	char *end = cv_json_escape(buf + *pos, s, strnlen(s, max), CV_JSON_REPLACE);
	*pos = (size_t)(end - buf);
}

static void put_raw(char *buf, size_t *pos, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (n > cap - *pos - 2)
		n = cap - *pos - 2;
	memcpy(buf + *pos, s, n);
	*pos += n;
}

/* Writes one line: msg, and in JSON each count as a numeric member. */
static void emit(enum cv_log_level level, const char *pipeline, const char *stage, const char *msg,
                 const struct log_count *counts, size_t ncounts)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[80];
	snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

	char line[LOG_LINE_MAX];
	size_t pos = 0, cap = sizeof line;
	if (atomic_load_explicit(&log_fmt, memory_order_relaxed) == LOG_FORMAT_JSON) {
		put_raw(line, &pos, cap, "{\"time\":\"");
		put_raw(line, &pos, cap, when);
		put_raw(line, &pos, cap, "\",\"level\":\"");
		put_raw(line, &pos, cap, level_names[level]);
		put_raw(line, &pos, cap, "\",\"message\":\"");
		put_json(line, &pos, msg, LOG_MSG_MAX);
		if (pipeline) {
			put_raw(line, &pos, cap, "\",\"pipeline\":\"");
			put_json(line, &pos, pipeline, LOG_NAME_MAX);
		}
		if (stage) {
			put_raw(line, &pos, cap, "\",\"stage\":\"");
			put_json(line, &pos, stage, LOG_NAME_MAX);
		}
		put_raw(line, &pos, cap, "\"");
		for (size_t i = 0; i < ncounts && i < LOG_MAX_COUNTS; i++) {
			char member[64];
			snprintf(member, sizeof member, ",\"%.32s\":%llu", counts[i].name,
			         (unsigned long long)counts[i].value);
			put_raw(line, &pos, cap, member);
		}
		put_raw(line, &pos, cap, "}");
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

void log_vwrite(enum cv_log_level level, const char *pipeline, const char *stage, const char *fmt,
                va_list ap)
{
	if (!log_enabled(level))
		return;
	char msg[LOG_MSG_MAX];
	vsnprintf(msg, sizeof msg, fmt, ap);
	emit(level, pipeline, stage, msg, NULL, 0);
}

void log_write_counts(enum cv_log_level level, const char *pipeline, const char *msg,
                      const struct log_count *counts, size_t ncounts)
{
	if (log_enabled(level))
		emit(level, pipeline, NULL, msg, counts, ncounts);
}

void log_write(enum cv_log_level level, const char *pipeline, const char *stage, const char *fmt,
               ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(level, pipeline, stage, fmt, ap);
	va_end(ap);
}
