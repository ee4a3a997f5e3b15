/* units_test.c - durations, sizes, numbers and booleans as written in specs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/units.h"

static int64_t dur(const char *s)
{
	int64_t v = -12345;
	assert_int_equal(units_parse_duration(s, &v), 0);
	return v;
}

static void dur_bad(const char *s)
{
	int64_t v = -12345;
	if (units_parse_duration(s, &v) != -1)
		fail_msg("duration \"%s\" accepted as %lld", s, (long long)v);
	assert_int_equal(v, -12345); /* untouched on failure */
}

static void test_duration(void **state)
{
	(void)state;
	assert_int_equal(dur("500ms"), 500000000);
	assert_int_equal(dur("10s"), 10000000000);
	assert_int_equal(dur("1.5s"), 1500000000);
	assert_int_equal(dur("0.1s"), 100000000);
	assert_int_equal(dur("2m"), 120000000000);
	assert_int_equal(dur("1h"), 3600000000000);
	assert_int_equal(dur("250us"), 250000);
	assert_int_equal(dur("250\xc2\xb5s"), 250000);
	assert_int_equal(dur("100ns"), 100);
	assert_int_equal(dur("10"), 10000000000); /* bare number: seconds */
	assert_int_equal(dur("0.25"), 250000000);
	assert_int_equal(dur("0"), 0);
	assert_int_equal(dur("1h30m"), 5400000000000);
	assert_int_equal(dur("1m0.5s"), 60500000000);
	assert_int_equal(dur("1.5ns"), 1); /* below a nanosecond is dropped */
	assert_int_equal(dur("9223372036854775807ns"), INT64_MAX);
	assert_int_equal(dur("0.000000001s"), 1);

	dur_bad("");
	dur_bad("s");
	dur_bad("-1s");
	dur_bad("+1s");
	dur_bad("1 s");
	dur_bad(" 1s");
	dur_bad("1s ");
	dur_bad("10x");
	dur_bad("10sec");
	dur_bad("1.");
	dur_bad(".");
	dur_bad(".5s");
	dur_bad("1h30"); /* a number without a unit only stands alone */
	dur_bad("1e3s");
	dur_bad("nan");
	dur_bad("9223372036854775808ns");
	dur_bad("9999999999999999999999s");
	dur_bad("3000000h");
	dur_bad("2562047h2562047h"); /* each part fits, the sum does not */
	assert_int_equal(units_parse_duration(NULL, &(int64_t){0}), -1);
}

static uint64_t size(const char *s)
{
	uint64_t v = 12345;
	assert_int_equal(units_parse_size(s, &v), 0);
	return v;
}

static void size_bad(const char *s)
{
	uint64_t v = 12345;
	if (units_parse_size(s, &v) != -1)
		fail_msg("size \"%s\" accepted as %llu", s, (unsigned long long)v);
	assert_int_equal(v, 12345);
}

static void test_size(void **state)
{
	(void)state;
	assert_int_equal(size("4MiB"), 4u << 20);
	assert_int_equal(size("512KiB"), 512u << 10);
	assert_int_equal(size("1GiB"), 1u << 30);
	assert_int_equal(size("10MB"), 10000000);
	assert_int_equal(size("10kB"), 10000);
	assert_int_equal(size("10KB"), 10000);
	assert_int_equal(size("1000B"), 1000);
	assert_int_equal(size("1000"), 1000);
	assert_int_equal(size("0"), 0);
	assert_int_equal(size("2Ki"), 2048);
	assert_int_equal(size("1.5KiB"), 1536);
	assert_int_equal(size("0.1kB"), 100);
	assert_int_equal(size("1TiB"), 1ull << 40);
	assert_int_equal(size("18446744073709551615"), UINT64_MAX);

	size_bad("");
	size_bad("MiB");
	size_bad("-1");
	size_bad("4 MiB");
	size_bad("4MiB ");
	size_bad("4XB");
	size_bad("4MiBs");
	size_bad("1.");
	size_bad(".5KiB");
	size_bad("18446744073709551616");
	size_bad("17179869184GiB"); /* 2^34 GiB overflows */
	size_bad("0x10");
	assert_int_equal(units_parse_size(NULL, &(uint64_t){0}), -1);
}

static int64_t int_ok(const char *s)
{
	int64_t v = 12345;
	assert_int_equal(units_parse_int(s, &v), 0);
	return v;
}

static void int_bad(const char *s)
{
	int64_t v = 12345;
	if (units_parse_int(s, &v) != -1)
		fail_msg("int \"%s\" accepted as %lld", s, (long long)v);
	assert_int_equal(v, 12345);
}

static void test_int(void **state)
{
	(void)state;
	assert_int_equal(int_ok("0"), 0);
	assert_int_equal(int_ok("42"), 42);
	assert_int_equal(int_ok("-42"), -42);
	assert_int_equal(int_ok("+42"), 42);
	assert_int_equal(int_ok("007"), 7); /* decimal, never octal */
	assert_int_equal(int_ok("0x1F"), 31);
	assert_int_equal(int_ok("0XfF"), 255);
	assert_int_equal(int_ok("-0x10"), -16);
	assert_int_equal(int_ok("9223372036854775807"), INT64_MAX);
	assert_int_equal(int_ok("-9223372036854775808"), INT64_MIN);
	assert_int_equal(int_ok("0x7fffffffffffffff"), INT64_MAX);

	int_bad("");
	int_bad("-");
	int_bad("abc");
	int_bad("1.0");
	int_bad("1e3");
	int_bad(" 1");
	int_bad("1 ");
	int_bad("12abc");
	int_bad("0x");
	int_bad("0xg");
	int_bad("9223372036854775808");
	int_bad("-9223372036854775809");
	int_bad("0x8000000000000000");
	int_bad("0x10000000000000000");
	int_bad("99999999999999999999999");
	int_bad("--1");
	assert_int_equal(units_parse_int(NULL, &(int64_t){0}), -1);
}

static void test_double(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		double v;
	} ok[] = {{"0", 0},        {"3.0", 3.0}, {"-2.5", -2.5}, {"+1", 1},    {"1e3", 1000},
	          {"1E-3", 0.001}, {".5", 0.5},  {"5.", 5},      {"1e-400", 0}};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		double v = -1;
		assert_int_equal(units_parse_double(ok[i].s, &v), 0);
		assert_true(v == ok[i].v);
	}
	static const char *const bad[] = {"",      "nan",    "NaN",   "inf", "-inf", "infinity",
	                                  "1e",    "e3",     "1.2.3", " 1",  "1 ",   "0x1p3",
	                                  "1e999", "-1e999", ".",     "-",   "1,5",  "abc"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		double v = 7;
		if (units_parse_double(bad[i], &v) != -1)
			fail_msg("double \"%s\" accepted as %g", bad[i], v);
		assert_true(v == 7);
	}
	assert_int_equal(units_parse_double(NULL, &(double){0}), -1);
}

static void test_bool(void **state)
{
	(void)state;
	static const char *const yes[] = {"true", "TRUE", "True", "yes", "YES", "on", "On"};
	static const char *const no[] = {"false", "FALSE", "no", "No", "off", "OFF"};
	static const char *const bad[] = {"", "1", "0", "y", "n", "t", "truee", " true", "of"};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		bool v = false;
		assert_int_equal(units_parse_bool(yes[i], &v), 0);
		assert_true(v);
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		bool v = true;
		assert_int_equal(units_parse_bool(no[i], &v), 0);
		assert_false(v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		bool v = true;
		if (units_parse_bool(bad[i], &v) != -1)
			fail_msg("bool \"%s\" accepted", bad[i]);
	}
	assert_int_equal(units_parse_bool(NULL, &(bool){0}), -1);
}

static void test_format(void **state)
{
	(void)state;
	char buf[64];
	static const struct {
		double ns;
		const char *text;
	} durations[] = {{0, "0s"},         {1, "1ns"},     {1500, "1500ns"}, {1e6, "1ms"},
	                 {1.5e9, "1500ms"}, {3600e9, "1h"}, {90e9, "90s"},    {0.5, "0.5ns"}};
	for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
		units_format_duration(buf, sizeof buf, durations[i].ns);
		assert_string_equal(buf, durations[i].text);
		int64_t back;
		if (durations[i].ns == (double)(int64_t)durations[i].ns) {
			assert_int_equal(units_parse_duration(buf, &back), 0);
			assert_true((double)back == durations[i].ns);
		}
	}
	static const struct {
		double bytes;
		const char *text;
	} sizes[] = {{0, "0"},      {1000, "1kB"},  {1024, "1KiB"}, {4 << 20, "4MiB"},
	             {1e7, "10MB"}, {1023, "1023"}, {1.5, "1.5"},   {1099511627776.0, "1TiB"}};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		units_format_size(buf, sizeof buf, sizes[i].bytes);
		assert_string_equal(buf, sizes[i].text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_duration), cmocka_unit_test(test_size),
	        cmocka_unit_test(test_int),      cmocka_unit_test(test_double),
	        cmocka_unit_test(test_bool),     cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
