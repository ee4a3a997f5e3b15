/* json.c - a recursive-descent JSON reader; see json.h. */
#include "base/json.h"

#include "text_codec.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *s;
	size_t len, pos;
	char *err;
	size_t errlen;
	bool failed;
};

static void fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct parser *p, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = true;
	if (!p->err || !p->errlen)
		return;
	int n = snprintf(p->err, p->errlen, "at byte %zu: ", p->pos);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static bool literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return false;
	p->pos += n;
	return true;
}

static int hex4(struct parser *p, uint32_t *out)
{
	if (p->len - p->pos < 4) {
		fail(p, "short \\u escape");
		return -1;
	}
	long v = cv_json_hex4(p->s + p->pos);
	if (v < 0) {
		/* The error names the byte after the bad digit, as it always has. */
		size_t i = 0;
		while (cv_hex_digit(p->s[p->pos + i]) >= 0)
			i++;
		p->pos += i + 1;
		fail(p, "bad hex digit in \\u escape");
		return -1;
	}
	p->pos += 4;
	*out = (uint32_t)v;
	return 0;
}

/* At the opening quote; returns a malloc'd, NUL-terminated string. */
static char *parse_string(struct parser *p, size_t *outlen)
{
	p->pos++; /* the quote */
	/* The decoded text is never longer than the source. */
	size_t start = p->pos;
	char *out = malloc(p->len - start + 1);
	size_t o = 0;
	if (!out) {
		fail(p, "out of memory");
		return NULL;
	}
	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == '"') {
			p->pos++;
			out[o] = '\0';
			*outlen = o;
			return out;
		}
		if (c < 0x20) {
			fail(p, "control character in a string");
			break;
		}
		if (c != '\\') {
			size_t n =
			        cv_utf8_seq((const unsigned char *)p->s + p->pos, p->len - p->pos);
			if (!n) {
				fail(p, "invalid UTF-8 in a string");
				break;
			}
			memcpy(out + o, p->s + p->pos, n);
			o += n;
			p->pos += n;
			continue;
		}
		if (++p->pos >= p->len)
			break;
		char e = p->s[p->pos++];
		switch (e) {
		case '"': out[o++] = '"'; break;
		case '\\': out[o++] = '\\'; break;
		case '/': out[o++] = '/'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			uint32_t cp, lo;
			if (hex4(p, &cp) < 0)
				goto bad;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (!literal(p, "\\u") || hex4(p, &lo) < 0 || lo < 0xdc00 ||
				    lo > 0xdfff) {
					fail(p, "unpaired surrogate in \\u escape");
					goto bad;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				fail(p, "unpaired surrogate in \\u escape");
				goto bad;
			}
			o += cv_utf8_put(out + o, cp);
			break;
		}
		default: fail(p, "bad escape \\%c", e); goto bad;
		}
	}
	fail(p, "unterminated string");
bad:
	free(out);
	return NULL;
}

static void parse_value(struct parser *p, struct json_value *v, int depth);

static bool grow(struct parser *p, struct json_value *v, size_t *cap, bool keys)
{
	if (v->count < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 8;
	struct json_value *items = realloc(v->items, ncap * sizeof *items);
	if (items)
		v->items = items;
	char **k = NULL;
	if (items && keys) {
		k = realloc(v->keys, ncap * sizeof *k);
		if (k)
			v->keys = k;
	}
	if (!items || (keys && !k)) {
		fail(p, "out of memory");
		return false;
	}
	*cap = ncap;
	return true;
}

static void parse_container(struct parser *p, struct json_value *v, int depth, bool object)
{
	char close = object ? '}' : ']';
	v->type = object ? JSON_OBJECT : JSON_ARRAY;
	p->pos++;
	size_t cap = 0;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		return;
	}
	for (;;) {
		if (!grow(p, v, &cap, object))
			return;
		struct json_value *item = &v->items[v->count];
		memset(item, 0, sizeof *item);
		if (object) {
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != '"') {
				fail(p, "expected a member name");
				return;
			}
			size_t klen;
			char *key = parse_string(p, &klen);
			if (!key)
				return;
			v->keys[v->count] = key;
			v->count++; /* owned from here: freed with the object */
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':') {
				fail(p, "expected ':' after a member name");
				return;
			}
			p->pos++;
		} else {
			v->count++;
		}
		parse_value(p, item, depth + 1);
		if (p->failed)
			return;
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == close) {
			p->pos++;
			return;
		}
		fail(p, "expected ',' or '%c'", close);
		return;
	}
}

static void parse_number(struct parser *p, struct json_value *v)
{
	size_t i = p->pos;
	const char *s = p->s;
	if (i < p->len && s[i] == '-')
		i++;
	if (i < p->len && s[i] == '0') {
		i++;
	} else if (i < p->len && s[i] >= '1' && s[i] <= '9') {
		while (i < p->len && s[i] >= '0' && s[i] <= '9')
			i++;
	} else {
		fail(p, "unexpected character '%c'", p->pos < p->len ? s[p->pos] : '?');
		return;
	}
	if (i < p->len && s[i] == '.') {
		size_t d = ++i;
		while (i < p->len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d) {
			fail(p, "no digits after '.'");
			return;
		}
	}
	if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < p->len && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t d = i;
		while (i < p->len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d) {
			fail(p, "no digits in the exponent");
			return;
		}
	}
	char buf[64];
	size_t n = i - p->pos;
	char *tmp = n < sizeof buf ? buf : malloc(n + 1);
	if (!tmp) {
		fail(p, "out of memory");
		return;
	}
	memcpy(tmp, s + p->pos, n);
	tmp[n] = '\0';
	v->type = JSON_NUMBER;
	v->number = strtod(tmp, NULL);
	if (tmp != buf)
		free(tmp);
	p->pos = i;
}

static void parse_value(struct parser *p, struct json_value *v, int depth)
{
	if (depth > JSON_MAX_DEPTH) {
		fail(p, "nested deeper than %d", JSON_MAX_DEPTH);
		return;
	}
	skip_ws(p);
	if (p->pos >= p->len) {
		fail(p, "unexpected end of input");
		return;
	}
	char c = p->s[p->pos];
	if (c == '{' || c == '[') {
		parse_container(p, v, depth, c == '{');
	} else if (c == '"') {
		v->string = parse_string(p, &v->len);
		if (v->string)
			v->type = JSON_STRING;
	} else if (literal(p, "true")) {
		v->type = JSON_BOOL;
		v->boolean = true;
	} else if (literal(p, "false")) {
		v->type = JSON_BOOL;
	} else if (literal(p, "null")) {
		v->type = JSON_NULL;
	} else {
		parse_number(p, v);
	}
}

static void free_inner(struct json_value *v)
{
	free(v->string);
	for (size_t i = 0; i < v->count; i++) {
		free_inner(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
}

struct json_value *json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct parser p = {.s = text, .len = len, .err = err, .errlen = errlen};
	struct json_value *v = calloc(1, sizeof *v);
	if (!v) {
		fail(&p, "out of memory");
		return NULL;
	}
	parse_value(&p, v, 0);
	skip_ws(&p);
	if (!p.failed && p.pos != p.len)
		fail(&p, "trailing characters after the value");
	if (p.failed) {
		json_free(v);
		return NULL;
	}
	return v;
}

void json_free(struct json_value *v)
{
	if (!v)
		return;
	free_inner(v);
	free(v);
}

const struct json_value *json_get(const struct json_value *v, const char *key)
{
	if (!v || v->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < v->count; i++)
		if (strcmp(v->keys[i], key) == 0)
			return &v->items[i];
	return NULL;
}

double json_number(const struct json_value *v, double dflt)
{
	return v && v->type == JSON_NUMBER ? v->number : dflt;
}

const char *json_string(const struct json_value *v, const char *dflt)
{
	return v && v->type == JSON_STRING ? v->string : dflt;
}
