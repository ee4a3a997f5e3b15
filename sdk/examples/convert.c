/*
 * convert.c - a transform in the fewest lines ABI 1.1 allows: three options,
 * a record without the field rejected. tests/sdk/abi_1_0/convert.c is the
 * same transform as an author wrote it against ABI 1.0.
 *
 *     transforms:
 *       - { plugin: ./convert.so, field: speed_ms, factor: 3.6, output_field: speed_kmh }
 *
 * Build: cc -std=c11 -shared -fPIC -fvisibility=hidden \
 *            $(pkg-config --cflags conveyor-sdk) -o convert.so convert.c
 */
#include <conveyor/plugin.h>

struct convert_config {
	struct cv_field_name field, output_field; /* a name and its length, measured by the host */
	double factor;
};

static const struct cv_option convert_options[] = {
        CV_OPTION(struct convert_config, field, CV_OPT_FIELD_NAME, .flags = CV_OPT_REQUIRED,
                  .description = "the numeric field to convert"),
        CV_OPTION(struct convert_config, factor, CV_OPT_DOUBLE, .flags = CV_OPT_MIN_EXCLUSIVE,
                  .default_value = "1", .description = "multiplier, greater than 0"),
        CV_OPTION(struct convert_config, output_field, CV_OPT_FIELD_NAME, .flags = CV_OPT_REQUIRED,
                  .description = "the field to write"),
        {0},
};

/* Without init, the state is the host's context: stage, api and config. */
static int convert_process(void *state, struct cv_batch *batch)
{
	const struct cv_context *cx = state;
	const struct convert_config *cfg = cx->config;
	for (struct cv_record *r = NULL; (r = cv_batch_next(batch, r));) {
		struct cv_field *f = cv_record_find_field(r, cfg->field.name, cfg->field.len);
		if (!f || f->type != CV_FIELD_FLOAT)
			cx->api->reject(cx->stage, batch, r, "convert: no numeric field");
		else if (!cv_record_add_float(cx->api, batch, r, cfg->output_field.name,
		                              cfg->output_field.len, f->v.f * cfg->factor))
			return CV_ENOMEM;
	}
	return 0;
}

CV_PLUGIN(.name = "convert", .version = "1.1.0",
          .description = "multiplies a numeric field into another field", .kind = CV_KIND_TRANSFORM,
          .options = convert_options, .config_size = sizeof(struct convert_config),
          .process = convert_process);
