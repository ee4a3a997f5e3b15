/* dead_letter.h - a pipeline's dead-letter destination: one JSON object per
 * line for every record a sink rejected and every input a stage could not
 * decode, with the reason, so nothing bad is ever silently dropped. The line
 * is plugins/common/dead_letter_format.h's, the one kafka_in writes too.
 *
 * A destination without a file still counts what it could not keep and
 * warns of it, at most once per interval, with the pipeline's running total.
 */
#ifndef CONVEYOR_DEAD_LETTER_H
#define CONVEYOR_DEAD_LETTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

struct dead_letter;

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
/* Entries written to the file so far. */
uint64_t dead_letter_kept(const struct dead_letter *dl);
/* At stop: warns once more if entries went unkept since the last warning,
 * with the pipeline's total. */
void dead_letter_warn_final(struct dead_letter *dl);

#endif
