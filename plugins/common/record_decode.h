/*
 * record_decode.h - decodes one record from JSON or InfluxDB line protocol,
 * the inverse of record_format.h, into a batch's record. Part of the static
 * library `cv_record_format`. Used by sources reading what sinks wrote
 * (kafka_in).
 *
 * JSON: exactly one object, as cv_record_encode_json() writes it:
 *   {"measurement":"m","timestamp":1700000000000000000,
 *    "tags":{"k":"v"},"fields":{"f":1.5,"n":42,"ok":true,"s":"text"}}
 * Strict RFC 8259 syntax (valid UTF-8, no trailing commas, no NaN, nothing
 * after the object but whitespace). "measurement" (a non-empty string) and
 * "fields" (at least one) are required; "timestamp" (integer ns) and "tags"
 * (string values) are optional; other keys are skipped, so producers may add
 * some; a key given twice is an error. A number without '.' or exponent is an
 * integer field (it must fit int64), otherwise a float; null values are
 * errors.
 *
 * Line protocol: one line, `measurement[,tag=v...] field=v[,...] [ts]`, with
 * the escapes record_format.h writes; integers `12i` (and `12u` up to
 * INT64_MAX), floats, booleans (t, T, true, True, TRUE, f, ...), strings in
 * double quotes. A trailing newline is allowed; a second line is an error.
 * What the line protocol encoder refuses is refused here too (record_format.h:
 * a stray backslash in names, a measurement or field key starting with tab
 * or NUL, duplicate tag keys, "time" keys, a series key too long), so a
 * decoded record always encodes. NUL is a byte like any other (it used to
 * end a name here).
 *
 * Every string of the record (measurement, keys, values) points into one copy
 * of the input in the batch arena, so the input may be freed afterwards.
 */
#ifndef CONVEYOR_RECORD_DECODE_H
#define CONVEYOR_RECORD_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

#include "record_format.h"

/* Most tags a decoded record may have. */
#define CV_DECODE_MAX_TAGS CV_RECORD_MAX_TAGS

/* Decodes `len` bytes of `data` into `record` (fresh from
 * cv_batch_record_new(); it must have no fields yet). A record without a
 * timestamp gets `default_ts` (ns). Returns 0; CV_EINVAL for bad input, with
 * a static description in *reason (may be NULL), e.g. "JSON: expected ':'";
 * CV_ENOMEM when the batch arena is full (end the batch and retry the input
 * in a fresh one). On error the record's content is unspecified: the caller
 * discards it. */
int cv_record_decode_json(const struct cv_host_api *api, struct cv_batch *batch,
                          struct cv_record *record, const char *data, size_t len,
                          int64_t default_ts, const char **reason);
int cv_record_decode_influx(const struct cv_host_api *api, struct cv_batch *batch,
                            struct cv_record *record, const char *data, size_t len,
                            int64_t default_ts, const char **reason);
/* Dispatches on `format`; CV_EINVAL for an unknown format. */
int cv_record_decode(const struct cv_host_api *api, struct cv_batch *batch,
                     enum cv_record_format format, struct cv_record *record, const char *data,
                     size_t len, int64_t default_ts, const char **reason);

/* Reads the `len` bytes at `s` as a double, strictly as the line protocol
 * decoder does: [-+]?(d+(.d*)?|.d+)([eE][-+]?d+)? and nothing else, to the
 * nearest double (Eisel-Lemire, strtod where that cannot decide). s[len]
 * must be readable and end a number (a delimiter or NUL), as it is in the
 * decoders' buffers. Returns 0; CV_EINVAL for bad syntax or a value that is
 * not finite. For the numbers bench (tests/bench/numbers_bench.c). */
int cv_parse_double(const char *s, size_t len, double *out);

#endif
