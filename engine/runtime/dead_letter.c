#include "runtime/dead_letter.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "dead_letter_format.h"

/* Warnings of entries not kept, at most this often per pipeline. */
#define WARN_INTERVAL_NS (5 * 1000000000LL)

struct dead_letter {
	const char *pipeline;
	int fd;             /* -1: no file */
	pthread_mutex_t mu; /* one writer at a time, so lines land whole */
	_Atomic uint64_t kept;
	_Atomic uint64_t unkept;
	_Atomic int64_t last_warn_ns;
	_Atomic uint64_t warn_suppressed;
};

struct dead_letter *dead_letter_open(const char *pipeline, const char *path)
{
	struct dead_letter *dl = calloc(1, sizeof *dl);
	if (!dl)
		return NULL;
	dl->pipeline = pipeline;
	dl->fd = -1;
	if (path) {
		dl->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (dl->fd < 0) {
			int e = errno;
			free(dl);
			errno = e;
			return NULL;
		}
	}
	pthread_mutex_init(&dl->mu, NULL);
	return dl;
}

void dead_letter_close(struct dead_letter *dl)
{
	if (!dl)
		return;
	if (dl->fd >= 0)
		close(dl->fd);
	pthread_mutex_destroy(&dl->mu);
	free(dl);
}

bool dead_letter_has_file(const struct dead_letter *dl)
{
	return dl && dl->fd >= 0;
}

/* Counts `n` entries not kept and warns, at most once per interval, with
 * the running count: a burst shows its total in the next warning, or at
 * stop (dead_letter_warn_final). */
static void unkept(struct dead_letter *dl, uint64_t n, const char *stage, const char *what,
                   const char *reason)
{
	uint64_t total = atomic_fetch_add_explicit(&dl->unkept, n, memory_order_relaxed) + n;
	int64_t now = clock_monotonic_ns();
	int64_t last = atomic_load_explicit(&dl->last_warn_ns, memory_order_relaxed);
	if ((last && now - last < WARN_INTERVAL_NS) ||
	    !atomic_compare_exchange_strong(&dl->last_warn_ns, &last, now)) {
		atomic_fetch_add_explicit(&dl->warn_suppressed, 1, memory_order_relaxed);
		return;
	}
	atomic_store(&dl->warn_suppressed, 0);
	log_write(CV_LOG_WARN, dl->pipeline, stage,
	          "%s: %s (no usable dead_letter file: counted as dropped; records of this "
	          "pipeline not kept so far: %llu)",
	          what, reason ? reason : "no reason given", (unsigned long long)total);
}

void dead_letter_warn_final(struct dead_letter *dl)
{
	if (!dl || atomic_exchange(&dl->warn_suppressed, 0) == 0)
		return;
	log_write(CV_LOG_WARN, dl->pipeline, NULL,
	          "records rejected or dead-lettered with no usable dead_letter file: records of "
	          "this pipeline not kept in all: %llu",
	          (unsigned long long)atomic_load(&dl->unkept));
}

uint64_t dead_letter_kept(const struct dead_letter *dl)
{
	return dl ? atomic_load(&dl->kept) : 0;
}

static int encode(struct dead_letter *dl, struct cv_buf *out, const char *stage, const char *reason,
                  const struct cv_record *record, const void *raw, size_t raw_len)
{
	struct cv_dead_letter entry = {
	        .time_ns = clock_now_ns(),
	        .pipeline = dl->pipeline,
	        .stage = stage,
	        .reason = reason,
	        .record = record,
	        .raw = raw,
	        .raw_len = raw_len,
	};
	return cv_dead_letter_encode(out, &entry);
}

static int append(struct dead_letter *dl, const void *data, size_t len, uint32_t entries)
{
	pthread_mutex_lock(&dl->mu);
	int rc = cv_dead_letter_append(dl->fd, data, len);
	pthread_mutex_unlock(&dl->mu);
	if (rc == 0)
		atomic_fetch_add_explicit(&dl->kept, entries, memory_order_relaxed);
	return rc;
}

bool dead_letter_write(struct dead_letter *dl, const char *stage, const char *what,
                       const char *reason, const struct cv_record *record, const void *raw,
                       size_t raw_len)
{
	if (!dl)
		return false;
	int rc = CV_EIO;
	struct cv_buf line = {0};
	if (dl->fd >= 0 && (rc = encode(dl, &line, stage, reason, record, raw, raw_len)) == 0)
		rc = append(dl, line.data, line.len, 1);
	cv_buf_free(&line);
	if (rc < 0)
		unkept(dl, 1, stage, what, reason);
	return rc == 0;
}

bool dead_letter_buffer(struct dead_letter *dl, struct dead_letter_buf *buf, const char *stage,
                        const char *what, const char *reason, const struct cv_record *record,
                        const void *raw, size_t raw_len)
{
	if (!dl)
		return false;
	if (dl->fd < 0 || encode(dl, &buf->data, stage, reason, record, raw, raw_len) < 0) {
		unkept(dl, 1, stage, what, reason);
		return false;
	}
	buf->entries++;
	if (buf->data.len >= DEAD_LETTER_BUF_FLUSH)
		return dead_letter_flush(dl, buf) == 0;
	return true;
}

int dead_letter_flush(struct dead_letter *dl, struct dead_letter_buf *buf)
{
	if (!buf->entries || !dl)
		return 0;
	int rc = append(dl, buf->data.data, buf->data.len, buf->entries);
	if (rc < 0)
		unkept(dl, buf->entries, NULL, "dead letters", "cannot write the dead_letter file");
	cv_buf_reset(&buf->data);
	buf->entries = 0;
	return rc;
}

void dead_letter_buf_free(struct dead_letter_buf *buf)
{
	cv_buf_free(&buf->data);
	*buf = (struct dead_letter_buf){0};
}
