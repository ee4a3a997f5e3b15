/*
 * offset_tracker.h - which Kafka offsets may be committed: per assigned
 * partition, the contiguous prefix of consumed offsets that were settled.
 *
 * kafka_in hands records out in offset order per partition, but sinks settle
 * them in any order. The commit position of a partition (the next offset to
 * read after a restart) is the offset of its first unsettled record, or one
 * past the last consumed when everything is settled. A record that failed in
 * the sink pins the position at its offset for as long as the partition stays
 * assigned, so a restart or a rebalance reads it again.
 *
 * Partitions live in slots. A record's token is (slot, offset), so a settle
 * finds its partition without a lookup by name. A revoked partition's slot is
 * retired: acks still in flight for it are ignored (they must never be
 * committed by this consumer), and the slot is reused only once every one of
 * them came back, so a late ack can never land on a re-assigned partition.
 *
 * Pure bookkeeping, single-threaded (kafka_in calls it on its source thread),
 * no librdkafka. Memory per partition grows with the records in flight, not
 * with the records consumed.
 */
#ifndef CONVEYOR_OFFSET_TRACKER_H
#define CONVEYOR_OFFSET_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Offsets must be below 2^48 (a token holds 16 bits of slot, 48 of offset). */
#define OT_OFFSET_BITS 48
#define OT_OFFSET_MAX  ((INT64_C(1) << OT_OFFSET_BITS) - 1)
#define OT_MAX_SLOTS   65535

struct offset_tracker;

enum ot_outcome {
	OT_DONE = 0,   /* delivered, rejected (dead-lettered) or filtered */
	OT_FAILED = 1, /* delivery failed: the position must not pass it */
};

struct offset_tracker *offset_tracker_new(void);
void offset_tracker_free(struct offset_tracker *t);

/* Starts tracking (topic, partition), newly assigned. `topic` is the
 * caller's id for the topic. Returns the slot (> 0), or -1 when out of memory
 * or slots. An already active slot for the pair is returned as is. */
int offset_tracker_assign(struct offset_tracker *t, uint32_t topic, int32_t partition);

/* The active slot of (topic, partition), or 0 if it is not assigned. */
int offset_tracker_find(const struct offset_tracker *t, uint32_t topic, int32_t partition);

/* Stops tracking the slot's partition (revoked or lost). Its records still in
 * flight are ignored when they settle. */
void offset_tracker_revoke(struct offset_tracker *t, int slot);

/* Records that `offset` of the active `slot` was handed out (offsets rise
 * within a slot; gaps are fine). Returns the record's token, or 0 when the
 * offset is out of range, not above the last one, or memory ran out (the
 * record is then not tracked and must not be emitted). */
uint64_t offset_tracker_consume(struct offset_tracker *t, int slot, int64_t offset);

/* Settles a token. Returns true when this failure is the first to pin its
 * partition (for a log line); false otherwise. Tokens of revoked slots and
 * token 0 are ignored. */
bool offset_tracker_settle(struct offset_tracker *t, uint64_t token, enum ot_outcome outcome);

/* The position (next offset to read) the active slot may commit: true and
 * *offset when it is past the last one marked committed; false otherwise. */
bool offset_tracker_committable(const struct offset_tracker *t, int slot, int64_t *offset);

/* The position whether or not it was committed; -1 when nothing was
 * consumed from the slot yet. */
int64_t offset_tracker_position(const struct offset_tracker *t, int slot);

/* Marks `offset` committed for the slot (so committable() reports only
 * progress); forget(...) makes a later committable() report it again, e.g.
 * after a failed commit. */
void offset_tracker_mark_committed(struct offset_tracker *t, int slot, int64_t offset);
void offset_tracker_forget_committed(struct offset_tracker *t, int slot);

/* The slot's topic id and partition; false for a slot that is not active. */
bool offset_tracker_slot_info(const struct offset_tracker *t, int slot, uint32_t *topic,
                              int32_t *partition);

/* Iterates active slots: returns the first active slot after `slot` (start
 * with 0), or 0 at the end. */
int offset_tracker_next(const struct offset_tracker *t, int slot);

/* Records handed out and not yet settled, in active slots. */
uint64_t offset_tracker_in_flight(const struct offset_tracker *t);

/* The failure offset pinning the slot, or -1. */
int64_t offset_tracker_failed_at(const struct offset_tracker *t, int slot);

/* Token layout, for callers and tests. */
static inline int offset_tracker_token_slot(uint64_t token)
{
	return (int)(token >> OT_OFFSET_BITS);
}
static inline int64_t offset_tracker_token_offset(uint64_t token)
{
	return (int64_t)(token & (uint64_t)OT_OFFSET_MAX);
}

#endif
