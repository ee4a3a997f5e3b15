/* batch.h - the host side of a batch: record and field slots allocated once,
 * a bump arena for strings and extra fields, and the acknowledgement state.
 * Batches are recycled through a pipeline's pool, so the hot path never
 * mallocs. */
#ifndef CONVEYOR_BATCH_H
#define CONVEYOR_BATCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

struct pipeline;
struct transform_set;

struct batch {
	struct cv_batch pub; /* first: plugins see only this */
	struct pipeline *pipeline;
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
	struct batch *next;       /* queue and free-list link */
};

static inline struct batch *batch_of(struct cv_batch *pub)
{
	return (struct batch *)pub;
}

/* Allocates a batch of `capacity` records with `slots` field slots each and
 * an arena of `arena_bytes`. NULL on allocation failure. */
struct batch *batch_new(uint32_t capacity, uint16_t slots, size_t arena_bytes);
void batch_free(struct batch *b);
/* Empties the batch for reuse: restores each used record's own field slots. */
void batch_reset(struct batch *b);
/* The host API's arena services. */
void *batch_alloc(struct cv_batch *pub, size_t size);
char *batch_strdup(struct cv_batch *pub, const char *s, size_t len);
struct cv_field *batch_record_grow_fields(struct cv_batch *pub, struct cv_record *r);
/* Bytes this batch holds in memory (records, slots, arena). */
size_t batch_footprint(const struct batch *b);

#endif
