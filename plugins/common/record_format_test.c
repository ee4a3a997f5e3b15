/* record_format_test.c - JSON and line protocol encoders against exact
 * expected text, hostile keys and values, and float round trips. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "record_format.h"

/* A record on the stack: up to 8 tags and 8 fields. */
struct test_record {
	struct cv_record r;
	struct cv_tag tags[8];
	struct cv_field fields[8];
};

static void rec_init(struct test_record *t, const char *measurement, int64_t ts)
{
	memset(t, 0, sizeof(*t));
	t->r.measurement = measurement;
	t->r.measurement_len = (uint32_t)strlen(measurement);
	t->r.timestamp = ts;
	t->r.tags = t->tags;
	t->r.fields = t->fields;
	t->r.fields_cap = 8;
}

static void rec_tag(struct test_record *t, const char *k, const char *v)
{
	struct cv_tag *tag = &t->tags[t->r.ntags++];
	tag->key = k;
	tag->key_len = (uint32_t)strlen(k);
	tag->value = v;
	tag->value_len = (uint32_t)strlen(v);
}

static struct cv_field *rec_field(struct test_record *t, const char *k, uint8_t type)
{
	struct cv_field *f = &t->fields[t->r.nfields++];
	f->key = k;
	f->key_len = (uint16_t)strlen(k);
	f->type = type;
	return f;
}

static void rec_float(struct test_record *t, const char *k, double v)
{
	rec_field(t, k, CV_FIELD_FLOAT)->v.f = v;
}

static void rec_int(struct test_record *t, const char *k, int64_t v)
{
	rec_field(t, k, CV_FIELD_INT)->v.i = v;
}

static void rec_bool(struct test_record *t, const char *k, bool v)
{
	rec_field(t, k, CV_FIELD_BOOL)->v.b = v;
}

static void rec_str(struct test_record *t, const char *k, const char *v)
{
	struct cv_field *f = rec_field(t, k, CV_FIELD_STRING);
	f->v.s = v;
	f->str_len = (uint32_t)strlen(v);
}

/* Encodes and compares with `expected`, or expects `expected_rc` and an
 * untouched buffer. */
static void check(enum cv_record_format fmt, const struct test_record *t, int expected_rc,
                  const char *expected)
{
	struct cv_buf buf = {0};
	cv_buf_append(&buf, "prefix|", 7);
	int rc = cv_record_encode(&buf, fmt, &t->r);
	if (rc != expected_rc)
		fail_msg("rc %d, expected %d, output %.*s", rc, expected_rc, (int)buf.len,
		         buf.data);
	if (rc == 0) {
		/* The buffer is not NUL-terminated: copy it into a string. */
		char *got = malloc(buf.len - 7 + 1);
		assert_non_null(got);
		memcpy(got, buf.data + 7, buf.len - 7);
		got[buf.len - 7] = '\0';
		assert_string_equal(got, expected);
		free(got);
	} else {
		assert_int_equal(buf.len, 7); /* an error appends nothing */
	}
	assert_memory_equal(buf.data, "prefix|", 7);
	cv_buf_free(&buf);
}

static void test_json_basic(void **state)
{
	struct test_record t;
	rec_init(&t, "conveyor_speed", 1700000000000000000);
	rec_tag(&t, "line_id", "line-1");
	rec_float(&t, "speed_ms", 1.23);
	rec_int(&t, "seq", 42);
	rec_bool(&t, "anomaly", false);
	rec_bool(&t, "ok", true);
	rec_float(&t, "whole", 2.0);
	rec_str(&t, "note", "hi");
	check(CV_FORMAT_JSON, &t, 0,
	      "{\"measurement\":\"conveyor_speed\",\"timestamp\":1700000000000000000,"
	      "\"tags\":{\"line_id\":\"line-1\"},\"fields\":{\"speed_ms\":1.23,\"seq\":42,"
	      "\"anomaly\":false,\"ok\":true,\"whole\":2.0,\"note\":\"hi\"}}");

	rec_init(&t, "m", -5);
	rec_int(&t, "n", 0);
	check(CV_FORMAT_JSON, &t, 0,
	      "{\"measurement\":\"m\",\"timestamp\":-5,\"tags\":{},\"fields\":{\"n\":0}}");
}

static void test_json_hostile(void **state)
{
	struct test_record t;
	rec_init(&t, "me\"as\\ure,ment", 1);
	rec_tag(&t, "k\ney", "va\"l\\ue\t\x01\x1f");
	rec_tag(&t, "uni", "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac");
	rec_str(&t, "s,p a=ce", "line1\nline2\r\"q\"\\\b\f");
	rec_int(&t, "min", INT64_MIN);
	rec_int(&t, "max", INT64_MAX);
	check(CV_FORMAT_JSON, &t, 0,
	      "{\"measurement\":\"me\\\"as\\\\ure,ment\",\"timestamp\":1,\"tags\":{"
	      "\"k\\ney\":\"va\\\"l\\\\ue\\t\\u0001\\u001f\","
	      "\"uni\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac\"},"
	      "\"fields\":{\"s,p a=ce\":\"line1\\nline2\\r\\\"q\\\"\\\\\\b\\f\","
	      "\"min\":-9223372036854775808,\"max\":9223372036854775807}}");
}

static void test_json_refused(void **state)
{
	static const char *const bad_utf8[] = {
	        "\xff",         "\xc3",         "\xc0\xaf",
	        "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	        "a\x80",        "\xf0\x9f\x98",
	};
	struct test_record t;
	for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
		rec_init(&t, "m", 1);
		rec_str(&t, "s", bad_utf8[i]);
		check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
		rec_init(&t, "m", 1);
		rec_tag(&t, bad_utf8[i], "v");
		check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	}
	rec_init(&t, "m", 1);
	rec_float(&t, "f", NAN);
	check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_float(&t, "f", -INFINITY);
	check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_field(&t, "f", 9)->v.i = 1;
	check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	/* What the JSON decoder refuses: no fields, empty names, too many tags. */
	rec_init(&t, "m", 1);
	check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	rec_init(&t, "", 1);
	rec_int(&t, "v", 1);
	check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_int(&t, "", 1);
	check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_tag(&t, "", "v");
	rec_int(&t, "v", 1);
	check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_int(&t, "v", 1);
	t.r.ntags = CV_RECORD_MAX_TAGS + 1; /* never read: refused first */
	check(CV_FORMAT_JSON, &t, CV_EINVAL, NULL);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
}

/* The forms the dead-letter encoder uses for what has no JSON form. */
static void test_json_any(void **state)
{
	struct test_record t;
	rec_init(&t, "m\xff", 1);
	rec_tag(&t, "k", "\xc3");
	rec_float(&t, "nan", NAN);
	rec_float(&t, "inf", INFINITY);
	rec_float(&t, "-inf", -INFINITY);
	rec_field(&t, "odd", 9);
	struct cv_buf buf = {0};
	assert_int_equal(cv_record_encode_json_any(&buf, &t.r, CV_JSON_REFUSE), CV_EINVAL);
	assert_int_equal(buf.len, 0);
	assert_int_equal(cv_record_encode_json_any(&buf, &t.r, CV_JSON_REPLACE), 0);
	const char *lossy = "{\"measurement\":\"m\xef\xbf\xbd\",\"timestamp\":1,\"tags\":{\"k\":"
	                    "\"\xef\xbf\xbd\"},\"fields\":{\"nan\":null,\"inf\":null,\"-inf\":null,"
	                    "\"odd\":null}}";
	assert_int_equal(buf.len, strlen(lossy));
	assert_memory_equal(buf.data, lossy, buf.len);
	cv_buf_reset(&buf);
	assert_int_equal(cv_record_encode_json_any(&buf, &t.r, CV_JSON_VERBATIM), 0);
	const char *exact = "{\"measurement\":\"m\xff\",\"timestamp\":1,\"tags\":{\"k\":\"\xc3\"},"
	                    "\"fields\":{\"nan\":NaN,\"inf\":Infinity,\"-inf\":-Infinity,"
	                    "\"odd\":null}}";
	assert_int_equal(buf.len, strlen(exact));
	assert_memory_equal(buf.data, exact, buf.len);
	/* A record with no fields and empty names still has a form. */
	rec_init(&t, "", 2);
	rec_tag(&t, "", "");
	cv_buf_reset(&buf);
	assert_int_equal(cv_record_encode_json_any(&buf, &t.r, CV_JSON_REPLACE), 0);
	const char *empty =
	        "{\"measurement\":\"\",\"timestamp\":2,\"tags\":{\"\":\"\"},\"fields\":{}}";
	assert_int_equal(buf.len, strlen(empty));
	assert_memory_equal(buf.data, empty, buf.len);
	cv_buf_free(&buf);
}

static void test_influx_basic(void **state)
{
	struct test_record t;
	rec_init(&t, "conveyor_speed", 1700000000000000000);
	rec_tag(&t, "line_id", "line-1");
	rec_float(&t, "speed_ms", 1.23);
	rec_int(&t, "seq", 42);
	rec_bool(&t, "anomaly", false);
	rec_bool(&t, "ok", true);
	rec_float(&t, "whole", 2.0);
	rec_str(&t, "note", "hi");
	check(CV_FORMAT_INFLUX, &t, 0,
	      "conveyor_speed,line_id=line-1 speed_ms=1.23,seq=42i,anomaly=f,ok=t,whole=2.0,"
	      "note=\"hi\" 1700000000000000000");

	rec_init(&t, "m", 0);
	rec_int(&t, "min", INT64_MIN);
	rec_int(&t, "max", INT64_MAX);
	rec_float(&t, "tiny", 5e-324);
	rec_float(&t, "big", -1.7976931348623157e308);
	check(CV_FORMAT_INFLUX, &t, 0,
	      "m min=-9223372036854775808i,max=9223372036854775807i,tiny=5e-324,"
	      "big=-1.7976931348623157e+308 0");
}

static void test_influx_escaping(void **state)
{
	struct test_record t;
	rec_init(&t, "my meas,ure=ment", -1);
	rec_tag(&t, "a key,=", "a val,=ue");
	rec_tag(&t, "b", "caf\xc3\xa9\\x");
	rec_str(&t, "f key,=", "say \"hi\", a\\b c=d");
	rec_str(&t, "empty", "");
	rec_str(&t, "trailing", "ends with \\");
	check(CV_FORMAT_INFLUX, &t, 0,
	      "my\\ meas\\,ure=ment,a\\ key\\,\\==a\\ val\\,\\=ue,b=caf\xc3\xa9\\x "
	      "f\\ key\\,\\==\"say \\\"hi\\\", a\\\\b c=d\",empty=\"\","
	      "trailing=\"ends with \\\\\" -1");
}

static void test_influx_tags_sorted(void **state)
{
	struct test_record t;
	rec_init(&t, "m", 7);
	rec_tag(&t, "zone", "z");
	rec_tag(&t, "host", "h");
	rec_tag(&t, "ab", "2");
	rec_tag(&t, "a", "1");
	rec_tag(&t, "empty", "");
	rec_tag(&t, "Z", "upper");
	rec_int(&t, "v", 1);
	check(CV_FORMAT_INFLUX, &t, 0, "m,Z=upper,a=1,ab=2,host=h,zone=z v=1i 7");

	/* duplicates, sorted or not */
	rec_init(&t, "m", 7);
	rec_tag(&t, "a", "1");
	rec_tag(&t, "a", "2");
	rec_int(&t, "v", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 7);
	rec_tag(&t, "b", "1");
	rec_tag(&t, "a", "2");
	rec_tag(&t, "b", "3");
	rec_int(&t, "v", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
}

static void test_influx_many_tags(void **state)
{
	/* More tags than the insertion sort handles: the selection path. */
	enum { N = 100 };
	static char keys[N][8];
	struct cv_tag tags[N];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%03d", (i * 37) % N);
		tags[i] = (struct cv_tag){keys[i], "v", 4, 1};
	}
	struct cv_field f = {.key = "x", .key_len = 1, .type = CV_FIELD_INT, .v.i = 3};
	struct cv_record r = {.measurement = "m",
	                      .measurement_len = 1,
	                      .ntags = N,
	                      .tags = tags,
	                      .fields = &f,
	                      .nfields = 1,
	                      .fields_cap = 1};
	struct cv_buf buf = {0};
	assert_int_equal(cv_record_encode_influx(&buf, &r), 0);
	char expected[2048] = "m";
	for (int i = 0; i < N; i++)
		snprintf(expected + strlen(expected), sizeof(expected) - strlen(expected),
		         ",k%03d=v", i);
	strcat(expected, " x=3i 0");
	assert_int_equal(buf.len, strlen(expected));
	assert_memory_equal(buf.data, expected, buf.len);

	memcpy(keys[50], keys[10], sizeof(keys[10])); /* a duplicate */
	cv_buf_reset(&buf);
	assert_int_equal(cv_record_encode_influx(&buf, &r), CV_EINVAL);
	assert_int_equal(buf.len, 0);
	cv_buf_free(&buf);
}

static void test_influx_refused(void **state)
{
	struct test_record t;
	/* newlines and carriage returns, anywhere */
	static const char *const nl[] = {"a\nb", "a\rb", "\n"};
	for (size_t i = 0; i < 3; i++) {
		rec_init(&t, nl[i], 1);
		rec_int(&t, "v", 1);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
		rec_init(&t, "m", 1);
		rec_tag(&t, nl[i], "v");
		rec_int(&t, "v", 1);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
		rec_init(&t, "m", 1);
		rec_tag(&t, "k", nl[i]);
		rec_int(&t, "v", 1);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
		rec_init(&t, "m", 1);
		rec_int(&t, nl[i], 1);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
		rec_init(&t, "m", 1);
		rec_str(&t, "s", nl[i]);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	}
	/* a backslash that would swallow a delimiter */
	static const char *const bs[] = {"a\\", "a\\,b", "a\\ b", "a\\=b", "a\\\"b", "\\"};
	for (size_t i = 0; i < sizeof(bs) / sizeof(bs[0]); i++) {
		rec_init(&t, "m", 1);
		rec_tag(&t, "k", bs[i]);
		rec_int(&t, "v", 1);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
		rec_init(&t, "m", 1);
		rec_tag(&t, bs[i], "v");
		rec_int(&t, "v", 1);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
		rec_init(&t, "m", 1);
		rec_int(&t, bs[i], 1);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
		rec_init(&t, bs[i], 1);
		rec_int(&t, "v", 1);
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	}
	/* a backslash before anything else is kept as it is */
	rec_init(&t, "c:\\dir", 1);
	rec_tag(&t, "p\\q", "x\\\\y");
	rec_int(&t, "v\\w", 1);
	check(CV_FORMAT_INFLUX, &t, 0, "c:\\dir,p\\q=x\\\\y v\\w=1i 1");

	rec_init(&t, "m", 1); /* no fields */
	rec_tag(&t, "k", "v");
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	rec_init(&t, "", 1); /* no measurement */
	rec_int(&t, "v", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	rec_init(&t, "#comment", 1);
	rec_int(&t, "v", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	/* tab or NUL first in a measurement or a field key: the parser skips
	 * them as white space */
	static const char *const lead[] = {"\tm", "\0m"};
	for (size_t i = 0; i < 2; i++) {
		rec_init(&t, "m", 1);
		rec_int(&t, "v", 1);
		t.r.measurement = lead[i];
		t.r.measurement_len = 2;
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
		rec_init(&t, "m", 1);
		rec_int(&t, "v", 1);
		t.fields[0].key = lead[i];
		t.fields[0].key_len = 2;
		check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	}
	/* ...anywhere else, and in tags, control characters are bytes like any
	 * other (InfluxDB keeps a tab inside a measurement: influxdb_test) */
	rec_init(&t, "m\0\tx", 1);
	t.r.measurement_len = 4;
	rec_tag(&t, "\tk", "\0v\x01");
	t.tags[0].value_len = 3;
	rec_int(&t, "f\0\x1f", 1);
	t.fields[0].key_len = 3;
	rec_field(&t, "s", CV_FIELD_STRING)->v.s = "a\0\t\x01";
	t.fields[1].str_len = 4;
	{
		static const char want[] = "m\0\tx,\tk=\0v\x01 f\0\x1f=1i,s=\"a\0\t\x01\" 1";
		struct cv_buf buf = {0};
		assert_int_equal(cv_record_encode_influx(&buf, &t.r), 0);
		assert_int_equal(buf.len, sizeof want - 1);
		assert_memory_equal(buf.data, want, sizeof want - 1);
		cv_buf_free(&buf);
	}
	/* DEL and bytes past ASCII too */
	rec_init(&t, "m\x7f\xff", 1);
	rec_tag(&t, "k\xc3\xa9", "v\x7f");
	rec_int(&t, "f\xff", 1);
	check(CV_FORMAT_INFLUX, &t, 0, "m\x7f\xff,k\xc3\xa9=v\x7f f\xff=1i 1");
	rec_init(&t, "m", 1);
	rec_int(&t, "", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_tag(&t, "", "v");
	rec_int(&t, "v", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_int(&t, "time", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_tag(&t, "time", "x");
	rec_int(&t, "v", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_float(&t, "f", NAN);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	rec_init(&t, "m", 1);
	rec_float(&t, "f", INFINITY);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	/* "time" only as the whole key; '#' only first */
	rec_init(&t, "m#", 1);
	rec_int(&t, "times", 1);
	rec_int(&t, "Time", 2);
	check(CV_FORMAT_INFLUX, &t, 0, "m# times=1i,Time=2i 1");

	/* a series key over 65535 bytes */
	char *big = malloc(70000);
	memset(big, 'x', 69999);
	big[69999] = '\0';
	rec_init(&t, "m", 1);
	rec_tag(&t, "k", big);
	rec_int(&t, "v", 1);
	check(CV_FORMAT_INFLUX, &t, CV_EINVAL, NULL);
	big[60000] = '\0';
	rec_init(&t, "m", 1);
	rec_tag(&t, "k", big);
	rec_int(&t, "v", 1);
	struct cv_buf buf = {0};
	assert_int_equal(cv_record_encode_influx(&buf, &t.r), 0);
	assert_int_equal(buf.len, strlen("m,k=") + 60000 + strlen(" v=1i 1"));
	cv_buf_free(&buf);
	free(big);
}

static void test_double_repr(void **state)
{
	/* Expected texts are Python's repr of the same doubles. */
	static const struct {
		double v;
		const char *text;
	} cases[] = {
	        {2.0, "2.0"},
	        {0.1, "0.1"},
	        {1.23, "1.23"},
	        {-1.5e-07, "-1.5e-07"},
	        {1e+16, "1e+16"},
	        {1000000000000000.0, "1000000000000000.0"},
	        {1.2345678901234568e+17, "1.2345678901234568e+17"},
	        {0.0001, "0.0001"},
	        {1e-05, "1e-05"},
	        {5e-324, "5e-324"},
	        {1.7976931348623157e+308, "1.7976931348623157e+308"},
	        {2.2250738585072014e-308, "2.2250738585072014e-308"},
	        {0.3333333333333333, "0.3333333333333333"},
	        {0.6666666666666666, "0.6666666666666666"},
	        {100.0, "100.0"},
	        {1e+22, "1e+22"},
	        /* 1e23 and 8.41e21 lie exactly halfway between two doubles and
	         * read back as the even one: the interval's ends count. */
	        {1e+23, "1e+23"},
	        {9007199254740992.0, "9007199254740992.0"},
	        {0.3, "0.3"},
	        {1e-300, "1e-300"},
	        {123.456, "123.456"},
	        {-42.0, "-42.0"},
	        {4.35, "4.35"},
	        {0.000123, "0.000123"},
	        {1234567.125, "1234567.125"},
	        {2.5e-05, "2.5e-05"},
	        {8.41e+21, "8.41e+21"},
	        /* The closest 16 digits (...044) read back as another double;
	         * ...045 is the shortest that reads back. */
	        {7.1202363472230444e-307, "7.120236347223045e-307"},
	        {-2.2250738585072014e-308, "-2.2250738585072014e-308"},
	        {4.9406564584124654e-324, "5e-324"},
	        {9007199254740991.0, "9007199254740991.0"},
	        {123456789012345.6, "123456789012345.6"},
	        {0.00012345678901234567, "0.00012345678901234567"},
	        {5e-310, "5e-310"},
	        {1e+100, "1e+100"},
	        {3.14159, "3.14159"},
	        {0.0, "0.0"},
	        {-0.0, "-0.0"},
	};
	char out[CV_DOUBLE_MAX_TEXT + 1];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = cv_format_double(out, cases[i].v);
		assert_int_equal(n, strlen(cases[i].text));
		assert_string_equal(out, cases[i].text);
	}
	assert_int_equal(cv_format_double(out, NAN), CV_EINVAL);
	assert_int_equal(cv_format_double(out, -NAN), CV_EINVAL);
	assert_int_equal(cv_format_double(out, INFINITY), CV_EINVAL);
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Significant digits of a repr ("-1.25e-07" has 3). */
static int sig_digits(const char *s)
{
	int n = 0, lead = 1, trailing = 0;
	for (; *s && *s != 'e'; s++) {
		if (*s < '0' || *s > '9')
			continue;
		if (lead && *s == '0')
			continue;
		lead = 0;
		n++;
		trailing = *s == '0' ? trailing + 1 : 0;
	}
	return n - trailing;
}

static void test_double_round_trip(void **state)
{
	/* Random bit patterns cover every exponent, subnormals included; random
	 * "nice" decimals cover the short cases. Every text must read back to
	 * the same bits, carry '.' or 'e', be the shortest, and when it has as
	 * many digits as the correctly rounded shortest printf text, be that
	 * text's digits (the closest). */
	uint64_t seed = 12345;
	char out[CV_DOUBLE_MAX_TEXT + 1], ref[40];
	const int n = 200000;
	for (int i = 0; i < n; i++) {
		uint64_t bits = splitmix(&seed);
		double v;
		if (i % 2) {
			memcpy(&v, &bits, sizeof(v));
			if (v != v || v - v != 0.0)
				continue; /* NaN, infinity */
		} else {
			v = (double)(int64_t)(bits % 2000000) / 1000.0 - 1000.0;
			if (v == 0.0)
				continue; /* its own case above */
		}
		int len = cv_format_double(out, v);
		assert_true(len > 0 && len <= 24);
		assert_int_equal(len, strlen(out));
		assert_true(strchr(out, '.') || strchr(out, 'e'));
		double back = strtod(out, NULL);
		if (memcmp(&back, &v, sizeof(v)) != 0)
			fail_msg("%.17g printed as %s", v, out);
		/* Shortest by brute force: for p = 1, 2, ... the two p-digit
		 * decimals around v are printf's rounding D and D - 1 or D + 1;
		 * the shortest length is the first p where one reads back. */
		int p, got = sig_digits(out);
		bool nearest_reads_back = false;
		for (p = 1; p <= 17; p++) {
			snprintf(ref, sizeof(ref), "%.*e", p - 1, v);
			char *e = strchr(ref, 'e');
			int exp = atoi(e + 1) - (p - 1);
			unsigned long long d = 0;
			for (const char *c = ref; c < e; c++) {
				if (*c >= '0' && *c <= '9')
					d = d * 10 + (unsigned long long)(*c - '0');
			}
			char cand[48];
			bool any = false;
			for (int delta = -1; delta <= 1; delta++) {
				snprintf(cand, sizeof(cand), "%s%llue%d", v < 0 ? "-" : "",
				         d + (unsigned long long)delta, exp);
				bool back_ok = strtod(cand, NULL) == v;
				any |= back_ok;
				if (delta == 0)
					nearest_reads_back = back_ok;
			}
			if (any)
				break;
		}
		if (got != p)
			fail_msg("%.17g printed as %s, shortest has %d digits", v, out, p);
		/* The closest of the shortest: printf's rounding when it reads back. */
		if (nearest_reads_back) {
			char mine[48];
			snprintf(mine, sizeof(mine), "%.*e", p - 1, strtod(out, NULL));
			if (strcmp(mine, ref) != 0)
				fail_msg("%.17g printed as %s, closest is %s", v, out, ref);
		}
	}
}

static void test_int64(void **state)
{
	char out[24];
	static const struct {
		int64_t v;
		const char *text;
	} cases[] = {{0, "0"},
	             {9, "9"},
	             {10, "10"},
	             {-1, "-1"},
	             {1234567890123, "1234567890123"},
	             {INT64_MAX, "9223372036854775807"},
	             {INT64_MIN, "-9223372036854775808"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = cv_format_int64(out, cases[i].v);
		out[n] = '\0';
		assert_string_equal(out, cases[i].text);
	}
}

static void test_names(void **state)
{
	assert_int_equal(cv_record_format_parse("json"), CV_FORMAT_JSON);
	assert_int_equal(cv_record_format_parse("influx"), CV_FORMAT_INFLUX);
	assert_int_equal(cv_record_format_parse("xml"), CV_EINVAL);
	assert_int_equal(cv_record_format_parse(NULL), CV_EINVAL);
	assert_string_equal(cv_record_format_name(CV_FORMAT_JSON), "json");
	assert_string_equal(cv_record_format_name(CV_FORMAT_INFLUX), "influx");
	assert_null(cv_record_format_name((enum cv_record_format)7));
	assert_null(cv_record_format_names[2]);
	struct test_record t;
	rec_init(&t, "m", 1);
	rec_int(&t, "v", 1);
	check((enum cv_record_format)5, &t, CV_EINVAL, NULL);
}

static void test_buffer_steady_state(void **state)
{
	/* Once grown, encoding batch after batch into a reset buffer keeps the
	 * same memory. */
	struct test_record t;
	rec_init(&t, "conveyor_speed", 1700000000000000000);
	rec_tag(&t, "line_id", "line-42");
	rec_float(&t, "speed_ms", 2.0123456789);
	rec_int(&t, "seq", 1);
	struct cv_buf buf = {0};
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(cv_record_encode_json(&buf, &t.r), 0);
		assert_int_equal(cv_buf_append(&buf, "\n", 1), 0);
		assert_int_equal(cv_record_encode_influx(&buf, &t.r), 0);
		assert_int_equal(cv_buf_append(&buf, "\n", 1), 0);
	}
	size_t len = buf.len;
	char *data = buf.data;
	size_t cap = buf.cap;
	for (int round = 0; round < 3; round++) {
		cv_buf_reset(&buf);
		for (int i = 0; i < 1000; i++) {
			assert_int_equal(cv_record_encode_json(&buf, &t.r), 0);
			assert_int_equal(cv_buf_append(&buf, "\n", 1), 0);
			assert_int_equal(cv_record_encode_influx(&buf, &t.r), 0);
			assert_int_equal(cv_buf_append(&buf, "\n", 1), 0);
		}
		assert_int_equal(buf.len, len);
		assert_ptr_equal(buf.data, data);
		assert_int_equal(buf.cap, cap);
	}
	cv_buf_free(&buf);
	assert_null(buf.data);
	assert_int_equal(cv_buf_append(&buf, "x", 1), 0); /* reusable after free */
	assert_int_equal(cv_buf_append(&buf, NULL, 0), 0);
	assert_int_equal(buf.len, 1);
	assert_int_equal(cv_buf_reserve(&buf, SIZE_MAX), CV_ENOMEM);
	cv_buf_free(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_json_basic),
	        cmocka_unit_test(test_json_hostile),
	        cmocka_unit_test(test_json_refused),
	        cmocka_unit_test(test_json_any),
	        cmocka_unit_test(test_influx_basic),
	        cmocka_unit_test(test_influx_escaping),
	        cmocka_unit_test(test_influx_tags_sorted),
	        cmocka_unit_test(test_influx_many_tags),
	        cmocka_unit_test(test_influx_refused),
	        cmocka_unit_test(test_double_repr),
	        cmocka_unit_test(test_double_round_trip),
	        cmocka_unit_test(test_int64),
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_buffer_steady_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
