/* tap.c - a single-producer, single-consumer byte ring per tap: the
 * pipeline's worker encodes records into it, the HTTP thread reads them out.
 * Attaching and detaching take the pipeline's hub lock, which the worker
 * holds while it publishes (only while a tap is attached); the hub outlives
 * the pipeline as long as a tap refers to it, so a reader closing its tap
 * never touches a freed pipeline. */
#include "runtime/tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "record_format.h"
#include "base/clock.h"
#include "runtime/pipeline.h"

/* Records a tap may take at once after an idle spell. */
#define TAP_BURST (TAP_MAX_RATE / 10)
/* Room below which the ring is taken as full (a record's line is rarely
 * longer). */
#define TAP_MIN_ROOM 512

struct tap_hub {
	pthread_mutex_t mu;
	_Atomic int refs; /* the pipeline's, and one per tap */
	bool closed;
};

struct tap {
	struct tap *next;       /* the stage's list, under hub->mu */
	struct tap_hub *hub;    /* held */
	struct cv_stage *stage; /* while attached, under hub->mu */
	_Atomic int refs;       /* the stage's while attached, the reader's until tap_close */
	enum tap_format format;
	uint64_t limit;
	char *ring;
	size_t cap; /* a power of two */
	_Atomic uint64_t head, tail;
	_Atomic uint64_t records, missed, unencodable;
	_Atomic int end;
	/* The worker's alone. */
	int64_t refill_ns;
	double tokens;
	struct cv_buf line;
};

static _Atomic int open_taps;

struct tap_hub *tap_hub_new(void)
{
	struct tap_hub *hub = calloc(1, sizeof *hub);
	if (!hub)
		return NULL;
	pthread_mutex_init(&hub->mu, NULL);
	atomic_init(&hub->refs, 1);
	return hub;
}

static void hub_unref(struct tap_hub *hub)
{
	if (atomic_fetch_sub(&hub->refs, 1) == 1) {
		pthread_mutex_destroy(&hub->mu);
		free(hub);
	}
}

static void tap_unref(struct tap *t)
{
	if (atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	hub_unref(t->hub);
	cv_buf_free(&t->line);
	free(t->ring);
	free(t);
	atomic_fetch_sub(&open_taps, 1);
}

/* Under hub->mu: takes t off its stage's list. */
static void unlink_tap(struct tap *t, enum tap_end why)
{
	struct cv_stage *st = t->stage;
	for (struct tap **pp = &st->taps; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->next = NULL;
	t->stage = NULL;
	atomic_store_explicit(&st->tapped, st->taps != NULL, memory_order_relaxed);
	int running = TAP_RUNNING;
	atomic_compare_exchange_strong(&t->end, &running, (int)why);
}

/* Unlinks the taps of `stages` (hub->mu held); returns them as a list. */
static struct tap *unlink_stages(struct cv_stage *stages, size_t nstages)
{
	struct tap *gone = NULL;
	for (size_t i = 0; i < nstages; i++) {
		while (stages[i].taps) {
			struct tap *t = stages[i].taps;
			unlink_tap(t, TAP_END_PIPELINE);
			t->next = gone;
			gone = t;
		}
	}
	return gone;
}

static void drop_stage_holds(struct tap *gone)
{
	while (gone) {
		struct tap *next = gone->next;
		tap_unref(gone); /* the stage's hold */
		gone = next;
	}
}

void tap_hub_close(struct tap_hub *hub, struct cv_stage *stages, size_t nstages)
{
	if (!hub)
		return;
	pthread_mutex_lock(&hub->mu);
	hub->closed = true;
	struct tap *gone = unlink_stages(stages, nstages);
	pthread_mutex_unlock(&hub->mu);
	drop_stage_holds(gone);
	hub_unref(hub);
}

void tap_stages_detach(struct tap_hub *hub, struct cv_stage *stages, size_t nstages)
{
	if (!hub)
		return;
	pthread_mutex_lock(&hub->mu);
	struct tap *gone = unlink_stages(stages, nstages);
	pthread_mutex_unlock(&hub->mu);
	drop_stage_holds(gone);
}

struct tap *tap_attach(struct pipeline *p, struct cv_stage *st, enum tap_format format,
                       uint64_t limit, const char **why)
{
	if (atomic_fetch_add(&open_taps, 1) >= TAP_MAX_OPEN) {
		atomic_fetch_sub(&open_taps, 1);
		*why = "too many taps open";
		return NULL;
	}
	struct tap *t = calloc(1, sizeof *t);
	if (t)
		t->ring = malloc(TAP_RING_BYTES);
	if (!t || !t->ring || !p->taps) {
		free(t ? t->ring : NULL);
		free(t);
		atomic_fetch_sub(&open_taps, 1);
		*why = "out of memory";
		return NULL;
	}
	t->cap = TAP_RING_BYTES;
	t->format = format;
	t->limit = limit;
	t->tokens = TAP_BURST;
	t->refill_ns = clock_monotonic_ns();
	atomic_init(&t->refs, 2);
	struct tap_hub *hub = p->taps;
	pthread_mutex_lock(&hub->mu);
	if (hub->closed) {
		pthread_mutex_unlock(&hub->mu);
		free(t->ring);
		free(t);
		atomic_fetch_sub(&open_taps, 1);
		*why = "the pipeline is stopping";
		return NULL;
	}
	atomic_fetch_add(&hub->refs, 1);
	t->hub = hub;
	t->stage = st;
	t->next = st->taps;
	st->taps = t;
	atomic_store_explicit(&st->tapped, true, memory_order_relaxed);
	pthread_mutex_unlock(&hub->mu);
	return t;
}

void tap_close(struct tap *t)
{
	if (!t)
		return;
	bool attached = false;
	pthread_mutex_lock(&t->hub->mu);
	if (t->stage) {
		unlink_tap(t, TAP_END_CLOSED);
		attached = true;
	}
	pthread_mutex_unlock(&t->hub->mu);
	if (attached)
		tap_unref(t);
	tap_unref(t);
}

static void ring_put(struct tap *t, uint64_t head, const char *data, size_t len)
{
	size_t at = (size_t)(head & (t->cap - 1));
	size_t first = t->cap - at < len ? t->cap - at : len;
	memcpy(t->ring + at, data, first);
	memcpy(t->ring, data + first, len - first);
}

/* Copies the live records of `b` into t's ring while it has room, tokens
 * and limit left. Returns true when the limit is reached. */
static bool publish_one(struct tap *t, const struct cv_batch *b)
{
	int64_t now = clock_monotonic_ns();
	t->tokens += (double)(now - t->refill_ns) * (TAP_MAX_RATE * 1e-9);
	if (t->tokens > TAP_BURST)
		t->tokens = TAP_BURST;
	t->refill_ns = now;
	uint64_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
	uint64_t taken = atomic_load_explicit(&t->records, memory_order_relaxed);
	uint32_t seen = 0, put = 0, bad = 0;
	for (uint32_t i = 0; i < b->count && seen < b->live; i++) {
		const struct cv_record *r = &b->records[i];
		if (r->flags & CV_RECORD_DROPPED)
			continue;
		if (t->limit && taken + put >= t->limit)
			break;
		uint64_t room =
		        t->cap - (head - atomic_load_explicit(&t->tail, memory_order_acquire));
		if (t->tokens < 1 || room < TAP_MIN_ROOM)
			break;
		seen++;
		cv_buf_reset(&t->line);
		int rc = cv_record_encode(&t->line, (enum cv_record_format)t->format, r);
		if (rc == 0)
			rc = cv_buf_append(&t->line, "\n", 1);
		if (rc < 0 || t->line.len > room) {
			bad += rc == CV_EINVAL;
			continue;
		}
		ring_put(t, head, t->line.data, t->line.len);
		head += t->line.len;
		put++;
		t->tokens -= 1;
	}
	/* Live records not taken were missed (a reader too slow, the rate cap,
	 * or out of memory), but not those past the limit. */
	bool done = t->limit && taken + put >= t->limit;
	uint32_t missed = done ? seen - put - bad : b->live - put - bad;
	atomic_store_explicit(&t->head, head, memory_order_release);
	atomic_store_explicit(&t->records, taken + put, memory_order_relaxed);
	if (missed)
		atomic_fetch_add_explicit(&t->missed, missed, memory_order_relaxed);
	if (bad)
		atomic_fetch_add_explicit(&t->unencodable, bad, memory_order_relaxed);
	return done;
}

void tap_publish(struct cv_stage *st, const struct cv_batch *b)
{
	struct tap_hub *hub = st->pipeline ? st->pipeline->taps : NULL;
	if (!hub || b->live == 0)
		return;
	struct tap *done = NULL;
	pthread_mutex_lock(&hub->mu);
	for (struct tap *t = st->taps, *next; t; t = next) {
		next = t->next;
		if (publish_one(t, b)) {
			unlink_tap(t, TAP_END_LIMIT);
			t->next = done;
			done = t;
		}
	}
	pthread_mutex_unlock(&hub->mu);
	while (done) {
		struct tap *next = done->next;
		tap_unref(done); /* the stage's hold; the reader still has its own */
		done = next;
	}
}

size_t tap_count(const struct cv_stage *st)
{
	struct tap_hub *hub = st->pipeline ? st->pipeline->taps : NULL;
	if (!hub || !atomic_load_explicit(&st->tapped, memory_order_relaxed))
		return 0;
	size_t n = 0;
	pthread_mutex_lock(&hub->mu);
	for (const struct tap *t = st->taps; t; t = t->next)
		n++;
	pthread_mutex_unlock(&hub->mu);
	return n;
}

size_t tap_read(struct tap *t, char *buf, size_t max, bool line_end)
{
	uint64_t head = atomic_load_explicit(&t->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
	size_t n = head - tail < max ? (size_t)(head - tail) : max;
	size_t at = (size_t)(tail & (t->cap - 1));
	size_t first = t->cap - at < n ? t->cap - at : n;
	memcpy(buf, t->ring + at, first);
	memcpy(buf + first, t->ring, n - first);
	if (line_end) {
		const char *nl = memchr(buf, '\n', n);
		if (nl)
			n = (size_t)(nl - buf) + 1;
	}
	atomic_store_explicit(&t->tail, tail + n, memory_order_release);
	return n;
}

uint64_t tap_discard(struct tap *t)
{
	uint64_t head = atomic_load_explicit(&t->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
	uint64_t lines = 0;
	for (uint64_t i = tail; i < head; i++)
		lines += t->ring[i & (t->cap - 1)] == '\n';
	atomic_store_explicit(&t->tail, head, memory_order_release);
	return lines;
}

bool tap_pending(const struct tap *t)
{
	return atomic_load_explicit(&t->head, memory_order_acquire) !=
	       atomic_load_explicit(&t->tail, memory_order_relaxed);
}

void tap_get_status(const struct tap *t, struct tap_status *s)
{
	/* The end first: a tap that ended has its final counts. */
	s->end = (enum tap_end)atomic_load(&t->end);
	s->records = atomic_load(&t->records);
	s->missed = atomic_load(&t->missed);
	s->unencodable = atomic_load(&t->unencodable);
}

const char *tap_end_name(enum tap_end end)
{
	switch (end) {
	case TAP_END_LIMIT: return "limit";
	case TAP_END_PIPELINE: return "pipeline stopped";
	case TAP_END_CLOSED: return "closed";
	default: return NULL;
	}
}
