#include "base/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/plugin.h>

#include "text_codec.h"

static int strbuf_reserve(struct strbuf *sb, size_t extra)
{
	if (sb->failed)
		return CV_ENOMEM;
	if (sb->len + extra + 1 <= sb->cap)
		return 0;
	size_t cap = sb->cap ? sb->cap : 256;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	char *p = realloc(sb->data, cap);
	if (!p) {
		sb->failed = 1;
		return CV_ENOMEM;
	}
	sb->data = p;
	sb->cap = cap;
	return 0;
}

int strbuf_append(struct strbuf *sb, const char *s, size_t len)
{
	if (strbuf_reserve(sb, len) < 0)
		return CV_ENOMEM;
	if (len)
		memcpy(sb->data + sb->len, s, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
	return 0;
}

int strbuf_puts(struct strbuf *sb, const char *s)
{
	return strbuf_append(sb, s, strlen(s));
}

int strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	int n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0 || strbuf_reserve(sb, (size_t)n) < 0)
		return CV_ENOMEM;
	vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
	return 0;
}

int strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
	return rc;
}

int strbuf_json_escape(struct strbuf *sb, const char *s, size_t len)
{
	if (strbuf_reserve(sb, CV_JSON_ESCAPED_MAX(len)) < 0)
		return CV_ENOMEM;
	char *end = cv_json_escape(sb->data + sb->len, s, len, CV_JSON_REPLACE);
	sb->len = (size_t)(end - sb->data);
	sb->data[sb->len] = '\0';
	return 0;
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->data)
		sb->data[0] = '\0';
}

void strbuf_free(struct strbuf *sb)
{
	free(sb->data);
	*sb = (struct strbuf){0};
}
