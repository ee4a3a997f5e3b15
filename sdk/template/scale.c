/*
 * scale.c - a template Conveyor plugin: the `scale` transform.
 *
 * For every record it reads a numeric field, computes
 *
 *     value * factor + offset        (optionally rounded to `decimals`)
 *
 * and writes the result back into the field or into a new field. A record
 * without the field (or with a non-numeric one) is rejected (dead-lettered),
 * dropped or passed on unchanged, as the `missing` option says.
 *
 *     transforms:
 *       - { plugin: ./scale.so, field: speed_ms, factor: 3.6, output_field: speed_kmh }
 *
 * Copy this folder to start a plugin of your own: rename the file, the
 * descriptor's `name` (it must match the file name NAME.so when specs load the
 * plugin by name), and replace the options and process(). Everything a plugin
 * may use is in <conveyor/plugin.h>; a plugin links nothing of the host.
 * scale_test.c beside it unit-tests it against the real host's batches
 * (<conveyor/test_harness.h>). sdk/README.md explains the rules this file
 * follows.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/plugin.h>

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/* What to do with a record whose field is missing or not a number. The enum's
 * order is the order of `missing_names`: the host stores the index. */
enum scale_missing { MISSING_REJECT, MISSING_DROP, MISSING_KEEP };
static const char *const missing_names[] = {"dead_letter", "drop", "keep", NULL};

/* The config struct. The host validates the stage's options against
 * `scale_options` and fills one of these before init; each member has the C
 * type of its option type (see enum cv_option_type in plugin.h). The struct
 * and the strings it points to belong to the host and live until destroy(),
 * so the plugin keeps pointers into it instead of copying. */
struct scale_config {
	struct cv_field_name field;        /* a name and its length, measured by the host */
	double factor;                     /* CV_OPT_DOUBLE */
	double offset;                     /* CV_OPT_DOUBLE */
	struct cv_field_name output_field; /* name NULL when not given (no default) */
	int64_t decimals;                  /* CV_OPT_INT is always int64_t */
	int missing;                       /* CV_OPT_ENUM is an int: enum scale_missing */
};

/* The option schema: the host validates the spec with it (`conveyor
 * validate`), fills struct scale_config with it, and prints it as the
 * plugin's documentation (`conveyor plugins scale`). CV_OPTION names each
 * option as its member; defaults are text, parsed like a user's value; the
 * bounds say what init would otherwise check by hand. The array ends with
 * {0}. */
static const struct cv_option scale_options[] = {
        CV_OPTION(struct scale_config, field, CV_OPT_FIELD_NAME, .flags = CV_OPT_REQUIRED,
                  .description = "the numeric field (float or integer) to scale"),
        CV_OPTION(struct scale_config, factor, CV_OPT_DOUBLE, .default_value = "1",
                  .description = "multiplier applied first"),
        CV_OPTION(struct scale_config, offset, CV_OPT_DOUBLE, .default_value = "0",
                  .description = "added after multiplying"),
        CV_OPTION(struct scale_config, output_field, CV_OPT_FIELD_NAME,
                  .description = "field to write the result to (default: overwrite `field`)"),
        CV_OPTION(struct scale_config, decimals, CV_OPT_INT,
                  .flags = CV_OPT_HAS_MIN | CV_OPT_HAS_MAX, .default_value = "-1", .min = -1,
                  .max = 15,
                  .description = "round the result to this many decimal places; -1 keeps all"),
        CV_OPTION(struct scale_config, missing, CV_OPT_ENUM, .default_value = "dead_letter",
                  .enum_values = missing_names,
                  .description = "records lacking a numeric `field`: dead_letter (drop and "
                                 "write to the pipeline's dead_letter file), drop, or keep "
                                 "(pass unchanged)"),
        {0},
};

/* check: what the schema cannot say about options together, reported at the
 * option's place in the spec by `conveyor validate` and `run` alike. It sees
 * the filled config only: no files, no network. */
static int scale_check(struct cv_check *ck, const struct cv_host_api *api, const void *config)
{
	const struct scale_config *cfg = config;
	if (cfg->output_field.name && strcmp(cfg->output_field.name, cfg->field.name) == 0)
		api->check_error(ck, "output_field",
		                 "is `field` itself; leave it out to overwrite");
	return 0; /* any check_error() refuses the stage */
}

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

/* One per stage instance: a spec may use the plugin in several pipelines,
 * so nothing lives in globals. (A plugin that needs no state of its own
 * leaves init and destroy out: its state is then the host's cv_context.) */
struct scale {
	struct cv_stage *stage;        /* the host's handle: names us in logs/metrics */
	const struct cv_host_api *api; /* the host's services; valid until destroy */
	const struct scale_config *cfg;
	double round_scale;        /* 10^decimals; 0 when not rounding */
	struct cv_metric *skipped; /* conveyor_scale_skipped_total{reason} */
	bool warned;               /* the first skipped record is logged, not all */
	/* Dead-letter reasons, formatted once so process() never formats. */
	char reason_missing[128];
	char reason_not_numeric[128];
};

/* init: called once per stage before data flows, on the engine's main
 * thread, after check. Prepares the state and registers metrics. On failure
 * it logs why and returns a negative CV_E* code; the engine then refuses to
 * start. */
static int scale_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                      void **state)
{
	const struct scale_config *cfg = config;
	struct scale *s = calloc(1, sizeof *s);
	if (!s)
		return CV_ENOMEM;
	*s = (struct scale){.stage = stage, .api = api, .cfg = cfg};
	if (cfg->decimals >= 0)
		s->round_scale = pow(10, (double)cfg->decimals);
	snprintf(s->reason_missing, sizeof s->reason_missing, "scale: no field \"%s\"",
	         cfg->field.name);
	snprintf(s->reason_not_numeric, sizeof s->reason_not_numeric,
	         "scale: field \"%s\" is not a number", cfg->field.name);
	/* A plugin metric: the host adds the labels pipeline, stage, plugin and
	 * kind, plus ours (`reason`). Counters end in _total. Records in, out and
	 * dropped are counted by the host already: register only what it cannot
	 * know. NULL (a bad name) is harmless: updates of a NULL metric do
	 * nothing, so the plugin still works. */
	s->skipped = api->metric_register(stage, CV_METRIC_COUNTER, "conveyor_scale_skipped_total",
	                                  "Records scale could not scale, by reason.", "reason",
	                                  NULL, 0);
	api->log(stage, CV_LOG_INFO, "scaling %s by %g, offset %g, into %s", cfg->field.name,
	         cfg->factor, cfg->offset,
	         cfg->output_field.name ? cfg->output_field.name : cfg->field.name);
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

/* A record we cannot scale: reject, drop or keep it. */
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
	if (s->cfg->missing == MISSING_REJECT)
		/* One call: the host writes the record and the reason to the
		 * pipeline's dead-letter file (or logs it when there is none) and
		 * takes the record out of the batch. */
		s->api->reject(s->stage, batch, r, reason);
	else if (s->cfg->missing == MISSING_DROP)
		cv_record_drop(batch, r);
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

	/* cv_batch_next() skips records an earlier transform dropped. */
	for (struct cv_record *r = NULL; (r = cv_batch_next(batch, r));) {
		struct cv_field *f = cv_record_find_field(r, cfg->field.name, cfg->field.len);
		double v;
		if (!cv_field_number(f, &v)) {
			missing += !f;
			not_numeric += !!f;
			skip_record(s, batch, r, f ? s->reason_not_numeric : s->reason_missing);
			continue;
		}
		v = v * cfg->factor + cfg->offset;
		if (s->round_scale > 0)
			v = round(v * s->round_scale) / s->round_scale;

		if (!cfg->output_field.name) {
			/* In place: the slot keeps its key; an integer becomes a float. */
			f->type = CV_FIELD_FLOAT;
			f->v.f = v;
			continue;
		}
		/* The new field's key points into our config: it lives until
		 * destroy, longer than any batch, so it needs no copy. */
		const struct cv_field_name *out = &cfg->output_field;
		struct cv_field *o = cv_record_find_field(r, out->name, out->len);
		if (o)
			*o = (struct cv_field){.key = o->key, .key_len = o->key_len, .v.f = v};
		else if (!cv_record_add_float(s->api, batch, r, out->name, out->len, v))
			/* No field slot left and the batch's arena is full: fail the
			 * batch rather than pass records on half done. */
			return CV_ENOMEM;
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

/* CV_PLUGIN defines `cv_plugin_descriptor`, exported (the only visible
 * symbol under -fvisibility=hidden) and stamped with the ABI version and the
 * struct's size; the host refuses a plugin built for another ABI major (or a
 * newer minor). Callbacks a transform does not need (read, ack, stop, write,
 * flush, start) stay NULL. */
CV_PLUGIN(.name = "scale", .version = "1.1.0",
          .description = "multiplies a numeric field by a factor and adds an offset",
          .kind = CV_KIND_TRANSFORM, .options = scale_options,
          .config_size = sizeof(struct scale_config), .check = scale_check, .init = scale_init,
          .destroy = scale_destroy, .process = scale_process);
