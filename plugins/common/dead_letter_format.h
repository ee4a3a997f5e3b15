/*
 * dead_letter_format.h - the dead-letter line: one JSON object per line for
 * every record a sink rejected and every input a stage could not decode.
 * One encoder for the engine's dead-letter file and kafka_in's own
 * (`dead_letter: file:PATH`); part of the static library cv_record_format.
 *
 *   {"time_ns":1700000000000000000,"pipeline":"p","stage":"kafka_in",
 *    "reason":"...","topic":"speed","partition":0,"offset":42,
 *    "key":"line-1","record":{...},"raw":"..."}
 *
 * - time_ns, pipeline, stage, reason: always (text that is not UTF-8 is
 *   shown with U+FFFD);
 * - topic, partition, offset: where a Kafka message came from, when known;
 *   key: its key, when it has one;
 * - record: the record, in the JSON record format (record_format.h), when
 *   there is one. If it has no JSON form (a string that is not UTF-8, a NaN
 *   or an infinity), "record" shows it with U+FFFD and null, and
 *   "record_base64" holds it exactly: base64 of its JSON text with the
 *   strings' bytes as they are and NaN, Infinity, -Infinity as Python's json
 *   module reads them;
 * - raw: the input bytes as they were read, when there are some.
 * Every byte member (key, raw) is written as a JSON string when its bytes
 * are UTF-8, otherwise as base64 under the name with "_base64" appended
 * ("raw_base64"): exactly one of the two, and the bytes come back exactly.
 */
#ifndef CONVEYOR_DEAD_LETTER_FORMAT_H
#define CONVEYOR_DEAD_LETTER_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

#include "record_format.h"

struct cv_dead_letter {
	int64_t time_ns;
	const char *pipeline; /* NUL-terminated; NULL is "" */
	const char *stage;
	const char *reason;
	const char *topic; /* NULL: no topic, partition, offset */
	int32_t partition;
	int64_t offset;
	const void *key; /* NULL: no key */
	size_t key_len;
	const struct cv_record *record; /* NULL: no record */
	const void *raw;                /* NULL: no raw bytes */
	size_t raw_len;
};

/* Appends `entry` as one line, newline included. Returns 0 or CV_ENOMEM (the
 * buffer is then as it was). */
int cv_dead_letter_encode(struct cv_buf *buf, const struct cv_dead_letter *entry);

/* Appends `len` bytes to the file `fd` (opened O_APPEND) with write(2),
 * retrying partial writes and EINTR, so one line lands whole. Returns 0 or
 * CV_EIO. */
int cv_dead_letter_append(int fd, const void *data, size_t len);

#endif
