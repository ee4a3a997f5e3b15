/* log.h - the engine's log: JSON lines (for Loki) or readable text on
 * stderr, one write(2) per line so lines from threads never interleave. */
#ifndef CONVEYOR_LOG_H
#define CONVEYOR_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

enum log_format {
	LOG_FORMAT_JSON,
	LOG_FORMAT_TEXT,
};

/* Sets the level and format; safe while other threads log (a reload). */
void log_configure(enum cv_log_level level, enum log_format format);
/* Parses "debug|info|warn|error"; -1 if unknown. */
int log_level_parse(const char *s);
/* Parses "json|text|auto" (auto: text on a terminal, else JSON); -1 if unknown. */
int log_format_parse(const char *s, enum log_format *out);
bool log_enabled(enum cv_log_level level);

/* Logs one line; pipeline and stage may be NULL. */
void log_write(enum cv_log_level level, const char *pipeline, const char *stage, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));
void log_vwrite(enum cv_log_level level, const char *pipeline, const char *stage, const char *fmt,
                va_list ap);

/* A named count for log_write_counts(). */
struct log_count {
	const char *name; /* a JSON member name: [a-z_]+, at most 32 bytes */
	uint64_t value;
};

/* Logs `msg` (as it is, no format) with counts: in JSON each is a numeric
 * member of the line's object (at most 16), in text only `msg` is written,
 * so it should carry them too. */
void log_write_counts(enum cv_log_level level, const char *pipeline, const char *msg,
                      const struct log_count *counts, size_t ncounts);

#define log_debug(...) log_write(CV_LOG_DEBUG, NULL, NULL, __VA_ARGS__)
#define log_info(...)  log_write(CV_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define log_warn(...)  log_write(CV_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_write(CV_LOG_ERROR, NULL, NULL, __VA_ARGS__)

#endif
