/*
 * convert.c - a transform as an outside author wrote it against the ABI 1.0
 * SDK (the header copied beside this file): three options, a record without
 * the field rejected. It is the "before" of sdk/examples/convert.c, and
 * tests/sdk/sdk_test.py builds it against the 1.0 header to check that a
 * plugin binary built for ABI 1.0 loads and behaves the same in this host.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/plugin.h>

struct convert_config {
	const char *field;
	double factor;
	const char *output_field;
};

static const struct cv_option convert_options[] = {
        {.name = "field",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED,
         .offset = offsetof(struct convert_config, field),
         .description = "the numeric field to convert"},
        {.name = "factor",
         .type = CV_OPT_DOUBLE,
         .default_value = "1",
         .offset = offsetof(struct convert_config, factor),
         .description = "multiplier, greater than 0"},
        {.name = "output_field",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED,
         .offset = offsetof(struct convert_config, output_field),
         .description = "the field to write"},
        {0},
};

struct convert {
	struct cv_stage *stage;
	const struct cv_host_api *api;
	const struct convert_config *cfg;
	uint16_t field_len, out_len;
	char reason[300];
};

static int convert_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                        void **state)
{
	const struct convert_config *cfg = config;
	if (!(cfg->factor > 0)) {
		api->log(stage, CV_LOG_ERROR, "factor must be greater than 0");
		return CV_ECONFIG;
	}
	size_t fl = strlen(cfg->field), ol = strlen(cfg->output_field);
	if (fl == 0 || fl > UINT16_MAX || ol == 0 || ol > UINT16_MAX) {
		api->log(stage, CV_LOG_ERROR, "field names must be 1 to 65535 bytes");
		return CV_ECONFIG;
	}
	struct convert *s = calloc(1, sizeof *s);
	if (!s)
		return CV_ENOMEM;
	s->stage = stage;
	s->api = api;
	s->cfg = cfg;
	s->field_len = (uint16_t)fl;
	s->out_len = (uint16_t)ol;
	snprintf(s->reason, sizeof s->reason, "no numeric field %s", cfg->field);
	*state = s;
	return 0;
}

static void convert_destroy(void *state)
{
	free(state);
}

static int convert_process(void *state, struct cv_batch *batch)
{
	struct convert *s = state;
	for (uint32_t i = 0; i < batch->count; i++) {
		struct cv_record *r = &batch->records[i];
		if (r->flags & CV_RECORD_DROPPED)
			continue;
		struct cv_field *f = cv_record_find_field(r, s->cfg->field, s->field_len);
		if (!f || f->type != CV_FIELD_FLOAT) {
			s->api->dead_letter(s->stage, NULL, 0, r, s->reason);
			cv_record_drop(batch, r);
			continue;
		}
		if (!cv_record_add_float(s->api, batch, r, s->cfg->output_field, s->out_len,
		                         f->v.f * s->cfg->factor))
			return CV_ENOMEM;
	}
	return 0;
}

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "convert",
        .version = "1.0.0",
        .description = "multiplies a numeric field into another field",
        .kind = CV_KIND_TRANSFORM,
        .options = convert_options,
        .config_size = sizeof(struct convert_config),
        .init = convert_init,
        .destroy = convert_destroy,
        .process = convert_process,
};
