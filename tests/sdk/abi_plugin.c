/*
 * abi_plugin.c - a plugin that claims another ABI, for tests/sdk/sdk_test.py:
 * the host must refuse it with a message naming both versions. Built out of
 * tree like the template, with -DTEST_ABI_MAJOR=99 (another major) or
 * -DTEST_ABI_MINOR=N (a minor newer than the host's).
 */
#include <conveyor/plugin.h>

#ifndef TEST_ABI_MAJOR
#define TEST_ABI_MAJOR CV_ABI_MAJOR
#endif
#ifndef TEST_ABI_MINOR
#define TEST_ABI_MINOR CV_ABI_MINOR
#endif

static int abi_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                    void **state)
{
	(void)stage;
	(void)api;
	(void)config;
	*state = NULL;
	return 0;
}

static void abi_destroy(void *state)
{
	(void)state;
}

static int abi_process(void *state, struct cv_batch *batch)
{
	(void)state;
	(void)batch;
	return 0;
}

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        .abi_major = TEST_ABI_MAJOR,
        .abi_minor = TEST_ABI_MINOR,
        .struct_size = sizeof(struct cv_plugin),
        .name = "abi_test",
        .version = "0.0.1",
        .description = "claims another plugin ABI (tests only)",
        .kind = CV_KIND_TRANSFORM,
        .init = abi_init,
        .destroy = abi_destroy,
        .process = abi_process,
};
