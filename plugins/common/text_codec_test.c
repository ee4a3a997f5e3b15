/* text_codec_test.c - the UTF-8 validator against RFC 3629's edge cases, the
 * JSON escaper's three policies, base64 (RFC 4648 vectors), and the
 * dead-letter line: valid JSON (checked by the JSON record decoder's rules
 * through a small parser here), lossless for bytes that are not UTF-8. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dead_letter_format.h"
#include "record_format.h"
#include "text_codec.h"

static void test_utf8(void **state)
{
	static const struct {
		const char *s;
		size_t len, valid_prefix;
	} cases[] = {
	        {"", 0, 0},
	        {"plain ascii, longer than eight", 30, 30},
	        {"a\0b", 3, 3}, /* NUL is U+0000 */
	        {"caf\xc3\xa9", 5, 5},
	        {"\xe2\x82\xac", 3, 3},
	        {"\xf0\x9f\x98\x80", 4, 4},
	        {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF */
	        {"\xef\xbf\xbf", 3, 3},     /* U+FFFF is a character */
	        {"ab\xff", 3, 2},
	        {"\x80", 1, 0},             /* a lone continuation */
	        {"\xc0\xaf", 2, 0},         /* overlong '/' */
	        {"\xc1\xbf", 2, 0},         /* overlong */
	        {"\xe0\x80\xaf", 3, 0},     /* overlong */
	        {"\xe0\x9f\xbf", 3, 0},     /* overlong (U+07FF in 3 bytes) */
	        {"\xed\xa0\x80", 3, 0},     /* surrogate U+D800 */
	        {"\xed\xbf\xbf", 3, 0},     /* surrogate U+DFFF */
	        {"\xf0\x8f\xbf\xbf", 4, 0}, /* overlong */
	        {"\xf4\x90\x80\x80", 4, 0}, /* past U+10FFFF */
	        {"\xf5\x80\x80\x80", 4, 0},
	        {"12345678\xc3", 9, 8}, /* truncated after a fast word */
	        {"\xe2\x82", 2, 0},     /* truncated */
	        {"\xf0\x9f\x98", 3, 0}, /* truncated */
	        {"\xc3(", 2, 0},        /* bad continuation */
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		size_t got = cv_utf8_check(cases[i].s, cases[i].len);
		if (got != cases[i].valid_prefix)
			fail_msg("case %zu: valid prefix %zu, expected %zu", i, got,
			         cases[i].valid_prefix);
		assert_int_equal(cv_utf8_valid(cases[i].s, cases[i].len),
		                 cases[i].valid_prefix == cases[i].len);
	}
	/* Every code point encodes to a sequence the validator takes whole. */
	for (uint32_t cp = 0; cp <= 0x10ffff; cp += (cp < 0x10000 ? 1 : 7)) {
		unsigned char b[4];
		size_t n;
		if (cp < 0x80) {
			b[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			b[0] = (unsigned char)(0xc0 | cp >> 6);
			b[1] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			b[0] = (unsigned char)(0xe0 | cp >> 12);
			b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			b[2] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			b[0] = (unsigned char)(0xf0 | cp >> 18);
			b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
			b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			b[3] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		size_t want = cp >= 0xd800 && cp <= 0xdfff ? 0 : n;
		if (cv_utf8_seq(b, n) != want)
			fail_msg("U+%04X: %zu, expected %zu", cp, cv_utf8_seq(b, n), want);
	}
}

static void escape(const char *s, size_t len, enum cv_json_bad_utf8 bad, const char *expected)
{
	char out[256];
	assert_true(CV_JSON_ESCAPED_MAX(len) <= sizeof out);
	char *end = cv_json_escape(out, s, len, bad);
	if (!expected) {
		assert_null(end);
		return;
	}
	assert_non_null(end);
	*end = '\0';
	assert_string_equal(out, expected);
}

static void test_json_escape(void **state)
{
	escape("", 0, CV_JSON_REFUSE, "");
	escape("abc", 3, CV_JSON_REFUSE, "abc");
	escape("four", 4, CV_JSON_REFUSE, "four");
	escape("exactly8", 8, CV_JSON_REFUSE, "exactly8");
	escape("a longer plain string", 21, CV_JSON_REFUSE, "a longer plain string");
	escape("q\"b\\s/", 6, CV_JSON_REFUSE, "q\\\"b\\\\s/");
	escape("\b\f\n\r\t\x01\x1f\x7f", 8, CV_JSON_REFUSE, "\\b\\f\\n\\r\\t\\u0001\\u001f\x7f");
	escape("nul\0here", 8, CV_JSON_REFUSE, "nul\\u0000here");
	escape("long prefix then \"quote\"", 24, CV_JSON_REFUSE, "long prefix then \\\"quote\\\"");
	escape("caf\xc3\xa9 \xe2\x82\xac", 9, CV_JSON_REFUSE, "caf\xc3\xa9 \xe2\x82\xac");
	/* Not UTF-8: refused, replaced byte by byte, or copied. */
	escape("a\xff"
	       "b",
	       3, CV_JSON_REFUSE, NULL);
	escape("a\xff"
	       "b",
	       3, CV_JSON_REPLACE,
	       "a\xef\xbf\xbd"
	       "b");
	escape("a\xff"
	       "b",
	       3, CV_JSON_VERBATIM,
	       "a\xff"
	       "b");
	escape("\xe2\x82", 2, CV_JSON_REPLACE, "\xef\xbf\xbd\xef\xbf\xbd");
	escape("0123456789\xc0\xaf", 12, CV_JSON_REPLACE, "0123456789\xef\xbf\xbd\xef\xbf\xbd");
	/* The worst case fits the bound. */
	char worst[16], out[CV_JSON_ESCAPED_MAX(16)];
	memset(worst, 1, sizeof worst);
	assert_int_equal(cv_json_escape(out, worst, sizeof worst, CV_JSON_REFUSE) - out,
	                 CV_JSON_ESCAPED_MAX(16));
}

static void test_base64(void **state)
{
	static const char *const vectors[][2] = {
	        {"", ""},
	        {"f", "Zg=="},
	        {"fo", "Zm8="},
	        {"foo", "Zm9v"},
	        {"foob", "Zm9vYg=="},
	        {"fooba", "Zm9vYmE="},
	        {"foobar", "Zm9vYmFy"},
	};
	for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
		char out[16];
		size_t n = cv_base64_encode(out, vectors[i][0], strlen(vectors[i][0]));
		assert_int_equal(n, CV_BASE64_LEN(strlen(vectors[i][0])));
		out[n] = '\0';
		assert_string_equal(out, vectors[i][1]);
	}
	char out[8];
	size_t n = cv_base64_encode(out, "\xff\x00\xfe", 3);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "/wD+", 4);
}

static void test_fnv(void **state)
{
	/* The reference values of FNV-1a 32. */
	assert_int_equal(cv_fnv1a32("", 0), 0x811c9dc5u);
	assert_int_equal(cv_fnv1a32("a", 1), 0xe40c292cu);
	assert_int_equal(cv_fnv1a32("foobar", 6), 0xbf9cf968u);
	/* The reference vectors of FNV-1a 64. */
	assert_int_equal(cv_fnv1a64("", 0), 0xcbf29ce484222325u);
	assert_int_equal(cv_fnv1a64("a", 1), 0xaf63dc4c8601ec8cu);
	assert_int_equal(cv_fnv1a64("foobar", 6), 0x85944171f73967e8u);
	assert_int_equal(cv_fnv1a64_more(cv_fnv1a64("foo", 3), "bar", 3), cv_fnv1a64("foobar", 6));
}

static void test_utf8_put_and_hex4(void **state)
{
	/* Every code point writes what the validator reads as one sequence. */
	char out[4];
	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		size_t n = cv_utf8_put(out, cp);
		assert_int_equal(cv_utf8_seq((const unsigned char *)out, n), n);
		assert_int_equal(n, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
	}
	assert_int_equal(cv_utf8_put(out, 0xe9), 2);
	assert_memory_equal(out, "\xc3\xa9", 2);
	assert_int_equal(cv_json_hex4("00e9"), 0xe9);
	assert_int_equal(cv_json_hex4("DbFf"), 0xdbff);
	assert_int_equal(cv_json_hex4("12g4"), -1);
	assert_int_equal(cv_json_hex4("-123"), -1);
}

/* --- the dead-letter line --- */

static char *line_of(const struct cv_dead_letter *e)
{
	struct cv_buf b = {0};
	cv_buf_append(&b, "x", 1);
	assert_int_equal(cv_dead_letter_encode(&b, e), 0);
	assert_true(b.len > 2 && b.data[0] == 'x' && b.data[b.len - 1] == '\n');
	char *s = malloc(b.len);
	assert_non_null(s);
	memcpy(s, b.data + 1, b.len - 1);
	s[b.len - 2] = '\0'; /* without the newline */
	assert_null(memchr(s, '\n', b.len - 2));
	cv_buf_free(&b);
	return s;
}

static void test_dead_letter_raw(void **state)
{
	struct cv_dead_letter e = {.time_ns = 12,
	                           .pipeline = "p",
	                           .stage = "s\"t",
	                           .reason = "bad \xff input",
	                           .raw = "not json",
	                           .raw_len = 8};
	char *s = line_of(&e);
	assert_string_equal(s, "{\"time_ns\":12,\"pipeline\":\"p\",\"stage\":\"s\\\"t\","
	                       "\"reason\":\"bad \xef\xbf\xbd input\",\"raw\":\"not json\"}");
	free(s);

	/* Bytes that are not UTF-8 go to raw_base64, whole; so does a key. */
	e = (struct cv_dead_letter){.time_ns = -1,
	                            .reason = "r",
	                            .topic = "speed",
	                            .partition = 3,
	                            .offset = 99,
	                            .key = "k\xfe",
	                            .key_len = 2,
	                            .raw = "\xff\x00\xfe",
	                            .raw_len = 3};
	s = line_of(&e);
	assert_string_equal(s, "{\"time_ns\":-1,\"pipeline\":\"\",\"stage\":\"\",\"reason\":\"r\","
	                       "\"topic\":\"speed\",\"partition\":3,\"offset\":99,"
	                       "\"key_base64\":\"a/4=\",\"raw_base64\":\"/wD+\"}");
	free(s);

	/* Empty input is there, empty. */
	e = (struct cv_dead_letter){.reason = "r", .raw = "", .raw_len = 0};
	s = line_of(&e);
	assert_non_null(strstr(s, ",\"raw\":\"\"}"));
	free(s);
}

static void test_dead_letter_record(void **state)
{
	struct cv_tag tag = {.key = "line_id", .key_len = 7, .value = "l\xc3\xa9", .value_len = 3};
	struct cv_field fields[3] = {
	        {.key = "speed", .key_len = 5, .type = CV_FIELD_FLOAT, .v.f = 0.1},
	        {.key = "seq", .key_len = 3, .type = CV_FIELD_INT, .v.i = 7},
	        {.key = "s", .key_len = 1, .type = CV_FIELD_STRING, .v.s = "a\nb", .str_len = 3},
	};
	struct cv_record r = {.measurement = "m",
	                      .measurement_len = 1,
	                      .timestamp = 5,
	                      .tags = &tag,
	                      .ntags = 1,
	                      .fields = fields,
	                      .nfields = 3};
	struct cv_dead_letter e = {
	        .time_ns = 1, .pipeline = "p", .stage = "out", .reason = "x", .record = &r};
	char *s = line_of(&e);
	/* The record as the JSON record encoder writes it: shortest floats. */
	assert_string_equal(s,
	                    "{\"time_ns\":1,\"pipeline\":\"p\",\"stage\":\"out\",\"reason\":\"x\","
	                    "\"record\":{\"measurement\":\"m\",\"timestamp\":5,\"tags\":{"
	                    "\"line_id\":\"l\xc3\xa9\"},\"fields\":{\"speed\":0.1,\"seq\":7,"
	                    "\"s\":\"a\\nb\"}}}");
	free(s);

	/* No JSON form: U+FFFD and null for eyes, record_base64 exact. */
	tag.value = "l\xff";
	tag.value_len = 2;
	fields[0].v.f = NAN;
	s = line_of(&e);
	const char *want = "\"record\":{\"measurement\":\"m\",\"timestamp\":5,\"tags\":{"
	                   "\"line_id\":\"l\xef\xbf\xbd\"},\"fields\":{\"speed\":null,\"seq\":7,"
	                   "\"s\":\"a\\nb\"}},\"record_base64\":\"";
	char *at = strstr(s, want);
	if (!at)
		fail_msg("no lossy record in %s", s);
	const char *exact =
	        "{\"measurement\":\"m\",\"timestamp\":5,\"tags\":{\"line_id\":\"l\xff\"},"
	        "\"fields\":{\"speed\":NaN,\"seq\":7,\"s\":\"a\\nb\"}}";
	char b64[256];
	size_t n = cv_base64_encode(b64, exact, strlen(exact));
	b64[n] = '\0';
	at += strlen(want);
	assert_memory_equal(at, b64, n);
	assert_string_equal(at + n, "\"}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_utf8),
	        cmocka_unit_test(test_json_escape),
	        cmocka_unit_test(test_base64),
	        cmocka_unit_test(test_fnv),
	        cmocka_unit_test(test_utf8_put_and_hex4),
	        cmocka_unit_test(test_dead_letter_raw),
	        cmocka_unit_test(test_dead_letter_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
