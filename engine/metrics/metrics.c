/* metrics.c - the Prometheus registry and its text exposition (0.0.4).
 *
 * Families and series are linked lists that grow, so a series pointer
 * handed out once stays valid until metrics_free(), or until a reload drops
 * the series of what it removed (metrics_remove_series); creation, removal
 * and rendering take the registry mutex, updates are relaxed atomics and
 * take nothing.
 */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/plugin.h> /* the error codes: one convention, the SDK's */

#include "text_codec.h"

/* Series updated by different threads sit on separate cache lines. */
#define CACHE_LINE 64

const double METRICS_LATENCY_BUCKETS[] = {
        1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
        5e-3, 1e-2,   2.5e-2, 5e-2, 0.1,    0.25, 0.5,  1,      2.5,  5,    10,
};
const size_t METRICS_LATENCY_NBUCKETS =
        sizeof(METRICS_LATENCY_BUCKETS) / sizeof(METRICS_LATENCY_BUCKETS[0]);

struct metric_series {
	struct metric_series *next;  /* creation order, for rendering */
	struct metric_series *hnext; /* the family's hash chain */
	uint64_t hash;
	enum metric_type type;
	/* Counter: the integer part (metric_inc and integral metric_add). */
	_Atomic uint64_t ival;
	/* Counter: the fractional part; gauge: the value; histogram: the sum.
	 * A double's bit pattern, updated by compare-and-swap. */
	_Atomic uint64_t fbits;
	/* Histogram: nbounds + 1 per-bucket (not cumulative) counts. */
	_Atomic uint64_t *counts;
	const double *bounds; /* the family's, immutable */
	size_t nbounds;
	char **label_values;
};

struct metric_family {
	struct metric_family *next;
	struct metrics *m;
	enum metric_type type;
	char *name;
	char *help;
	char **label_names;
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	struct metric_series *series_head;
	struct metric_series *series_tail;
	/* Label values -> series, so a lookup (the plugin API looks up per
	 * call when a metric has an extra label) stays cheap with many series.
	 * Chains link the series themselves: they never move. */
	struct metric_series **table;
	size_t table_size; /* a power of two, or 0 */
	size_t nseries;
};

struct collector {
	struct collector *next;
	metrics_collector_fn fn;
	void *ctx;
};

struct metrics {
	pthread_mutex_t lock;
	struct metric_family *families_head;
	struct metric_family *families_tail;
	struct collector *collectors_head;
	struct collector *collectors_tail;
	size_t ncollectors;
};

static uint64_t dbl_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

static double bits_dbl(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

static void atomic_dbl_add(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old, dbl_bits(bits_dbl(old) + v),
	                                              memory_order_relaxed, memory_order_relaxed))
		;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char **dup_strv(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = xstrdup(v[i] ? v[i] : "");
		if (!out[i]) {
			free_strv(out, i);
			return NULL;
		}
	}
	return out;
}

static bool valid_metric_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool alpha =
		        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
		if (!alpha && !(p != s && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool valid_label_name(const char *s)
{
	if (!s || !*s || (s[0] == '_' && s[1] == '_'))
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(p != s && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

static void series_free(struct metric_series *s, size_t nlabels)
{
	free_strv(s->label_values, nlabels);
	free(s->counts);
	free(s);
}

static void family_free(struct metric_family *f)
{
	struct metric_series *s = f->series_head;
	while (s) {
		struct metric_series *next = s->next;
		series_free(s, f->nlabels);
		s = next;
	}
	free(f->name);
	free(f->help);
	free_strv(f->label_names, f->nlabels);
	free(f->bounds);
	free(f->table);
	free(f);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	struct metric_family *f = m->families_head;
	while (f) {
		struct metric_family *next = f->next;
		family_free(f);
		f = next;
	}
	struct collector *c = m->collectors_head;
	while (c) {
		struct collector *next = c->next;
		free(c);
		c = next;
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Checks the name, the label names and a histogram's bounds. */
static bool check_family_args(enum metric_type type, const char *name,
                              const char *const *label_names, size_t nlabels, const double *buckets,
                              size_t nbuckets)
{
	if (type != METRIC_COUNTER && type != METRIC_GAUGE && type != METRIC_HISTOGRAM)
		return false;
	if (!valid_metric_name(name))
		return false;
	if (type == METRIC_COUNTER && !has_suffix(name, "_total"))
		return false;
	if (nlabels && !label_names)
		return false;
	for (size_t i = 0; i < nlabels; i++) {
		if (!valid_label_name(label_names[i]))
			return false;
		/* "le" is the bucket label of histograms. */
		if (type == METRIC_HISTOGRAM && strcmp(label_names[i], "le") == 0)
			return false;
		for (size_t j = 0; j < i; j++)
			if (strcmp(label_names[i], label_names[j]) == 0)
				return false;
	}
	if (type == METRIC_HISTOGRAM && buckets) {
		for (size_t i = 0; i < nbuckets; i++) {
			if (isnan(buckets[i]) || buckets[i] == -INFINITY)
				return false;
			if (i > 0 && !(buckets[i] > buckets[i - 1]))
				return false;
		}
	}
	return true;
}

static bool same_family_shape(const struct metric_family *f, enum metric_type type,
                              const char *const *label_names, size_t nlabels, const double *bounds,
                              size_t nbounds)
{
	if (f->type != type || f->nlabels != nlabels)
		return false;
	for (size_t i = 0; i < nlabels; i++)
		if (strcmp(f->label_names[i], label_names[i]) != 0)
			return false;
	if (type != METRIC_HISTOGRAM)
		return true;
	if (f->nbounds != nbounds)
		return false;
	for (size_t i = 0; i < nbounds; i++)
		if (f->bounds[i] != bounds[i])
			return false;
	return true;
}

struct metric_family *metrics_family(struct metrics *m, enum metric_type type, const char *name,
                                     const char *help, const char *const *label_names,
                                     size_t nlabels, const double *buckets, size_t nbuckets)
{
	if (!m || !check_family_args(type, name, label_names, nlabels, buckets, nbuckets))
		return NULL;
	const double *bounds = NULL;
	size_t nbounds = 0;
	if (type == METRIC_HISTOGRAM) {
		if (buckets && nbuckets) {
			bounds = buckets;
			nbounds = nbuckets;
		} else {
			bounds = METRICS_LATENCY_BUCKETS;
			nbounds = METRICS_LATENCY_NBUCKETS;
		}
		/* +Inf is implicit; a caller that lists it gets it once. */
		if (nbounds && bounds[nbounds - 1] == INFINITY)
			nbounds--;
	}

	pthread_mutex_lock(&m->lock);
	struct metric_family *f;
	for (f = m->families_head; f; f = f->next) {
		if (strcmp(f->name, name) == 0) {
			if (!same_family_shape(f, type, label_names, nlabels, bounds, nbounds))
				f = NULL;
			pthread_mutex_unlock(&m->lock);
			return f;
		}
	}

	f = calloc(1, sizeof(*f));
	if (!f)
		goto fail;
	f->m = m;
	f->type = type;
	f->nlabels = nlabels;
	f->name = xstrdup(name);
	f->help = xstrdup(help ? help : "");
	f->label_names = dup_strv(label_names, nlabels);
	if (!f->name || !f->help || !f->label_names)
		goto fail_family;
	if (type == METRIC_HISTOGRAM) {
		f->bounds = malloc((nbounds ? nbounds : 1) * sizeof(double));
		if (!f->bounds)
			goto fail_family;
		if (nbounds)
			memcpy(f->bounds, bounds, nbounds * sizeof(double));
		f->nbounds = nbounds;
	}
	if (m->families_tail)
		m->families_tail->next = f;
	else
		m->families_head = f;
	m->families_tail = f;
	pthread_mutex_unlock(&m->lock);
	return f;

fail_family:
	family_free(f);
fail:
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

static struct metric_series *series_new(const struct metric_family *f,
                                        const char *const *label_values)
{
	size_t size = (sizeof(struct metric_series) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	struct metric_series *s = aligned_alloc(CACHE_LINE, size);
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->type = f->type;
	atomic_init(&s->ival, 0);
	atomic_init(&s->fbits, dbl_bits(0.0));
	s->label_values = dup_strv(label_values, f->nlabels);
	if (!s->label_values)
		goto fail;
	if (f->type == METRIC_HISTOGRAM) {
		s->bounds = f->bounds;
		s->nbounds = f->nbounds;
		s->counts = malloc((f->nbounds + 1) * sizeof(*s->counts));
		if (!s->counts)
			goto fail;
		for (size_t i = 0; i <= f->nbounds; i++)
			atomic_init(&s->counts[i], 0);
	}
	return s;
fail:
	series_free(s, f->nlabels);
	return NULL;
}

/* FNV-1a over the values, each ended by a NUL. */
static uint64_t labels_hash(const char *const *values, size_t n)
{
	uint64_t h = CV_FNV1A64_BASIS;
	for (size_t i = 0; i < n; i++) {
		const char *v = values[i] ? values[i] : "";
		h = cv_fnv1a64_more(h, v, strlen(v) + 1);
	}
	return h;
}

static bool labels_equal(const struct metric_series *s, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->label_values[i], values[i] ? values[i] : "") != 0)
			return false;
	return true;
}

/* Doubles the table once it holds more series than slots; on allocation
 * failure the old table keeps working, only with longer chains. */
static int table_grow(struct metric_family *f)
{
	size_t size = f->table_size ? f->table_size * 2 : 8;
	struct metric_series **t = calloc(size, sizeof(*t));
	if (!t)
		return CV_ENOMEM;
	for (struct metric_series *s = f->series_head; s; s = s->next) {
		size_t slot = (size_t)(s->hash & (size - 1));
		s->hnext = t[slot];
		t[slot] = s;
	}
	free(f->table);
	f->table = t;
	f->table_size = size;
	return 0;
}

struct metric_series *metrics_series(struct metric_family *f, const char *const *label_values)
{
	if (!f || (f->nlabels && !label_values))
		return NULL;
	struct metrics *m = f->m;
	uint64_t h = labels_hash(label_values, f->nlabels);
	pthread_mutex_lock(&m->lock);
	struct metric_series *s = NULL;
	if (f->table_size)
		s = f->table[h & (f->table_size - 1)];
	for (; s; s = s->hnext)
		if (s->hash == h && labels_equal(s, label_values, f->nlabels))
			goto out;
	if (f->nseries >= f->table_size && table_grow(f) < 0 && !f->table_size)
		goto out; /* s is NULL: no table at all */
	s = series_new(f, label_values);
	if (!s)
		goto out;
	s->hash = h;
	size_t slot = (size_t)(h & (f->table_size - 1));
	s->hnext = f->table[slot];
	f->table[slot] = s;
	if (f->series_tail)
		f->series_tail->next = s;
	else
		f->series_head = s;
	f->series_tail = s;
	f->nseries++;
out:
	pthread_mutex_unlock(&m->lock);
	return s;
}

size_t metrics_remove_series(struct metrics *m,
                             bool (*drop)(void *ctx, const char *const *names,
                                          const char *const *values, size_t nlabels),
                             void *ctx)
{
	size_t removed = 0;
	if (!m || !drop)
		return 0;
	pthread_mutex_lock(&m->lock);
	for (struct metric_family *f = m->families_head; f; f = f->next) {
		struct metric_series **link = &f->series_head, *prev = NULL;
		while (*link) {
			struct metric_series *s = *link;
			if (!drop(ctx, (const char *const *)f->label_names,
			          (const char *const *)s->label_values, f->nlabels)) {
				prev = s;
				link = &s->next;
				continue;
			}
			*link = s->next;
			if (f->series_tail == s)
				f->series_tail = prev;
			struct metric_series **h = &f->table[s->hash & (f->table_size - 1)];
			while (*h != s)
				h = &(*h)->hnext;
			*h = s->hnext;
			f->nseries--;
			series_free(s, f->nlabels);
			removed++;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return removed;
}

void metric_inc(struct metric_series *s, uint64_t n)
{
	if (s->type == METRIC_COUNTER)
		atomic_fetch_add_explicit(&s->ival, n, memory_order_relaxed);
	else if (s->type == METRIC_GAUGE)
		atomic_dbl_add(&s->fbits, (double)n);
}

void metric_add(struct metric_series *s, double v)
{
	if (s->type == METRIC_GAUGE) {
		atomic_dbl_add(&s->fbits, v);
	} else if (s->type == METRIC_COUNTER) {
		/* A counter never goes down. Whole numbers (the common case:
		 * record counts through the plugin API) take the integer path,
		 * which is exact and cheaper than a CAS loop. */
		if (!(v >= 0))
			return;
		if (v < 9007199254740992.0 && v == (double)(uint64_t)v)
			atomic_fetch_add_explicit(&s->ival, (uint64_t)v, memory_order_relaxed);
		else
			atomic_dbl_add(&s->fbits, v);
	}
}

void metric_set(struct metric_series *s, double v)
{
	if (s->type == METRIC_GAUGE)
		atomic_store_explicit(&s->fbits, dbl_bits(v), memory_order_relaxed);
}

size_t metric_bucket_index(const struct metric_series *s, double v)
{
	/* The first bound >= v (buckets are "less or equal"); NaN lands in +Inf. */
	size_t lo = 0, hi = s->nbounds;
	if (isnan(v))
		return hi;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->bounds[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

double metric_bucket_bound(const struct metric_series *s, size_t idx)
{
	return idx < s->nbounds ? s->bounds[idx] : INFINITY;
}

void metric_observe_bucket(struct metric_series *s, size_t idx, double sum, uint64_t n)
{
	if (s->type != METRIC_HISTOGRAM)
		return;
	if (idx > s->nbounds)
		idx = s->nbounds;
	atomic_fetch_add_explicit(&s->counts[idx], n, memory_order_relaxed);
	atomic_dbl_add(&s->fbits, sum);
}

void metric_observe(struct metric_series *s, double v)
{
	if (s->type == METRIC_HISTOGRAM)
		metric_observe_bucket(s, metric_bucket_index(s, v), v, 1);
}

double metric_value(const struct metric_series *s)
{
	double f = bits_dbl(atomic_load_explicit(&s->fbits, memory_order_relaxed));
	if (s->type == METRIC_COUNTER)
		return (double)atomic_load_explicit(&s->ival, memory_order_relaxed) + f;
	if (s->type == METRIC_GAUGE)
		return f;
	return NAN;
}

uint64_t metric_count(const struct metric_series *s)
{
	uint64_t n = 0;
	if (s->type != METRIC_HISTOGRAM)
		return 0;
	for (size_t i = 0; i <= s->nbounds; i++)
		n += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
	return n;
}

size_t metric_histogram_read(const struct metric_series *s, const double **bounds,
                             uint64_t *cumulative, double *sum)
{
	if (s->type != METRIC_HISTOGRAM)
		return 0;
	if (bounds)
		*bounds = s->bounds;
	if (cumulative) {
		uint64_t cum = 0;
		for (size_t i = 0; i <= s->nbounds; i++) {
			cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
			cumulative[i] = cum;
		}
	}
	if (sum)
		*sum = bits_dbl(atomic_load_explicit(&s->fbits, memory_order_relaxed));
	return s->nbounds;
}

const char *metric_family_name(const struct metric_family *f)
{
	return f->name;
}

double metrics_histogram_quantile(double q, const double *bounds, const uint64_t *cumulative,
                                  size_t nbounds)
{
	uint64_t total = cumulative[nbounds];
	if (total == 0 || isnan(q))
		return NAN;
	double rank = q * (double)total;
	size_t i = 0;
	while (i < nbounds && (double)cumulative[i] < rank)
		i++;
	if (i == nbounds)
		return nbounds ? bounds[nbounds - 1] : NAN;
	double lo = i ? bounds[i - 1] : 0;
	double below = i ? (double)cumulative[i - 1] : 0;
	double in = (double)cumulative[i] - below;
	if (lo > bounds[i] || in <= 0)
		return bounds[i];
	return lo + (bounds[i] - lo) * (rank - below) / in;
}

int metrics_add_collector(struct metrics *m, metrics_collector_fn fn, void *ctx)
{
	if (!m || !fn)
		return CV_EINVAL;
	struct collector *c = calloc(1, sizeof(*c));
	if (!c)
		return CV_ENOMEM;
	c->fn = fn;
	c->ctx = ctx;
	pthread_mutex_lock(&m->lock);
	if (m->collectors_tail)
		m->collectors_tail->next = c;
	else
		m->collectors_head = c;
	m->collectors_tail = c;
	m->ncollectors++;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* ---- exposition ---- */

int metrics_append_double(struct strbuf *out, double v)
{
	if (isnan(v))
		return strbuf_puts(out, "NaN");
	if (isinf(v))
		return strbuf_puts(out, v > 0 ? "+Inf" : "-Inf");
	/* Shortest digits that read back to the same double, laid out as Go's
	 * strconv.FormatFloat(v, 'g', -1, 64) does (what Prometheus client
	 * libraries print): exponent form below 1e-4 and from 1e6 up. */
	char buf[40];
	int prec;
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	if (prec == 17)
		snprintf(buf, sizeof(buf), "%.16e", v);
	const char *e = strchr(buf, 'e');
	int exp = e ? atoi(e + 1) : 0;
	if (exp < -4 || exp >= 6)
		return strbuf_puts(out, buf);
	int decimals = prec - 1 - exp;
	return strbuf_printf(out, "%.*f", decimals > 0 ? decimals : 0, v);
}

/* A sample value: whole numbers print as integers, the rest as doubles. */
static int append_value(struct strbuf *out, double v)
{
	if (v == floor(v) && fabs(v) < 9007199254740992.0 && !(v == 0 && signbit(v)))
		return strbuf_printf(out, "%.0f", v);
	return metrics_append_double(out, v);
}

/* Escapes help text (quote=false) or a label value (quote=true). Bytes that
 * are not UTF-8 become U+FFFD: the exposition must be valid UTF-8. */
static void append_escaped(struct strbuf *out, const char *str, bool quote)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str), start = 0, i = 0;
	while (i < len) {
		const char *rep = NULL;
		size_t n = cv_utf8_seq(s + i, len - i);
		if (n == 0)
			rep = "\xef\xbf\xbd";
		else if (s[i] == '\\')
			rep = "\\\\";
		else if (s[i] == '\n')
			rep = "\\n";
		else if (quote && s[i] == '"')
			rep = "\\\"";
		if (!rep) {
			i += n;
			continue;
		}
		strbuf_append(out, str + start, i - start);
		strbuf_puts(out, rep);
		i += n ? n : 1;
		start = i;
	}
	strbuf_append(out, str + start, len - start);
}

static const char *type_name(enum metric_type t)
{
	switch (t) {
	case METRIC_COUNTER: return "counter";
	case METRIC_GAUGE: return "gauge";
	case METRIC_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

/* name{a="x",b="y"[,le="..."]} */
static void append_sample_name(struct strbuf *out, const struct metric_family *f,
                               const struct metric_series *s, const char *suffix, const double *le)
{
	strbuf_puts(out, f->name);
	strbuf_puts(out, suffix);
	if (f->nlabels == 0 && !le)
		return;
	strbuf_append(out, "{", 1);
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i)
			strbuf_append(out, ",", 1);
		strbuf_puts(out, f->label_names[i]);
		strbuf_append(out, "=\"", 2);
		append_escaped(out, s->label_values[i], true);
		strbuf_append(out, "\"", 1);
	}
	if (le) {
		if (f->nlabels)
			strbuf_append(out, ",", 1);
		strbuf_puts(out, "le=\"");
		metrics_append_double(out, *le);
		strbuf_append(out, "\"", 1);
	}
	strbuf_append(out, "}", 1);
}

static void render_series(struct strbuf *out, const struct metric_family *f,
                          const struct metric_series *s)
{
	if (f->type == METRIC_COUNTER) {
		uint64_t iv = atomic_load_explicit(&s->ival, memory_order_relaxed);
		double fv = bits_dbl(atomic_load_explicit(&s->fbits, memory_order_relaxed));
		append_sample_name(out, f, s, "", NULL);
		strbuf_append(out, " ", 1);
		if (fv == 0)
			strbuf_printf(out, "%" PRIu64, iv);
		else
			append_value(out, (double)iv + fv);
		strbuf_append(out, "\n", 1);
		return;
	}
	if (f->type == METRIC_GAUGE) {
		append_sample_name(out, f, s, "", NULL);
		strbuf_append(out, " ", 1);
		append_value(out, metric_value(s));
		strbuf_append(out, "\n", 1);
		return;
	}
	/* Histogram: one pass over the counts so the +Inf bucket and _count
	 * agree even while observations arrive. */
	uint64_t cum = 0;
	for (size_t i = 0; i <= f->nbounds; i++) {
		double le = i < f->nbounds ? f->bounds[i] : INFINITY;
		cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
		append_sample_name(out, f, s, "_bucket", &le);
		strbuf_printf(out, " %" PRIu64 "\n", cum);
	}
	append_sample_name(out, f, s, "_sum", NULL);
	strbuf_append(out, " ", 1);
	append_value(out, bits_dbl(atomic_load_explicit(&s->fbits, memory_order_relaxed)));
	strbuf_append(out, "\n", 1);
	append_sample_name(out, f, s, "_count", NULL);
	strbuf_printf(out, " %" PRIu64 "\n", cum);
}

int metrics_render(struct metrics *m, struct strbuf *out)
{
	pthread_mutex_lock(&m->lock);
	for (const struct metric_family *f = m->families_head; f; f = f->next) {
		strbuf_printf(out, "# HELP %s ", f->name);
		append_escaped(out, f->help, false);
		strbuf_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
		for (const struct metric_series *s = f->series_head; s; s = s->next)
			render_series(out, f, s);
	}
	/* Collectors run unlocked so they may use the registry; the first
	 * ncollectors nodes are immutable once linked. */
	struct collector *c = m->collectors_head;
	size_t n = m->ncollectors;
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < n && c; i++, c = c->next)
		c->fn(c->ctx, out);
	return out->failed ? -2 : 0;
}
