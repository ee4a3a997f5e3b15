/*
 * null - a sink that discards every record: the baseline for benchmarks and
 * a stand-in sink for tests. write() does nothing but return 0, so the host
 * settles each batch as delivered.
 */
#include <conveyor/plugin.h>

static int null_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                     void **state)
{
	*state = NULL;
	return 0;
}

static void null_destroy(void *state)
{
}

static int null_write(void *state, struct cv_batch *batch)
{
	return 0;
}

static const struct cv_option null_options[] = {{0}};

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "null",
        .version = "0.1.0",
        .description = "discards every record (acknowledged as delivered); the benchmark baseline",
        .kind = CV_KIND_SINK,
        .options = null_options,
        .config_size = 0,
        .init = null_init,
        .destroy = null_destroy,
        .write = null_write,
};
