/* tap_stream.c - a tap's records as a chunked HTTP answer; see the header. */
#include "http/tap_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/strbuf.h"

#define BLOCK_SIZE         (32 << 10)
#define STATUS_INTERVAL_NS 1000000000LL

struct tap_stream {
	struct tap_stream *prev, *next; /* the server's list, under s->mu */
	struct tap_streams *streams;
	struct MHD_Connection *conn;
	struct tap *tap;
	enum tap_format format;
	char *pipeline, *stage;
	bool suspended; /* under streams->mu */
	bool final_sent;
	bool mid_line;      /* the last byte sent was not a line's end */
	uint64_t sent;      /* record lines sent */
	uint64_t discarded; /* record lines dropped when the engine stopped */
	int64_t next_status_ns;
	struct strbuf pending; /* a status line being sent */
	size_t pending_off;
};

void tap_streams_init(struct tap_streams *s)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &attr);
	pthread_condattr_destroy(&attr);
}

void tap_streams_destroy(struct tap_streams *s)
{
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}

/* Under s->mu. */
static void wake_all(struct tap_streams *s)
{
	for (struct tap_stream *t = s->head; t; t = t->next) {
		if (t->suspended) {
			t->suspended = false;
			MHD_resume_connection(t->conn);
		}
	}
}

void tap_streams_wake(struct tap_streams *s)
{
	pthread_mutex_lock(&s->mu);
	wake_all(s);
	pthread_mutex_unlock(&s->mu);
}

void tap_streams_stop(struct tap_streams *s, int timeout_ms)
{
	int64_t deadline = clock_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stopping, true);
	wake_all(s);
	while (s->count && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&s->mu);
}

static void status_line(struct tap_stream *st, const char *end)
{
	struct tap_status ts;
	tap_get_status(st->tap, &ts);
	struct strbuf *b = &st->pending;
	strbuf_reset(b);
	st->pending_off = 0;
	if (st->format == TAP_FORMAT_INFLUX)
		strbuf_puts(b, "# tap ");
	strbuf_puts(b, "{\"tap\":{\"pipeline\":\"");
	strbuf_json_escape(b, st->pipeline, strlen(st->pipeline));
	strbuf_puts(b, "\",\"stage\":\"");
	strbuf_json_escape(b, st->stage, strlen(st->stage));
	strbuf_printf(b, "\",\"records\":%llu,\"missed\":%llu,\"unencodable\":%llu",
	              (unsigned long long)st->sent, (unsigned long long)(ts.missed + st->discarded),
	              (unsigned long long)ts.unencodable);
	if (end)
		strbuf_printf(b, ",\"end\":\"%s\"", end);
	strbuf_puts(b, "}}\n");
}

static ssize_t send_pending(struct tap_stream *st, char *buf, size_t max)
{
	size_t n = st->pending.len - st->pending_off;
	if (n > max)
		n = max;
	memcpy(buf, st->pending.data + st->pending_off, n);
	st->pending_off += n;
	return (ssize_t)n;
}

static ssize_t from_ring(struct tap_stream *st, char *buf, size_t max, bool line_end)
{
	size_t n = tap_read(st->tap, buf, max, line_end);
	for (const char *p = buf, *end = buf + n; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		st->sent++;
	if (n)
		st->mid_line = buf[n - 1] != '\n';
	return (ssize_t)n;
}

static ssize_t final_line(struct tap_stream *st, const char *end, char *buf, size_t max)
{
	status_line(st, end);
	st->final_sent = true;
	return st->pending.failed ? MHD_CONTENT_READER_END_WITH_ERROR : send_pending(st, buf, max);
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct tap_stream *st = cls;
	struct tap_streams *s = st->streams;
	(void)pos;
	if (st->pending_off < st->pending.len)
		return send_pending(st, buf, max);
	if (st->final_sent)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Finish a line cut by the last block before anything else. */
	if (st->mid_line)
		return from_ring(st, buf, max, true);
	if (atomic_load(&s->stopping)) {
		st->discarded += tap_discard(st->tap);
		return final_line(st, "engine stopping", buf, max);
	}
	int64_t now = clock_monotonic_ns();
	if (now >= st->next_status_ns) {
		st->next_status_ns = now + STATUS_INTERVAL_NS;
		status_line(st, NULL);
		if (!st->pending.failed)
			return send_pending(st, buf, max);
	}
	ssize_t n = from_ring(st, buf, max, false);
	if (n)
		return n;
	struct tap_status ts;
	tap_get_status(st->tap, &ts);
	if (ts.end != TAP_RUNNING) {
		/* The last records may have come since the read. */
		n = from_ring(st, buf, max, false);
		return n ? n : final_line(st, tap_end_name(ts.end), buf, max);
	}
	/* Nothing to send: wait for a wake-up, letting MHD serve the others. */
	pthread_mutex_lock(&s->mu);
	if (atomic_load(&s->stopping)) {
		pthread_mutex_unlock(&s->mu);
		return read_stream(cls, pos, buf, max);
	}
	st->suspended = true;
	MHD_suspend_connection(st->conn);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static void free_stream(void *cls)
{
	struct tap_stream *st = cls;
	struct tap_streams *s = st->streams;
	tap_close(st->tap);
	pthread_mutex_lock(&s->mu);
	if (st->prev)
		st->prev->next = st->next;
	else
		s->head = st->next;
	if (st->next)
		st->next->prev = st->prev;
	s->count--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	strbuf_free(&st->pending);
	free(st->pipeline);
	free(st->stage);
	free(st);
}

struct MHD_Response *tap_stream_response(struct tap_streams *s, struct MHD_Connection *conn,
                                         struct tap *t, enum tap_format format,
                                         const char *pipeline, const char *stage)
{
	struct tap_stream *st = calloc(1, sizeof *st);
	if (st) {
		st->pipeline = strdup(pipeline);
		st->stage = strdup(stage);
	}
	if (!st || !st->pipeline || !st->stage) {
		if (st) {
			free(st->pipeline);
			free(st->stage);
		}
		free(st);
		tap_close(t);
		return NULL;
	}
	st->streams = s;
	st->conn = conn;
	st->tap = t;
	st->format = format;
	st->next_status_ns = clock_monotonic_ns() + STATUS_INTERVAL_NS;
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK_SIZE,
	                                                           read_stream, st, free_stream);
	if (!r) {
		free(st->pipeline);
		free(st->stage);
		free(st);
		tap_close(t);
		return NULL;
	}
	pthread_mutex_lock(&s->mu);
	st->next = s->head;
	if (s->head)
		s->head->prev = st;
	s->head = st;
	s->count++;
	pthread_mutex_unlock(&s->mu);
	return r;
}
