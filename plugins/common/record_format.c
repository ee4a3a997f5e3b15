/* record_format.c - JSON and InfluxDB line protocol encoders; see the header
 * for the exact output and what is refused. */
#include "record_format.h"

#include "text_codec.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Buffer                                                                     */
/* ------------------------------------------------------------------------ */

int cv_buf_reserve(struct cv_buf *buf, size_t extra)
{
	if (buf->cap - buf->len >= extra)
		return 0;
	if (extra > SIZE_MAX / 2 - buf->len)
		return CV_ENOMEM;
	size_t need = buf->len + extra;
	size_t cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap *= 2;
	char *data = realloc(buf->data, cap);
	if (!data)
		return CV_ENOMEM;
	buf->data = data;
	buf->cap = cap;
	return 0;
}

int cv_buf_append(struct cv_buf *buf, const void *data, size_t len)
{
	int rc = cv_buf_reserve(buf, len);
	if (rc)
		return rc;
	if (len)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	return 0;
}

void cv_buf_reset(struct cv_buf *buf)
{
	buf->len = 0;
}

void cv_buf_free(struct cv_buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                    */
/* ------------------------------------------------------------------------ */

static const char digit_pairs[200] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* Decimal digits of v (1..20). */
static int count_digits64(uint64_t v);

static int format_uint64(char *out, uint64_t v)
{
	/* Straight into `out`, from the end: no scratch copy. */
	int len = count_digits64(v);
	char *p = out + len;
	/* Eight digits per 64-bit division, then 32-bit arithmetic (cheaper
	 * than a 64-bit division per pair of digits). */
	while (v >= 100000000u) {
		uint32_t lo = (uint32_t)(v % 100000000u);
		v /= 100000000u;
		uint32_t hi4 = lo / 10000, lo4 = lo % 10000;
		p -= 8;
		memcpy(p + 6, digit_pairs + (lo4 % 100) * 2, 2);
		memcpy(p + 4, digit_pairs + (lo4 / 100) * 2, 2);
		memcpy(p + 2, digit_pairs + (hi4 % 100) * 2, 2);
		memcpy(p, digit_pairs + (hi4 / 100) * 2, 2);
	}
	uint32_t u = (uint32_t)v;
	while (u >= 100) {
		p -= 2;
		memcpy(p, digit_pairs + (u % 100) * 2, 2);
		u /= 100;
	}
	if (u >= 10) {
		p -= 2;
		memcpy(p, digit_pairs + u * 2, 2);
	} else {
		*--p = (char)('0' + u);
	}
	return len;
}

int cv_format_int64(char *out, int64_t value)
{
	if (value < 0) {
		/* Negate in unsigned arithmetic: INT64_MIN has no positive twin. */
		out[0] = '-';
		return 1 + format_uint64(out + 1, 0 - (uint64_t)value);
	}
	return format_uint64(out, (uint64_t)value);
}

/*
 * Shortest round-trip digits of a double: Schubfach (Raffaello Giulietti,
 * "The Schubfach way to render doubles", 2020). From the double's two
 * neighbouring midpoints scaled by a 128-bit power of ten (pow10_table.h,
 * generated with exact arithmetic), it picks the shortest decimal inside the
 * rounding interval, the closest to the value when several are (ties to
 * even). Always shortest and always read back as the same double; three
 * 128-bit products, no loop over digits.
 */
#include "pow10_table.h"

#ifndef __SIZEOF_INT128__
#error "the double formatter needs unsigned __int128 (gcc or clang, 64-bit)"
#endif

/* clang-format off */
/* 10^0 .. 10^19 */
static const uint64_t pow10_u64[20] = {
	1ull, 10ull, 100ull, 1000ull,
	10000ull, 100000ull, 1000000ull, 10000000ull,
	100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
	1000000000000ull, 10000000000000ull, 100000000000000ull, 1000000000000000ull,
	10000000000000000ull, 100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};
/* clang-format on */

static int count_digits64(uint64_t v)
{
	/* log10 from the bit length (1233 / 4096 ~ log10(2)), then one
	 * correction: no loop. */
	uint64_t x = v | 1; /* 0 has one digit, as 1 */
	int t = ((64 - __builtin_clzll(x)) * 1233) >> 12;
	return t + 1 - (x < pow10_u64[t]);
}

/* floor(x / 2^n) for negative x too (arithmetic shift, as gcc and clang
 * implement >> on signed values). */
static int floor_shift(int x, int n)
{
	return x >> n;
}

/* floor(g * cp / 2^128), its lowest bit set when the rest is not zero
 * ("round to odd": keeps whether the scaled value was exact). */
static uint64_t round_to_odd(const uint64_t g[2], uint64_t cp)
{
	unsigned __int128 x = (unsigned __int128)g[1] * cp;
	unsigned __int128 y = (unsigned __int128)g[0] * cp + (uint64_t)(x >> 64);
	return (uint64_t)(y >> 64) | ((uint64_t)y > 1);
}

/* v > 0, finite, as digits * 10^*exp10 with the fewest digits. */
static uint64_t shortest_decimal(double v, int *exp10)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	const uint64_t frac = bits & ((1ull << 52) - 1);
	const int biased = (int)((bits >> 52) & 0x7ff);
	uint64_t c;
	int q;
	if (biased) {
		c = frac | (1ull << 52);
		q = biased - 1075;
		/* Integers below 2^53 are their own shortest digits. */
		if (q <= 0 && q > -53 && !(c & ((1ull << -q) - 1))) {
			*exp10 = 0;
			return c >> -q;
		}
	} else {
		c = frac;
		q = -1074;
	}
	const bool even = !(c & 1);
	/* At a power of two the lower neighbour is half as far. */
	const bool lower_closer = frac == 0 && biased > 1;
	const uint64_t cbl = 4 * c - 2 + lower_closer;
	const uint64_t cb = 4 * c;
	const uint64_t cbr = 4 * c + 2;

	/* k = floor(log10(2^q)), or floor(log10(3/4 * 2^q)) when the lower
	 * neighbour is closer; h = q + floor(log2(10^-k)) + 1, in 1..4. */
	const int k = floor_shift(q * 1262611 - (lower_closer ? 524031 : 0), 22);
	const int h = q + floor_shift(-k * 1741647, 19) + 1;
	const uint64_t *g = cv_pow10_128[-k - CV_POW10_E_MIN];
	const uint64_t vbl = round_to_odd(g, cbl << h);
	const uint64_t vb = round_to_odd(g, cb << h);
	const uint64_t vbr = round_to_odd(g, cbr << h);
	const uint64_t lower = vbl + !even;
	const uint64_t upper = vbr - !even;

	/* One digit fewer than the scaled value, if either candidate fits. */
	const uint64_t s = vb / 4;
	if (s >= 10) {
		const uint64_t sp = s / 10;
		const bool up_inside = lower <= 40 * sp;
		const bool wp_inside = 40 * sp + 40 <= upper;
		if (up_inside != wp_inside) {
			*exp10 = k + 1;
			return sp + wp_inside;
		}
	}
	const bool u_inside = lower <= 4 * s;
	const bool w_inside = 4 * s + 4 <= upper;
	if (u_inside != w_inside) {
		*exp10 = k;
		return s + w_inside;
	}
	/* Both fit: the closer one, ties to even. */
	const uint64_t mid = 4 * s + 2;
	const bool round_up = vb > mid || (vb == mid && (s & 1));
	*exp10 = k;
	return s + round_up;
}

/* Digits of v > 0 (finite) into `digits` (at most 17); v = digits * 10^*k. */
static int shortest_digits(double v, char *digits, int *k)
{
	uint64_t d = shortest_decimal(v, k);
	/* The shortest has no trailing zeros but the paths above may leave
	 * some (an integer, or a candidate rounded up to 10^n). */
	while (d && d % 10 == 0) {
		d /= 10;
		++*k;
	}
	return format_uint64(digits, d);
}

int cv_format_double(char *out, double value)
{
	uint64_t bits;
	memcpy(&bits, &value, sizeof(bits));
	if (((bits >> 52) & 0x7ff) == 0x7ff)
		return CV_EINVAL; /* NaN or an infinity */

	char *p = out;
	if (bits >> 63) {
		*p++ = '-';
		value = -value;
	}
	if (value == 0.0) {
		memcpy(p, "0.0", 4);
		return (int)(p - out) + 3;
	}

	/* Padded with '0': the copies below move fixed 16 or 24 bytes (a
	 * variable-length copy of a few bytes costs more than the digits), and
	 * an integer's trailing zeros are already there. */
	char digits[40];
	memset(digits, '0', sizeof(digits));
	int k = 0;
	int len = shortest_digits(value, digits, &k);
	int exp10 = len + k - 1; /* scientific exponent: d.ddd * 10^exp10 */

	if (exp10 >= -4 && exp10 < 16) {
		/* Fixed notation, as Python's repr between 1e-4 and 1e16. */
		if (k >= 0) {
			memcpy(p, digits, 16); /* len + k = exp10 + 1 <= 16 */
			p += len + k;
			memcpy(p, ".0", 2);
			p += 2;
		} else if (len + k > 0) {
			int ints = len + k;
			memcpy(p, digits, 16);
			p += ints;
			*p++ = '.';
			memcpy(p, digits + ints, 16); /* len - ints < 16 */
			p += len - ints;
		} else {
			int zeros = -(len + k); /* 1..3 */
			memcpy(p, "0.000", 5);
			p += 2 + zeros;
			memcpy(p, digits, 24);
			p += len;
		}
	} else {
		*p++ = digits[0];
		if (len > 1) {
			*p++ = '.';
			memcpy(p, digits + 1, 16);
			p += len - 1;
		}
		*p++ = 'e';
		if (exp10 < 0) {
			*p++ = '-';
			exp10 = -exp10;
		} else {
			*p++ = '+';
		}
		if (exp10 >= 100) {
			*p++ = (char)('0' + exp10 / 100);
			exp10 %= 100;
		}
		*p++ = digit_pairs[exp10 * 2];
		*p++ = digit_pairs[exp10 * 2 + 1];
	}
	*p = '\0';
	return (int)(p - out);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */
/* ------------------------------------------------------------------------ */

/* Writes the JSON string literal of s (with quotes) at out, which has room
 * for JSON_STR_MAX(n) bytes. Returns the end, or NULL for invalid UTF-8
 * under CV_JSON_REFUSE. */
static inline char *json_string(char *out, const char *s, size_t n, enum cv_json_bad_utf8 bad)
{
	*out++ = '"';
	if (!(out = cv_json_escape(out, s, n, bad)))
		return NULL;
	*out++ = '"';
	return out;
}

/* Room a JSON string literal of n bytes may need. */
#define JSON_STR_MAX(n) (CV_JSON_ESCAPED_MAX(n) + 2)
/* Room a number may need (CV_DOUBLE_MAX_TEXT covers an int64 too). */
#define NUM_MAX (CV_DOUBLE_MAX_TEXT + 2)

/* A float that has no JSON form: null, or the token Python's json module
 * reads (NaN, Infinity, -Infinity) under CV_JSON_VERBATIM. */
static char *json_nonfinite(char *p, double v, enum cv_json_bad_utf8 bad)
{
	const char *text = bad == CV_JSON_REPLACE ? "null"
	                   : v != v               ? "NaN"
	                   : v < 0                ? "-Infinity"
	                                          : "Infinity";
	size_t n = strlen(text);
	memcpy(p, text, n);
	return p + n;
}

/* The JSON encoder; `bad` is a constant at each call, so the strict one
 * compiles to its own copy. */
static inline __attribute__((always_inline)) int
encode_json(struct cv_buf *buf, const struct cv_record *r, enum cv_json_bad_utf8 bad)
{
	/* What the JSON decoder refuses (record_decode.h); the dead-letter forms
	 * write it anyway. */
	const bool strict = bad == CV_JSON_REFUSE;
	if (strict && (r->measurement_len == 0 || r->nfields == 0 || r->ntags > CV_RECORD_MAX_TAGS))
		return CV_EINVAL;
	/* One reservation for the worst case, then plain stores. */
	size_t need = 64 + JSON_STR_MAX(r->measurement_len) + NUM_MAX;
	for (uint16_t i = 0; i < r->ntags; i++)
		need += JSON_STR_MAX(r->tags[i].key_len) + JSON_STR_MAX(r->tags[i].value_len) + 2;
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		need += JSON_STR_MAX(f->key_len) + 2 +
		        (f->type == CV_FIELD_STRING ? JSON_STR_MAX(f->str_len) : NUM_MAX);
	}
	int rc = cv_buf_reserve(buf, need);
	if (rc)
		return rc;

	char *p = buf->data + buf->len;
	memcpy(p, "{\"measurement\":", 15);
	p += 15;
	if (!(p = json_string(p, r->measurement, r->measurement_len, bad)))
		return CV_EINVAL;
	memcpy(p, ",\"timestamp\":", 13);
	p += 13;
	p += cv_format_int64(p, r->timestamp);
	memcpy(p, ",\"tags\":{", 9);
	p += 9;
	for (uint16_t i = 0; i < r->ntags; i++) {
		const struct cv_tag *t = &r->tags[i];
		if (strict && t->key_len == 0)
			return CV_EINVAL;
		if (i)
			*p++ = ',';
		if (!(p = json_string(p, t->key, t->key_len, bad)))
			return CV_EINVAL;
		*p++ = ':';
		if (!(p = json_string(p, t->value, t->value_len, bad)))
			return CV_EINVAL;
	}
	memcpy(p, "},\"fields\":{", 12);
	p += 12;
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		if (strict && f->key_len == 0)
			return CV_EINVAL;
		if (i)
			*p++ = ',';
		if (!(p = json_string(p, f->key, f->key_len, bad)))
			return CV_EINVAL;
		*p++ = ':';
		switch (f->type) {
		case CV_FIELD_FLOAT: {
			int n = cv_format_double(p, f->v.f);
			if (n >= 0)
				p += n;
			else if (strict)
				return CV_EINVAL;
			else
				p = json_nonfinite(p, f->v.f, bad);
			break;
		}
		case CV_FIELD_INT: p += cv_format_int64(p, f->v.i); break;
		case CV_FIELD_BOOL:
			if (f->v.b) {
				memcpy(p, "true", 4);
				p += 4;
			} else {
				memcpy(p, "false", 5);
				p += 5;
			}
			break;
		case CV_FIELD_STRING:
			if (!(p = json_string(p, f->v.s, f->str_len, bad)))
				return CV_EINVAL;
			break;
		default:
			if (strict)
				return CV_EINVAL;
			memcpy(p, "null", 4);
			p += 4;
		}
	}
	*p++ = '}';
	*p++ = '}';
	/* Only now does the record become part of the buffer: an error above
	 * left buf->len untouched. */
	buf->len = (size_t)(p - buf->data);
	return 0;
}

int cv_record_encode_json(struct cv_buf *buf, const struct cv_record *r)
{
	return encode_json(buf, r, CV_JSON_REFUSE);
}

int cv_record_encode_json_any(struct cv_buf *buf, const struct cv_record *r,
                              enum cv_json_bad_utf8 bad)
{
	switch (bad) {
	case CV_JSON_REPLACE: return encode_json(buf, r, CV_JSON_REPLACE);
	case CV_JSON_VERBATIM: return encode_json(buf, r, CV_JSON_VERBATIM);
	default: return encode_json(buf, r, CV_JSON_REFUSE);
	}
}

/* ------------------------------------------------------------------------ */
/* InfluxDB line protocol                                                     */
/* ------------------------------------------------------------------------ */

/* What a byte of a measurement, tag key, tag value or field key needs. */
enum lp_byte {
	LP_PLAIN = 0,
	LP_ESCAPE,    /* ',' and ' ': backslash-escaped */
	LP_EQUALS,    /* '=': escaped except in a measurement */
	LP_BACKSLASH, /* kept, unless it would escape the next byte (refused) */
	LP_REFUSE,    /* newline and carriage return: they end the line */
};

/* clang-format off */
static const unsigned char lp_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 4, 0, 0, /*  '\n' and '\r' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /*  ' ' and ',' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, /*  '=' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, /*  '\\' */
};
/* clang-format on */

/* A backslash at s[i] that line protocol can carry: not last, and not
 * before a byte it would escape. */
static inline bool lp_backslash_ok(const char *s, size_t i, size_t n)
{
	if (i + 1 == n)
		return false;
	char next = s[i + 1];
	return next != ',' && next != '=' && next != ' ' && next != '"';
}

bool cv_influx_name_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned k = lp_class[(unsigned char)s[i]];
		if (__builtin_expect(k >= LP_BACKSLASH, 0) &&
		    (k == LP_REFUSE || !lp_backslash_ok(s, i, n)))
			return false;
	}
	return true;
}

/* Writes an escaped measurement, tag key, tag value or field key at out
 * (room for 2 * n). `equals` also escapes '='. Returns the end, or NULL
 * for what line protocol cannot carry (see the header). */
static char *influx_name(char *out, const char *s, size_t n, bool equals)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned k = lp_class[(unsigned char)c];
		if (__builtin_expect(k != LP_PLAIN, 0)) {
			switch ((enum lp_byte)k) {
			case LP_PLAIN: break;
			case LP_ESCAPE: *out++ = '\\'; break;
			case LP_EQUALS:
				if (equals)
					*out++ = '\\';
				break;
			case LP_BACKSLASH:
				if (!lp_backslash_ok(s, i, n))
					return NULL;
				break;
			case LP_REFUSE: return NULL;
			}
		}
		*out++ = c;
	}
	return out;
}

/* Writes a double-quoted string field value at out (room for 2 * n + 2). */
static char *influx_string(char *out, const char *s, size_t n)
{
	*out++ = '"';
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '"' || c == '\\')
			*out++ = '\\';
		else if (c == '\n' || c == '\r')
			return NULL;
		*out++ = c;
	}
	*out++ = '"';
	return out;
}

bool cv_influx_is_time_key(const char *s, size_t n)
{
	return n == 4 && memcmp(s, "time", 4) == 0;
}

/* Bytewise order of tag keys, as Go's bytes.Compare (which InfluxDB uses). */
static int tag_key_cmp(const struct cv_tag *a, const struct cv_tag *b)
{
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = n ? memcmp(a->key, b->key, n) : 0;
	if (c)
		return c;
	return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* Writes ",key=value" for one tag; NULL if it cannot be written. */
static char *influx_tag(char *p, const struct cv_tag *t)
{
	if (t->key_len == 0 || cv_influx_is_time_key(t->key, t->key_len))
		return NULL;
	if (t->value_len == 0)
		return p; /* no empty tag values in line protocol: omit the tag */
	*p++ = ',';
	if (!(p = influx_name(p, t->key, t->key_len, true)))
		return NULL;
	*p++ = '=';
	return influx_name(p, t->value, t->value_len, true);
}

/* Writes the tags sorted by key; NULL on a bad or duplicate tag. */
static char *influx_tags(char *p, const struct cv_record *r)
{
	const struct cv_tag *tags = r->tags;
	uint16_t n = r->ntags;
	bool sorted = true;
	for (uint16_t i = 1; i < n; i++) {
		int c = tag_key_cmp(&tags[i - 1], &tags[i]);
		if (c == 0)
			return NULL; /* duplicate: InfluxDB refuses the point */
		if (c > 0)
			sorted = false;
	}
	if (sorted) {
		for (uint16_t i = 0; i < n && p; i++)
			p = influx_tag(p, &tags[i]);
		return p;
	}
	if (n <= 64) {
		/* Insertion sort of indexes: records carry a handful of tags. */
		uint16_t order[64];
		for (uint16_t i = 0; i < n; i++) {
			uint16_t j = i;
			while (j > 0 && tag_key_cmp(&tags[order[j - 1]], &tags[i]) > 0) {
				order[j] = order[j - 1];
				j--;
			}
			order[j] = i;
		}
		for (uint16_t i = 0; i < n && p; i++) {
			if (i && tag_key_cmp(&tags[order[i - 1]], &tags[order[i]]) == 0)
				return NULL;
			p = influx_tag(p, &tags[order[i]]);
		}
		return p;
	}
	/* Many tags: select the next smallest each time (quadratic, but needs no
	 * memory and such records are rare). */
	const struct cv_tag *prev = NULL;
	for (uint16_t out = 0; out < n && p; out++) {
		const struct cv_tag *best = NULL;
		for (uint16_t i = 0; i < n; i++) {
			if (prev && tag_key_cmp(&tags[i], prev) <= 0)
				continue;
			int c = best ? tag_key_cmp(&tags[i], best) : -1;
			if (c == 0)
				return NULL; /* duplicate */
			if (c < 0)
				best = &tags[i];
		}
		if (!best)
			return NULL; /* only duplicates were left */
		p = influx_tag(p, best);
		prev = best;
	}
	return p;
}

int cv_record_encode_influx(struct cv_buf *buf, const struct cv_record *r)
{
	if (r->measurement_len == 0 || r->nfields == 0)
		return CV_EINVAL;
	if (!cv_influx_first_ok(r->measurement[0], true) || r->ntags > CV_RECORD_MAX_TAGS)
		return CV_EINVAL; /* a comment line, white space, more tags than read */

	size_t need = 2 * (size_t)r->measurement_len + 24;
	for (uint16_t i = 0; i < r->ntags; i++)
		need += 2 * ((size_t)r->tags[i].key_len + r->tags[i].value_len) + 2;
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		need += 2 * (size_t)f->key_len + 2 +
		        (f->type == CV_FIELD_STRING ? 2 * (size_t)f->str_len + 2 : NUM_MAX);
	}
	int rc = cv_buf_reserve(buf, need);
	if (rc)
		return rc;

	char *start = buf->data + buf->len;
	char *p = influx_name(start, r->measurement, r->measurement_len, false);
	if (!p || !(p = influx_tags(p, r)))
		return CV_EINVAL;
	size_t key_len = (size_t)(p - start);

	*p++ = ' ';
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		if (f->key_len == 0 || !cv_influx_first_ok(f->key[0], false) ||
		    cv_influx_is_time_key(f->key, f->key_len))
			return CV_EINVAL;
		if (i)
			*p++ = ',';
		char *k = p;
		if (!(p = influx_name(p, f->key, f->key_len, true)))
			return CV_EINVAL;
		if (key_len + 4 + (size_t)(p - k) > CV_INFLUX_MAX_KEY)
			return CV_EINVAL;
		*p++ = '=';
		switch (f->type) {
		case CV_FIELD_FLOAT: {
			int n = cv_format_double(p, f->v.f);
			if (n < 0)
				return CV_EINVAL;
			p += n;
			break;
		}
		case CV_FIELD_INT:
			p += cv_format_int64(p, f->v.i);
			*p++ = 'i';
			break;
		case CV_FIELD_BOOL: *p++ = f->v.b ? 't' : 'f'; break;
		case CV_FIELD_STRING:
			if (!(p = influx_string(p, f->v.s, f->str_len)))
				return CV_EINVAL;
			break;
		default: return CV_EINVAL;
		}
	}
	*p++ = ' ';
	p += cv_format_int64(p, r->timestamp);
	buf->len = (size_t)(p - buf->data);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* By name                                                                    */
/* ------------------------------------------------------------------------ */

const char *const cv_record_format_names[] = {"json", "influx", NULL};

int cv_record_format_parse(const char *name)
{
	for (int i = 0; name && cv_record_format_names[i]; i++) {
		if (strcmp(name, cv_record_format_names[i]) == 0)
			return i;
	}
	return CV_EINVAL;
}

const char *cv_record_format_name(enum cv_record_format format)
{
	if ((unsigned)format > CV_FORMAT_INFLUX)
		return NULL;
	return cv_record_format_names[format];
}

int cv_record_encode(struct cv_buf *buf, enum cv_record_format format, const struct cv_record *r)
{
	switch (format) {
	case CV_FORMAT_JSON: return cv_record_encode_json(buf, r);
	case CV_FORMAT_INFLUX: return cv_record_encode_influx(buf, r);
	}
	return CV_EINVAL;
}
