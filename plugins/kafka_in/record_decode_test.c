/* record_decode_test.c - JSON and line protocol decoding: round trips with
 * the encoders, integers vs floats, escapes, strictness, arena exhaustion. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "record_decode.h"
#include "record_format.h"

/* A minimal host: one batch with a bump arena whose size a test can cut. */
#define NREC  4
#define NSLOT 2

static char arena[192 * 1024]; /* room for a line as long as a series key may be */
static size_t arena_used, arena_limit = sizeof arena;
static struct cv_record records[NREC];
static struct cv_field slots[NREC][NSLOT];
static struct cv_batch batch;

static void *fake_alloc(struct cv_batch *b, size_t size)
{
	size = (size + 7) & ~(size_t)7;
	if (arena_used + size > arena_limit)
		return NULL;
	void *p = arena + arena_used;
	arena_used += size;
	return p;
}

static char *fake_strdup(struct cv_batch *b, const char *s, size_t len)
{
	char *p = fake_alloc(b, len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = 0;
	}
	return p;
}

static struct cv_field *fake_grow(struct cv_batch *b, struct cv_record *r)
{
	uint16_t cap = (uint16_t)(r->fields_cap ? r->fields_cap * 2 : 4);
	struct cv_field *f = fake_alloc(b, cap * sizeof *f);
	if (!f)
		return NULL;
	memcpy(f, r->fields, r->nfields * sizeof *f);
	r->fields = f;
	r->fields_cap = cap;
	return &r->fields[r->nfields++];
}

static const struct cv_host_api api = {
        .struct_size = sizeof(struct cv_host_api),
        .batch_alloc = fake_alloc,
        .batch_strdup = fake_strdup,
        .record_grow_fields = fake_grow,
};

static int setup(void **state)
{
	arena_used = 0;
	arena_limit = sizeof arena;
	for (int i = 0; i < NREC; i++) {
		records[i].fields = slots[i];
		records[i].fields_cap = NSLOT;
	}
	batch = (struct cv_batch){.records = records, .capacity = NREC};
	return 0;
}

static struct cv_record *fresh(void)
{
	batch.count = 0;
	batch.live = 0;
	return cv_batch_record_new(&batch);
}

static int dj(const char *text, struct cv_record **out, const char **why)
{
	*out = fresh();
	return cv_record_decode_json(&api, &batch, *out, text, strlen(text), 77, why);
}

static int di(const char *text, struct cv_record **out, const char **why)
{
	*out = fresh();
	return cv_record_decode_influx(&api, &batch, *out, text, strlen(text), 77, why);
}

static void assert_str(const char *s, size_t len, const char *want)
{
	assert_int_equal(len, strlen(want));
	assert_memory_equal(s, want, len);
}

static const struct cv_field *field(const struct cv_record *r, const char *key)
{
	const struct cv_field *f = cv_record_find_field(r, key, (uint32_t)strlen(key));
	assert_non_null(f);
	return f;
}

static void test_json_basic(void **state)
{
	struct cv_record *r;
	const char *why;
	assert_int_equal(dj("{\"measurement\":\"conveyor_speed\",\"timestamp\":1700000000000000001,"
	                    "\"tags\":{\"line_id\":\"line-1\",\"site\":\"a\"},"
	                    "\"fields\":{\"speed_ms\":1.5,\"seq\":42,\"two\":2.0,\"ok\":true,"
	                    "\"s\":\"x\",\"neg\":-7,\"e\":1e+16}}",
	                    &r, &why),
	                 0);
	assert_str(r->measurement, r->measurement_len, "conveyor_speed");
	assert_int_equal(r->timestamp, 1700000000000000001LL);
	assert_int_equal(r->ntags, 2);
	assert_str(r->tags[0].key, r->tags[0].key_len, "line_id");
	assert_str(r->tags[0].value, r->tags[0].value_len, "line-1");
	assert_int_equal(r->nfields, 7); /* more than the 2 slots: grown */
	assert_int_equal(field(r, "speed_ms")->type, CV_FIELD_FLOAT);
	assert_true(field(r, "speed_ms")->v.f == 1.5);
	assert_int_equal(field(r, "seq")->type, CV_FIELD_INT);
	assert_int_equal(field(r, "seq")->v.i, 42);
	assert_int_equal(field(r, "two")->type, CV_FIELD_FLOAT); /* 2.0 stays a float */
	assert_int_equal(field(r, "ok")->type, CV_FIELD_BOOL);
	assert_true(field(r, "ok")->v.b);
	assert_int_equal(field(r, "s")->type, CV_FIELD_STRING);
	assert_str(field(r, "s")->v.s, field(r, "s")->str_len, "x");
	assert_int_equal(field(r, "neg")->v.i, -7);
	assert_int_equal(field(r, "e")->type, CV_FIELD_FLOAT);
	assert_true(field(r, "e")->v.f == 1e16);
}

static void test_json_defaults_and_unknown_keys(void **state)
{
	struct cv_record *r;
	const char *why;
	assert_int_equal(
	        dj(" {\"fields\":{\"v\":1},\"extra\":{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"},"
	           "\"measurement\":\"m\"} \n",
	           &r, &why),
	        0);
	assert_int_equal(r->timestamp, 77); /* the default */
	assert_int_equal(r->ntags, 0);
	assert_int_equal(r->nfields, 1);
}

static void test_json_escapes(void **state)
{
	struct cv_record *r;
	const char *why;
	assert_int_equal(dj("{\"measurement\":\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\","
	                    "\"fields\":{\"k\\u0041\":\"caf\xc3\xa9\"}}",
	                    &r, &why),
	                 0);
	assert_str(r->measurement, r->measurement_len, "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80");
	assert_str(r->fields[0].key, r->fields[0].key_len, "kA");
	assert_str(r->fields[0].v.s, r->fields[0].str_len, "caf\xc3\xa9");
}

static void test_json_errors(void **state)
{
	static const char *const bad[] = {
	        "",
	        "[]",
	        "{\"measurement\":\"m\"}",                       /* no fields */
	        "{\"fields\":{\"v\":1}}",                        /* no measurement */
	        "{\"measurement\":\"\",\"fields\":{\"v\":1}}",   /* empty */
	        "{\"measurement\":\"m\",\"fields\":{}}",         /* no field */
	        "{\"measurement\":\"m\",\"fields\":{\"v\":1},}", /* trailing comma */
	        "{\"measurement\":\"m\",\"fields\":{\"v\":01}}", /* leading zero */
	        "{\"measurement\":\"m\",\"fields\":{\"v\":1.}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":NaN}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":null}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":[1]}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":1e999}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":9223372036854775808}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":1},\"timestamp\":1.5}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":1},\"tags\":{\"a\":1}}",
	        "{\"measurement\":\"m\",\"measurement\":\"n\",\"fields\":{\"v\":1}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":1}} x",
	        "{\"measurement\":\"m\xff\",\"fields\":{\"v\":1}}",    /* bad UTF-8 */
	        "{\"measurement\":\"\xc0\xaf\",\"fields\":{\"v\":1}}", /* overlong */
	        "{\"measurement\":\"a\tb\",\"fields\":{\"v\":1}}",     /* raw control */
	        "{\"measurement\":\"\\ud800\",\"fields\":{\"v\":1}}",  /* lone surrogate */
	        "{\"measurement\":\"\\x\",\"fields\":{\"v\":1}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":tru}}",
	        "{\"measurement\":\"m\",\"fields\":{\"v\":1}",
	        "{\"measurement\":\"m",
	        "not json at all",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct cv_record *r;
		const char *why = NULL;
		int rc = dj(bad[i], &r, &why);
		if (rc != CV_EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(why);
	}
	/* Integer limits are fine. */
	struct cv_record *r;
	const char *why;
	assert_int_equal(dj("{\"measurement\":\"m\",\"fields\":{\"a\":9223372036854775807,"
	                    "\"b\":-9223372036854775808}}",
	                    &r, &why),
	                 0);
	assert_true(r->fields[0].v.i == INT64_MAX);
	assert_true(r->fields[1].v.i == INT64_MIN);
}

static void test_influx(void **state)
{
	struct cv_record *r;
	const char *why;
	assert_int_equal(
	        di("conveyor\\ speed,line_id=line\\,1,site=a\\=b speed_ms=1.5,seq=42i,"
	           "ok=t,no=FALSE,s=\"say \\\"hi\\\" \\\\ ok\",u=7u,f=-3 1700000000000000000\n",
	           &r, &why),
	        0);
	assert_str(r->measurement, r->measurement_len, "conveyor speed");
	assert_int_equal(r->ntags, 2);
	assert_str(r->tags[0].value, r->tags[0].value_len, "line,1");
	assert_str(r->tags[1].value, r->tags[1].value_len, "a=b");
	assert_int_equal(field(r, "seq")->type, CV_FIELD_INT);
	assert_int_equal(field(r, "seq")->v.i, 42);
	assert_int_equal(field(r, "speed_ms")->type, CV_FIELD_FLOAT);
	assert_true(field(r, "ok")->v.b);
	assert_false(field(r, "no")->v.b);
	assert_str(field(r, "s")->v.s, field(r, "s")->str_len, "say \"hi\" \\ ok");
	assert_int_equal(field(r, "u")->v.i, 7);
	assert_true(field(r, "f")->v.f == -3.0);
	assert_int_equal(field(r, "f")->type, CV_FIELD_FLOAT);
	assert_int_equal(r->timestamp, 1700000000000000000LL);

	assert_int_equal(di("m v=1", &r, &why), 0);
	assert_int_equal(r->timestamp, 77);

	static const char *const bad[] = {
	        "",           "m",
	        "m ",         "m v",
	        "m v=",       "m,t v=1",
	        "m,=x v=1",   "m v=1 12x",
	        "m v=1 1 2",  "m v=1\nm v=2",
	        "m v=abc",    "m v=1.2.3",
	        "m v=\"open", "m v=-1u",
	        "#c v=1",     "m v=99999999999999999999i",
	        "m v=nan",    "m v=inf",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		why = NULL;
		if (di(bad[i], &r, &why) != CV_EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(why);
	}
}

static struct cv_record *sample(void)
{
	static struct cv_tag tags[] = {
	        {.key = "line_id", .value = "line-3", .key_len = 7, .value_len = 6},
	        {.key = "w ei,rd=", .value = "v al,ue=", .key_len = 8, .value_len = 8},
	};
	static struct cv_field fields[] = {
	        {.key = "speed_ms", .key_len = 8, .type = CV_FIELD_FLOAT, .v.f = 0.1},
	        {.key = "seq", .key_len = 3, .type = CV_FIELD_INT, .v.i = -123456789012345LL},
	        {.key = "whole", .key_len = 5, .type = CV_FIELD_FLOAT, .v.f = 3.0},
	        {.key = "tiny", .key_len = 4, .type = CV_FIELD_FLOAT, .v.f = 5e-324},
	        {.key = "b", .key_len = 1, .type = CV_FIELD_BOOL, .v.b = false},
	        {.key = "s",
	         .key_len = 1,
	         .type = CV_FIELD_STRING,
	         .str_len = 12,
	         .v.s = "q\"uo\\te \xe2\x82\xac"},
	};
	static struct cv_record r = {
	        .measurement = "conveyor speed,x",
	        .measurement_len = 16,
	        .timestamp = 1700000000123456789LL,
	        .tags = tags,
	        .ntags = 2,
	        .fields = fields,
	        .nfields = 6,
	};
	return &r;
}

static void check_same(const struct cv_record *a, const struct cv_record *b)
{
	assert_int_equal(a->measurement_len, b->measurement_len);
	assert_memory_equal(a->measurement, b->measurement, a->measurement_len);
	assert_int_equal(a->timestamp, b->timestamp);
	assert_int_equal(a->ntags, b->ntags);
	for (int i = 0; i < a->ntags; i++) {
		const struct cv_tag *t = cv_record_find_tag(b, a->tags[i].key, a->tags[i].key_len);
		assert_non_null(t);
		assert_int_equal(t->value_len, a->tags[i].value_len);
		assert_memory_equal(t->value, a->tags[i].value, t->value_len);
	}
	assert_int_equal(a->nfields, b->nfields);
	for (int i = 0; i < a->nfields; i++) {
		const struct cv_field *x = &a->fields[i];
		const struct cv_field *y = cv_record_find_field(b, x->key, x->key_len);
		assert_non_null(y);
		assert_int_equal(x->type, y->type);
		switch (x->type) {
		case CV_FIELD_FLOAT: assert_memory_equal(&x->v.f, &y->v.f, sizeof(double)); break;
		case CV_FIELD_INT: assert_true(x->v.i == y->v.i); break;
		case CV_FIELD_BOOL: assert_int_equal(x->v.b, y->v.b); break;
		case CV_FIELD_STRING:
			assert_int_equal(x->str_len, y->str_len);
			assert_memory_equal(x->v.s, y->v.s, x->str_len);
			break;
		}
	}
}

static void test_round_trip(void **state)
{
	for (int fmt = CV_FORMAT_JSON; fmt <= CV_FORMAT_INFLUX; fmt++) {
		struct cv_buf buf = {0};
		assert_int_equal(cv_record_encode(&buf, (enum cv_record_format)fmt, sample()), 0);
		struct cv_record *r = fresh();
		const char *why = NULL;
		int rc = cv_record_decode(&api, &batch, (enum cv_record_format)fmt, r, buf.data,
		                          buf.len, 0, &why);
		if (rc)
			fail_msg("%s: %s: %.*s", cv_record_format_name((enum cv_record_format)fmt),
			         why, (int)buf.len, buf.data);
		check_same(sample(), r);
		cv_buf_free(&buf);
	}
}

/* Line protocol: the decoder refuses what the encoder cannot write, so
 * every line it takes encodes, and reads back as the same record. */
/* A string literal with its length, NULs included. */
#define TEXT(s)                                                                                    \
	{                                                                                          \
		s, sizeof(s) - 1                                                                   \
	}

static void test_influx_agreement(void **state)
{
	struct cv_record *r;
	const char *why;
	/* Each was read before and then refused by the encoder. */
	static const struct {
		const char *text;
		size_t len;
	} refused[] = {
	        TEXT("\tm f=1 1"),         /* a measurement starting with tab */
	        TEXT("\0m f=1 1"),         /* ...with NUL */
	        TEXT("m f=1,\tg=2 1"),     /* a field key starting with tab */
	        TEXT("m f=1,\0g=2 1"),     /* ...with NUL */
	        TEXT("m,t=a,t=b f=1 1"),   /* a tag key twice */
	        TEXT("m,time=x f=1 1"),    /* "time" as a tag key */
	        TEXT("m time=1 1"),        /* "time" as a field key */
	        TEXT("m\\=x f=1 1"),       /* a backslash before '=' */
	        TEXT("m\\\"x f=1 1"),      /* a backslash before '"' */
	        TEXT("m,k=a\\\\,b f=1 1"), /* decodes to a backslash before ',' */
	        TEXT("m,k=a\\ f=1 1"),     /* ...last in a tag value */
	        TEXT("m f\\\\\\ =1 1"),    /* ...before ' ' in a field key */
	};
	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
		r = fresh();
		why = NULL;
		if (cv_record_decode_influx(&api, &batch, r, refused[i].text, refused[i].len, 0,
		                            &why) != CV_EINVAL)
			fail_msg("case %zu accepted: %.*s", i, (int)refused[i].len,
			         refused[i].text);
		assert_non_null(why);
	}

	/* A series key: its limit is the encoder's, as written. */
	size_t big = CV_INFLUX_MAX_KEY;
	char *line = malloc(big + 64);
	assert_non_null(line);
	arena_limit = sizeof arena;
	for (int over = 0; over <= 1; over++) {
		/* "m,k=" + value + " v=1i": key "m,k=..." plus 4 plus "v" */
		size_t vlen = CV_INFLUX_MAX_KEY - 4 - 1 - 4 + (size_t)over;
		memcpy(line, "m,k=", 4);
		memset(line + 4, 'x', vlen);
		memcpy(line + 4 + vlen, " v=1i", 5);
		size_t n = 4 + vlen + 5;
		r = fresh();
		arena_used = 0;
		int rc = cv_record_decode_influx(&api, &batch, r, line, n, 0, &why);
		struct test_buf {
			struct cv_buf b;
		} out = {{0}};
		if (over) {
			assert_int_equal(rc, CV_EINVAL);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(cv_record_encode_influx(&out.b, r), 0);
		}
		cv_buf_free(&out.b);
	}
	free(line);

	/* Hostile lines that are fine: decode, encode, decode gives the same.
	 * A NUL inside a name was taken for a delimiter: the decoder refused
	 * what the encoder wrote. */
	static const struct {
		const char *text;
		size_t len;
	} fine[] = {
	        TEXT("a\0b f=1 1"),
	        TEXT("m,k=v\0w,\tt=\x01 f\x1f=1,g=\"\0\" 1"),
	        TEXT("c:\\dir,p\\q=x\\\\y v\\w=1i 1"),
	        TEXT("m\\,x,k\\ 1=v\\=2 f\\,g=\"a\\\"\\\\b\" 5"),
	        TEXT("m=x,\"k=\"v f=\"\\n\" -1"),
	        TEXT("m\x7f\xff,k\xc3\xa9=v f=1.5e+300,g=-0.0,h=T,i=9u 0"),
	        TEXT("m,b=2,a=1,c=3 f=1 2"),
	        TEXT("m,times=x,Time=y f=1,TIME=2 3"),
	};
	for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
		r = fresh();
		why = NULL;
		if (cv_record_decode_influx(&api, &batch, r, fine[i].text, fine[i].len, 0, &why))
			fail_msg("case %zu refused: %s", i, why);
		struct cv_buf a = {0}, b = {0};
		if (cv_record_encode_influx(&a, r) != 0)
			fail_msg("case %zu decoded, not encoded", i);
		struct cv_record *r2 = cv_batch_record_new(&batch);
		assert_non_null(r2);
		if (cv_record_decode_influx(&api, &batch, r2, a.data, a.len, 0, &why) != 0)
			fail_msg("case %zu: encoded %.*s, not decoded: %s", i, (int)a.len, a.data,
			         why);
		check_same(r, r2);
		assert_int_equal(cv_record_encode_influx(&b, r2), 0);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len);
		cv_buf_free(&a);
		cv_buf_free(&b);
	}
}

static void test_arena_full(void **state)
{
	const char *text = "{\"measurement\":\"m\",\"tags\":{\"a\":\"b\"},"
	                   "\"fields\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}}";
	/* Every cut short of what the record needs reports CV_ENOMEM. */
	for (size_t limit = 0; limit < 1024; limit += 8) {
		arena_used = 0;
		arena_limit = limit;
		struct cv_record *r;
		const char *why;
		int rc = dj(text, &r, &why);
		if (rc == 0) {
			assert_int_equal(r->nfields, 5);
			return;
		}
		assert_int_equal(rc, CV_ENOMEM);
	}
	fail_msg("never decoded");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Decodes `num` as a JSON float field and as a line protocol float, and
 * compares both bit for bit with strtod. */
static void check_number(const char *num)
{
	char text[512];
	double want = strtod(num, NULL);
	if (!isfinite(want))
		return;
	for (int fmt = 0; fmt < 2; fmt++) {
		if (fmt == 0)
			snprintf(text, sizeof text, "{\"measurement\":\"m\",\"fields\":{\"v\":%s}}",
			         num);
		else
			snprintf(text, sizeof text, "m v=%s", num);
		arena_used = 0;
		struct cv_record *r;
		const char *why = NULL;
		int rc = fmt == 0 ? dj(text, &r, &why) : di(text, &r, &why);
		if (rc != 0)
			fail_msg("%s: %s", text, why);
		double got = r->fields[0].v.f;
		if (r->fields[0].type == CV_FIELD_INT)
			got = (double)r->fields[0].v.i;
		if (memcmp(&got, &want, sizeof got) != 0)
			fail_msg("%s: got %.17g, strtod says %.17g", text, got, want);
	}
}

static void test_floats_match_strtod(void **state)
{
	static const char *const fixed[] = {
	        "0.0",
	        "-0.0",
	        "1.0",
	        "0.1",
	        "2.0605799256339905",
	        "1e+16",
	        "5e-324",
	        "1e-310",
	        "2.2250738585072014e-308",
	        "1.7976931348623157e+308",
	        "9007199254740993.0",
	        "9007199254740995.0",
	        "1.00000000000000011102230246251565404236316680908203125",
	        "1.0000000000000002220446049250313080847263336181640625",
	        "0.30000000000000004",
	        "123456789012345678901234567890.0",
	        "0.000000000000000000000000000001234",
	        "7.2057594037927933e+16",
	        "4.9406564584124654e-324",
	        "1e22",
	        "1e23",
	        "8.98846567431158e307",
	        "1.5e-64",
	        "3.0e64",
	        "2.5e-65",
	        "1.0e65",
	        "0.5",
	        "100.0",
	        "1e-7",
	        "-3.14159",
	        "1e-342",
	        "1e-343",
	        "1.8e308",
	        "9.999999999999999e307",
	        "2.4703282292062328e-324",
	        "1.2345678901234567e-300",
	        "1.2345678901234567e+300",
	        "7.0064923216240854e-46",
	};
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		check_number(fixed[i]);
	char num[128];
	for (int i = 0; i < 100000; i++) {
		uint64_t bits = rng();
		double d;
		memcpy(&d, &bits, sizeof d);
		if (!isfinite(d))
			continue;
		/* What the encoders write (shortest round trip)... */
		if (cv_format_double(num, d) > 0)
			check_number(num);
		/* ...and what other producers write. */
		snprintf(num, sizeof num, "%.17e", d);
		check_number(num);
		double small = (double)(int64_t)(rng() % 2000000000) / 1e6 - 1000.0;
		snprintf(num, sizeof num, "%.*f", (int)(rng() % 20) + 1, small);
		check_number(num);
		/* Random digit strings around the table's edges. */
		int n = snprintf(num, sizeof num, "%s%llu.%llue%d", rng() & 1 ? "-" : "",
		                 (unsigned long long)(rng() % 100000000000ull),
		                 (unsigned long long)(rng() >> (rng() % 64)),
		                 (int)(rng() % 160) - 80);
		assert_true(n > 0);
		check_number(num);
		/* ...and over the whole exponent range. */
		n = snprintf(num, sizeof num, "%llue%d",
		             (unsigned long long)(rng() >> (rng() % 64)), (int)(rng() % 700) - 360);
		assert_true(n > 0);
		check_number(num);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_json_basic, setup),
	        cmocka_unit_test_setup(test_json_defaults_and_unknown_keys, setup),
	        cmocka_unit_test_setup(test_json_escapes, setup),
	        cmocka_unit_test_setup(test_json_errors, setup),
	        cmocka_unit_test_setup(test_influx, setup),
	        cmocka_unit_test_setup(test_round_trip, setup),
	        cmocka_unit_test_setup(test_influx_agreement, setup),
	        cmocka_unit_test_setup(test_arena_full, setup),
	        cmocka_unit_test_setup(test_floats_match_strtod, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
