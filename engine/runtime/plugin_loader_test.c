/* plugin_loader_test.c - what the host accepts in a plugin descriptor (ABI,
 * size, callbacks per kind, names) and how the loader reports what it cannot
 * load. Loading real plugins by path is covered by tests/sdk. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/plugin_loader.h"

static int dummy_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                      void **state)
{
	*state = NULL;
	return 0;
}

static void dummy_destroy(void *state)
{
}

static int dummy_read(void *state, struct cv_batch *batch)
{
	return CV_EOF;
}

static int dummy_process(void *state, struct cv_batch *batch)
{
	return 0;
}

static int dummy_write(void *state, struct cv_batch *batch)
{
	return 0;
}

struct cfg {
	int64_t n;
};

static const struct cv_option one_option[] = {
        {.name = "n", .type = CV_OPT_INT, .offset = offsetof(struct cfg, n)},
        {0},
};

/* A complete, valid descriptor of `kind`. */
static struct cv_plugin valid(enum cv_plugin_kind kind)
{
	struct cv_plugin d = {
	        CV_PLUGIN_HEADER,         .name = "test_plugin", .version = "1.0.0",
	        .description = "test",    .kind = kind,          .init = dummy_init,
	        .destroy = dummy_destroy,
	};
	switch (kind) {
	case CV_KIND_SOURCE: d.read = dummy_read; break;
	case CV_KIND_TRANSFORM: d.process = dummy_process; break;
	case CV_KIND_SINK: d.write = dummy_write; break;
	}
	return d;
}

static char err[1024];

static int check(const struct cv_plugin *d)
{
	memset(err, 0, sizeof err);
	return plugin_descriptor_check(d, "/plugins/x.so", err, sizeof err);
}

static void expect_ok(const struct cv_plugin *d, const char *what)
{
	if (check(d) != 0)
		fail_msg("%s: refused: %s", what, err);
}

/* Refused, with a message that contains every string of `needles`. */
static void expect_refused(const struct cv_plugin *d, const char *what, const char *const *needles)
{
	if (check(d) != -1)
		fail_msg("%s: accepted", what);
	if (!strstr(err, "/plugins/x.so"))
		fail_msg("%s: message does not name the file: %s", what, err);
	for (; needles && *needles; needles++)
		if (!strstr(err, *needles))
			fail_msg("%s: message lacks \"%s\": %s", what, *needles, err);
}

static void test_valid_kinds(void **state)
{
	(void)state;
	struct cv_plugin d = valid(CV_KIND_SOURCE);
	expect_ok(&d, "source");
	d = valid(CV_KIND_TRANSFORM);
	expect_ok(&d, "transform");
	d = valid(CV_KIND_SINK);
	expect_ok(&d, "sink");
	d.flags = CV_PLUGIN_ASYNC_ACK;
	expect_ok(&d, "async sink");
	d.options = one_option;
	d.config_size = sizeof(struct cfg);
	expect_ok(&d, "with options");
}

static void test_other_major(void **state)
{
	(void)state;
	char host[32];
	snprintf(host, sizeof host, "ABI %d.%d", CV_ABI_MAJOR, CV_ABI_MINOR);
	static const uint16_t majors[] = {0, CV_ABI_MAJOR + 1, 99, UINT16_MAX};
	for (size_t i = 0; i < sizeof majors / sizeof majors[0]; i++) {
		struct cv_plugin d = valid(CV_KIND_TRANSFORM);
		d.abi_major = majors[i];
		d.abi_minor = 3;
		char plugin[32];
		snprintf(plugin, sizeof plugin, "ABI %u.3", majors[i]);
		const char *needles[] = {plugin, host, "major", NULL};
		expect_refused(&d, plugin, needles);
	}
}

static void test_newer_minor(void **state)
{
	(void)state;
	struct cv_plugin d = valid(CV_KIND_SINK);
	d.abi_minor = CV_ABI_MINOR + 1;
	char plugin[32], host[32];
	snprintf(plugin, sizeof plugin, "ABI %d.%d", CV_ABI_MAJOR, CV_ABI_MINOR + 1);
	snprintf(host, sizeof host, "ABI %d.%d", CV_ABI_MAJOR, CV_ABI_MINOR);
	const char *needles[] = {plugin, host, "newer", NULL};
	expect_refused(&d, "newer minor", needles);
}

static void test_older_minor(void **state)
{
	(void)state;
	/* Every minor up to the host's is accepted. */
	for (int minor = 0; minor <= CV_ABI_MINOR; minor++) {
		struct cv_plugin d = valid(CV_KIND_SOURCE);
		d.abi_minor = (uint16_t)minor;
		expect_ok(&d, "older or same minor");
	}
}

static void test_struct_size(void **state)
{
	(void)state;
	struct cv_plugin d = valid(CV_KIND_SINK);
	/* An ABI 1.0 descriptor ends before `check`: the host accepts it by its
	 * size, and reads the members it lacks as zero. */
	d.struct_size = (uint32_t)offsetof(struct cv_plugin, check);
	expect_ok(&d, "ABI 1.0 descriptor");
	d.struct_size = 64u << 10;
	expect_ok(&d, "64 KiB descriptor");

	const char *needles[] = {"descriptor size", "for ABI 1.0", NULL};
	d.struct_size = (uint32_t)offsetof(struct cv_plugin, check) - 1;
	expect_refused(&d, "descriptor shorter than ABI 1.0's", needles);
	d.struct_size = (uint32_t)offsetof(struct cv_plugin, process);
	expect_refused(&d, "descriptor without write", needles);
	d.struct_size = 0;
	expect_refused(&d, "struct_size 0", needles);
	d.struct_size = (64u << 10) + 1;
	expect_refused(&d, "struct_size over 64 KiB", needles);
	d.struct_size = UINT32_MAX;
	expect_refused(&d, "struct_size 4 GiB", needles);
}

static void test_missing_common(void **state)
{
	(void)state;
	const char *needles[] = {"name, init or destroy", NULL};
	struct cv_plugin d = valid(CV_KIND_TRANSFORM);
	d.name = NULL;
	expect_refused(&d, "no name", needles);
	d = valid(CV_KIND_TRANSFORM);
	d.init = NULL;
	expect_refused(&d, "no init", needles);
	d = valid(CV_KIND_TRANSFORM);
	d.destroy = NULL;
	expect_refused(&d, "no destroy", needles);
	/* Since ABI 1.1 neither is fine: the state is the host's cv_context. */
	d.init = NULL;
	expect_ok(&d, "ABI 1.1 without init and destroy");
	d.abi_minor = 0;
	expect_refused(&d, "ABI 1.0 without init and destroy", needles);
}

static void test_missing_kind_callback(void **state)
{
	(void)state;
	struct cv_plugin d = valid(CV_KIND_SOURCE);
	d.read = NULL;
	d.process = dummy_process; /* another kind's callback does not count */
	d.write = dummy_write;
	const char *src[] = {"source plugin test_plugin has no read callback", NULL};
	expect_refused(&d, "source without read", src);

	d = valid(CV_KIND_TRANSFORM);
	d.process = NULL;
	d.read = dummy_read;
	const char *tr[] = {"transform plugin test_plugin has no process callback", NULL};
	expect_refused(&d, "transform without process", tr);

	d = valid(CV_KIND_SINK);
	d.write = NULL;
	d.process = dummy_process;
	const char *sk[] = {"sink plugin test_plugin has no write callback", NULL};
	expect_refused(&d, "sink without write", sk);

	/* The optional callbacks are optional. */
	d = valid(CV_KIND_SOURCE);
	d.ack = NULL;
	d.stop = NULL;
	d.start = NULL;
	expect_ok(&d, "source without ack, stop, start");
}

static void test_unknown_kind(void **state)
{
	(void)state;
	static const int kinds[] = {0, 4, -1, 1000};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		struct cv_plugin d = valid(CV_KIND_SOURCE);
		d.kind = (enum cv_plugin_kind)kinds[i];
		const char *needles[] = {"unknown kind", NULL};
		expect_refused(&d, "unknown kind", needles);
	}
}

static void test_names(void **state)
{
	(void)state;
	static const char *const good[] = {"a", "scale", "sim_speed", "kafka_in2", "0x", "_"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct cv_plugin d = valid(CV_KIND_TRANSFORM);
		d.name = good[i];
		expect_ok(&d, good[i]);
	}
	/* Names become file names (NAME.so) and metric label values. */
	static const char *const bad[] = {"Scale", "my-plugin", "a b",         "a.b",
	                                  "../x",  "a/b",       "caf\xc3\xa9", "x\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cv_plugin d = valid(CV_KIND_TRANSFORM);
		d.name = bad[i];
		const char *needles[] = {"[a-z0-9_]+", NULL};
		expect_refused(&d, bad[i], needles);
	}
	/* [a-z0-9_]+ needs one character: "" would look up ".so" and label
	 * metrics plugin="". */
	struct cv_plugin d = valid(CV_KIND_TRANSFORM);
	d.name = "";
	expect_refused(&d, "empty name", NULL);
}

static void test_config_without_options(void **state)
{
	(void)state;
	struct cv_plugin d = valid(CV_KIND_TRANSFORM);
	d.config_size = 16;
	const char *needles[] = {"config_size without options", NULL};
	expect_refused(&d, "config_size without options", needles);
	/* Options without a config struct are the schema check's business (a
	 * non-zero offset then fails validation); the loader lets it pass. */
	d.config_size = 0;
	expect_ok(&d, "no config, no options");
}

static void test_small_error_buffer(void **state)
{
	(void)state;
	struct cv_plugin d = valid(CV_KIND_TRANSFORM);
	d.abi_major = 99;
	char small[8];
	memset(small, 'x', sizeof small);
	assert_int_equal(
	        plugin_descriptor_check(&d, "/a/long/path/to/plugin.so", small, sizeof small), -1);
	assert_int_equal(small[sizeof small - 1], '\0');
}

static void test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(plugin_kind_name(CV_KIND_SOURCE), "source");
	assert_string_equal(plugin_kind_name(CV_KIND_TRANSFORM), "transform");
	assert_string_equal(plugin_kind_name(CV_KIND_SINK), "sink");
	assert_string_equal(plugin_kind_name((enum cv_plugin_kind)0), "unknown");
}

static void test_unknown_plugin(void **state)
{
	(void)state;
	struct plugin_loader *pl = plugin_loader_new();
	assert_non_null(pl);
	assert_int_equal(plugin_loader_add_dir(pl, "/nonexistent/one:/nonexistent/two"), 0);
	assert_int_equal(plugin_loader_add_dir(pl, "/nonexistent/one"), 0); /* once only */
	char msg[1024] = "";
	assert_null(plugin_loader_get(pl, "nosuch", msg, sizeof msg));
	if (!strstr(msg, "unknown plugin \"nosuch\"") ||
	    !strstr(msg, "searched: /nonexistent/one, /nonexistent/two") ||
	    strstr(strstr(msg, "two"), "/nonexistent/one"))
		fail_msg("message: %s", msg);
	plugin_loader_free(pl);

	pl = plugin_loader_new();
	assert_null(plugin_loader_get(pl, "nosuch", msg, sizeof msg));
	if (!strstr(msg, "no plugin directories"))
		fail_msg("message: %s", msg);
	plugin_loader_free(pl);
}

static void test_bad_paths(void **state)
{
	(void)state;
	struct plugin_loader *pl = plugin_loader_new();
	char msg[1024] = "";
	assert_null(plugin_loader_get(pl, "./no/such/plugin.so", msg, sizeof msg));
	if (!strstr(msg, "./no/such/plugin.so: cannot open plugin"))
		fail_msg("message: %s", msg);

	/* A real shared object that is not a plugin: the CMocka library this
	 * test is linked with. */
	Dl_info info;
	if (!dladdr((void *)_cmocka_run_group_tests, &info) || !info.dli_fname ||
	    !strchr(info.dli_fname, '/')) {
		plugin_loader_free(pl);
		skip(); /* linked statically: no shared object to try */
	}
	const struct plugin_module *m = plugin_loader_get(pl, info.dli_fname, msg, sizeof msg);
	plugin_loader_free(pl);
	assert_null(m);
	if (!strstr(msg, "not a Conveyor plugin") || !strstr(msg, CV_PLUGIN_SYMBOL))
		fail_msg("message: %s", msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_valid_kinds),
	        cmocka_unit_test(test_other_major),
	        cmocka_unit_test(test_newer_minor),
	        cmocka_unit_test(test_older_minor),
	        cmocka_unit_test(test_struct_size),
	        cmocka_unit_test(test_missing_common),
	        cmocka_unit_test(test_missing_kind_callback),
	        cmocka_unit_test(test_unknown_kind),
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_config_without_options),
	        cmocka_unit_test(test_small_error_buffer),
	        cmocka_unit_test(test_kind_names),
	        cmocka_unit_test(test_unknown_plugin),
	        cmocka_unit_test(test_bad_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
