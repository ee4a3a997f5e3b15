/*
 * record_decode.c - JSON and line protocol into a record. See
 * record_decode.h.
 *
 * The input is copied once into the batch arena and parsed in place:
 * unescaping never makes a string longer, so every string is rewritten where
 * it lies and the record points at it. No allocation beyond that copy and the
 * tag array (plus field slots when a record has more fields than the host
 * gave it).
 */
#include "record_decode.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 32

/* Parses [s, e) as a strict decimal int64 ("-12", no '+', no spaces).
 * Returns 0 or CV_EINVAL (empty, bad digit, out of range). */
static int parse_int64(const char *s, const char *e, int64_t *out)
{
	bool neg = false;
	if (s < e && *s == '-') {
		neg = true;
		s++;
	}
	if (s == e)
		return CV_EINVAL;
	uint64_t v = 0;
	const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return CV_EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (limit - d) / 10)
			return CV_EINVAL;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (< e), or 0 if invalid (overlong
 * forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, const unsigned char *e)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(e - s) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Copies the input into the arena, NUL-terminated (strtod relies on it). */
static char *arena_copy(const struct cv_host_api *api, struct cv_batch *batch, const char *data,
                        size_t len)
{
	return api->batch_strdup(batch, data, len);
}

static int set_tags(const struct cv_host_api *api, struct cv_batch *batch,
                    struct cv_record *record, const struct cv_tag *tags, size_t n)
{
	if (!n)
		return 0;
	struct cv_tag *t = api->batch_alloc(batch, n * sizeof *t);
	if (!t)
		return CV_ENOMEM;
	memcpy(t, tags, n * sizeof *t);
	record->tags = t;
	record->ntags = (uint16_t)n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */
/* ------------------------------------------------------------------------ */

struct jp {
	char *p;
	char *end;
	const char *err;
};

static int jfail(struct jp *j, const char *why)
{
	if (!j->err)
		j->err = why;
	return CV_EINVAL;
}

static void jws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int jexpect(struct jp *j, char c, const char *why)
{
	jws(j);
	if (j->p >= j->end || *j->p != c)
		return jfail(j, why);
	j->p++;
	return 0;
}

static int hex4(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return CV_EINVAL;
	}
	*out = v;
	return 0;
}

static char *put_utf8(char *w, uint32_t cp)
{
	if (cp < 0x80) {
		*w++ = (char)cp;
	} else if (cp < 0x800) {
		*w++ = (char)(0xc0 | (cp >> 6));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*w++ = (char)(0xe0 | (cp >> 12));
		*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*w++ = (char)(0xf0 | (cp >> 18));
		*w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	}
	return w;
}

/* A string at the cursor (after whitespace): unescaped in place; *out and
 * *len give the result. */
static int jstring(struct jp *j, char **out, size_t *len)
{
	jws(j);
	if (j->p >= j->end || *j->p != '"')
		return jfail(j, "JSON: expected a string");
	char *r = ++j->p;
	char *w = r;
	*out = w;
	for (;;) {
		if (r >= j->end)
			return jfail(j, "JSON: unterminated string");
		unsigned char c = (unsigned char)*r;
		if (c == '"')
			break;
		if (c < 0x20)
			return jfail(j, "JSON: control character in string");
		if (c == '\\') {
			if (r + 1 >= j->end)
				return jfail(j, "JSON: unterminated string");
			char e = r[1];
			r += 2;
			switch (e) {
			case '"': *w++ = '"'; break;
			case '\\': *w++ = '\\'; break;
			case '/': *w++ = '/'; break;
			case 'b': *w++ = '\b'; break;
			case 'f': *w++ = '\f'; break;
			case 'n': *w++ = '\n'; break;
			case 'r': *w++ = '\r'; break;
			case 't': *w++ = '\t'; break;
			case 'u': {
				uint32_t cp, lo;
				if (j->end - r < 4 || hex4(r, &cp) < 0)
					return jfail(j, "JSON: bad \\u escape");
				r += 4;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return jfail(j, "JSON: lone low surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (j->end - r < 6 || r[0] != '\\' || r[1] != 'u' ||
					    hex4(r + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
						return jfail(j, "JSON: lone high surrogate");
					r += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				w = put_utf8(w, cp);
				break;
			}
			default: return jfail(j, "JSON: bad escape in string");
			}
			continue;
		}
		if (c < 0x80) {
			*w++ = (char)c;
			r++;
			continue;
		}
		size_t n = utf8_seq((const unsigned char *)r, (const unsigned char *)j->end);
		if (!n)
			return jfail(j, "JSON: invalid UTF-8 in string");
		memmove(w, r, n);
		w += n;
		r += n;
	}
	*len = (size_t)(w - *out);
	j->p = r + 1;
	return 0;
}

/* A number at the cursor: integer when it has no fraction nor exponent. */
static int jnumber(struct jp *j, bool *is_int, int64_t *iv, double *dv)
{
	jws(j);
	char *s = j->p, *p = j->p, *e = j->end;
	bool integer = true;
	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0') {
		p++;
	} else if (p < e && *p >= '1' && *p <= '9') {
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	} else {
		return jfail(j, "JSON: expected a value");
	}
	if (p < e && *p == '.') {
		integer = false;
		p++;
		if (p >= e || *p < '0' || *p > '9')
			return jfail(j, "JSON: bad number");
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		integer = false;
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || *p < '0' || *p > '9')
			return jfail(j, "JSON: bad number");
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	*is_int = integer;
	if (integer) {
		if (parse_int64(s, p, iv) < 0)
			return jfail(j, "JSON: integer out of range");
	} else {
		char *endp;
		*dv = strtod(s, &endp);
		if (endp != p)
			return jfail(j, "JSON: bad number");
		if (!isfinite(*dv))
			return jfail(j, "JSON: number out of range");
	}
	j->p = p;
	return 0;
}

static int jliteral(struct jp *j, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return jfail(j, "JSON: expected a value");
	j->p += n;
	return 0;
}

/* Skips any value (of a key the decoder does not know). */
static int jskip(struct jp *j, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return jfail(j, "JSON: nested too deep");
	jws(j);
	if (j->p >= j->end)
		return jfail(j, "JSON: expected a value");
	char c = *j->p;
	char *s;
	size_t n;
	bool is_int;
	int64_t iv;
	double dv;
	switch (c) {
	case '"': return jstring(j, &s, &n);
	case 't': return jliteral(j, "true");
	case 'f': return jliteral(j, "false");
	case 'n': return jliteral(j, "null");
	case '{':
	case '[': {
		char close = c == '{' ? '}' : ']';
		j->p++;
		jws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				if (jstring(j, &s, &n) < 0 || jexpect(j, ':', "JSON: expected ':'") < 0)
					return CV_EINVAL;
			}
			if (jskip(j, depth + 1) < 0)
				return CV_EINVAL;
			jws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			return jexpect(j, close, "JSON: expected ',' or a closing bracket");
		}
	}
	default: return jnumber(j, &is_int, &iv, &dv);
	}
}

/* Iterates an object: call with *first true; returns 1 with the cursor on a
 * value (key in *key), 0 at the closing brace, or CV_EINVAL. */
static int jmember(struct jp *j, bool *first, char **key, size_t *klen)
{
	jws(j);
	if (*first) {
		*first = false;
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
	} else {
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		if (jexpect(j, ',', "JSON: expected ',' or '}'") < 0)
			return CV_EINVAL;
	}
	if (jstring(j, key, klen) < 0 || jexpect(j, ':', "JSON: expected ':'") < 0)
		return CV_EINVAL;
	return 1;
}

static bool key_is(const char *k, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(k, lit, n) == 0;
}

static int jtags(struct jp *j, const struct cv_host_api *api, struct cv_batch *batch,
                 struct cv_record *record)
{
	struct cv_tag tags[CV_DECODE_MAX_TAGS];
	size_t n = 0;
	if (jexpect(j, '{', "JSON: \"tags\" must be an object") < 0)
		return CV_EINVAL;
	bool first = true;
	char *k, *v;
	size_t kl, vl;
	int rc;
	while ((rc = jmember(j, &first, &k, &kl)) == 1) {
		jws(j);
		if (j->p >= j->end || *j->p != '"')
			return jfail(j, "JSON: tag values must be strings");
		if (jstring(j, &v, &vl) < 0)
			return CV_EINVAL;
		if (n == CV_DECODE_MAX_TAGS)
			return jfail(j, "JSON: too many tags");
		if (kl == 0)
			return jfail(j, "JSON: empty tag key");
		tags[n++] = (struct cv_tag){ .key = k, .value = v, .key_len = (uint32_t)kl,
			                     .value_len = (uint32_t)vl };
	}
	if (rc < 0)
		return rc;
	return set_tags(api, batch, record, tags, n);
}

static int jfields(struct jp *j, const struct cv_host_api *api, struct cv_batch *batch,
                   struct cv_record *record)
{
	if (jexpect(j, '{', "JSON: \"fields\" must be an object") < 0)
		return CV_EINVAL;
	bool first = true;
	char *k;
	size_t kl;
	int rc;
	while ((rc = jmember(j, &first, &k, &kl)) == 1) {
		if (kl == 0 || kl > UINT16_MAX)
			return jfail(j, "JSON: field key empty or too long");
		jws(j);
		if (j->p >= j->end)
			return jfail(j, "JSON: expected a value");
		struct cv_field val = { .key = k, .key_len = (uint16_t)kl };
		char c = *j->p;
		if (c == '"') {
			char *s;
			size_t sl;
			if (jstring(j, &s, &sl) < 0)
				return CV_EINVAL;
			if (sl > UINT32_MAX)
				return jfail(j, "JSON: string too long");
			val.type = CV_FIELD_STRING;
			val.v.s = s;
			val.str_len = (uint32_t)sl;
		} else if (c == 't' || c == 'f') {
			if (jliteral(j, c == 't' ? "true" : "false") < 0)
				return CV_EINVAL;
			val.type = CV_FIELD_BOOL;
			val.v.b = c == 't';
		} else if (c == 'n') {
			return jfail(j, "JSON: null field value");
		} else if (c == '{' || c == '[') {
			return jfail(j, "JSON: field values must be numbers, booleans or strings");
		} else {
			bool is_int;
			int64_t iv;
			double dv;
			if (jnumber(j, &is_int, &iv, &dv) < 0)
				return CV_EINVAL;
			val.type = is_int ? CV_FIELD_INT : CV_FIELD_FLOAT;
			if (is_int)
				val.v.i = iv;
			else
				val.v.f = dv;
		}
		struct cv_field *f = cv_record_add_field(api, batch, record);
		if (!f)
			return CV_ENOMEM;
		*f = val;
	}
	if (rc < 0)
		return rc;
	if (record->nfields == 0)
		return jfail(j, "JSON: \"fields\" is empty");
	return 0;
}

int cv_record_decode_json(const struct cv_host_api *api, struct cv_batch *batch,
                          struct cv_record *record, const char *data, size_t len,
                          int64_t default_ts, const char **reason)
{
	const char *dummy;
	if (!reason)
		reason = &dummy;
	*reason = NULL;
	char *buf = arena_copy(api, batch, data, len);
	if (!buf)
		return CV_ENOMEM;
	struct jp j = { .p = buf, .end = buf + len };
	bool have_m = false, have_ts = false, have_tags = false, have_fields = false;
	int rc = jexpect(&j, '{', "JSON: expected an object");
	bool first = true;
	char *k;
	size_t kl;
	record->timestamp = default_ts;
	while (rc == 0 && (rc = jmember(&j, &first, &k, &kl)) == 1) {
		rc = 0;
		if (key_is(k, kl, "measurement")) {
			char *m;
			size_t ml;
			if (have_m) {
				rc = jfail(&j, "JSON: \"measurement\" given twice");
			} else if ((rc = jstring(&j, &m, &ml)) == 0) {
				if (ml == 0 || ml > UINT32_MAX)
					rc = jfail(&j, "JSON: empty measurement");
				record->measurement = m;
				record->measurement_len = (uint32_t)ml;
			}
			have_m = true;
		} else if (key_is(k, kl, "timestamp")) {
			bool is_int;
			int64_t iv;
			double dv;
			if (have_ts) {
				rc = jfail(&j, "JSON: \"timestamp\" given twice");
			} else if ((rc = jnumber(&j, &is_int, &iv, &dv)) == 0) {
				if (!is_int)
					rc = jfail(&j, "JSON: timestamp must be integer nanoseconds");
				record->timestamp = iv;
			}
			have_ts = true;
		} else if (key_is(k, kl, "tags")) {
			rc = have_tags ? jfail(&j, "JSON: \"tags\" given twice")
			               : jtags(&j, api, batch, record);
			have_tags = true;
		} else if (key_is(k, kl, "fields")) {
			rc = have_fields ? jfail(&j, "JSON: \"fields\" given twice")
			                 : jfields(&j, api, batch, record);
			have_fields = true;
		} else {
			rc = jskip(&j, 1);
		}
	}
	if (rc == CV_ENOMEM)
		return rc;
	if (rc < 0) {
		*reason = j.err ? j.err : "JSON: syntax error";
		return CV_EINVAL;
	}
	jws(&j);
	if (j.p != j.end)
		*reason = "JSON: data after the object";
	else if (!have_m)
		*reason = "JSON: no \"measurement\"";
	else if (!have_fields)
		*reason = "JSON: no \"fields\"";
	return *reason ? CV_EINVAL : 0;
}

/* ------------------------------------------------------------------------ */
/* Line protocol                                                              */
/* ------------------------------------------------------------------------ */

/* Reads a token up to an unescaped delimiter (any of `delims`, or the end),
 * removing the backslash before an escaped delimiter in place. A backslash
 * before anything else stays, as InfluxDB reads it. */
static char *lp_token(char **cur, char *end, const char *delims, size_t *len)
{
	char *r = *cur, *w = *cur, *start = *cur;
	while (r < end) {
		char c = *r;
		if (c == '\\' && r + 1 < end && strchr(delims, r[1])) {
			*w++ = r[1];
			r += 2;
			continue;
		}
		if (strchr(delims, c))
			break;
		*w++ = c;
		r++;
	}
	*len = (size_t)(w - start);
	*cur = r;
	return start;
}

static bool lp_word(const char *s, size_t n, const char *const *words)
{
	for (; *words; words++) {
		if (strlen(*words) == n && memcmp(s, *words, n) == 0)
			return true;
	}
	return false;
}

/* A strict float: [-+]?(d+(.d*)?|.d+)([eE][-+]?d+)? and nothing else. */
static int lp_float(char *s, char *e, double *out)
{
	char *p = s;
	size_t digits = 0;
	if (p < e && (*p == '-' || *p == '+'))
		p++;
	while (p < e && *p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (p < e && *p == '.') {
		p++;
		while (p < e && *p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	if (!digits)
		return CV_EINVAL;
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || *p < '0' || *p > '9')
			return CV_EINVAL;
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p != e)
		return CV_EINVAL;
	/* strtod stops at the delimiter after the token (or the copy's NUL). */
	char *endp;
	*out = strtod(s, &endp);
	if (endp != e || !isfinite(*out))
		return CV_EINVAL;
	return 0;
}

static int lp_value(char *s, char *e, struct cv_field *f)
{
	static const char *const trues[] = { "t", "T", "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "f", "F", "false", "False", "FALSE", NULL };
	size_t n = (size_t)(e - s);
	if (n == 0)
		return CV_EINVAL;
	if (lp_word(s, n, trues) || lp_word(s, n, falses)) {
		f->type = CV_FIELD_BOOL;
		f->v.b = lp_word(s, n, trues);
		return 0;
	}
	if (e[-1] == 'i' || e[-1] == 'u') {
		int64_t v;
		if (e[-1] == 'u' && *s == '-')
			return CV_EINVAL;
		if (parse_int64(s, e - 1, &v) < 0)
			return CV_EINVAL;
		f->type = CV_FIELD_INT;
		f->v.i = v;
		return 0;
	}
	f->type = CV_FIELD_FLOAT;
	return lp_float(s, e, &f->v.f);
}

int cv_record_decode_influx(const struct cv_host_api *api, struct cv_batch *batch,
                            struct cv_record *record, const char *data, size_t len,
                            int64_t default_ts, const char **reason)
{
	const char *dummy;
	if (!reason)
		reason = &dummy;
	*reason = NULL;
	if (len && data[len - 1] == '\n')
		len--;
	if (len && data[len - 1] == '\r')
		len--;
	if (memchr(data, '\n', len) || memchr(data, '\r', len)) {
		*reason = "line protocol: more than one line";
		return CV_EINVAL;
	}
	char *buf = arena_copy(api, batch, data, len);
	if (!buf)
		return CV_ENOMEM;
	char *p = buf, *end = buf + len;
	size_t n;

	char *m = lp_token(&p, end, ", ", &n);
	if (n == 0 || *m == '#') {
		*reason = "line protocol: empty measurement or comment";
		return CV_EINVAL;
	}
	record->measurement = m;
	record->measurement_len = (uint32_t)n;

	struct cv_tag tags[CV_DECODE_MAX_TAGS];
	size_t ntags = 0;
	while (p < end && *p == ',') {
		p++;
		size_t kl, vl;
		char *k = lp_token(&p, end, ",= ", &kl);
		if (p >= end || *p != '=' || kl == 0) {
			*reason = "line protocol: bad tag";
			return CV_EINVAL;
		}
		p++;
		char *v = lp_token(&p, end, ",= ", &vl);
		if (vl == 0 || (p < end && *p == '=')) {
			*reason = "line protocol: bad tag value";
			return CV_EINVAL;
		}
		if (ntags == CV_DECODE_MAX_TAGS) {
			*reason = "line protocol: too many tags";
			return CV_EINVAL;
		}
		tags[ntags++] = (struct cv_tag){ .key = k, .value = v, .key_len = (uint32_t)kl,
			                         .value_len = (uint32_t)vl };
	}
	if (p >= end || *p != ' ') {
		*reason = "line protocol: no fields";
		return CV_EINVAL;
	}
	while (p < end && *p == ' ')
		p++;

	for (;;) {
		size_t kl;
		char *k = lp_token(&p, end, ",= ", &kl);
		if (p >= end || *p != '=' || kl == 0 || kl > UINT16_MAX) {
			*reason = "line protocol: bad field key";
			return CV_EINVAL;
		}
		p++;
		struct cv_field val = { .key = k, .key_len = (uint16_t)kl };
		if (p < end && *p == '"') {
			char *r = ++p, *w = p;
			while (r < end && *r != '"') {
				if (*r == '\\' && r + 1 < end && (r[1] == '"' || r[1] == '\\'))
					r++;
				*w++ = *r++;
			}
			if (r >= end) {
				*reason = "line protocol: unterminated string";
				return CV_EINVAL;
			}
			val.type = CV_FIELD_STRING;
			val.v.s = p;
			val.str_len = (uint32_t)(w - p);
			p = r + 1;
		} else {
			char *s = p;
			while (p < end && *p != ',' && *p != ' ')
				p++;
			if (lp_value(s, p, &val) < 0) {
				*reason = "line protocol: bad field value";
				return CV_EINVAL;
			}
		}
		struct cv_field *f = cv_record_add_field(api, batch, record);
		if (!f)
			return CV_ENOMEM;
		*f = val;
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		break;
	}
	if (p < end && *p != ' ') {
		*reason = "line protocol: bad field value";
		return CV_EINVAL;
	}
	while (p < end && *p == ' ')
		p++;
	record->timestamp = default_ts;
	if (p < end) {
		char *s = p;
		while (p < end && *p != ' ')
			p++;
		if (parse_int64(s, p, &record->timestamp) < 0) {
			*reason = "line protocol: bad timestamp";
			return CV_EINVAL;
		}
		while (p < end && *p == ' ')
			p++;
		if (p != end) {
			*reason = "line protocol: data after the timestamp";
			return CV_EINVAL;
		}
	}
	return set_tags(api, batch, record, tags, ntags);
}

int cv_record_decode(const struct cv_host_api *api, struct cv_batch *batch,
                     enum cv_record_format format, struct cv_record *record, const char *data,
                     size_t len, int64_t default_ts, const char **reason)
{
	switch (format) {
	case CV_FORMAT_JSON:
		return cv_record_decode_json(api, batch, record, data, len, default_ts, reason);
	case CV_FORMAT_INFLUX:
		return cv_record_decode_influx(api, batch, record, data, len, default_ts, reason);
	}
	if (reason)
		*reason = "unknown format";
	return CV_EINVAL;
}
