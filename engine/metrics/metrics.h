/* metrics.h - the Prometheus registry: families of series with labels,
 * lock-free updates on the hot path, text exposition (format 0.0.4) that
 * passes `promtool check metrics`.
 *
 * Updates are relaxed atomics: a series is updated from any thread without a
 * lock. Creating families and series takes a mutex (not on the hot path).
 */
#ifndef CONVEYOR_METRICS_H
#define CONVEYOR_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"

enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
	METRIC_HISTOGRAM,
};

struct metrics;
struct metric_family;
struct metric_series;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Gets or creates a family. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*, and a
 * counter's name must end in "_total" (the exposition keeps it as given).
 * Label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__".
 * Histograms take `buckets` (ascending upper bounds, +Inf added by the
 * registry); NULL/0 selects METRICS_LATENCY_BUCKETS. Returns NULL when the
 * name or labels are invalid, or the name exists with another type or other
 * label names (or, for a histogram, other buckets). Label names must be
 * distinct, and a histogram may not have an "le" label. The family lives
 * until metrics_free(). */
struct metric_family *metrics_family(struct metrics *m, enum metric_type type, const char *name,
                                     const char *help, const char *const *label_names,
                                     size_t nlabels, const double *buckets, size_t nbuckets);

/* Gets or creates the series of `family` for `label_values` (as many as the
 * family has label names; any bytes, escaped on output). The pointer stays
 * valid until metrics_free() or until metrics_remove_series() drops it. NULL
 * on allocation failure. */
struct metric_series *metrics_series(struct metric_family *family, const char *const *label_values);

/* Removes the series for which `drop` returns true, given the family's
 * label names and the series' values (nlabels of each), so that a removed
 * pipeline's series leave the exposition. The caller guarantees that no
 * thread still holds a removed series' pointer. `drop` runs under the
 * registry lock and must not call the registry. Returns the count removed. */
size_t metrics_remove_series(struct metrics *m,
                             bool (*drop)(void *ctx, const char *const *names,
                                          const char *const *values, size_t nlabels),
                             void *ctx);

/* Counter: adds n (integer fast path). */
void metric_inc(struct metric_series *s, uint64_t n);
/* Counter or gauge: adds v (gauges may go down; a counter ignores a negative
 * or NaN v). Whole v on a counter takes the integer path. */
void metric_add(struct metric_series *s, double v);
/* Gauge: sets v. */
void metric_set(struct metric_series *s, double v);
/* Histogram: one observation of v. */
void metric_observe(struct metric_series *s, double v);
/* Histogram: the bucket index v falls in (nbuckets for +Inf). */
size_t metric_bucket_index(const struct metric_series *s, double v);
/* Histogram: the upper bound of bucket idx (INFINITY for the last). */
double metric_bucket_bound(const struct metric_series *s, size_t idx);
/* Histogram: n observations in bucket idx whose values add up to sum. */
void metric_observe_bucket(struct metric_series *s, size_t idx, double sum, uint64_t n);
/* Reads a counter or gauge's value (for summaries and tests). */
double metric_value(const struct metric_series *s);
/* Reads a histogram's observation count. */
uint64_t metric_count(const struct metric_series *s);

/* Histogram: copies the cumulative count of each bucket into `cumulative`
 * (room for nbounds + 1: the last is +Inf, the total) in one pass, so they
 * agree as /metrics shows them, and the sum into *sum (may be NULL).
 * Returns nbounds, and sets *bounds to the family's upper bounds (valid
 * until metrics_free()); 0 for another type. Passing NULL cumulative only
 * returns nbounds. */
size_t metric_histogram_read(const struct metric_series *s, const double **bounds,
                             uint64_t *cumulative, double *sum);
/* The name of the family a plugin registered (as /metrics shows it). */
const char *metric_family_name(const struct metric_family *f);

/* The q-quantile (0..1) of a histogram from its cumulative bucket counts
 * (nbounds finite bounds, nbounds + 1 counts), interpolated linearly inside
 * the bucket as Prometheus' histogram_quantile() does; the highest finite
 * bound when it falls in +Inf; NaN with no observations. */
double metrics_histogram_quantile(double q, const double *bounds, const uint64_t *cumulative,
                                  size_t nbounds);

/* A callback that appends more exposition text at render time (process
 * metrics). It must write complete # HELP / # TYPE blocks. Collectors run in
 * the order added, outside the registry lock. Returns 0, CV_ENOMEM, or
 * CV_EINVAL for a NULL registry or function. */
typedef void (*metrics_collector_fn)(void *ctx, struct strbuf *out);
int metrics_add_collector(struct metrics *m, metrics_collector_fn fn, void *ctx);

/* Renders every family (in registration order; series in creation order)
 * then the collectors. Returns 0, or CV_ENOMEM (strbuf's -2). */
int metrics_render(struct metrics *m, struct strbuf *out);

/* Appends v as Prometheus clients print floats: the shortest text that
 * reads back to the same double ("1e-06", "2.5e-06", "0.005", "1", "+Inf",
 * "NaN"). Returns 0 or CV_ENOMEM. */
int metrics_append_double(struct strbuf *out, double v);

/* 1us .. 10s in 1-2.5-5 steps, in seconds. */
extern const double METRICS_LATENCY_BUCKETS[];
extern const size_t METRICS_LATENCY_NBUCKETS;

/* process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds, from /proc. A metrics_collector_fn. */
void process_metrics_collect(void *ctx, struct strbuf *out);

#endif
