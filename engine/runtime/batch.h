/* batch.h - the host side of a batch: record and field slots allocated once,
 * a bump arena for strings and extra fields, and the acknowledgement state:
 * settling its records, routing rejected ones to the dead-letter
 * destination, and telling its owner when the last one settled. Batches are
 * recycled through a pipeline's pool, so the hot path never mallocs. */
#ifndef CONVEYOR_BATCH_H
#define CONVEYOR_BATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

#include "runtime/dead_letter.h"

struct batch;
struct transform_set;

/* What settling needs of whoever owns a batch (a pipeline, a stage
 * harness), so that this file knows nothing of them. */
struct batch_owner {
	/* The batch's last record settled: called once, on the thread that
	 * settled it. */
	void (*complete)(void *ctx, struct batch *b);
	void *ctx;
	struct dead_letter *dead_letter; /* where rejected records go; NULL: nowhere */
	const char *sink;                /* the stage named in a rejection's dead letter */
};

struct batch {
	struct cv_batch pub; /* first: plugins see only this */
	const struct batch_owner *owner;
	struct cv_field *slots; /* capacity * slots_per_record */
	uint16_t slots_per_record;
	char *arena;
	size_t arena_used;
	size_t arena_cap;
	_Atomic uint32_t pending; /* records the sink has yet to settle */
	_Atomic uint32_t delivered;
	_Atomic uint32_t rejected;
	_Atomic uint32_t failed;
	struct transform_set *xf; /* the transforms that ran on it, until it settles */
	/* Dead letters of its records, written when it completes: before its
	 * source can acknowledge it. Sinks may settle from several threads. */
	pthread_mutex_t dl_mu;
	struct dead_letter_buf dl;
	struct batch *next; /* queue and free-list link */
};

static inline struct batch *batch_of(struct cv_batch *pub)
{
	return (struct batch *)pub;
}

/* Allocates a batch of `capacity` records with `slots` field slots each and
 * an arena of `arena_bytes`. NULL on allocation failure. */
struct batch *batch_new(uint32_t capacity, uint16_t slots, size_t arena_bytes);
/* Writes dead letters still buffered (a batch that never completed), then
 * frees. */
void batch_free(struct batch *b);
/* Empties the batch for reuse: restores each used record's own field slots. */
void batch_reset(struct batch *b);
/* The host API's arena services. */
void *batch_alloc(struct cv_batch *pub, size_t size);
char *batch_strdup(struct cv_batch *pub, const char *s, size_t len);
struct cv_field *batch_record_grow_fields(struct cv_batch *pub, struct cv_record *r);
/* Bytes this batch holds in memory (records, slots, arena). */
size_t batch_footprint(const struct batch *b);

/* Settles record `index` with `outcome` (a rejected record goes to the
 * owner's dead-letter destination with `reason`); ignores an index out of
 * range and a record settled or dropped already. Any thread; the settle
 * that leaves nothing pending completes the batch. */
void batch_settle(struct batch *b, uint32_t index, enum cv_ack outcome, const char *reason);
/* Settles every record not settled yet with `outcome`, with one atomic
 * update for them all. */
void batch_settle_all(struct batch *b, enum cv_ack outcome, const char *reason);
/* Holds the batch while the sink's write runs: `live` records pending plus
 * the host's own hold, so the batch cannot complete (and be recycled) under
 * the caller's feet, whatever the sink settles meanwhile. */
void batch_hold(struct batch *b, uint32_t live);
/* Drops the hold taken by batch_hold(); completes the batch if it was the
 * last thing pending. */
void batch_release(struct batch *b);
/* Completes a batch with nothing pending (no live record reached a sink):
 * writes its dead letters, then calls its owner. */
void batch_complete(struct batch *b);
/* Dead-letters input of this batch from `stage` into the batch's buffer,
 * written when the batch completes (or early, past DEAD_LETTER_BUF_FLUSH).
 * `record` and `raw` may be NULL. Any thread. */
void batch_dead_letter(struct batch *b, const char *stage, const char *reason,
                       const struct cv_record *record, const void *raw, size_t raw_len);

#endif
