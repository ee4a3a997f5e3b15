/* tap.h - live copies of the records leaving a stage, for `conveyor tap`
 * and the console (GET /api/v1/tap).
 *
 * A tap never slows its pipeline: the pipeline's worker copies records,
 * encoded as JSON or line protocol, one per line, into the tap's bounded
 * ring without waiting, and counts as missed what does not fit or what
 * goes past the tap's rate cap. With no tap attached the worker pays one
 * relaxed load of the stage's `tapped` flag per batch.
 *
 * A tap has two owners: the stage it is attached to (until the tap's limit
 * is reached, the reader closes it, or the pipeline is freed) and its
 * reader (the HTTP stream), who calls tap_close() once. */
#ifndef CONVEYOR_TAP_H
#define CONVEYOR_TAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

#include "runtime/stage.h"

struct pipeline;
struct tap;
struct tap_hub;

/* Records per second one tap takes at most; more are counted as missed. */
#define TAP_MAX_RATE 20000
/* Bytes of encoded records a tap holds for its reader. */
#define TAP_RING_BYTES (1u << 20)
/* Taps open at once in the whole engine. */
#define TAP_MAX_OPEN 16

enum tap_end {
	TAP_RUNNING = 0,
	TAP_END_LIMIT,    /* the tap's limit of records was reached */
	TAP_END_PIPELINE, /* the pipeline stopped or was replaced */
	TAP_END_CLOSED,   /* the reader closed it */
};

enum tap_format {
	TAP_FORMAT_JSON = 0,   /* the record encoders' JSON */
	TAP_FORMAT_INFLUX = 1, /* InfluxDB line protocol */
};

/* A pipeline's taps: made with the pipeline, closed with it. NULL when out
 * of memory. */
struct tap_hub *tap_hub_new(void);
/* Ends every tap still attached to one of `stages` (TAP_END_PIPELINE)
 * and drops the pipeline's hold on the hub. NULL is fine. */
void tap_hub_close(struct tap_hub *hub, struct cv_stage *stages, size_t nstages);
/* Ends every tap attached to one of `stages` (TAP_END_PIPELINE), keeping
 * the hub open: for transforms a reload replaced, before they are freed.
 * NULL is fine. */
void tap_stages_detach(struct tap_hub *hub, struct cv_stage *stages, size_t nstages);

/* Attaches a tap to `st` of pipeline `p`: records leaving the stage from
 * now on, at most `limit` (0: no limit). Returns the tap, or NULL with
 * *why: "too many taps" (TAP_MAX_OPEN) or "out of memory". */
struct tap *tap_attach(struct pipeline *p, struct cv_stage *st, enum tap_format format,
                       uint64_t limit, const char **why);
/* The reader's end: detaches the tap if still attached, frees it when the
 * stage let go too. */
void tap_close(struct tap *t);

/* Copies up to `max` bytes of encoded records (whole or in part, lines end
 * in '\n') into buf, or only up to the end of the current line when
 * `line_end`; returns the count, 0 when none is waiting. */
size_t tap_read(struct tap *t, char *buf, size_t max, bool line_end);
/* Drops the records waiting in the ring (from a line's start); returns how
 * many there were. */
uint64_t tap_discard(struct tap *t);
/* True when encoded records wait to be read. */
bool tap_pending(const struct tap *t);

struct tap_status {
	uint64_t records;     /* records taken into the ring */
	uint64_t missed;      /* records left out: ring full or over the rate cap */
	uint64_t unencodable; /* records the format cannot carry (NaN, ...) */
	enum tap_end end;     /* TAP_RUNNING while records may still come */
};
void tap_get_status(const struct tap *t, struct tap_status *st);
/* "limit", "pipeline stopped", "closed", or NULL while running. */
const char *tap_end_name(enum tap_end end);

/* Taps attached to `st` now. */
size_t tap_count(const struct cv_stage *st);

/* The worker's hook: called with the batch as it leaves `st`. */
void tap_publish(struct cv_stage *st, const struct cv_batch *batch);

static inline void tap_point(struct cv_stage *st, const struct cv_batch *batch)
{
	if (atomic_load_explicit(&st->tapped, memory_order_relaxed))
		tap_publish(st, batch);
}

#endif
