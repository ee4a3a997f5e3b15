/* strbuf.h - a growable byte buffer for text output (exposition, logs, errors). */
#ifndef CONVEYOR_STRBUF_H
#define CONVEYOR_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *data; /* NUL-terminated when len > 0 or after any append */
	size_t len;
	size_t cap;
	int failed; /* set once an allocation failed; later appends do nothing */
};

/* Appends; returns 0, or CV_ENOMEM on allocation failure, which also sets
 * sb->failed. */
int strbuf_append(struct strbuf *sb, const char *s, size_t len);
int strbuf_puts(struct strbuf *sb, const char *s);
int strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
/* Appends s as the inside of a JSON string (no quotes), escaping as needed;
 * bytes that are not UTF-8 become U+FFFD. */
int strbuf_json_escape(struct strbuf *sb, const char *s, size_t len);
void strbuf_reset(struct strbuf *sb); /* keeps the memory */
void strbuf_free(struct strbuf *sb);

#endif
