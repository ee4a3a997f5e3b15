/* spec_watch_test.c - content changes are seen through a Kubernetes-style
 * symlink swap, and only content changes count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "spec/spec_watch.h"

static char dir[64];

static void path_in(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static void write_text(const char *name, const char *text)
{
	char p[128];
	path_in(p, sizeof p, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Points ..data at `target` by renaming a new link over it, as the kubelet. */
static void swap_data(const char *target)
{
	char tmp[128], data[128];
	path_in(tmp, sizeof tmp, "..data_tmp");
	path_in(data, sizeof data, "..data");
	assert_int_equal(symlink(target, tmp), 0);
	assert_int_equal(rename(tmp, data), 0);
}

static void test_symlink_swap(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/conveyor-watch-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char p[128];
	path_in(p, sizeof p, "..1");
	assert_int_equal(mkdir(p, 0700), 0);
	path_in(p, sizeof p, "..2");
	assert_int_equal(mkdir(p, 0700), 0);
	path_in(p, sizeof p, "..3");
	assert_int_equal(mkdir(p, 0700), 0);
	write_text("..1/spec.yaml", "version: 1\n");
	write_text("..2/spec.yaml", "version: 1\n"); /* the same bytes */
	write_text("..3/spec.yaml", "version: 1\npipelines: {}\n");
	swap_data("..1");
	char spec[128];
	path_in(spec, sizeof spec, "spec.yaml");
	assert_int_equal(symlink("..data/spec.yaml", spec), 0);

	struct spec_watch *w = spec_watch_new(spec);
	assert_non_null(w);
	assert_false(spec_watch_changed(w));
	swap_data("..2");
	assert_false(spec_watch_changed(w)); /* a new file, the same content */
	swap_data("..3");
	assert_true(spec_watch_changed(w));
	assert_false(spec_watch_changed(w)); /* once per change */

	/* Missing for a moment (an editor replacing it): no change yet. */
	char data[128];
	path_in(data, sizeof data, "..data");
	assert_int_equal(unlink(data), 0);
	assert_false(spec_watch_changed(w));
	swap_data("..1");
	assert_true(spec_watch_changed(w));

	/* An edit in place, same size. */
	write_text("..1/spec.yaml", "version: 2\n");
	assert_true(spec_watch_changed(w));
	spec_watch_free(w);

	const char *names[] = {"spec.yaml",     "..data", "..1/spec.yaml", "..2/spec.yaml",
	                       "..3/spec.yaml", "..1",    "..2",           "..3"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		path_in(p, sizeof p, names[i]);
		assert_int_equal(remove(p), 0);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_symlink_swap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
