/*
 * scale.c - a template Conveyor plugin: the `scale` transform.
 *
 * For every record it reads a numeric field, computes
 *
 *     value * factor + offset        (optionally rounded to `decimals`)
 *
 * and writes the result back into the field or into a new field. A record
 * without the field (or with a non-numeric one) is dead-lettered, dropped or
 * passed on unchanged, as the `missing` option says.
 *
 *     transforms:
 *       - { plugin: ./scale.so, field: speed_ms, factor: 3.6, output_field: speed_kmh }
 *
 * Copy this folder to start a plugin of your own: rename the file, the
 * descriptor's `name` (it must match the file name NAME.so when specs load the
 * plugin by name), and replace the options and process(). Everything a plugin
 * may use is in <conveyor/plugin.h>; a plugin links nothing of the host.
 * sdk/README.md explains the rules this file follows.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/plugin.h>

#define SCALE_VERSION "1.0.0"

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/* What to do with a record whose field is missing or not a number. The enum's
 * order is the order of `missing_names`: the host stores the index. */
enum scale_missing {
	MISSING_DEAD_LETTER = 0,
	MISSING_DROP = 1,
	MISSING_KEEP = 2,
};
static const char *const missing_names[] = {"dead_letter", "drop", "keep", NULL};

/* The config struct. The host validates the stage's options against
 * `scale_options` and fills one of these before init; each member has the C
 * type of its option type (see enum cv_option_type in plugin.h). The struct
 * and the strings it points to belong to the host and live until destroy(),
 * so the plugin keeps pointers into it instead of copying. */
struct scale_config {
	const char *field;        /* CV_OPT_STRING: never NULL (required) */
	double factor;            /* CV_OPT_DOUBLE */
	double offset;            /* CV_OPT_DOUBLE */
	const char *output_field; /* CV_OPT_STRING: NULL when not given (no default) */
	int64_t decimals;         /* CV_OPT_INT is always int64_t */
	int missing;              /* CV_OPT_ENUM is an int: enum scale_missing */
};

#define OPT(member) offsetof(struct scale_config, member)

/* The option schema: the host validates the spec with it (`conveyor
 * validate`), fills struct scale_config with it, and prints it as the
 * plugin's documentation (`conveyor plugins scale`). Defaults are text,
 * parsed like a user's value. The array ends with {0}. */
/* clang-format off */
static const struct cv_option scale_options[] = {
	{ .name = "field",
	  .type = CV_OPT_STRING,
	  .flags = CV_OPT_REQUIRED,
	  .offset = OPT(field),
	  .description = "the numeric field (float or integer) to scale" },
	{ .name = "factor",
	  .type = CV_OPT_DOUBLE,
	  .default_value = "1",
	  .offset = OPT(factor),
	  .description = "multiplier applied first" },
	{ .name = "offset",
	  .type = CV_OPT_DOUBLE,
	  .default_value = "0",
	  .offset = OPT(offset),
	  .description = "added after multiplying" },
	{ .name = "output_field",
	  .type = CV_OPT_STRING,
	  .offset = OPT(output_field),
	  .description = "field to write the result to (default: overwrite `field`)" },
	{ .name = "decimals",
	  .type = CV_OPT_INT,
	  .flags = CV_OPT_HAS_MIN | CV_OPT_HAS_MAX,
	  .default_value = "-1",
	  .min = -1,
	  .max = 15,
	  .offset = OPT(decimals),
	  .description = "round the result to this many decimal places; -1 keeps all" },
	{ .name = "missing",
	  .type = CV_OPT_ENUM,
	  .default_value = "dead_letter",
	  .enum_values = missing_names,
	  .offset = OPT(missing),
	  .description = "records lacking a numeric `field`: dead_letter (drop and write to "
	                 "the pipeline's dead_letter file), drop, or keep (pass unchanged)" },
	{ 0 },
};
/* clang-format on */

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

/* One per stage instance: a spec may use the plugin in several pipelines,
 * so nothing lives in globals. */
struct scale {
	struct cv_stage *stage;        /* the host's handle: names us in logs/metrics */
	const struct cv_host_api *api; /* the host's services; valid until destroy */
	const struct scale_config *cfg;
	uint16_t field_len; /* key lengths, measured once, not per record */
	uint16_t out_len;
	double round_scale;        /* 10^decimals; 0 when not rounding */
	struct cv_metric *skipped; /* conveyor_scale_skipped_total{reason} */
	bool warned;               /* the first skipped record is logged, not all */
	/* Dead-letter reasons, formatted once so process() never formats. */
	char reason_missing[128];
	char reason_not_numeric[128];
};

/* The key lengths of fields are uint16_t in struct cv_field. */
static int key_length(struct scale *s, const char *option, const char *key, uint16_t *len)
{
	size_t n = strlen(key);
	if (n == 0 || n > UINT16_MAX) {
		s->api->log(s->stage, CV_LOG_ERROR,
		            "option %s: a field name of 1 to %u bytes is needed", option,
		            (unsigned)UINT16_MAX);
		return CV_ECONFIG;
	}
	*len = (uint16_t)n;
	return 0;
}

/* init: called once per stage before data flows, on the engine's main
 * thread. Checks what the schema cannot express, prepares the state and
 * registers metrics. On failure it logs why and returns a negative CV_E*
 * code; the engine then refuses to start. */
static int scale_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                      void **state)
{
	const struct scale_config *cfg = config;
	struct scale *s = calloc(1, sizeof *s);
	if (!s)
		return CV_ENOMEM;
	s->stage = stage;
	s->api = api;
	s->cfg = cfg;

	int rc = key_length(s, "field", cfg->field, &s->field_len);
	if (rc == 0 && cfg->output_field)
		rc = key_length(s, "output_field", cfg->output_field, &s->out_len);
	if (rc < 0) {
		free(s);
		return rc;
	}
	if (cfg->decimals >= 0) {
		s->round_scale = 1;
		for (int64_t i = 0; i < cfg->decimals; i++)
			s->round_scale *= 10;
	}
	snprintf(s->reason_missing, sizeof s->reason_missing, "scale: no field \"%s\"", cfg->field);
	snprintf(s->reason_not_numeric, sizeof s->reason_not_numeric,
	         "scale: field \"%s\" is not a number", cfg->field);

	/* A plugin metric: the host adds the labels pipeline, stage, plugin and
	 * kind, plus ours (`reason`). Counters end in _total. Records in, out and
	 * dropped are counted by the host already: register only what it cannot
	 * know. NULL (a bad name) is harmless: updates of a NULL metric do
	 * nothing, so the plugin still works. */
	s->skipped = api->metric_register(stage, CV_METRIC_COUNTER, "conveyor_scale_skipped_total",
	                                  "Records scale could not scale, by reason.", "reason",
	                                  NULL, 0);

	api->log(stage, CV_LOG_INFO, "scaling %s by %g, offset %g, into %s", cfg->field,
	         cfg->factor, cfg->offset, cfg->output_field ? cfg->output_field : cfg->field);
	*state = s;
	return 0;
}

/* destroy: frees what init made; called once, on the main thread, after the
 * last process(). The config is freed by the host after this returns. */
static void scale_destroy(void *state)
{
	free(state);
}

/* ------------------------------------------------------------------------ */
/* Processing                                                                */
/* ------------------------------------------------------------------------ */

/* A record we cannot scale: dead-letter, drop or keep it. */
static void skip_record(struct scale *s, struct cv_batch *batch, struct cv_record *r,
                        const char *reason)
{
	if (!s->warned) {
		/* Logging every bad record would flood the logs: the metric counts
		 * them; the log says once that it happens. */
		s->api->log(s->stage, CV_LOG_WARN,
		            "%s (logged once; see conveyor_scale_skipped_total)", reason);
		s->warned = true;
	}
	switch (s->cfg->missing) {
	case MISSING_DEAD_LETTER:
		/* The host writes the record (and the reason) to the pipeline's
		 * dead-letter file, or logs it when there is none. It does not take
		 * the record out of the batch: drop it as well, or the sink gets it. */
		s->api->dead_letter(s->stage, NULL, 0, r, reason);
		cv_record_drop(batch, r);
		break;
	case MISSING_DROP: cv_record_drop(batch, r); break;
	default: break; /* keep: passes on unchanged */
	}
}

/* process: called for each batch on the pipeline's worker thread, never
 * concurrently for one stage, so the state needs no lock. It edits the batch
 * in place. The hot path allocates nothing and takes no lock; the metric is
 * updated once per batch. Returning a negative code fails the batch's live
 * records (the source will not commit them). */
static int scale_process(void *state, struct cv_batch *batch)
{
	struct scale *s = state;
	const struct scale_config *cfg = s->cfg;
	uint32_t missing = 0, not_numeric = 0;

	for (uint32_t i = 0; i < batch->count; i++) {
		struct cv_record *r = &batch->records[i];
		if (r->flags & CV_RECORD_DROPPED)
			continue; /* an earlier transform filtered it out */

		struct cv_field *f = cv_record_find_field(r, cfg->field, s->field_len);
		double v;
		if (f && f->type == CV_FIELD_FLOAT) {
			v = f->v.f;
		} else if (f && f->type == CV_FIELD_INT) {
			v = (double)f->v.i;
		} else {
			if (f)
				not_numeric++;
			else
				missing++;
			skip_record(s, batch, r, f ? s->reason_not_numeric : s->reason_missing);
			continue;
		}

		v = v * cfg->factor + cfg->offset;
		if (s->round_scale > 0)
			v = round(v * s->round_scale) / s->round_scale;

		if (!cfg->output_field) {
			/* In place: the slot keeps its key; an integer becomes a float. */
			f->type = CV_FIELD_FLOAT;
			f->v.f = v;
			continue;
		}
		/* The new field's key points into our config: it lives until
		 * destroy, longer than any batch, so it needs no copy. */
		struct cv_field *out = cv_record_find_field(r, cfg->output_field, s->out_len);
		if (out) {
			out->type = CV_FIELD_FLOAT;
			out->str_len = 0;
			out->v.f = v;
		} else if (!cv_record_add_float(s->api, batch, r, cfg->output_field, s->out_len,
		                                v)) {
			/* No field slot left and the batch's arena is full: fail
			 * the batch rather than pass records on half done. */
			s->api->log(s->stage, CV_LOG_ERROR, "batch arena full: cannot add %s",
			            cfg->output_field);
			return CV_ENOMEM;
		}
	}

	if (missing)
		s->api->metric_add(s->skipped, "missing", missing);
	if (not_numeric)
		s->api->metric_add(s->skipped, "not_numeric", not_numeric);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The descriptor: the one symbol the plugin exports                         */
/* ------------------------------------------------------------------------ */

/* CV_PLUGIN_HEADER stamps the ABI version and the struct's size; the host
 * refuses a plugin built for another ABI major (or a newer minor). Callbacks
 * a transform does not need (read, ack, stop, write, flush, start) stay NULL.
 * CV_PLUGIN_EXPORT makes this the only visible symbol under
 * -fvisibility=hidden. */
/* clang-format off */
CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
	CV_PLUGIN_HEADER,
	.name = "scale",
	.version = SCALE_VERSION,
	.description = "multiplies a numeric field by a factor and adds an offset",
	.kind = CV_KIND_TRANSFORM,
	.options = scale_options,
	.config_size = sizeof(struct scale_config),
	.init = scale_init,
	.destroy = scale_destroy,
	.process = scale_process,
};
/* clang-format on */
