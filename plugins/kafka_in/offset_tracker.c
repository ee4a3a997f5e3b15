/*
 * offset_tracker.c - contiguous settled prefix per partition. See
 * offset_tracker.h.
 *
 * Each active slot keeps a ring of the offsets handed out and not yet popped,
 * in offset order; an entry's top bit marks it settled. Settling the head
 * pops it and every settled entry behind it, so the head is always the first
 * unsettled offset: the commit position. A failure pins the position at its
 * offset; entries past it no longer matter and are dropped, and later offsets
 * are only counted, so a pinned partition costs no memory per record.
 */
#include "offset_tracker.h"

#include <stdlib.h>
#include <string.h>

#define DONE_BIT (UINT64_C(1) << 63)

enum slot_state {
	SLOT_FREE = 0,
	SLOT_ACTIVE,
	SLOT_RETIRED, /* revoked, waiting for its records in flight to settle */
};

struct slot {
	uint8_t state;
	uint32_t topic;
	int32_t partition;
	int64_t last_consumed; /* -1: nothing yet */
	int64_t committed;     /* last position marked committed, -1: none */
	int64_t failed_at;     /* -1: not pinned */
	uint64_t outstanding;  /* tokens handed out, not settled */
	uint64_t *ring;        /* offset | DONE_BIT; capacity a power of two */
	uint32_t cap, head, len;
};

struct offset_tracker {
	struct slot *slots; /* [0] unused: token 0 means "not ours" */
	size_t nslots;      /* allocated, including [0] */
};

struct offset_tracker *offset_tracker_new(void)
{
	return calloc(1, sizeof(struct offset_tracker));
}

void offset_tracker_free(struct offset_tracker *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nslots; i++)
		free(t->slots[i].ring);
	free(t->slots);
	free(t);
}

static struct slot *active(const struct offset_tracker *t, int slot)
{
	if (slot <= 0 || (size_t)slot >= t->nslots || t->slots[slot].state != SLOT_ACTIVE)
		return NULL;
	return &t->slots[slot];
}

int offset_tracker_find(const struct offset_tracker *t, uint32_t topic, int32_t partition)
{
	for (size_t i = 1; i < t->nslots; i++) {
		const struct slot *s = &t->slots[i];
		if (s->state == SLOT_ACTIVE && s->topic == topic && s->partition == partition)
			return (int)i;
	}
	return 0;
}

int offset_tracker_assign(struct offset_tracker *t, uint32_t topic, int32_t partition)
{
	int found = offset_tracker_find(t, topic, partition);
	if (found)
		return found;
	size_t idx = 0;
	for (size_t i = 1; i < t->nslots; i++) {
		if (t->slots[i].state == SLOT_FREE) {
			idx = i;
			break;
		}
	}
	if (!idx) {
		size_t n = t->nslots ? t->nslots * 2 : 16;
		if (n > OT_MAX_SLOTS + 1)
			n = OT_MAX_SLOTS + 1;
		if (n <= t->nslots)
			return -1;
		struct slot *s = realloc(t->slots, n * sizeof *s);
		if (!s)
			return -1;
		memset(s + t->nslots, 0, (n - t->nslots) * sizeof *s);
		idx = t->nslots ? t->nslots : 1;
		t->slots = s;
		t->nslots = n;
	}
	struct slot *s = &t->slots[idx];
	uint64_t *ring = s->ring; /* a freed slot keeps no ring, see revoke */
	*s = (struct slot){
	        .state = SLOT_ACTIVE,
	        .topic = topic,
	        .partition = partition,
	        .last_consumed = -1,
	        .committed = -1,
	        .failed_at = -1,
	        .ring = ring,
	};
	return (int)idx;
}

void offset_tracker_revoke(struct offset_tracker *t, int slot)
{
	struct slot *s = active(t, slot);
	if (!s)
		return;
	free(s->ring);
	s->ring = NULL;
	s->cap = s->head = s->len = 0;
	s->state = s->outstanding ? SLOT_RETIRED : SLOT_FREE;
}

static uint64_t *entry(const struct slot *s, uint32_t i)
{
	return &s->ring[(s->head + i) & (s->cap - 1)];
}

static int ring_push(struct slot *s, int64_t offset)
{
	if (s->len == s->cap) {
		uint32_t ncap = s->cap ? s->cap * 2 : 64;
		if (ncap < s->cap)
			return -1;
		uint64_t *r = malloc(ncap * sizeof *r);
		if (!r)
			return -1;
		for (uint32_t i = 0; i < s->len; i++)
			r[i] = *entry(s, i);
		free(s->ring);
		s->ring = r;
		s->cap = ncap;
		s->head = 0;
	}
	*entry(s, s->len) = (uint64_t)offset;
	s->len++;
	return 0;
}

uint64_t offset_tracker_consume(struct offset_tracker *t, int slot, int64_t offset)
{
	struct slot *s = active(t, slot);
	if (!s || offset < 0 || offset > OT_OFFSET_MAX || offset <= s->last_consumed)
		return 0;
	/* Once pinned, later offsets can never be committed by this
	 * assignment: count them, do not keep them. */
	if (s->failed_at < 0 && ring_push(s, offset) < 0)
		return 0;
	s->last_consumed = offset;
	s->outstanding++;
	return ((uint64_t)slot << OT_OFFSET_BITS) | (uint64_t)offset;
}

/* The ring index of `offset`, or -1. Offsets are mostly dense, so the guess
 * from the head usually hits; gaps (compaction, dead letters) fall back to a
 * binary search. */
static int64_t ring_find(const struct slot *s, int64_t offset)
{
	if (!s->len)
		return -1;
	int64_t first = (int64_t)(*entry(s, 0) & ~DONE_BIT);
	if (offset < first)
		return -1;
	uint64_t guess = (uint64_t)(offset - first);
	if (guess < s->len && (int64_t)(*entry(s, (uint32_t)guess) & ~DONE_BIT) == offset)
		return (int64_t)guess;
	uint32_t lo = 0, hi = s->len;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int64_t v = (int64_t)(*entry(s, mid) & ~DONE_BIT);
		if (v == offset)
			return mid;
		if (v < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

bool offset_tracker_settle(struct offset_tracker *t, uint64_t token, enum ot_outcome outcome)
{
	int idx = offset_tracker_token_slot(token);
	int64_t offset = offset_tracker_token_offset(token);
	if (token == 0 || idx <= 0 || (size_t)idx >= t->nslots)
		return false;
	struct slot *s = &t->slots[idx];
	if (s->state == SLOT_RETIRED) {
		if (s->outstanding && --s->outstanding == 0)
			s->state = SLOT_FREE;
		return false;
	}
	if (s->state != SLOT_ACTIVE)
		return false;
	int64_t i = ring_find(s, offset);
	if (i < 0 || (*entry(s, (uint32_t)i) & DONE_BIT)) {
		/* Past a pin (counted only), or settled twice (a transform that
		 * copied a record's token): only the count moves. */
		if (s->outstanding && (s->failed_at >= 0 && offset > s->failed_at))
			s->outstanding--;
		return false;
	}
	if (s->outstanding)
		s->outstanding--;
	if (outcome == OT_FAILED) {
		bool first = s->failed_at < 0;
		s->failed_at = offset;
		/* Entries at and past the failure can no longer move the
		 * position; their settles are only counted from now on. */
		s->len = (uint32_t)i;
		return first;
	}
	*entry(s, (uint32_t)i) |= DONE_BIT;
	while (s->len && (*entry(s, 0) & DONE_BIT)) {
		s->head = (s->head + 1) & (s->cap - 1);
		s->len--;
	}
	return false;
}

int64_t offset_tracker_position(const struct offset_tracker *t, int slot)
{
	const struct slot *s = active(t, slot);
	if (!s || s->last_consumed < 0)
		return -1;
	int64_t pos = s->len ? (int64_t)(*entry(s, 0) & ~DONE_BIT) : s->last_consumed + 1;
	if (s->failed_at >= 0 && s->failed_at < pos)
		pos = s->failed_at;
	return pos;
}

bool offset_tracker_committable(const struct offset_tracker *t, int slot, int64_t *offset)
{
	const struct slot *s = active(t, slot);
	int64_t pos = offset_tracker_position(t, slot);
	if (!s || pos < 0 || pos <= s->committed)
		return false;
	*offset = pos;
	return true;
}

void offset_tracker_mark_committed(struct offset_tracker *t, int slot, int64_t offset)
{
	struct slot *s = active(t, slot);
	if (s && offset > s->committed)
		s->committed = offset;
}

void offset_tracker_forget_committed(struct offset_tracker *t, int slot)
{
	struct slot *s = active(t, slot);
	if (s)
		s->committed = -1;
}

bool offset_tracker_slot_info(const struct offset_tracker *t, int slot, uint32_t *topic,
                              int32_t *partition)
{
	const struct slot *s = active(t, slot);
	if (!s)
		return false;
	*topic = s->topic;
	*partition = s->partition;
	return true;
}

int offset_tracker_next(const struct offset_tracker *t, int slot)
{
	for (size_t i = (size_t)(slot < 0 ? 0 : slot) + 1; i < t->nslots; i++) {
		if (t->slots[i].state == SLOT_ACTIVE)
			return (int)i;
	}
	return 0;
}

uint64_t offset_tracker_in_flight(const struct offset_tracker *t)
{
	uint64_t n = 0;
	for (size_t i = 1; i < t->nslots; i++) {
		if (t->slots[i].state == SLOT_ACTIVE)
			n += t->slots[i].outstanding;
	}
	return n;
}

int64_t offset_tracker_failed_at(const struct offset_tracker *t, int slot)
{
	const struct slot *s = active(t, slot);
	return s ? s->failed_at : -1;
}
