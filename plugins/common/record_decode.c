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

#include "text_codec.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 32

/* Word-at-a-time tricks that rely on the first byte being the lowest. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR_DIGITS 1
#endif

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
	if (e - s <= 18) {
		/* At most 18 digits cannot overflow. */
		for (; s < e; s++) {
			if (*s < '0' || *s > '9')
				return CV_EINVAL;
			v = v * 10 + (uint64_t)(*s - '0');
		}
		*out = neg ? -(int64_t)v : (int64_t)v;
		return 0;
	}
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return CV_EINVAL;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return CV_EINVAL;
	}
	if (v > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
		return CV_EINVAL;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Copies the input into the arena, NUL-terminated (strtod relies on it). */
static char *arena_copy(const struct cv_host_api *api, struct cv_batch *batch, const char *data,
                        size_t len)
{
	return api->batch_strdup(batch, data, len);
}

static int set_tags(const struct cv_host_api *api, struct cv_batch *batch, struct cv_record *record,
                    const struct cv_tag *tags, size_t n)
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
/* Decimal to double                                                          */
/* ------------------------------------------------------------------------ */

/* Exact powers of ten a double holds (Clinger's fast path). */
static const double exact_pow10[] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* 5^q normalised to 128 bits (top bit set), as the Eisel-Lemire algorithm
 * needs them, for every exponent of a normal double; beyond the table, and
 * for subnormals, strtod decides (it reads 0 or an infinity). */
#include "pow5_table.h"

/* w * 10^q correctly rounded (Eisel-Lemire, "Number Parsing at a Gigabyte
 * per Second", Lemire 2021), or false when this fast path cannot decide and
 * strtod must. strtod costs about as much as the rest of a record's decode. */
static bool decimal_to_double(uint64_t w, int q, bool neg, double *out)
{
	if (w == 0) {
		*out = neg ? -0.0 : 0.0;
		return true;
	}
	if (q >= -22 && q <= 22 && w <= (UINT64_C(1) << 53) - 1) {
		/* Both operands exact: one correctly rounded operation. */
		double d = (double)w;
		d = q < 0 ? d / exact_pow10[-q] : d * exact_pow10[q];
		*out = neg ? -d : d;
		return true;
	}
	if (q < CV_POW5_Q_MIN || q > CV_POW5_Q_MAX)
		return false;
	int64_t exponent = ((INT64_C(217706) * q) >> 16) + 1024 + 63;
	int lz = __builtin_clzll(w);
	w <<= lz;
	const uint64_t *p5 = cv_pow5_128[q - CV_POW5_Q_MIN];
	unsigned __int128 first = (unsigned __int128)w * p5[0];
	uint64_t lower = (uint64_t)first, upper = (uint64_t)(first >> 64);
	if ((upper & 0x1ff) == 0x1ff) {
		unsigned __int128 second = (unsigned __int128)w * p5[1];
		uint64_t add = (uint64_t)(second >> 64);
		lower += add;
		if (add > lower)
			upper++;
		if ((upper & 0x1ff) == 0x1ff && lower == UINT64_MAX)
			return false;
	}
	uint64_t upperbit = upper >> 63;
	uint64_t mantissa = upper >> (upperbit + 9);
	lz += (int)(1 ^ upperbit);
	int64_t real_exponent = exponent - lz;
	if (real_exponent <= 0)
		return false; /* subnormal */
	if (lower <= 1 && q >= -4 && q <= 23 && (mantissa & 3) == 1 &&
	    (mantissa << (upperbit + 64 - 53 - 2)) == upper)
		mantissa &= ~UINT64_C(1); /* exactly halfway: round to even */
	mantissa += mantissa & 1;
	mantissa >>= 1;
	if (mantissa >= (UINT64_C(1) << 53)) {
		mantissa = UINT64_C(1) << 52;
		real_exponent++;
	}
	mantissa &= ~(UINT64_C(1) << 52);
	if (real_exponent > 2046)
		return false;
	uint64_t bits = mantissa | ((uint64_t)real_exponent << 52) | ((uint64_t)neg << 63);
	memcpy(out, &bits, sizeof bits);
	return true;
}

/* Reads [s, e), already checked to be [-+]?digits?[.digits?][(e|E)[-+]?digits]
 * with at least one digit before the exponent, as a double. The buffer
 * holds a delimiter or NUL at e, where strtod (the slow path) stops. */
static int parse_double(const char *s, const char *e, double *out)
{
	const char *p = s;
	bool neg = false;
	if (p < e && (*p == '-' || *p == '+'))
		neg = *p++ == '-';
	uint64_t w = 0;
	int sig = 0, q = 0;
	bool exact = true;
	for (; p < e && *p >= '0' && *p <= '9'; p++) {
		if (w || *p != '0') {
			if (sig == 19)
				exact = false;
			else
				w = w * 10 + (uint64_t)(*p - '0');
			sig++;
		}
	}
	if (p < e && *p == '.') {
		for (p++; p < e && *p >= '0' && *p <= '9'; p++) {
			if (w || *p != '0') {
				if (sig == 19)
					exact = false;
				else
					w = w * 10 + (uint64_t)(*p - '0');
				sig++;
			}
			q--; /* only matters while exact */
		}
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		bool eneg = false;
		if (p < e && (*p == '-' || *p == '+'))
			eneg = *p++ == '-';
		int x = 0;
		for (; p < e && *p >= '0' && *p <= '9'; p++) {
			if (x < 100000)
				x = x * 10 + (*p - '0');
		}
		q += eneg ? -x : x;
	}
	if (!exact || !decimal_to_double(w, q, neg, out)) {
		char *endp;
		*out = strtod(s, &endp);
		if (endp != e)
			return CV_EINVAL;
	}
	return isfinite(*out) ? 0 : CV_EINVAL;
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

static void jws_skip(struct jp *j)
{
	while (j->p < j->end && (unsigned char)*j->p <= ' ' &&
	       (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static inline void jws(struct jp *j)
{
	/* Encoders write no whitespace: one test in the common case. The
	 * input ends in a NUL (arena_copy), so *j->p is readable even at the
	 * end, and the NUL sends it to the bounded loop. */
	if (__builtin_expect((unsigned char)*j->p <= ' ', 0))
		jws_skip(j);
}

static int jexpect(struct jp *j, char c, const char *why)
{
	jws(j);
	if (j->p >= j->end || *j->p != c)
		return jfail(j, why);
	j->p++;
	return 0;
}

static int jstring_rest(struct jp *j, char *r, char **out, size_t *len);

/* A string at the cursor (after whitespace): unescaped in place; *out and
 * *len give the result. */
static int jstring(struct jp *j, char **out, size_t *len)
{
	jws(j);
	if (j->p >= j->end || *j->p != '"')
		return jfail(j, "JSON: expected a string");
	char *r = ++j->p;
	/* Fast path: plain printable ASCII up to the closing quote needs no
	 * rewriting; most keys and values are just that. Words of 8 bytes
	 * first, then bytes up to the first special one. */
	while (j->end - r >= 8) {
		uint64_t v;
		memcpy(&v, r, 8);
		uint64_t t = cv_json_swar_special(v);
		if (t) {
#ifdef SWAR_DIGITS
			/* Little-endian: the lowest flag is exact (borrows only
			 * run towards later bytes), so it is the first special
			 * byte. */
			r += __builtin_ctzll(t) >> 3;
#endif
			break;
		}
		r += 8;
	}
	while (r < j->end && !cv_json_special[(unsigned char)*r])
		r++;
	if (r < j->end && *r == '"') {
		*out = j->p;
		*len = (size_t)(r - j->p);
		j->p = r + 1;
		return 0;
	}
	return jstring_rest(j, r, out, len);
}

/* The rest of a string from its first escape or non-ASCII byte at r (the
 * bytes before are plain). Kept out of line so the fast path above stays
 * small. */
static __attribute__((noinline)) int jstring_rest(struct jp *j, char *r, char **out, size_t *len)
{
	char *w = r;
	*out = j->p;
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
				long cp, lo;
				if (j->end - r < 4 || (cp = cv_json_hex4(r)) < 0)
					return jfail(j, "JSON: bad \\u escape");
				r += 4;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return jfail(j, "JSON: lone low surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (j->end - r < 6 || r[0] != '\\' || r[1] != 'u' ||
					    (lo = cv_json_hex4(r + 2)) < 0xdc00 || lo > 0xdfff)
						return jfail(j, "JSON: lone high surrogate");
					r += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				w += cv_utf8_put(w, (uint32_t)cp);
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
		size_t n = cv_utf8_seq((const unsigned char *)r, (size_t)(j->end - r));
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

#ifdef SWAR_DIGITS
/* True when the 8 bytes of v are all ASCII digits. A carry out of a byte
 * only comes from a byte that fails the test itself. */
static inline bool is_8digits(uint64_t v)
{
	return ((v & 0xf0f0f0f0f0f0f0f0ull) |
	        (((v + 0x0606060606060606ull) & 0xf0f0f0f0f0f0f0f0ull) >> 4)) ==
	       0x3333333333333333ull;
}

/* The value of 8 ASCII digits, the first in the lowest byte (as loaded on
 * a little-endian machine). */
static inline uint32_t parse_8digits(uint64_t v)
{
	v -= 0x3030303030303030ull;
	v = v * 10 + (v >> 8);
	v = ((v & 0x000000ff000000ffull) * (100 + (1000000ull << 32)) +
	     ((v >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))) >>
	    32;
	return (uint32_t)v;
}
#endif

/* Accumulates the digits at *pp (< e) into w, unchecked (w wraps past 19
 * digits, as w * 10 + d would); leaves *pp after them. */
static inline uint64_t digits_acc(char **pp, char *e, uint64_t w)
{
	char *p = *pp;
#ifdef SWAR_DIGITS
	while (e - p >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		if (!is_8digits(v))
			break;
		w = w * 100000000u + parse_8digits(v);
		p += 8;
	}
#endif
	for (; p < e && *p >= '0' && *p <= '9'; p++)
		w = w * 10 + (uint64_t)(*p - '0');
	*pp = p;
	return w;
}

/* A number at the cursor: integer when it has no fraction nor exponent. */
static int jnumber(struct jp *j, bool *is_int, int64_t *iv, double *dv)
{
	jws(j);
	char *s = j->p, *p = j->p, *e = j->end;
	bool neg = false, integer = true, exact = true;
	/* The value accumulates while the grammar is checked: one pass. */
	uint64_t w = 0;
	int sig = 0, q = 0;
	if (p < e && *p == '-') {
		neg = true;
		p++;
	}
	/* Digits accumulate unchecked: past 19 significant ones w wraps, and
	 * `exact` turns false from the count alone. */
	if (p < e && *p == '0') {
		p++;
	} else if (p < e && *p >= '1' && *p <= '9') {
		char *d0 = p;
		w = digits_acc(&p, e, w);
		sig = (int)(p - d0);
	} else {
		return jfail(j, "JSON: expected a value");
	}
	if (p < e && *p == '.') {
		integer = false;
		char *f0 = ++p;
		if (!w) /* leading zeros of a fraction are not significant */
			while (p < e && *p == '0')
				p++;
		char *fs = p;
		w = digits_acc(&p, e, w);
		if (p == f0)
			return jfail(j, "JSON: bad number");
		sig += (int)(p - fs);
		q -= (int)(p - f0);
	}
	exact = sig <= 19;
	if (p < e && (*p == 'e' || *p == 'E')) {
		integer = false;
		p++;
		bool eneg = false;
		if (p < e && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		if (p >= e || *p < '0' || *p > '9')
			return jfail(j, "JSON: bad number");
		int x = 0;
		for (; p < e && *p >= '0' && *p <= '9'; p++) {
			if (x < 100000)
				x = x * 10 + (*p - '0');
		}
		q += eneg ? -x : x;
	}
	*is_int = integer;
	if (integer) {
		/* Up to 19 digits fit w exactly; more never fit an int64. */
		if (!exact || w > (uint64_t)INT64_MAX + neg)
			return jfail(j, "JSON: integer out of range");
		*iv = neg ? (int64_t)(0 - w) : (int64_t)w;
	} else if (!exact || !decimal_to_double(w, q, neg, dv)) {
		if (parse_double(s, p, dv) < 0)
			return jfail(j, "JSON: number out of range");
	} else if (!isfinite(*dv)) {
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
				if (jstring(j, &s, &n) < 0 ||
				    jexpect(j, ':', "JSON: expected ':'") < 0)
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

/* A key against a string literal, its length known at compile time. */
#define KEY_IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

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
		tags[n++] = (struct cv_tag){
		        .key = k, .value = v, .key_len = (uint32_t)kl, .value_len = (uint32_t)vl};
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
		struct cv_field val = {.key = k, .key_len = (uint16_t)kl};
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
	struct jp j = {.p = buf, .end = buf + len};
	bool have_m = false, have_ts = false, have_tags = false, have_fields = false;
	int rc = jexpect(&j, '{', "JSON: expected an object");
	bool first = true;
	char *k;
	size_t kl;
	record->timestamp = default_ts;
	while (rc == 0 && (rc = jmember(&j, &first, &k, &kl)) == 1) {
		rc = 0;
		if (KEY_IS(k, kl, "measurement")) {
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
		} else if (KEY_IS(k, kl, "timestamp")) {
			bool is_int;
			int64_t iv;
			double dv;
			if (have_ts) {
				rc = jfail(&j, "JSON: \"timestamp\" given twice");
			} else if ((rc = jnumber(&j, &is_int, &iv, &dv)) == 0) {
				if (!is_int)
					rc = jfail(&j,
					           "JSON: timestamp must be integer nanoseconds");
				record->timestamp = iv;
			}
			have_ts = true;
		} else if (KEY_IS(k, kl, "tags")) {
			rc = have_tags ? jfail(&j, "JSON: \"tags\" given twice")
			               : jtags(&j, api, batch, record);
			have_tags = true;
		} else if (KEY_IS(k, kl, "fields")) {
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

/* A delimiter of a name: ',' and ' ', and '=' but in a measurement. */
static inline bool lp_delim(char c, bool equals)
{
	return c == ',' || c == ' ' || (equals && c == '=');
}

/* Reads a token up to an unescaped delimiter (or the end), removing the
 * backslash before an escaped delimiter in place. A backslash before
 * anything else stays, as InfluxDB reads it. */
static char *lp_token(char **cur, char *end, bool equals, size_t *len)
{
	char *r = *cur, *w = *cur, *start = *cur;
	while (r < end) {
		char c = *r;
		if (c == '\\' && r + 1 < end && lp_delim(r[1], equals)) {
			*w++ = r[1];
			r += 2;
			continue;
		}
		if (lp_delim(c, equals))
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
static int lp_float(const char *s, const char *e, double *out)
{
	const char *p = s;
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
	return parse_double(s, e, out);
}

int cv_parse_double(const char *s, size_t len, double *out)
{
	return lp_float(s, s + len, out);
}

static int lp_value(char *s, char *e, struct cv_field *f)
{
	static const char *const trues[] = {"t", "T", "true", "True", "TRUE", NULL};
	static const char *const falses[] = {"f", "F", "false", "False", "FALSE", NULL};
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

	char *m = lp_token(&p, end, false, &n);
	if (n == 0 || !cv_influx_first_ok(*m, true)) {
		*reason = "line protocol: empty measurement, comment or leading white space";
		return CV_EINVAL;
	}
	if (!cv_influx_name_valid(m, n)) {
		*reason = "line protocol: stray backslash in the measurement";
		return CV_EINVAL;
	}
	record->measurement = m;
	record->measurement_len = (uint32_t)n;

	struct cv_tag tags[CV_DECODE_MAX_TAGS];
	size_t ntags = 0;
	while (p < end && *p == ',') {
		p++;
		size_t kl, vl;
		char *k = lp_token(&p, end, true, &kl);
		if (p >= end || *p != '=' || kl == 0) {
			*reason = "line protocol: bad tag";
			return CV_EINVAL;
		}
		p++;
		char *v = lp_token(&p, end, true, &vl);
		if (vl == 0 || (p < end && *p == '=')) {
			*reason = "line protocol: bad tag value";
			return CV_EINVAL;
		}
		if (ntags == CV_DECODE_MAX_TAGS) {
			*reason = "line protocol: too many tags";
			return CV_EINVAL;
		}
		if (!cv_influx_name_valid(k, kl) || !cv_influx_name_valid(v, vl)) {
			*reason = "line protocol: stray backslash in a tag";
			return CV_EINVAL;
		}
		if (cv_influx_is_time_key(k, kl)) {
			*reason = "line protocol: tag key \"time\"";
			return CV_EINVAL;
		}
		for (size_t i = 0; i < ntags; i++) {
			if (tags[i].key_len == kl && memcmp(tags[i].key, k, kl) == 0) {
				*reason = "line protocol: tag key given twice";
				return CV_EINVAL;
			}
		}
		tags[ntags++] = (struct cv_tag){
		        .key = k, .value = v, .key_len = (uint32_t)kl, .value_len = (uint32_t)vl};
	}
	if (p >= end || *p != ' ') {
		*reason = "line protocol: no fields";
		return CV_EINVAL;
	}
	/* The series key as written, which is as the encoder writes it: the
	 * escapes the decoder takes are the ones the encoder makes. */
	size_t series_len = (size_t)(p - buf);
	while (p < end && *p == ' ')
		p++;

	for (;;) {
		size_t kl;
		char *k = lp_token(&p, end, true, &kl);
		if (p >= end || *p != '=' || kl == 0 || kl > UINT16_MAX) {
			*reason = "line protocol: bad field key";
			return CV_EINVAL;
		}
		if (!cv_influx_first_ok(*k, false) || !cv_influx_name_valid(k, kl) ||
		    cv_influx_is_time_key(k, kl)) {
			*reason = "line protocol: bad field key";
			return CV_EINVAL;
		}
		if (series_len + 4 + (size_t)(p - k) > CV_INFLUX_MAX_KEY) {
			*reason = "line protocol: series key too long";
			return CV_EINVAL;
		}
		p++;
		struct cv_field val = {.key = k, .key_len = (uint16_t)kl};
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
