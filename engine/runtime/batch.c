#include "runtime/batch.h"

#include <stdlib.h>
#include <string.h>

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
