/*
 * sim_speed - a source of simulated conveyor belt speeds.
 *
 * Record k (from 0) belongs to line k % lines and is that line's reading
 * number k / lines + 1 (the `seq` field). Its speed is
 *   base_speed * line factor + drift + noise * N(0,1)
 * where the line factor (0.95..1.05) is fixed per line, the drift is a slow
 * mean-reverting random walk per line, and with probability anomaly_rate
 * the reading is replaced by a stall (0.0) or a spike (1.5 to 2.5 times the
 * line's speed). Every value comes from one xoshiro256** stream seeded from
 * `seed` and consumed in record order, so the records are the same for a
 * seed whatever the batch sizes or timing; only the timestamps follow the
 * clock.
 *
 * Timestamps: paced (rate > 0), record k is due at start + k / rate on the
 * monotonic clock and carries that instant in wall-clock time; flat out, the
 * batch's wall-clock time. Either way a line's timestamps strictly increase
 * (bumped by 1 ns when needed) so InfluxDB never overwrites a point.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <conveyor/plugin.h>

struct sim_config {
	int64_t lines;
	double rate;
	int64_t count;
	int64_t seed;
	double anomaly_rate;
	double base_speed;
	double noise;
	double drift;
	const char *measurement;
	const char *tag_key;
	bool mark_injected;
	struct cv_string_map extra_tags;
};

struct sim_line {
	double factor; /* base_speed * this line's factor */
	double drift;  /* current drift, m/s */
	int64_t last_ts;
	int64_t seq;
};

struct sim {
	struct cv_stage *stage;
	const struct cv_host_api *api;
	const struct sim_config *cfg;

	uint64_t rng[4];
	struct sim_line *lines;
	struct cv_tag *tags; /* ntags per line: the line's, then the extra ones */
	uint16_t ntags;
	char *names;
	uint32_t nlines;
	uint32_t next_line; /* line of the next record */
	uint16_t measurement_len;
	uint64_t emitted; /* records so far */
	uint64_t limit;   /* count, or UINT64_MAX */

	/* Noise and drift scale factors, precomputed. */
	double noise_scale;
	double drift_step;
	double drift_keep;
	uint64_t anomaly_threshold; /* against 32 random bits */

	/* Pacing (rate > 0). */
	bool paced;
	double ns_per_record;
	int64_t start_mono; /* due time of record `sched_base` */
	uint64_t sched_base;
	int64_t wall_offset; /* wall clock minus monotonic clock */

	/* stop() may come from another thread while read() waits. */
	atomic_bool stopped;
	pthread_mutex_t lock;
	pthread_cond_t wake;
};

/* ------------------------------------------------------------------------ */
/* Random numbers                                                             */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna): fast, and good in every bit. */
static inline uint64_t next_u64(uint64_t s[4])
{
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1) from the top 53 bits. */
static inline double unit(uint64_t r)
{
	return (double)(r >> 11) * 0x1.0p-53;
}

/* Sum of four 16-bit uniforms, centred: close enough to a normal for noise
 * (bounded at about +-3.5 sigma) and far cheaper than Box-Muller. The scale
 * 1/sqrt(4 * (65536^2 - 1) / 12) is applied by the caller's factor. */
#define SUM4_MEAN   131070.0
#define SUM4_INV_SD (1.0 / 37837.22)
static inline double sum4(uint64_t r)
{
	uint64_t s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
	return (double)(int64_t)s - SUM4_MEAN;
}

/* Sum of two 16-bit uniforms, centred (triangular): for the drift steps. */
#define SUM2_INV_SD (1.0 / 26754.8)
static inline double sum2(uint32_t r)
{
	return (double)(int32_t)((r & 0xffff) + (r >> 16)) - 65535.0;
}

/* ------------------------------------------------------------------------ */
/* Clocks and waiting                                                         */
/* ------------------------------------------------------------------------ */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleeps `ns` (bounded by the caller) unless stop() comes first. */
static void wait_ns(struct sim *s, int64_t ns)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ns / 1000000000;
	until.tv_nsec += ns % 1000000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	while (!atomic_load(&s->stopped)) {
		if (pthread_cond_timedwait(&s->wake, &s->lock, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------------ */
/* Plugin callbacks                                                           */
/* ------------------------------------------------------------------------ */

static void sim_destroy(void *state)
{
	struct sim *s = state;
	if (!s)
		return;
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->lines);
	free(s->tags);
	free(s->names);
	free(s);
}

static int sim_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                    void **state)
{
	const struct sim_config *cfg = config;
	size_t mlen = strlen(cfg->measurement), klen = strlen(cfg->tag_key);
	if (mlen == 0 || mlen > UINT16_MAX || klen == 0 || klen > UINT16_MAX) {
		api->log(stage, CV_LOG_ERROR, "measurement and tag_key must be 1 to 65535 bytes");
		return CV_ECONFIG;
	}

	struct sim *s = calloc(1, sizeof *s);
	if (!s)
		return CV_ENOMEM;
	s->stage = stage;
	s->api = api;
	s->cfg = cfg;
	s->measurement_len = (uint16_t)mlen;
	s->nlines = (uint32_t)cfg->lines;
	s->limit = cfg->count > 0 ? (uint64_t)cfg->count : UINT64_MAX;
	atomic_init(&s->stopped, false);

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (rc) {
		free(s);
		return CV_ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);

	s->lines = calloc(s->nlines, sizeof *s->lines);
	/* Extra static tags (say, the producer's pod name, so replicas that
	 * number `seq` from 1 each stay distinct series); empty values are left
	 * out, as InfluxDB would. */
	size_t nextra = 0;
	for (size_t i = 0; i < cfg->extra_tags.count; i++)
		nextra += cfg->extra_tags.values[i][0] != '\0';
	if (nextra > 64) {
		api->log(stage, CV_LOG_ERROR, "at most 64 extra tags");
		sim_destroy(s);
		return CV_ECONFIG;
	}
	s->ntags = (uint16_t)(1 + nextra);
	s->tags = calloc((size_t)s->nlines * s->ntags, sizeof *s->tags);
	/* "line-" + up to 6 digits + NUL per line */
	s->names = malloc((size_t)s->nlines * 12);
	if (!s->lines || !s->tags || !s->names) {
		sim_destroy(s);
		return CV_ENOMEM;
	}

	uint64_t seed = (uint64_t)cfg->seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&seed);

	/* Built once: records point at these, nothing is allocated per record. */
	char *p = s->names;
	for (uint32_t i = 0; i < s->nlines; i++) {
		int n = snprintf(p, 12, "line-%u", i + 1);
		struct cv_tag *t = &s->tags[(size_t)i * s->ntags];
		t[0] = (struct cv_tag){.key = cfg->tag_key,
		                       .key_len = (uint32_t)klen,
		                       .value = p,
		                       .value_len = (uint32_t)n};
		for (size_t j = 0, k = 1; j < cfg->extra_tags.count; j++) {
			const char *v = cfg->extra_tags.values[j];
			if (!*v)
				continue;
			t[k++] = (struct cv_tag){.key = cfg->extra_tags.keys[j],
			                         .key_len =
			                                 (uint32_t)strlen(cfg->extra_tags.keys[j]),
			                         .value = v,
			                         .value_len = (uint32_t)strlen(v)};
		}
		p += n + 1;
		s->lines[i].factor = cfg->base_speed * (0.95 + 0.1 * unit(next_u64(s->rng)));
		s->lines[i].last_ts = INT64_MIN;
	}

	/* Drift: x <- keep * x + step * N(0,1) has stationary deviation
	 * step / sqrt(1 - keep^2); with a time constant of 1000 readings,
	 * step = drift * sqrt(1 - keep^2). */
	s->drift_keep = 1.0 - 1.0 / 1000.0;
	s->drift_step = cfg->drift * 0.044710 * SUM2_INV_SD; /* sqrt(1 - keep^2) */
	s->noise_scale = cfg->noise * SUM4_INV_SD;
	s->anomaly_threshold = (uint64_t)(cfg->anomaly_rate * 4294967296.0);

	s->paced = cfg->rate > 0;
	s->ns_per_record = s->paced ? 1e9 / cfg->rate : 0;
	*state = s;
	return 0;
}

/* Wall minus monotonic time, from two adjacent clock reads. */
static int64_t measure_offset(struct sim *s)
{
	int64_t wall = s->api->now_ns();
	return wall - mono_ns();
}

static int sim_start(void *state)
{
	struct sim *s = state;
	s->wall_offset = measure_offset(s);
	s->start_mono = mono_ns();
	s->sched_base = 0;
	return 0;
}

static void sim_stop(void *state)
{
	struct sim *s = state;
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->stopped, true);
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* Records due by `now` (monotonic), counting from the start. */
static uint64_t due_by(struct sim *s, int64_t now)
{
	if (now < s->start_mono)
		return s->sched_base;
	return s->sched_base + 1 + (uint64_t)((double)(now - s->start_mono) / s->ns_per_record);
}

/* Due time (monotonic) of record k, k >= sched_base. */
static int64_t due_time(struct sim *s, uint64_t k)
{
	return s->start_mono + (int64_t)((double)(k - s->sched_base) * s->ns_per_record);
}

/* Makes sure record r has `n` field slots before any value is drawn, so
 * that running out of arena never loses a drawn value (determinism). */
static bool ensure_slots(const struct cv_host_api *api, struct cv_batch *batch, struct cv_record *r,
                         uint16_t n)
{
	while (r->fields_cap < n) {
		/* The host's slow path grows the slots and hands out one: give
		 * it back, we only want the room. */
		if (!api->record_grow_fields(batch, r))
			return false;
		r->nfields = 0;
	}
	return true;
}

/* Appends up to n records; ts(k) = ts0 + (k - emitted) * step (step 0:
 * flat out). Returns how many. */
static uint32_t emit(struct sim *s, struct cv_batch *batch, uint32_t n, int64_t ts0, double step)
{
	const struct cv_host_api *api = s->api;
	const char *measurement = s->cfg->measurement;
	const bool mark = s->cfg->mark_injected;
	const uint16_t nfields = mark ? 3 : 2;
	const uint32_t nlines = s->nlines;
	uint32_t line = s->next_line;
	uint64_t *rng = s->rng;
	uint32_t i;

	for (i = 0; i < n; i++) {
		struct cv_record *r = cv_batch_record_new(batch);
		if (!r)
			break;
		if (r->fields_cap < nfields && !ensure_slots(api, batch, r, nfields)) {
			batch->count--;
			batch->live--;
			break; /* arena full: end the batch here */
		}
		struct sim_line *l = &s->lines[line];

		uint64_t a = next_u64(rng);
		uint64_t b = next_u64(rng);
		l->drift = l->drift * s->drift_keep + sum2((uint32_t)b) * s->drift_step;
		double speed = l->factor + l->drift + sum4(a) * s->noise_scale;
		bool injected = (b >> 32) < s->anomaly_threshold;
		if (injected) {
			uint64_t c = next_u64(rng);
			speed = (c & 1) ? 0.0 : l->factor * (1.5 + unit(c));
		}
		if (speed < 0)
			speed = 0; /* a belt does not run backwards */

		int64_t ts = ts0 + (int64_t)(step * (double)i);
		if (ts <= l->last_ts)
			ts = l->last_ts + 1;
		l->last_ts = ts;

		r->measurement = measurement;
		r->measurement_len = s->measurement_len;
		r->timestamp = ts;
		r->tags = &s->tags[(size_t)line * s->ntags];
		r->ntags = s->ntags;
		r->token = s->emitted + i;
		/* The slots are there: these inline calls cannot fail. */
		cv_record_add_float(api, batch, r, "speed_ms", 8, speed);
		cv_record_add_int(api, batch, r, "seq", 3, ++l->seq);
		if (mark)
			cv_record_add_bool(api, batch, r, "injected", 8, injected);
		if (++line == nlines)
			line = 0;
	}
	s->next_line = line;
	s->emitted += i;
	return i;
}

static int sim_read(void *state, struct cv_batch *batch)
{
	struct sim *s = state;
	if (atomic_load_explicit(&s->stopped, memory_order_relaxed))
		return CV_EOF;
	if (s->emitted >= s->limit)
		return CV_EOF;

	uint64_t room = batch->capacity - batch->count;
	uint64_t left = s->limit - s->emitted;
	uint64_t n = room < left ? room : left;

	if (!s->paced) {
		emit(s, batch, (uint32_t)n, s->api->now_ns(), 0);
	} else {
		int64_t now = mono_ns();
		uint64_t due = due_by(s, now);
		if (due <= s->emitted) {
			/* Nothing due. With records in the batch already, say so
			 * at once: the host hands the batch on. */
			if (batch->count > 0)
				return 0;
			/* Else wait for the next record, at most 100 ms, so the
			 * host stays responsive. */
			int64_t wait = due_time(s, s->emitted) - now;
			if (wait > 100000000)
				wait = 100000000;
			if (wait > 0)
				wait_ns(s, wait);
			if (atomic_load_explicit(&s->stopped, memory_order_relaxed))
				return CV_EOF;
			now = mono_ns();
			due = due_by(s, now);
		}
		if (due > s->emitted + (uint64_t)(1e9 / s->ns_per_record) + 1) {
			/* More than a second behind (a slow sink held us back):
			 * restart the schedule here rather than burst to catch up,
			 * so `rate` stays a ceiling. */
			s->sched_base = s->emitted;
			s->start_mono = now;
			due = s->emitted + 1;
		}
		if (due - s->emitted < n)
			n = due - s->emitted;
		if (n) {
			/* Follow a stepped wall clock, but not the jitter between
			 * two clock reads, so timestamps keep the schedule's
			 * spacing. */
			int64_t offset = measure_offset(s);
			if (offset > s->wall_offset + 1000000 || offset < s->wall_offset - 1000000)
				s->wall_offset = offset;
			emit(s, batch, (uint32_t)n, due_time(s, s->emitted) + s->wall_offset,
			     s->ns_per_record);
		}
	}
	return s->emitted >= s->limit ? CV_EOF : 0;
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                 */
/* ------------------------------------------------------------------------ */

#define OPT(field) offsetof(struct sim_config, field)

static const struct cv_option sim_options[] = {
        {.name = "lines",
         .type = CV_OPT_INT,
         .default_value = "5",
         .flags = CV_OPT_HAS_MIN | CV_OPT_HAS_MAX,
         .min = 1,
         .max = 100000,
         .offset = OPT(lines),
         .description = "number of conveyor lines (belts); tag values line-1 .. line-N"},
        {.name = "rate",
         .type = CV_OPT_DOUBLE,
         .default_value = "1000",
         .flags = CV_OPT_HAS_MIN,
         .min = 0,
         .offset = OPT(rate),
         .description = "records per second over all lines; 0 = as fast as possible"},
        {.name = "count",
         .type = CV_OPT_INT,
         .default_value = "0",
         .flags = CV_OPT_HAS_MIN,
         .min = 0,
         .offset = OPT(count),
         .description = "stop after this many records over all lines; 0 = never"},
        {.name = "seed",
         .type = CV_OPT_INT,
         .default_value = "1",
         .offset = OPT(seed),
         .description = "random seed: the same seed gives the same records"},
        {.name = "anomaly_rate",
         .type = CV_OPT_DOUBLE,
         .default_value = "0.01",
         .flags = CV_OPT_HAS_MIN | CV_OPT_HAS_MAX,
         .min = 0,
         .max = 1,
         .offset = OPT(anomaly_rate),
         .description = "share of readings replaced by a stall (0 m/s) or a spike (1.5-2.5x)"},
        {.name = "base_speed",
         .type = CV_OPT_DOUBLE,
         .default_value = "2.0",
         .flags = CV_OPT_HAS_MIN,
         .min = 0,
         .offset = OPT(base_speed),
         .description = "nominal belt speed in m/s (each line runs within +-5% of it)"},
        {.name = "noise",
         .type = CV_OPT_DOUBLE,
         .default_value = "0.05",
         .flags = CV_OPT_HAS_MIN,
         .min = 0,
         .offset = OPT(noise),
         .description = "standard deviation of the reading noise, m/s"},
        {.name = "drift",
         .type = CV_OPT_DOUBLE,
         .default_value = "0.1",
         .flags = CV_OPT_HAS_MIN,
         .min = 0,
         .offset = OPT(drift),
         .description = "standard deviation of each line's slow drift (mean-reverting over "
                        "about 1000 readings), m/s"},
        {.name = "measurement",
         .type = CV_OPT_STRING,
         .default_value = "conveyor_speed",
         .offset = OPT(measurement),
         .description = "measurement name of the records"},
        {.name = "tag_key",
         .type = CV_OPT_STRING,
         .default_value = "line_id",
         .offset = OPT(tag_key),
         .description = "name of the tag that carries the line"},
        {.name = "tags",
         .type = CV_OPT_MAP,
         .offset = OPT(extra_tags),
         .description = "extra static tags on every record, e.g. { producer: \"${POD_NAME}\" } "
                        "so that replicas stay distinct series; empty values are left out"},
        {.name = "mark_injected",
         .type = CV_OPT_BOOL,
         .default_value = "false",
         .offset = OPT(mark_injected),
         .description = "add a boolean field `injected`, true on injected stalls and spikes "
                        "(to measure detection)"},
        {0},
};

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "sim_speed",
        .version = "0.1.0",
        .description = "simulated conveyor belt speeds: N lines, a set rate or flat out, noise, "
                       "drift, injected stalls and spikes, repeatable by seed",
        .kind = CV_KIND_SOURCE,
        .options = sim_options,
        .config_size = sizeof(struct sim_config),
        .init = sim_init,
        .destroy = sim_destroy,
        .start = sim_start,
        .read = sim_read,
        .stop = sim_stop,
};
