/* options_test.c - validation and filling of a stage's options from a schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "spec/options.h"

struct cfg {
	const char *field;
	const char *key;
	int64_t window;
	double threshold;
	int mode;
	const char *url;
	const char *password;
	int64_t pin;
	const char *ca_file;
	bool insecure;
	int64_t max_records;
	int64_t max_delay;
	uint64_t buffer;
	struct cv_string_list brokers;
	struct cv_string_map props;
	struct cv_string_list tags;
	struct cv_string_map labels;
};

static const char *const modes[] = {"mark", "drop_normal", NULL};

#define OPT(n, t, f, d, member, ...)                                                               \
	{                                                                                          \
		.name = n, .type = t, .flags = f, .default_value = d,                              \
		.offset = offsetof(struct cfg, member), __VA_ARGS__                                \
	}

static const struct cv_option schema[] = {
        OPT("field", CV_OPT_STRING, CV_OPT_REQUIRED, NULL, field, .description = "field to watch"),
        OPT("key", CV_OPT_STRING, 0, "line_id", key, .description = "tag that keys the series"),
        OPT("window", CV_OPT_INT, CV_OPT_HAS_MIN | CV_OPT_HAS_MAX, "60", window, .min = 2,
            .max = 100000, .description = "readings per key"),
        OPT("threshold", CV_OPT_DOUBLE, CV_OPT_HAS_MIN, "3.0", threshold, .min = 0.5,
            .description = "z-score limit"),
        OPT("mode", CV_OPT_ENUM, 0, "mark", mode, .enum_values = modes,
            .description = "what to do"),
        OPT("url", CV_OPT_STRING, 0, NULL, url),
        OPT("password", CV_OPT_STRING, CV_OPT_SECRET, NULL, password, .description = "v1 password"),
        OPT("pin", CV_OPT_INT, CV_OPT_SECRET | CV_OPT_HAS_MAX, NULL, pin, .max = 9999),
        OPT("tls.ca_file", CV_OPT_STRING, 0, NULL, ca_file),
        OPT("tls.insecure_skip_verify", CV_OPT_BOOL, 0, "false", insecure),
        OPT("batch.max_records", CV_OPT_INT, CV_OPT_HAS_MIN, "5000", max_records, .min = 1),
        OPT("batch.max_delay", CV_OPT_DURATION, CV_OPT_HAS_MIN | CV_OPT_HAS_MAX, "1s", max_delay,
            .min = 1e6, .max = 3600e9),
        OPT("buffer", CV_OPT_SIZE, CV_OPT_HAS_MAX, "4MiB", buffer, .max = 1 << 30),
        OPT("brokers", CV_OPT_LIST, 0, NULL, brokers),
        OPT("properties", CV_OPT_MAP, 0, NULL, props),
        OPT("tags", CV_OPT_LIST, 0, "[a, b]", tags),
        OPT("labels", CV_OPT_MAP, 0, "{x: '1', y: {z: 2}}", labels),
        {0},
};

static const char *const reserved[] = {"plugin", "name", NULL};

struct run {
	struct spec_doc *doc;
	struct diag diag;
	struct options_config cfg;
	char *log; /* every message printed */
	size_t log_len;
	int rc;
};

/* Fills the options of `plugin` from `yaml` (its check included, given the
 * test's host table), collecting every message in r->log. */
static void run_plugin(struct run *r, const char *yaml, const struct cv_plugin *plugin,
                       unsigned flags);

static void run_with(struct run *r, const char *yaml, const struct cv_option *opts, size_t size)
{
	const struct cv_plugin plugin = {.name = "t", .options = opts, .config_size = size};
	run_plugin(r, yaml, &plugin, 0);
	if (r->rc == 0) {
		assert_int_equal(r->diag.errors, 0);
		assert_non_null(r->cfg.data);
	} else {
		assert_int_equal(r->rc, -1);
		assert_true(r->diag.errors > 0);
		assert_null(r->cfg.data);
	}
}

static void run(struct run *r, const char *yaml)
{
	run_with(r, yaml, schema, sizeof(struct cfg));
}

static void done(struct run *r)
{
	options_config_free(&r->cfg);
	spec_doc_free(r->doc);
	free(r->log);
}

static const struct cfg *ok(struct run *r, const char *yaml)
{
	run(r, yaml);
	if (r->rc != 0)
		fail_msg("options refused: %s", r->log);
	return r->cfg.data;
}

/* Expects failure with `errors` errors, the last one `last`. */
static void bad(const char *yaml, int errors, const char *last)
{
	struct run r;
	run(&r, yaml);
	assert_int_equal(r.rc, -1);
	if (strcmp(r.diag.last, last) != 0)
		fail_msg("got:  %s\nwant: %s\nall:\n%s", r.diag.last, last, r.log);
	if (r.diag.errors != errors)
		fail_msg("%d errors, want %d:\n%s", r.diag.errors, errors, r.log);
	done(&r);
}

static void test_fill_everything(void **state)
{
	(void)state;
	struct run r;
	const struct cfg *c = ok(&r, "{ plugin: anomaly, name: a1, field: speed_ms, key: belt,\n"
	                             "  window: 0x20, threshold: 2.5, mode: drop_normal,\n"
	                             "  url: 'https://h:8086', password: hunter2, pin: 1234,\n"
	                             "  tls: { ca_file: /ca.pem, insecure_skip_verify: yes },\n"
	                             "  batch.max_records: 10, \"batch.max_delay\": 250ms,\n"
	                             "  buffer: 512KiB, brokers: [k1:9092, k2:9092],\n"
	                             "  properties: { acks: all, socket: { timeout.ms: 100 } },\n"
	                             "  tags: [], labels: { only: one } }\n");
	assert_string_equal(c->field, "speed_ms");
	assert_string_equal(c->key, "belt");
	assert_int_equal(c->window, 32);
	assert_true(c->threshold == 2.5);
	assert_int_equal(c->mode, 1);
	assert_string_equal(c->url, "https://h:8086");
	assert_string_equal(c->password, "hunter2");
	assert_int_equal(c->pin, 1234);
	assert_string_equal(c->ca_file, "/ca.pem");
	assert_true(c->insecure);
	assert_int_equal(c->max_records, 10);
	assert_int_equal(c->max_delay, 250000000);
	assert_int_equal(c->buffer, 512 << 10);
	assert_int_equal(c->brokers.count, 2);
	assert_string_equal(c->brokers.items[0], "k1:9092");
	assert_string_equal(c->brokers.items[1], "k2:9092");
	assert_int_equal(c->props.count, 2);
	assert_string_equal(c->props.keys[0], "acks");
	assert_string_equal(c->props.values[0], "all");
	assert_string_equal(c->props.keys[1], "socket.timeout.ms");
	assert_string_equal(c->props.values[1], "100");
	assert_int_equal(c->tags.count, 0);
	assert_int_equal(c->labels.count, 1);
	done(&r);
}

static void test_defaults(void **state)
{
	(void)state;
	struct run r;
	const struct cfg *c = ok(&r, "plugin: anomaly\nfield: f\nwindow:\nbatch: ~\n");
	assert_string_equal(c->key, "line_id");
	assert_int_equal(c->window, 60); /* a null value means "use the default" */
	assert_true(c->threshold == 3.0);
	assert_int_equal(c->mode, 0);
	assert_null(c->url);
	assert_null(c->password);
	assert_false(c->insecure);
	assert_int_equal(c->max_records, 5000);
	assert_int_equal(c->max_delay, 1000000000);
	assert_int_equal(c->buffer, 4 << 20);
	assert_int_equal(c->brokers.count, 0);
	assert_int_equal(c->tags.count, 2);
	assert_string_equal(c->tags.items[1], "b");
	assert_int_equal(c->labels.count, 2);
	assert_string_equal(c->labels.keys[1], "y.z");
	assert_string_equal(c->labels.values[1], "2");
	done(&r);

	/* a single scalar is a one-item list */
	c = ok(&r, "{ field: f, brokers: \"k:9092\", tags: only }");
	assert_int_equal(c->brokers.count, 1);
	assert_string_equal(c->brokers.items[0], "k:9092");
	assert_int_equal(c->tags.count, 1);
	done(&r);
}

static void test_required(void **state)
{
	(void)state;
	bad("plugin: anomaly\nkey: k\n", 1, "t.yaml:1:1: error: missing required option \"field\"");
	bad("plugin: anomaly\nfield:\n", 1, "t.yaml:2:7: error: option \"field\" needs a value");
	/* an empty stage, or none at all */
	bad("{}", 1, "t.yaml:1:1: error: missing required option \"field\"");
	struct diag d = {0};
	struct options_config cfg;
	assert_int_equal(
	        options_fill("t.yaml", NULL, schema, sizeof(struct cfg), reserved, &d, &cfg), -1);
	assert_string_equal(d.last, "t.yaml: error: missing required option \"field\"");
}

static void test_unknown_keys(void **state)
{
	(void)state;
	bad("plugin: anomaly\nfield: f\ntreshold: 3\n", 1,
	    "t.yaml:3:1: error: unknown option \"treshold\" (did you mean \"threshold\"?); "
	    "valid options: field, key, window, threshold, mode, url, password, pin, "
	    "tls.ca_file, tls.insecure_skip_verify, batch.max_records, batch.max_delay, "
	    "buffer, brokers, properties, tags, labels");
	/* nested and dotted, and every one reported */
	struct run r;
	run(&r, "field: f\ntls: { ca_fil: x }\nbatch.max_record: 1\nzzzzzzzz: 1\n"
	        "password_fil: /x\n");
	assert_int_equal(r.diag.errors, 4);
	assert_non_null(strstr(r.log, "t.yaml:2:8: error: unknown option \"tls.ca_fil\" (did you "
	                              "mean \"tls.ca_file\"?); valid options: field,"));
	assert_non_null(strstr(r.log, "t.yaml:3:1: error: unknown option \"batch.max_record\" "
	                              "(did you mean \"batch.max_records\"?)"));
	assert_non_null(strstr(r.log, "t.yaml:4:1: error: unknown option \"zzzzzzzz\"; valid"));
	assert_non_null(strstr(r.log, "t.yaml:5:1: error: unknown option \"password_fil\" (did "
	                              "you mean \"password_file\"?)"));
	done(&r);

	/* a plugin without options */
	static const struct cv_option none[] = {{0}};
	run_with(&r, "{ plugin: null, name: n }", none, 0);
	assert_int_equal(r.rc, 0);
	done(&r);
	run_with(&r, "{ plugin: null, path: x }", none, 0);
	assert_string_equal(r.diag.last, "t.yaml:1:17: error: unknown option \"path\"; this "
	                                 "plugin takes no options");
	done(&r);
}

static void test_wrong_types(void **state)
{
	(void)state;
	bad("field: { a: 1 }\n", 1,
	    "t.yaml:1:8: error: option \"field\": expected a string, got a map");
	bad("field: f\nwindow: abc\n", 1,
	    "t.yaml:2:9: error: option \"window\": \"abc\" is not an integer (or does not fit in "
	    "64 bits)");
	bad("field: f\nwindow: 99999999999999999999\n", 1,
	    "t.yaml:2:9: error: option \"window\": \"99999999999999999999\" is not an integer (or "
	    "does not fit in 64 bits)");
	bad("field: f\nthreshold: nan\n", 1,
	    "t.yaml:2:12: error: option \"threshold\": \"nan\" is not a finite number");
	bad("field: f\ntls: { insecure_skip_verify: maybe }\n", 1,
	    "t.yaml:2:30: error: option \"tls.insecure_skip_verify\": \"maybe\" is not a boolean "
	    "(true/false, yes/no, on/off)");
	bad("field: f\nbatch:\n  max_delay: 10 s\n", 1,
	    "t.yaml:3:14: error: option \"batch.max_delay\": \"10 s\" is not a duration (e.g. "
	    "250us, 500ms, 10s, 1m, 2h)");
	bad("field: f\nbuffer: 4MB/s\n", 1,
	    "t.yaml:2:9: error: option \"buffer\": \"4MB/s\" is not a size (e.g. 1000, 512KiB, "
	    "4MiB, 1GB)");
	bad("field: [a]\n", 1,
	    "t.yaml:1:8: error: option \"field\": expected a string, got a sequence");
	bad("field: f\nbrokers: { a: b }\n", 1,
	    "t.yaml:2:10: error: option \"brokers\": expected a list of strings, got a map");
	bad("field: f\nbrokers: [a, [b]]\n", 1,
	    "t.yaml:2:14: error: option \"brokers\": list items must be strings, got a sequence");
	bad("field: f\nproperties: [a]\n", 1,
	    "t.yaml:2:13: error: option \"properties\": expected a map of strings, got a sequence");
	bad("field: f\nproperties: { a: [1] }\n", 1,
	    "t.yaml:2:18: error: option \"properties\": map values must be strings, got a "
	    "sequence");
	bad("field: f\nproperties: { a.b: 1, a: { b: 2 } }\n", 1,
	    "t.yaml:2:28: error: option \"properties\": key \"a.b\" given twice (first at line "
	    "2, column 15)");
	bad("field: \"a\\0b\"\n", 1,
	    "t.yaml:1:8: error: option \"field\": the value contains a NUL character");
	bad("field: f\ntls: /ca.pem\n", 1,
	    "t.yaml:2:6: error: \"tls\" expects a map of tls.* options, got a scalar");
	bad("field: f\ntls: { ca_file: a }\ntls.ca_file: b\n", 1,
	    "t.yaml:3:1: error: option \"tls.ca_file\" given twice (first at line 2, column 8)");
	bad("[field, f]\n", 1, "t.yaml:1:1: error: expected a map of options, got a sequence");
}

static void test_ranges_and_enums(void **state)
{
	(void)state;
	bad("field: f\nwindow: 1\n", 1,
	    "t.yaml:2:9: error: option \"window\": \"1\" is out of range: must be between 2 and "
	    "100000");
	bad("field: f\nthreshold: 0.1\n", 1,
	    "t.yaml:2:12: error: option \"threshold\": \"0.1\" is out of range: must be at least "
	    "0.5");
	bad("field: f\nbatch.max_records: 0\n", 1,
	    "t.yaml:2:20: error: option \"batch.max_records\": \"0\" is out of range: must be at "
	    "least 1");
	bad("field: f\nbatch.max_delay: 500us\n", 1,
	    "t.yaml:2:18: error: option \"batch.max_delay\": \"500us\" is out of range: must be "
	    "between 1ms and 1h");
	bad("field: f\nbatch.max_delay: 61m\n", 1,
	    "t.yaml:2:18: error: option \"batch.max_delay\": \"61m\" is out of range: must be "
	    "between 1ms and 1h");
	bad("field: f\nbuffer: 2GiB\n", 1,
	    "t.yaml:2:9: error: option \"buffer\": \"2GiB\" is out of range: must be at most 1GiB");
	bad("field: f\nmode: Mark\n", 1,
	    "t.yaml:2:7: error: option \"mode\": \"Mark\" is not one of: mark, drop_normal");
	/* the bounds themselves are allowed */
	struct run r;
	const struct cfg *c =
	        ok(&r, "{field: f, window: 100000, batch.max_delay: 1h, buffer: 1GiB}");
	assert_int_equal(c->window, 100000);
	done(&r);
}

static void test_every_problem_reported(void **state)
{
	(void)state;
	struct run r;
	run(&r, "plugin: x\nwindow: 1\nmode: m\nbogus: 1\nthreshold: x\n");
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.diag.errors, 5); /* bogus, field missing, window, threshold, mode */
	assert_non_null(strstr(r.log, "t.yaml:4:1: error: unknown option \"bogus\""));
	assert_non_null(strstr(r.log, "t.yaml:1:1: error: missing required option \"field\""));
	assert_non_null(strstr(r.log, "t.yaml:2:9: error: option \"window\""));
	assert_non_null(strstr(r.log, "t.yaml:3:7: error: option \"mode\""));
	assert_non_null(strstr(r.log, "t.yaml:5:12: error: option \"threshold\""));
	done(&r);
}

static char *write_temp(const char *content, size_t len)
{
	static char path[64];
	strcpy(path, "/tmp/options_test_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_secrets(void **state)
{
	(void)state;
	struct run r;
	char yaml[300];

	/* from a file: one trailing CRLF removed, not more */
	char *path = write_temp("s3cr3t\n\r\n", 9);
	snprintf(yaml, sizeof yaml, "field: f\npassword_file: %s\n", path);
	const struct cfg *c = ok(&r, yaml);
	assert_string_equal(c->password, "s3cr3t\n");
	done(&r);
	unlink(path);

	/* a secret of another type is parsed like its inline form */
	path = write_temp("4321\n", 5);
	snprintf(yaml, sizeof yaml, "field: f\npin_file: %s\n", path);
	c = ok(&r, yaml);
	assert_int_equal(c->pin, 4321);
	done(&r);
	unlink(path);

	/* bad content is reported without echoing it */
	path = write_temp("99999\n", 6);
	snprintf(yaml, sizeof yaml, "field: f\npin_file: %s\n", path);
	bad(yaml, 1,
	    "t.yaml:2:11: error: option \"pin_file\": the file's content: the value is out of "
	    "range: must be at most 9999");
	unlink(path);
	bad("field: f\npin: 12345x\n", 1,
	    "t.yaml:2:6: error: option \"pin\": the value is not an integer (or does not fit in "
	    "64 bits)");
	bad("field: f\npin: 10000\n", 1,
	    "t.yaml:2:6: error: option \"pin\": the value is out of range: must be at most 9999");

	bad("field: f\npassword_file: /nonexistent/pw\n", 1,
	    "t.yaml:2:16: error: option \"password_file\": cannot read \"/nonexistent/pw\": No "
	    "such file or directory");
	bad("field: f\npassword_file: /\n", 1,
	    "t.yaml:2:16: error: option \"password_file\": cannot read \"/\": Is a directory");
	bad("field: f\npassword: hunter2\npassword_file: /x\n", 1,
	    "t.yaml:3:1: error: options \"password\" and \"password_file\" are both given; use "
	    "one");
	bad("field: f\npassword_file: [a]\n", 1,
	    "t.yaml:2:16: error: option \"password_file\": expected a file path, got a sequence");
	bad("field: f\npassword: { a: hunter2 }\n", 1,
	    "t.yaml:2:11: error: option \"password\": expected a string, got a map");

	/* a NUL byte in the file */
	path = write_temp("ab\0cd", 5);
	snprintf(yaml, sizeof yaml, "field: f\npassword_file: %s\n", path);
	bad(yaml, 1, "t.yaml:2:16: error: option \"password_file\": the file contains a NUL byte");
	unlink(path);

	/* A required secret may come either way; the message says so. */
	static const struct cv_option req[] = {
	        {.name = "token", .type = CV_OPT_STRING, .flags = CV_OPT_REQUIRED | CV_OPT_SECRET},
	        {0},
	};
	run_with(&r, "{ plugin: influxdb }", req, sizeof(const char *));
	assert_string_equal(r.diag.last, "t.yaml:1:1: error: missing required option \"token\" "
	                                 "(or \"token_file\")");
	done(&r);
}

static void test_no_echo_of_environment(void **state)
{
	(void)state;
	setenv("CV_T_SECRETISH", "xyzzy-value", 1);
	struct run r;
	run(&r, "field: f\nwindow: ${CV_T_SECRETISH}\nmode: \"${CV_T_SECRETISH}\"\n"
	        "password_file: ${CV_T_SECRETISH}\nbuffer: ${CV_T_SECRETISH}\n");
	assert_int_equal(r.diag.errors, 4);
	assert_null(strstr(r.log, "xyzzy"));
	assert_non_null(strstr(r.log, "t.yaml:2:9: error: option \"window\": the value is not an "
	                              "integer"));
	assert_non_null(strstr(r.log, "t.yaml:3:7: error: option \"mode\": the value is not one "
	                              "of: mark, drop_normal"));
	assert_non_null(strstr(r.log, "t.yaml:4:16: error: option \"password_file\": cannot "
	                              "read: No such file or directory"));
	assert_non_null(strstr(r.log, "t.yaml:5:9: error: option \"buffer\": the value is not a "
	                              "size"));
	done(&r);
	unsetenv("CV_T_SECRETISH");
}

struct small {
	int64_t n;
	struct cv_string_list l;
};

static void test_plugin_bugs(void **state)
{
	(void)state;
	static const struct cv_option bad_default[] = {
	        {.name = "n",
	         .type = CV_OPT_INT,
	         .default_value = "ten",
	         .offset = offsetof(struct small, n)},
	        {.name = "l",
	         .type = CV_OPT_LIST,
	         .default_value = "[a, ",
	         .offset = offsetof(struct small, l)},
	        {0},
	};
	struct run r;
	run_with(&r, "{ plugin: p }", bad_default, sizeof(struct small));
	assert_int_equal(r.diag.errors, 2);
	assert_non_null(strstr(r.log, "t.yaml:1:1: error: plugin bug: option \"n\" has an invalid "
	                              "default: \"ten\" is not an integer"));
	assert_string_equal(r.diag.last, "t.yaml:1:1: error: plugin bug: option \"l\" has an "
	                                 "invalid default: not valid YAML");
	done(&r);

	static const struct cv_option out_of_range_default[] = {
	        {.name = "n",
	         .type = CV_OPT_INT,
	         .default_value = "0",
	         .flags = CV_OPT_HAS_MIN,
	         .min = 1,
	         .offset = offsetof(struct small, n)},
	        {0},
	};
	run_with(&r, "{ plugin: p }", out_of_range_default, sizeof(struct small));
	assert_string_equal(r.diag.last,
	                    "t.yaml:1:1: error: plugin bug: option \"n\" has an "
	                    "invalid default: \"0\" is out of range: must be at least 1");
	done(&r);

	static const struct cv_option outside[] = {
	        {.name = "n", .type = CV_OPT_INT, .offset = sizeof(struct small) - 4},
	        {0},
	};
	run_with(&r, "{ n: 1 }", outside, sizeof(struct small));
	assert_non_null(strstr(r.diag.last, "plugin bug: option \"n\" lies outside the config "
	                                    "struct"));
	done(&r);

	static const struct cv_option no_values[] = {
	        {.name = "e", .type = CV_OPT_ENUM},
	        {0},
	};
	run_with(&r, "{ e: x }", no_values, sizeof(int));
	assert_string_equal(r.diag.last, "t.yaml:1:1: error: plugin bug: enum option \"e\" has "
	                                 "no values");
	done(&r);
}

static void test_print(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	options_print(f, schema);
	fclose(f);
	/* a header and one aligned row per option */
	assert_non_null(strstr(text, "OPTION                    TYPE      DEFAULT              "
	                             "FLAGS     VALUES            DESCRIPTION\n"));
	assert_non_null(strstr(text, "\nfield                     string    -                    "
	                             "required  -                 field to watch\n"));
	assert_non_null(strstr(text, "\nwindow                    int       60                   "
	                             "-         2..100000         readings per key\n"));
	assert_non_null(strstr(text, "\nmode                      enum      mark                 "
	                             "-         mark|drop_normal  what to do\n"));
	assert_non_null(strstr(text, "\npassword                  string    -                    "
	                             "secret    -                 v1 password (or password_file: "
	                             "read from a file)\n"));
	assert_non_null(strstr(text, "\nbatch.max_delay           duration  1s                   "
	                             "-         1ms..1h"));
	assert_non_null(strstr(text, "\nbuffer                    size      4MiB                 "
	                             "-         <= 1GiB"));
	size_t lines = 0;
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 1 + sizeof schema / sizeof schema[0] - 1);
	free(text);

	assert_string_equal(options_type_name(CV_OPT_DURATION), "duration");
	assert_string_equal(options_type_name(CV_OPT_STRING), "string");
	assert_string_equal(options_type_name(CV_OPT_MAP), "map");
	assert_string_equal(options_type_name(CV_OPT_LIST), "list");
	assert_string_equal(options_type_name(CV_OPT_ENUM), "enum");
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* Mutated stages never crash the filler, and it never fails silently. */
static void test_garbage(void **state)
{
	(void)state;
	static const char valid[] = "plugin: anomaly\nfield: f\nwindow: 10\nthreshold: 2\n"
	                            "tls: { ca_file: /c, insecure_skip_verify: on }\n"
	                            "batch.max_delay: 5s\nbrokers: [a, b]\n"
	                            "properties: { a: { b: 1 }, c: 2 }\nmode: mark\n"
	                            "password_file: /nonexistent\nbuffer: 1MiB\n";
	static const char alphabet[] = "ab:-[]{},&*!|'\"#$ \n.~0x1_";
	char m[sizeof valid + 64];
	for (int i = 0; i < 2000; i++) {
		size_t len = sizeof valid - 1;
		memcpy(m, valid, len);
		int edits = 1 + (int)(rng() % 3);
		for (int e = 0; e < edits; e++) {
			size_t at = rng() % (len + 1);
			if (rng() % 2 && len + 1 < sizeof m) {
				memmove(m + at + 1, m + at, len - at);
				m[at] = alphabet[rng() % (sizeof alphabet - 1)];
				len++;
			} else if (at < len) {
				memmove(m + at, m + at + 1, len - at - 1);
				len--;
			}
		}
		struct diag d = {0};
		struct spec_doc *doc;
		if (spec_doc_parse("g.yaml", m, len, &d, &doc) != 0)
			continue;
		struct options_config cfg;
		int rc = options_fill("g.yaml", doc->root, schema, sizeof(struct cfg), reserved, &d,
		                      &cfg);
		assert_true(rc == 0 ? d.errors == 0 : d.errors > 0);
		options_config_free(&cfg);
		spec_doc_free(doc);
	}
}

/* ------------------------------------------------------------------------ */
/* Schema additions of ABI 1.1: exclusive bounds, non-empty, field names     */
/* ------------------------------------------------------------------------ */

struct cfg11 {
	double factor;
	double ratio;
	const char *label;
	struct cv_string_list hosts;
	struct cv_field_name field;
	struct cv_field_name output;
};

static const struct cv_option schema11[] = {
        CV_OPTION(struct cfg11, factor, CV_OPT_DOUBLE, .flags = CV_OPT_MIN_EXCLUSIVE,
                  .default_value = "1", .description = "multiplier"),
        CV_OPTION(struct cfg11, ratio, CV_OPT_DOUBLE,
                  .flags = CV_OPT_MIN_EXCLUSIVE | CV_OPT_HAS_MAX, .max = 1),
        CV_OPTION(struct cfg11, label, CV_OPT_STRING, .flags = CV_OPT_NONEMPTY),
        CV_OPTION(struct cfg11, hosts, CV_OPT_LIST, .flags = CV_OPT_NONEMPTY),
        CV_OPTION(struct cfg11, field, CV_OPT_FIELD_NAME, .flags = CV_OPT_REQUIRED),
        CV_OPTION(struct cfg11, output, CV_OPT_FIELD_NAME, .default_value = "out"),
        {0},
};

static void bad11(const char *yaml, const char *last)
{
	struct run r;
	run_with(&r, yaml, schema11, sizeof(struct cfg11));
	assert_int_equal(r.rc, -1);
	if (r.diag.errors != 1 || strcmp(r.diag.last, last) != 0)
		fail_msg("got:  %s\nwant: %s\nall:\n%s", r.diag.last, last, r.log);
	done(&r);
}

static void test_schema_1_1(void **state)
{
	(void)state;
	struct run r;
	run_with(&r, "{field: speed_ms, ratio: 1, label: x, hosts: [a]}", schema11,
	         sizeof(struct cfg11));
	assert_int_equal(r.rc, 0);
	const struct cfg11 *c = r.cfg.data;
	assert_string_equal(c->field.name, "speed_ms");
	assert_int_equal(c->field.len, 8);
	assert_string_equal(c->output.name, "out"); /* a default is measured too */
	assert_int_equal(c->output.len, 3);
	assert_true(c->factor == 1 && c->ratio == 1);
	done(&r);

	bad11("{field: f, factor: 0}",
	      "t.yaml:1:20: error: option \"factor\": \"0\" is out of range: must be greater "
	      "than 0");
	bad11("{field: f, factor: -1.5}",
	      "t.yaml:1:20: error: option \"factor\": \"-1.5\" is out of range: must be greater "
	      "than 0");
	bad11("{field: f, ratio: 0}", "t.yaml:1:19: error: option \"ratio\": \"0\" is out of "
	                              "range: must be greater than 0 and at most 1");
	bad11("{field: f, label: ''}", "t.yaml:1:19: error: option \"label\": must not be empty");
	bad11("{field: f, hosts: []}",
	      "t.yaml:1:19: error: option \"hosts\": needs at least one item");
	bad11("{field: ''}", "t.yaml:1:9: error: option \"field\": a field name is 1 to 65535 "
	                     "bytes long, not 0");
	bad11("{field: [a]}", "t.yaml:1:9: error: option \"field\": expected a field name, got a "
	                      "sequence");
	bad11("{}", "t.yaml:1:1: error: missing required option \"field\"");
	char *long_name = malloc(70000 + 32);
	assert_non_null(long_name);
	strcpy(long_name, "{field: ");
	memset(long_name + 8, 'k', 65536);
	strcpy(long_name + 8 + 65536, "}");
	bad11(long_name, "t.yaml:1:9: error: option \"field\": a field name is 1 to 65535 bytes "
	                 "long, not 65536");
	free(long_name);

	static const struct cv_option bad_flags[] = {
	        {.name = "n", .type = CV_OPT_INT, .flags = 1u << 12, .offset = 0},
	        {0},
	};
	run_with(&r, "{}", bad_flags, sizeof(int64_t));
	assert_string_equal(r.diag.last, "t.yaml:1:1: error: plugin bug: option \"n\" has unknown "
	                                 "flags 0x1000");
	done(&r);

	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	options_print(f, schema11);
	fclose(f);
	assert_non_null(strstr(text, "\nfactor  double  1        -         > 0"));
	assert_non_null(strstr(text, "\nratio   double  -        -         > 0, <= 1"));
	assert_non_null(strstr(text, "\nlabel   string  -        -         not empty"));
	assert_non_null(strstr(text, "\nfield   field   -        required  -"));
	free(text);
}

/* ------------------------------------------------------------------------ */
/* The plugin's cross-option check (ABI 1.1)                                 */
/* ------------------------------------------------------------------------ */

static int check_calls;
static void test_check_error(struct cv_check *ck, const char *option, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void test_check_error(struct cv_check *ck, const char *option, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	options_check_verror(ck, option, fmt, ap);
	va_end(ap);
}

static const struct cv_host_api check_api = {
        .struct_size = sizeof(struct cv_host_api),
        .check_error = test_check_error,
        .option_given = options_check_given,
};

/* Refuses a password without a url (at the password, or its _file), a
 * window above 100 with the mode "mark" (at window), and an insecure TLS
 * without a CA (at the stage: ca_file is not given). */
static int schema_check(struct cv_check *ck, const struct cv_host_api *api, const void *config)
{
	const struct cfg *c = config;
	check_calls++;
	int before = check_calls;
	if (c->password && !c->url)
		api->check_error(ck, "password", "needs url (%s)",
		                 api->option_given(ck, "url") ? "given" : "not given");
	if (c->window > 100 && c->mode == 0)
		api->check_error(ck, "window", "above 100 needs mode drop_normal");
	if (c->insecure && !api->option_given(ck, "tls.ca_file"))
		api->check_error(ck, "tls.ca_file", "needed with insecure_skip_verify");
	if (c->pin == 13)
		return CV_EINVAL; /* refused without a word: the host says so */
	return before == check_calls ? 0 : CV_ECONFIG;
}

static const struct cv_plugin check_plugin = {
        CV_PLUGIN_HEADER,      .name = "checked",
        .options = schema,     .config_size = sizeof(struct cfg),
        .check = schema_check,
};

static void run_plugin(struct run *r, const char *yaml, const struct cv_plugin *plugin,
                       unsigned flags)
{
	memset(r, 0, sizeof *r);
	struct diag pd = {0};
	if (spec_doc_parse("t.yaml", yaml, strlen(yaml), &pd, &r->doc) != 0)
		fail_msg("test YAML does not parse: %s", pd.last);
	r->diag.out = open_memstream(&r->log, &r->log_len);
	assert_non_null(r->diag.out);
	r->rc = options_fill_plugin("t.yaml", r->doc->root, plugin, &check_api, reserved, flags,
	                            &r->diag, &r->cfg);
	fclose(r->diag.out);
	r->diag.out = NULL;
}

static void check_case(const char *yaml, unsigned flags, int errors, const char *want)
{
	struct run r;
	run_plugin(&r, yaml, &check_plugin, flags);
	if (errors == 0) {
		if (r.rc != 0)
			fail_msg("refused: %s", r.log);
	} else {
		assert_int_equal(r.rc, -1);
		assert_null(r.cfg.data);
		if (r.diag.errors != errors || !strstr(r.log, want))
			fail_msg("%d errors, want %d with %s:\n%s", r.diag.errors, errors, want,
			         r.log);
	}
	done(&r);
}

static void test_plugin_check(void **state)
{
	(void)state;
	check_calls = 0;
	check_case("field: f\nwindow: 50\n", 0, 0, NULL);
	assert_int_equal(check_calls, 1);
	/* at the option's value, nested or dotted */
	check_case("field: f\npassword: hunter2\n", 0, 1,
	           "t.yaml:2:11: error: option \"password\": needs url (not given)\n");
	check_case("field: f\nwindow: 500\n", 0, 1,
	           "t.yaml:2:9: error: option \"window\": above 100 needs mode drop_normal\n");
	/* at the stage when the option is not in the spec */
	check_case("{field: f, tls: {insecure_skip_verify: true}}", 0, 1,
	           "t.yaml:1:1: error: option \"tls.ca_file\": needed with "
	           "insecure_skip_verify\n");
	/* every problem, in one pass */
	check_case("field: f\nwindow: 500\npassword: x\n", 0, 2, "needs url");
	/* a check refusing without a word is reported by the host */
	check_case("field: f\npin: 13\n", 0, 1,
	           "t.yaml:1:1: error: plugin checked refused the options (CV_EINVAL) without "
	           "saying why\n");
	/* not called when the options themselves are wrong */
	check_calls = 0;
	check_case("field: f\nwindow: 1\npassword: x\n", 0, 1, "out of range");
	assert_int_equal(check_calls, 0);

	/* a secret file: at NAME_file; read by run, not by validate */
	char path[] = "/tmp/cv-check-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "pw\n", 3), 3);
	close(fd);
	char yaml[256];
	snprintf(yaml, sizeof yaml, "field: f\npassword_file: %s\n", path);
	check_case(yaml, 0, 1, "t.yaml:2:16: error: option \"password_file\": needs url");
	check_case(yaml, OPTIONS_NO_FILES, 1, "t.yaml:2:16: error: option \"password_file\"");
	unlink(path);
	check_case(yaml, 0, 1, "cannot read");
	check_case("field: f\nurl: u\npassword_file: /nonexistent/pw\n", OPTIONS_NO_FILES, 0, NULL);
	struct run r;
	run_plugin(&r, "field: f\nurl: u\npassword_file: /nonexistent/pw\n", &check_plugin,
	           OPTIONS_NO_FILES);
	assert_int_equal(r.rc, 0);
	assert_string_equal(((const struct cfg *)r.cfg.data)->password, OPTIONS_SECRET_PLACEHOLDER);
	done(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fill_everything),
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_required),
	        cmocka_unit_test(test_unknown_keys),
	        cmocka_unit_test(test_wrong_types),
	        cmocka_unit_test(test_ranges_and_enums),
	        cmocka_unit_test(test_every_problem_reported),
	        cmocka_unit_test(test_secrets),
	        cmocka_unit_test(test_no_echo_of_environment),
	        cmocka_unit_test(test_plugin_bugs),
	        cmocka_unit_test(test_print),
	        cmocka_unit_test(test_garbage),
	        cmocka_unit_test(test_schema_1_1),
	        cmocka_unit_test(test_plugin_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
