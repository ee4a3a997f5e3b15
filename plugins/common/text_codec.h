/*
 * text_codec.h - the one UTF-8 validator, JSON string escaper, base64
 * encoder and FNV-1a hash of Conveyor. Built as the static library
 * `cv_text` and compiled into the engine and into every plugin that needs
 * it (plugins link nothing of the host at run time; sharing the source is
 * how they share the code).
 */
#ifndef CONVEYOR_TEXT_CODEC_H
#define CONVEYOR_TEXT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                      */
/* ------------------------------------------------------------------------ */

/* Length (1 to 4) of the valid UTF-8 sequence at s, of which n > 0 bytes
 * are readable; 0 when the bytes there are not UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF, no truncated sequence). */
size_t cv_utf8_seq(const unsigned char *s, size_t n);

/* Offset of the first byte of s that does not start a valid sequence, or
 * len when all of s is valid UTF-8. NUL is valid (it is U+0000). */
size_t cv_utf8_check(const char *s, size_t len);

static inline bool cv_utf8_valid(const char *s, size_t len)
{
	return cv_utf8_check(s, len) == len;
}

/* Writes the UTF-8 bytes of cp (at most U+10FFFF, not a surrogate) at out,
 * which has room for 4; returns how many (1 to 4). */
static inline size_t cv_utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* ------------------------------------------------------------------------ */
/* JSON strings                                                               */
/* ------------------------------------------------------------------------ */

/* 1 for the bytes a JSON string cannot carry as they are: the quote, the
 * backslash and control characters (escaped), and everything past ASCII
 * (checked as UTF-8). Shared by the escaper and the JSON record decoder. */
extern const unsigned char cv_json_special[256];

/* Nonzero when one of the 8 bytes of v is a cv_json_special byte. Borrows
 * between bytes may flag a plain byte too, which only sends the word to the
 * slow path; a special byte is never missed. On a little-endian machine the
 * lowest flagged byte is exact (borrows run towards later bytes only). */
static inline uint64_t cv_json_swar_special(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
	uint64_t t = ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b) | v;
	return t & high;
}

/* The value of the hex digit c (either case), -1 when it is none. */
static inline int cv_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The code unit (0 to 0xffff) of a \uXXXX escape whose 4 hex digits start
 * at s, which has 4 bytes readable; -1 when one of them is not a hex digit. */
static inline long cv_json_hex4(const char *s)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int d = cv_hex_digit(s[i]);
		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* What the escaper does with bytes that are not UTF-8. */
enum cv_json_bad_utf8 {
	CV_JSON_REFUSE = 0, /* fail: cv_json_escape returns NULL */
	CV_JSON_REPLACE,    /* each such byte becomes U+FFFD: valid JSON, lossy */
	CV_JSON_VERBATIM,   /* copied as they are: the output is not UTF-8 */
};

/* Room cv_json_escape may need for n bytes of input (quotes not included). */
#define CV_JSON_ESCAPED_MAX(n) (6 * (size_t)(n))

/* The escaper from byte i on, one byte at a time: cv_json_escape's slow
 * path, out of line. */
char *cv_json_escape_from(char *out, const char *s, size_t i, size_t len,
                          enum cv_json_bad_utf8 bad);

/* Writes the inside of the JSON string literal of the len bytes at s (no
 * quotes) at out, which has room for CV_JSON_ESCAPED_MAX(len) bytes. The
 * quote and the backslash are escaped, so are control characters (\b \f \n
 * \r \t, the others \u00XX); valid UTF-8 is copied. Returns the end of what
 * it wrote, or NULL for bytes that are not UTF-8 under CV_JSON_REFUSE.
 * Inline: plain ASCII (most names and values) goes 8 bytes at a time. */
static inline char *cv_json_escape(char *out, const char *str, size_t n, enum cv_json_bad_utf8 bad)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	/* 8 bytes at a time while none needs escaping or is past ASCII; the
	 * first word that has one goes to the byte loop, from that word. */
	while (n - i >= 8) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		if (cv_json_swar_special(v))
			break;
		memcpy(out, &v, 8);
		out += 8;
		i += 8;
	}
	if (n < 4) {
		for (; i < n; i++) {
			if (cv_json_special[s[i]])
				return cv_json_escape_from(out, str, i, n, bad);
			*out++ = (char)s[i];
		}
		return out;
	}
	if (n < 8) {
		/* 4 to 7 bytes: the first 4 and the last 4, overlapping. */
		uint32_t lo, hi;
		memcpy(&lo, s, 4);
		memcpy(&hi, s + n - 4, 4);
		if (!cv_json_swar_special(lo | (uint64_t)hi << 32)) {
			memcpy(out, &lo, 4);
			memcpy(out + n - 4, &hi, 4);
			return out + n;
		}
	} else if (i < n && n - i < 8) {
		/* The last bytes as the last 8, overlapping what the loop above
		 * copied already (so checked plain). */
		uint64_t v;
		memcpy(&v, s + n - 8, 8);
		if (!cv_json_swar_special(v)) {
			memcpy(out - i + (n - 8), &v, 8);
			return out + (n - i);
		}
	}
	return i < n ? cv_json_escape_from(out, str, i, n, bad) : out;
}

/* ------------------------------------------------------------------------ */
/* Base64 (RFC 4648, standard alphabet, with padding)                         */
/* ------------------------------------------------------------------------ */

#define CV_BASE64_LEN(n) (((size_t)(n) + 2) / 3 * 4)

/* Writes the base64 text of len bytes at out (room for CV_BASE64_LEN(len));
 * returns its length. No NUL. */
size_t cv_base64_encode(char *out, const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Hash                                                                       */
/* ------------------------------------------------------------------------ */

/* 32-bit FNV-1a of len bytes: for hash tables of short keys. */
static inline uint32_t cv_fnv1a32(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* 64-bit FNV-1a: cv_fnv1a64_more() goes on from h, the hash of the bytes
 * before (CV_FNV1A64_BASIS for none), so a hash can be taken in pieces:
 * cv_fnv1a64_more(cv_fnv1a64(a, n), b, m) == cv_fnv1a64(a then b, n + m). */
#define CV_FNV1A64_BASIS UINT64_C(0xcbf29ce484222325)

static inline uint64_t cv_fnv1a64_more(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * UINT64_C(0x100000001b3);
	return h;
}

static inline uint64_t cv_fnv1a64(const void *data, size_t len)
{
	return cv_fnv1a64_more(CV_FNV1A64_BASIS, data, len);
}

#endif
