/* json_test.c - the JSON reader: values, escapes, and what it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/json.h"

static struct json_value *parse(const char *s)
{
	char err[128] = "";
	struct json_value *v = json_parse(s, strlen(s), err, sizeof err);
	if (!v)
		fail_msg("parse %s: %s", s, err);
	return v;
}

static void test_values(void **state)
{
	(void)state;
	struct json_value *v =
	        parse(" {\"a\": 1, \"b\": [true, false, null, -2.5e-3, 0, \"x\"], \"c\": {}, "
	              "\"d\": [], \"e\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/\\n\"} ");
	assert_int_equal(v->type, JSON_OBJECT);
	assert_int_equal(v->count, 5);
	assert_true(json_number(json_get(v, "a"), 0) == 1);
	const struct json_value *b = json_get(v, "b");
	assert_int_equal(b->type, JSON_ARRAY);
	assert_int_equal(b->count, 6);
	assert_true(b->items[0].type == JSON_BOOL && b->items[0].boolean);
	assert_true(b->items[1].type == JSON_BOOL && !b->items[1].boolean);
	assert_int_equal(b->items[2].type, JSON_NULL);
	assert_true(b->items[3].number == -2.5e-3);
	assert_true(b->items[4].number == 0);
	assert_string_equal(json_string(&b->items[5], NULL), "x");
	assert_int_equal(json_get(v, "c")->type, JSON_OBJECT);
	assert_int_equal(json_get(v, "d")->count, 0);
	assert_string_equal(json_string(json_get(v, "e"), NULL),
	                    "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ /\n");
	assert_null(json_get(v, "zz"));
	assert_null(json_get(b, "a"));
	assert_true(json_number(json_get(v, "e"), 7) == 7);
	assert_string_equal(json_string(json_get(v, "a"), "dflt"), "dflt");
	json_free(v);

	v = parse("\"a\\u0000b\"");
	assert_int_equal(v->len, 3);
	json_free(v);
	v = parse("123456789012");
	assert_true(v->number == 123456789012.0);
	json_free(v);
	json_free(NULL);
}

static void test_refused(void **state)
{
	(void)state;
	const char *bad[] = {
	        "",
	        "{",
	        "[1,]",
	        "{\"a\":1,}",
	        "{a:1}",
	        "01",
	        "1.",
	        "1e",
	        "-",
	        "tru",
	        "[1] 2",
	        "\"\\x\"",
	        "\"\x01\"",
	        "\"\xff\"",
	        "\"\\ud800\"",
	        "\"\\udc00x\"",
	        "\"abc",
	        "{\"a\" 1}",
	        "[1 2]",
	        "NaN",
	        "\"\xc0\xaf\"",
	        "\"\\u12\"",
	        "/* */1",
	        "{\"a\":}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[128] = "";
		struct json_value *v = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
		if (v)
			fail_msg("accepted %s", bad[i]);
		if (!strstr(err, "at byte "))
			fail_msg("%s: message \"%s\"", bad[i], err);
	}
	/* Too deep. */
	char deep[200];
	memset(deep, '[', sizeof deep);
	char err[128] = "";
	assert_null(json_parse(deep, sizeof deep, err, sizeof err));
	assert_non_null(strstr(err, "deeper"));
	/* 64 levels are fine. */
	char ok[129];
	memset(ok, '[', 64);
	memset(ok + 64, ']', 64);
	ok[128] = '\0';
	struct json_value *v = parse(ok);
	json_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_values),
	        cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
