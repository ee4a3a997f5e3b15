/* dead_letter.h - a pipeline's dead-letter destination: one JSON object per
 * line for every record a sink rejected and every input a stage could not
 * decode, with the reason, so nothing bad is ever silently dropped. The line
 * is plugins/common/dead_letter_format.h's, the one kafka_in writes too.
 *
 * A destination without a file still counts what it could not keep and
 * warns of it, at most once per interval, with the pipeline's running total.
 *
 * Entries for the records of a batch go to the batch's buffer
 * (dead_letter_buffer) and reach the file in one write when the batch
 * settles, before its source acknowledges it; entries outside a batch
 * (dead_letter_write) are written at once. */
#ifndef CONVEYOR_DEAD_LETTER_H
#define CONVEYOR_DEAD_LETTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

#include "record_format.h"

struct dead_letter;

/* Buffered entries grow to this many bytes before they are written early. */
#define DEAD_LETTER_BUF_FLUSH (64u << 10)

/* Entries of one batch not written yet; zeroed, it is empty. The caller
 * serialises calls on one buffer. */
struct dead_letter_buf {
	struct cv_buf data; /* encoded lines; its memory is kept for reuse */
	uint32_t entries;   /* lines in data */
};

/* Opens (creates, appends to) `path`, or with `path` NULL makes a
 * destination that keeps nothing. `pipeline` names the pipeline in every
 * entry and warning; the caller keeps it alive. NULL with errno on failure;
 * dead_letter_close() frees. */
struct dead_letter *dead_letter_open(const char *pipeline, const char *path);
void dead_letter_close(struct dead_letter *dl);
/* True when entries have a file to go to. NULL is false. */
bool dead_letter_has_file(const struct dead_letter *dl);

/* Writes one entry at once; thread-safe. `record` and `raw` may be NULL.
 * `what` says in a warning what was not kept ("record rejected"). True when
 * it was written; false when there is no file or encoding or writing failed,
 * having counted it as not kept and warned. `dl` NULL: false, nothing else. */
bool dead_letter_write(struct dead_letter *dl, const char *stage, const char *what,
                       const char *reason, const struct cv_record *record, const void *raw,
                       size_t raw_len);
/* As dead_letter_write, but appends the entry to `buf`, written by
 * dead_letter_flush(); a buffer past DEAD_LETTER_BUF_FLUSH is flushed at
 * once. True when buffered (or flushed); without a file, or when encoding
 * fails, the entry is counted and warned of at once and it is false. */
bool dead_letter_buffer(struct dead_letter *dl, struct dead_letter_buf *buf, const char *stage,
                        const char *what, const char *reason, const struct cv_record *record,
                        const void *raw, size_t raw_len);
/* Writes `buf`'s entries in one write and empties it (keeping its memory).
 * Returns 0 or CV_EIO (the entries are then counted as not kept, with a
 * warning). */
int dead_letter_flush(struct dead_letter *dl, struct dead_letter_buf *buf);
void dead_letter_buf_free(struct dead_letter_buf *buf);

/* Entries written to the file so far. */
uint64_t dead_letter_kept(const struct dead_letter *dl);
/* At stop: warns once more if entries went unkept since the last warning,
 * with the pipeline's total. */
void dead_letter_warn_final(struct dead_letter *dl);

#endif
