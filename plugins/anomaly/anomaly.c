/*
 * anomaly - per-key rolling statistics and z-score anomaly detection.
 *
 * For each record, the series is chosen by the value of the `key` tag, and
 * the new value of `field` is compared with the series' last `window` values
 * BEFORE it joins them: mean, sample standard deviation (n - 1), z-score
 * (value - mean) / stddev. The record gets the fields mean, stddev, zscore
 * (floats) and anomaly (bool): an anomaly is |zscore| > threshold once the
 * window holds min_samples values. On a flat window (stddev 0) a different
 * value is an anomaly with zscore +-1e6, a finite stand-in for infinity so
 * the record stays encodable; the same value has zscore 0.
 *
 * Fast path: series are found through a small cache keyed by the tag value's
 * address (sources like sim_speed reuse one string per key; the bytes are
 * still compared, as batch memory is recycled), then an open-addressing hash
 * map. Each series keeps its window in a ring with running sums of (x - ref),
 * ref being a recent normal value (so a flat series sums to exactly 0); the
 * sums are recomputed from the ring every `window` updates so rounding
 * cannot accumulate.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/plugin.h>

#include "text_codec.h"

enum anomaly_mode {
	MODE_MARK = 0,
	MODE_DROP_NORMAL = 1,
};

struct anomaly_config {
	struct cv_field_name field;
	struct cv_field_name key;
	int64_t window;
	double threshold;
	int mode;
	int64_t min_samples;
	int64_t max_keys;
};

/* The z-score reported for a value off a flat window. */
#define Z_FLAT 1e6

struct series {
	uint64_t hash;
	double ref;   /* values are summed as (x - ref) */
	double sum;   /* of (x - ref) over the window */
	double sumsq; /* of (x - ref)^2 */
	uint32_t count;
	uint32_t pos; /* next ring slot */
	uint32_t updates;
	uint32_t key_len;
	char *key; /* copy, after the ring */
	double ring[];
};

struct cache_entry {
	const char *ptr;
	uint32_t len;
	struct series *s;
};

#define CACHE_SIZE 256

struct anomaly {
	struct cv_stage *stage;
	const struct cv_host_api *api;
	const struct anomaly_config *cfg;
	const char *field;
	const char *key;
	uint32_t field_len, key_len;
	uint32_t window;
	uint32_t min_samples;
	double threshold;
	bool drop_normal;

	/* Open addressing, linear probing, power-of-two size, load <= 1/2. */
	struct series **slots;
	uint32_t mask;
	uint32_t nseries;
	uint32_t max_keys;
	bool warned_full;
	struct cache_entry cache[CACHE_SIZE];

	struct cv_metric *anomalies; /* conveyor_anomalies_total */
	struct cv_metric *keys;      /* conveyor_anomaly_keys */
	char reason_no_key[160];
	char reason_no_field[160];
	char reason_not_numeric[160];
	char reason_not_finite[160];
};

static inline uint64_t load64(const char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline uint32_t load32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* Equality of short keys with two overlapping loads instead of a byte loop
 * or a call to memcmp: keys and tag values are mostly under 16 bytes. */
static inline bool same_bytes(const char *a, const char *b, uint32_t n)
{
	if (n >= 8) {
		if (n > 16)
			return memcmp(a, b, n) == 0;
		return load64(a) == load64(b) && load64(a + n - 8) == load64(b + n - 8);
	}
	if (n >= 4)
		return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
	for (uint32_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return false;
	}
	return true;
}

static inline const struct cv_tag *find_tag(const struct cv_record *r, const char *key,
                                            uint32_t len)
{
	for (uint16_t i = 0; i < r->ntags; i++) {
		const struct cv_tag *t = &r->tags[i];
		if (t->key_len == len && same_bytes(t->key, key, len))
			return t;
	}
	return NULL;
}

static inline const struct cv_field *find_field(const struct cv_record *r, const char *key,
                                                uint32_t len)
{
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		if (f->key_len == len && same_bytes(f->key, key, len))
			return f;
	}
	return NULL;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
	/* FNV-1a, then a final mix: keys are short tag values. */
	uint64_t h = cv_fnv1a64(p, n);
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	return h ^ (h >> 32);
}

static size_t cache_index(const char *p)
{
	uintptr_t a = (uintptr_t)p;
	return (size_t)((a >> 3) ^ (a >> 11)) & (CACHE_SIZE - 1);
}

static int map_grow(struct anomaly *a)
{
	uint32_t size = a->mask ? (a->mask + 1) * 2 : 64;
	struct series **slots = calloc(size, sizeof *slots);
	if (!slots)
		return CV_ENOMEM;
	for (uint32_t i = 0; a->mask && i <= a->mask; i++) {
		struct series *s = a->slots[i];
		if (!s)
			continue;
		uint32_t j = (uint32_t)s->hash & (size - 1);
		while (slots[j])
			j = (j + 1) & (size - 1);
		slots[j] = s;
	}
	free(a->slots);
	a->slots = slots;
	a->mask = size - 1;
	return 0;
}

/* The series of key bytes p[0..n): found, created, or NULL when the key
 * limit is reached or memory is short. */
static struct series *series_get(struct anomaly *a, const char *p, uint32_t n)
{
	if (!p)
		p = ""; /* an empty tag value may come without memory */
	struct cache_entry *c = &a->cache[cache_index(p)];
	if (c->ptr == p && c->len == n && same_bytes(c->s->key, p, n))
		return c->s;

	uint64_t h = hash_bytes(p, n);
	uint32_t j = (uint32_t)h & a->mask;
	struct series *s;
	while ((s = a->slots[j])) {
		if (s->hash == h && s->key_len == n && same_bytes(s->key, p, n))
			goto found;
		j = (j + 1) & a->mask;
	}

	if (a->nseries >= a->max_keys)
		return NULL;
	s = malloc(sizeof *s + a->window * sizeof(double) + n + 1);
	if (!s)
		return NULL;
	memset(s, 0, sizeof *s);
	s->hash = h;
	s->key_len = n;
	s->key = (char *)(s->ring + a->window);
	memcpy(s->key, p, n);
	s->key[n] = '\0';
	if ((a->nseries + 1) * 2 > a->mask + 1) {
		if (map_grow(a)) {
			free(s);
			return NULL;
		}
		j = (uint32_t)h & a->mask;
		while (a->slots[j])
			j = (j + 1) & a->mask;
	}
	a->slots[j] = s;
	a->nseries++;
found:
	c->ptr = p;
	c->len = n;
	c->s = s;
	return s;
}

/* Recomputes the sums from the ring around `ref`, a recent normal value:
 * a flat series then sums to exactly 0, and values stay near the origin. */
static void series_recompute(struct series *s, double ref)
{
	double sum = 0, sumsq = 0;
	for (uint32_t i = 0; i < s->count; i++) {
		double d = s->ring[i] - ref;
		sum += d;
		sumsq += d * d;
	}
	s->ref = ref;
	s->sum = sum;
	s->sumsq = sumsq;
	s->updates = 0;
}

/* Adds x to the window; `normal` tells whether x may serve as the new
 * reference point (an outlier would cost precision). */
static void series_add(struct series *s, double x, uint32_t window, bool normal)
{
	if (s->count == 0)
		s->ref = x;
	double d = x - s->ref;
	if (s->count == window) {
		double old = s->ring[s->pos] - s->ref;
		s->sum += d - old;
		s->sumsq += d * d - old * old;
	} else {
		s->count++;
		s->sum += d;
		s->sumsq += d * d;
	}
	s->ring[s->pos] = x;
	if (++s->pos == window)
		s->pos = 0;
	if (++s->updates >= window)
		series_recompute(s, normal ? x : s->ref);
}

static void anomaly_destroy(void *state)
{
	struct anomaly *a = state;
	if (!a)
		return;
	for (uint32_t i = 0; a->slots && i <= a->mask; i++)
		free(a->slots[i]);
	free(a->slots);
	free(a);
}

static int anomaly_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                        void **state)
{
	const struct anomaly_config *cfg = config;
	struct anomaly *a = calloc(1, sizeof *a);
	if (!a)
		return CV_ENOMEM;
	a->stage = stage;
	a->api = api;
	a->cfg = cfg;
	a->field = cfg->field.name;
	a->field_len = cfg->field.len;
	a->key = cfg->key.name;
	a->key_len = cfg->key.len;
	a->window = (uint32_t)cfg->window;
	a->min_samples = (uint32_t)cfg->min_samples;
	a->threshold = cfg->threshold;
	a->drop_normal = cfg->mode == MODE_DROP_NORMAL;
	a->max_keys = (uint32_t)cfg->max_keys;
	if (map_grow(a)) {
		anomaly_destroy(a);
		return CV_ENOMEM;
	}
	snprintf(a->reason_no_key, sizeof a->reason_no_key, "anomaly: record has no tag \"%.100s\"",
	         cfg->key.name);
	snprintf(a->reason_no_field, sizeof a->reason_no_field,
	         "anomaly: record has no field \"%.100s\"", cfg->field.name);
	snprintf(a->reason_not_numeric, sizeof a->reason_not_numeric,
	         "anomaly: field \"%.100s\" is not a number", cfg->field.name);
	snprintf(a->reason_not_finite, sizeof a->reason_not_finite,
	         "anomaly: field \"%.100s\" is NaN or infinite", cfg->field.name);

	a->anomalies = api->metric_register(stage, CV_METRIC_COUNTER, "conveyor_anomalies_total",
	                                    "Records flagged as anomalies", NULL, NULL, 0);
	a->keys = api->metric_register(stage, CV_METRIC_GAUGE, "conveyor_anomaly_keys",
	                               "Series (key tag values) with rolling statistics", NULL,
	                               NULL, 0);
	if (!a->anomalies || !a->keys)
		api->log(stage, CV_LOG_WARN, "could not register the anomaly metrics");
	*state = a;
	return 0;
}

/* What the option schema cannot say, at the option's FILE:LINE:COL. */
static int anomaly_check(struct cv_check *ck, const struct cv_host_api *api, const void *config)
{
	const struct anomaly_config *cfg = config;
	if (cfg->min_samples > cfg->window) {
		api->check_error(
		        ck, api->option_given(ck, "min_samples") ? "min_samples" : "window",
		        "min_samples (%lld) is larger than window (%lld): nothing could be flagged",
		        (long long)cfg->min_samples, (long long)cfg->window);
		return CV_ECONFIG;
	}
	return 0;
}

/* Appends mean, stddev, zscore and anomaly. Returns 0 or CV_ENOMEM. */
static inline int add_fields(const struct cv_host_api *api, struct cv_batch *batch,
                             struct cv_record *r, double mean, double sd, double z, bool anomaly)
{
	if (r->fields_cap - r->nfields >= 4) {
		/* The usual case: the host's slots have room, one check. */
		struct cv_field *f = r->fields + r->nfields;
		r->nfields += 4;
		f[0] = (struct cv_field){
		        .key = "mean", .key_len = 4, .type = CV_FIELD_FLOAT, .v.f = mean};
		f[1] = (struct cv_field){
		        .key = "stddev", .key_len = 6, .type = CV_FIELD_FLOAT, .v.f = sd};
		f[2] = (struct cv_field){
		        .key = "zscore", .key_len = 6, .type = CV_FIELD_FLOAT, .v.f = z};
		f[3] = (struct cv_field){
		        .key = "anomaly", .key_len = 7, .type = CV_FIELD_BOOL, .v.b = anomaly};
		return 0;
	}
	if (!cv_record_add_float(api, batch, r, "mean", 4, mean) ||
	    !cv_record_add_float(api, batch, r, "stddev", 6, sd) ||
	    !cv_record_add_float(api, batch, r, "zscore", 6, z) ||
	    !cv_record_add_bool(api, batch, r, "anomaly", 7, anomaly))
		return CV_ENOMEM;
	return 0;
}

/* Records whose stddev and zscore are still to be finished. */
#define PENDING 256

/* Turns (var, d) into (stddev, zscore) in the last fields added. */
static uint32_t finish_pending(struct cv_record **pending, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct cv_field *f = pending[i]->fields + pending[i]->nfields - 3;
		double sd = sqrt(f[0].v.f);
		f[0].v.f = sd;
		f[1].v.f /= sd;
	}
	return 0;
}

static int anomaly_process(void *state, struct cv_batch *batch)
{
	struct anomaly *a = state;
	const struct cv_host_api *api = a->api;
	const uint32_t window = a->window, min_samples = a->min_samples;
	const double threshold2 = a->threshold * a->threshold;
	const double inv_n = 1.0 / window, inv_n1 = 1.0 / (window - 1);
	uint32_t nseries = a->nseries;
	uint64_t flagged = 0;
	struct cv_record *pending[PENDING];
	uint32_t npending = 0;

	for (uint32_t i = 0; i < batch->count; i++) {
		struct cv_record *r = &batch->records[i];
		if (r->flags & CV_RECORD_DROPPED)
			continue;
		const struct cv_tag *tag = find_tag(r, a->key, a->key_len);
		const struct cv_field *f = find_field(r, a->field, a->field_len);
		const char *reason = NULL;
		double x = 0;
		if (!tag)
			reason = a->reason_no_key;
		else if (!f)
			reason = a->reason_no_field;
		else if (f->type == CV_FIELD_FLOAT)
			x = f->v.f;
		else if (f->type == CV_FIELD_INT)
			x = (double)f->v.i;
		else
			reason = a->reason_not_numeric;
		if (!reason && !isfinite(x))
			reason = a->reason_not_finite; /* would poison the window for good */
		struct series *s = NULL;
		if (!reason && !(s = series_get(a, tag->value, tag->value_len))) {
			if (!a->warned_full) {
				a->warned_full = true;
				api->log(a->stage, CV_LOG_WARN,
				         "%u keys tracked (max_keys) or out of memory: records of "
				         "new keys are dead-lettered",
				         a->nseries);
			}
			reason = "anomaly: too many keys (max_keys) or out of memory";
		}
		if (reason) {
			api->dead_letter(a->stage, NULL, 0, r, reason);
			cv_record_drop(batch, r);
			continue;
		}

		/* Statistics of the window before x joins it. The decision
		 * needs no square root: |d| / sd > t  <=>  d^2 > t^2 var. */
		uint32_t n = s->count;
		double mean = x, var = 0, d = 0, z = 0;
		bool anomaly = false;
		if (n > 0) {
			/* A full window (the steady state) multiplies by
			 * reciprocals computed once: divisions are slow. */
			bool full = n == window;
			double md = full ? s->sum * inv_n : s->sum / n;
			mean = s->ref + md;
			d = x - mean;
			if (n > 1) {
				double ss = s->sumsq - s->sum * md;
				var = full ? ss * inv_n1 : ss / (n - 1);
				if (var < 0)
					var = 0; /* rounding */
			}
			if (var == 0 && d != 0 && n >= min_samples)
				z = d > 0 ? Z_FLAT : -Z_FLAT;
			anomaly = n >= min_samples && (var > 0 ? d * d > threshold2 * var : d != 0);
		}

		if (a->drop_normal && !anomaly) {
			cv_record_drop(batch, r);
		} else {
			if (add_fields(api, batch, r, mean, var, var > 0 ? d : z, anomaly) < 0) {
				/* The batch arena is full: fail the batch (the host
				 * fails its records) rather than pass it half done. */
				if (flagged && a->anomalies)
					api->metric_add(a->anomalies, NULL, (double)flagged);
				return CV_ENOMEM;
			}
			if (var > 0) {
				/* stddev and zscore hold var and d for now: the
				 * square roots and divisions are done in a run,
				 * where they overlap instead of stalling each
				 * record. */
				pending[npending++] = r;
				if (npending == PENDING)
					npending = finish_pending(pending, npending);
			}
		}
		flagged += anomaly;
		series_add(s, x, window, !anomaly);
	}
	finish_pending(pending, npending);

	/* Metrics per batch, not per record. */
	if (flagged && a->anomalies)
		api->metric_add(a->anomalies, NULL, (double)flagged);
	if (a->nseries != nseries && a->keys)
		api->metric_set(a->keys, NULL, (double)a->nseries);
	return 0;
}

#define OPT(field) offsetof(struct anomaly_config, field)

static const char *const mode_names[] = {"mark", "drop_normal", NULL};

static const struct cv_option anomaly_options[] = {
        {.name = "field",
         .type = CV_OPT_FIELD_NAME,
         .default_value = "speed_ms",
         .offset = OPT(field),
         .description = "numeric field (float or integer) to watch"},
        {.name = "key",
         .type = CV_OPT_FIELD_NAME,
         .default_value = "line_id",
         .offset = OPT(key),
         .description = "tag whose value names the series (one window per value)"},
        {.name = "window",
         .type = CV_OPT_INT,
         .default_value = "60",
         .flags = CV_OPT_HAS_MIN | CV_OPT_HAS_MAX,
         .min = 2,
         .max = 1000000,
         .offset = OPT(window),
         .description = "values per series the statistics cover (the latest ones)"},
        {.name = "threshold",
         .type = CV_OPT_DOUBLE,
         .default_value = "3.0",
         .flags = CV_OPT_HAS_MIN,
         .min = 0.01,
         .offset = OPT(threshold),
         .description = "a value is an anomaly when |zscore| exceeds this many standard "
                        "deviations"},
        {.name = "mode",
         .type = CV_OPT_ENUM,
         .default_value = "mark",
         .enum_values = mode_names,
         .offset = OPT(mode),
         .description = "mark: add mean, stddev, zscore, anomaly to every record; drop_normal: "
                        "also drop the records that are not anomalies"},
        {.name = "min_samples",
         .type = CV_OPT_INT,
         .default_value = "10",
         .flags = CV_OPT_HAS_MIN | CV_OPT_HAS_MAX,
         .min = 2,
         .max = 1000000,
         .offset = OPT(min_samples),
         .description = "values a series needs before anything is flagged (at most window)"},
        {.name = "max_keys",
         .type = CV_OPT_INT,
         .default_value = "100000",
         .flags = CV_OPT_HAS_MIN | CV_OPT_HAS_MAX,
         .min = 1,
         .max = 100000000,
         .offset = OPT(max_keys),
         .description = "series kept at most (memory: window * 8 bytes each); records of "
                        "further keys are dead-lettered"},
        {0},
};

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "anomaly",
        .version = "0.1.0",
        .description = "per-key rolling mean, standard deviation and z-score; marks or drops "
                       "anomalies",
        .kind = CV_KIND_TRANSFORM,
        .options = anomaly_options,
        .config_size = sizeof(struct anomaly_config),
        .init = anomaly_init,
        .check = anomaly_check,
        .destroy = anomaly_destroy,
        .process = anomaly_process,
};
