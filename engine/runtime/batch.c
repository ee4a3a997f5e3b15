#include "runtime/batch.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/dead_letter.h"

struct batch *batch_new(uint32_t capacity, uint16_t slots, size_t arena_bytes)
{
	struct batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->pub.records = calloc(capacity, sizeof *b->pub.records);
	b->slots = calloc((size_t)capacity * slots, sizeof *b->slots);
	b->arena = malloc(arena_bytes);
	if (!b->pub.records || !b->slots || !b->arena) {
		batch_free(b);
		return NULL;
	}
	pthread_mutex_init(&b->dl_mu, NULL);
	b->pub.capacity = capacity;
	b->slots_per_record = slots;
	b->arena_cap = arena_bytes;
	for (uint32_t i = 0; i < capacity; i++) {
		b->pub.records[i].fields = b->slots + (size_t)i * slots;
		b->pub.records[i].fields_cap = slots;
	}
	return b;
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	if (b->pub.capacity) { /* made whole: the mutex was initialised */
		if (b->owner)
			dead_letter_flush(b->owner->dead_letter, &b->dl);
		dead_letter_buf_free(&b->dl);
		pthread_mutex_destroy(&b->dl_mu);
	}
	free(b->pub.records);
	free(b->slots);
	free(b->arena);
	free(b);
}

void batch_reset(struct batch *b)
{
	uint16_t slots = b->slots_per_record;
	for (uint32_t i = 0; i < b->pub.count; i++) {
		struct cv_record *r = &b->pub.records[i];
		r->fields = b->slots + (size_t)i * slots;
		r->fields_cap = slots;
	}
	b->pub.count = 0;
	b->pub.live = 0;
	b->arena_used = 0;
	atomic_store_explicit(&b->pending, 0, memory_order_relaxed);
	atomic_store_explicit(&b->delivered, 0, memory_order_relaxed);
	atomic_store_explicit(&b->rejected, 0, memory_order_relaxed);
	atomic_store_explicit(&b->failed, 0, memory_order_relaxed);
	b->next = NULL;
}

void *batch_alloc(struct cv_batch *pub, size_t size)
{
	struct batch *b = batch_of(pub);
	size_t start = (b->arena_used + 7) & ~(size_t)7;
	if (size > b->arena_cap || start > b->arena_cap - size)
		return NULL;
	b->arena_used = start + size;
	return b->arena + start;
}

char *batch_strdup(struct cv_batch *pub, const char *s, size_t len)
{
	struct batch *b = batch_of(pub);
	if (len >= b->arena_cap || b->arena_used > b->arena_cap - len - 1)
		return NULL;
	char *p = b->arena + b->arena_used;
	memcpy(p, s, len);
	p[len] = '\0';
	b->arena_used += len + 1;
	return p;
}

struct cv_field *batch_record_grow_fields(struct cv_batch *pub, struct cv_record *r)
{
	uint32_t cap = r->fields_cap ? (uint32_t)r->fields_cap * 2 : 4;
	if (cap > UINT16_MAX)
		cap = UINT16_MAX;
	if (r->nfields >= cap)
		return NULL;
	struct cv_field *f = batch_alloc(pub, cap * sizeof *f);
	if (!f)
		return NULL;
	memcpy(f, r->fields, r->nfields * sizeof *f);
	r->fields = f;
	r->fields_cap = (uint16_t)cap;
	return &r->fields[r->nfields++];
}

size_t batch_footprint(const struct batch *b)
{
	return sizeof *b +
	       b->pub.capacity *
	               (sizeof(struct cv_record) + b->slots_per_record * sizeof(struct cv_field)) +
	       b->arena_cap;
}

#define SETTLED (CV_RECORD_DELIVERED | CV_RECORD_REJECTED | CV_RECORD_FAILED | CV_RECORD_DROPPED)

void batch_complete(struct batch *b)
{
	if (b->dl.entries) {
		pthread_mutex_lock(&b->dl_mu);
		dead_letter_flush(b->owner->dead_letter, &b->dl);
		pthread_mutex_unlock(&b->dl_mu);
	}
	b->owner->complete(b->owner->ctx, b);
}

static void buffer(struct batch *b, const char *stage, const char *what, const char *reason,
                   const struct cv_record *record, const void *raw, size_t raw_len)
{
	pthread_mutex_lock(&b->dl_mu);
	dead_letter_buffer(b->owner->dead_letter, &b->dl, stage, what, reason, record, raw,
	                   raw_len);
	pthread_mutex_unlock(&b->dl_mu);
}

void batch_dead_letter(struct batch *b, const char *stage, const char *reason,
                       const struct cv_record *record, const void *raw, size_t raw_len)
{
	buffer(b, stage, "dead letter", reason, record, raw, raw_len);
}

static void rejected(struct batch *b, uint32_t index, const char *reason)
{
	buffer(b, b->owner->sink, "record rejected", reason, &b->pub.records[index], NULL, 0);
}

void batch_settle(struct batch *b, uint32_t index, enum cv_ack outcome, const char *reason)
{
	if (index >= b->pub.count || (b->pub.records[index].flags & SETTLED))
		return; /* out of range, dropped, or settled twice: ignore */
	struct cv_record *r = &b->pub.records[index];
	switch (outcome) {
	case CV_ACK_DELIVERED:
		r->flags |= CV_RECORD_DELIVERED;
		atomic_fetch_add_explicit(&b->delivered, 1, memory_order_relaxed);
		break;
	case CV_ACK_REJECTED:
		r->flags |= CV_RECORD_REJECTED;
		atomic_fetch_add_explicit(&b->rejected, 1, memory_order_relaxed);
		rejected(b, index, reason);
		break;
	default:
		r->flags |= CV_RECORD_FAILED;
		atomic_fetch_add_explicit(&b->failed, 1, memory_order_relaxed);
		break;
	}
	if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1)
		batch_complete(b);
}

void batch_settle_all(struct batch *b, enum cv_ack outcome, const char *reason)
{
	static const uint16_t flag_of[] = {CV_RECORD_DELIVERED, CV_RECORD_REJECTED,
	                                   CV_RECORD_FAILED};
	uint16_t flag = flag_of[(unsigned)outcome <= CV_ACK_FAILED ? outcome : CV_ACK_FAILED];
	uint32_t n = 0;
	/* One pass setting flags, one atomic add: no locked instruction per record. */
	for (uint32_t i = 0; i < b->pub.count; i++) {
		struct cv_record *r = &b->pub.records[i];
		if (r->flags & SETTLED)
			continue;
		r->flags |= flag;
		n++;
		if (flag == CV_RECORD_REJECTED)
			rejected(b, i, reason);
	}
	if (!n)
		return;
	_Atomic uint32_t *counter = flag == CV_RECORD_DELIVERED  ? &b->delivered
	                            : flag == CV_RECORD_REJECTED ? &b->rejected
	                                                         : &b->failed;
	atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
	if (atomic_fetch_sub_explicit(&b->pending, n, memory_order_acq_rel) == n)
		batch_complete(b);
}

void batch_hold(struct batch *b, uint32_t live)
{
	atomic_store_explicit(&b->pending, live + 1, memory_order_release);
}

void batch_release(struct batch *b)
{
	if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1)
		batch_complete(b);
}
