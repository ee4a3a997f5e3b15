/* dead_letter.h - the pipeline's dead-letter file: one JSON object per line
 * for every record a sink rejected and every input a stage could not decode,
 * with the reason, so nothing bad is ever silently dropped. The line is
 * plugins/common/dead_letter_format.h's, the one kafka_in writes too. */
#ifndef CONVEYOR_DEAD_LETTER_H
#define CONVEYOR_DEAD_LETTER_H

#include <stddef.h>

#include <conveyor/plugin.h>

struct dead_letter;

/* Opens (creates, appends to) `path`. NULL with errno on failure. */
struct dead_letter *dead_letter_open(const char *path);
void dead_letter_close(struct dead_letter *dl);
/* Appends one entry; thread-safe. `record` and `raw` may be NULL. Returns 0,
 * CV_ENOMEM or CV_EIO. */
int dead_letter_write(struct dead_letter *dl, const char *pipeline, const char *stage,
                      const char *reason, const struct cv_record *record, const void *raw,
                      size_t raw_len);

#endif
