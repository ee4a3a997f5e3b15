/*
 * record_format.h - encodes records as JSON or InfluxDB line protocol into a
 * growable byte buffer. Shared by the sinks (console, file, kafka_out,
 * influxdb); built as the static library `cv_record_format`, linked into each
 * plugin (plugins link nothing of the host).
 *
 * JSON, one object per record, keys in this order:
 *   {"measurement":"conveyor_speed","timestamp":1700000000000000000,
 *    "tags":{"line_id":"line-1"},"fields":{"speed_ms":1.23,"seq":42}}
 * Integers are JSON integers; floats always carry a '.' or an exponent (2.0,
 * 1e+16) so a decoder can tell them from integers, and are the shortest text
 * that reads back as the same double; booleans are true/false. Strings are
 * escaped per RFC 8259 and must be valid UTF-8. NaN and infinities have no
 * JSON form: CV_EINVAL. So is what the JSON decoder (record_decode.h) would
 * refuse: an empty measurement, tag key or field key, no fields, more than
 * CV_RECORD_MAX_TAGS tags.
 *
 * InfluxDB line protocol (1.x and 2.x /write):
 *   measurement[,tag=value...] field=value[,field=value...] timestamp_ns
 * - measurement escapes ',' and ' '; tag keys, tag values and field keys
 *   escape ',', '=' and ' ' with a backslash;
 * - string field values are double-quoted with '"' and '\' backslash-escaped;
 * - integers get the 'i' suffix, booleans are t/f, floats are the shortest
 *   round-trip text; NaN and infinities: CV_EINVAL;
 * - tags are written sorted by key (bytewise, as InfluxDB recommends); tags
 *   with an empty value are omitted (the protocol has no empty tag value).
 * What line protocol cannot carry faithfully is refused with CV_EINVAL, so a
 * sink can reject the one record instead of having the server refuse a whole
 * request (decision, after the InfluxDB docs and the 1.x parser; hostile
 * names and values were checked to read back unchanged from influxd 1.6.7).
 * The line protocol decoder refuses exactly the same, so that every line one
 * writes the other reads back as the same record, and every record the
 * decoder makes is one the encoder writes (tests/fuzz/roundtrip_fuzz.c):
 * - a newline or carriage return anywhere, string field values included:
 *   the docs state line protocol does not support '\n' in tag or field
 *   values (InfluxDB 1.6 happens to keep one inside a quoted string, other
 *   readers split the line there), and writing "\n" as two characters would
 *   store a backslash and an 'n', not a newline;
 * - in measurement, tag keys, tag values and field keys: a backslash that
 *   is last or followed by ',', '=', ' ' or '"' (the protocol has no escape
 *   for the backslash itself there, so it would swallow the next delimiter)
 *   - cv_influx_name_valid();
 * - a measurement starting with '#' (a comment line), tab or NUL, a field
 *   key starting with tab or NUL (the parser skips tab and NUL as white
 *   space where those start) - cv_influx_first_ok();
 * - an empty measurement, tag key or field key; no fields at all; two tags
 *   with the same key; more than CV_RECORD_MAX_TAGS tags; a tag or field key
 *   "time" (InfluxDB drops such points); a series key (measurement and tags
 *   as written, 4, and a field key as written) longer than
 *   CV_INFLUX_MAX_KEY bytes.
 * Any other byte is written as it is: other control characters (a tab or a
 * NUL inside a name, NUL in a string) and bytes that are not UTF-8 (influxd
 * 1.6.7 stores NUL, tab, 0x01 and 0x1f inside a measurement, tag key, tag
 * value, field key or string as they are).
 *
 * Neither encoder appends a newline: the caller separates records.
 * On error an encoder leaves the buffer as it found it.
 */
#ifndef CONVEYOR_RECORD_FORMAT_H
#define CONVEYOR_RECORD_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include <conveyor/plugin.h>

#include "text_codec.h"

/* A growable byte buffer. Zero-initialised ({0}) is a valid empty buffer.
 * `data` is owned by the buffer; it is not NUL-terminated. Reuse one buffer
 * per batch (cv_buf_reset) so the steady state allocates nothing. */
struct cv_buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Makes room for `extra` more bytes. Returns 0 or CV_ENOMEM. */
int cv_buf_reserve(struct cv_buf *buf, size_t extra);
/* Appends `len` bytes. Returns 0 or CV_ENOMEM. */
int cv_buf_append(struct cv_buf *buf, const void *data, size_t len);
/* Forgets the content, keeps the memory. */
void cv_buf_reset(struct cv_buf *buf);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void cv_buf_free(struct cv_buf *buf);

/* Most tags a record may have to be encoded (what the decoders read). */
#define CV_RECORD_MAX_TAGS 256
/* InfluxDB's series key limit (measurement, tags and one field key). */
#define CV_INFLUX_MAX_KEY 65535

/* True when line protocol can carry `s` as a measurement, tag key, tag
 * value or field key (see above: no newline, no carriage return, no
 * backslash that would escape what follows; emptiness, the first byte and
 * "time" are not checked). */
bool cv_influx_name_valid(const char *s, size_t n);
/* True when a measurement (`measurement` true) or a field key may start
 * with `c`: not tab or NUL, which the parser skips, nor '#' for a
 * measurement (a comment line). */
static inline bool cv_influx_first_ok(char c, bool measurement)
{
	return c != '\t' && c != '\0' && !(measurement && c == '#');
}
/* True for the key "time", which InfluxDB drops. */
bool cv_influx_is_time_key(const char *s, size_t n);

/* Record encodings, in the order of cv_record_format_names. */
enum cv_record_format {
	CV_FORMAT_JSON = 0,
	CV_FORMAT_INFLUX = 1,
};

/* {"json", "influx", NULL}: usable as a CV_OPT_ENUM's enum_values, whose
 * index is then an enum cv_record_format. */
extern const char *const cv_record_format_names[];

/* Returns the format named `name` ("json" or "influx"), or CV_EINVAL. */
int cv_record_format_parse(const char *name);
/* Returns the format's name, or NULL for an unknown value. */
const char *cv_record_format_name(enum cv_record_format format);

/* Appends `record` as one JSON object. Returns 0, CV_EINVAL (non-finite
 * float, invalid UTF-8, unknown field type) or CV_ENOMEM. */
int cv_record_encode_json(struct cv_buf *buf, const struct cv_record *record);
/* The JSON encoder for records cv_record_encode_json() refuses, for the
 * dead-letter encoder: with CV_JSON_REPLACE, bytes that are not UTF-8 become
 * U+FFFD and a NaN or an infinity null (valid JSON, lossy); with
 * CV_JSON_VERBATIM they are copied as they are and written NaN, Infinity,
 * -Infinity (what Python's json module reads; lossless, not JSON); an
 * unknown field type is null in both. CV_JSON_REFUSE is
 * cv_record_encode_json(). Returns 0, CV_EINVAL or CV_ENOMEM. */
int cv_record_encode_json_any(struct cv_buf *buf, const struct cv_record *record,
                              enum cv_json_bad_utf8 bad);
/* Appends `record` as one line of line protocol, without the newline.
 * Returns 0, CV_EINVAL (see the rules above) or CV_ENOMEM. */
int cv_record_encode_influx(struct cv_buf *buf, const struct cv_record *record);
/* Dispatches on `format`; CV_EINVAL for an unknown format. */
int cv_record_encode(struct cv_buf *buf, enum cv_record_format format,
                     const struct cv_record *record);

/* Room cv_format_double() needs at `out`: the text is at most 24 bytes
 * ("-2.2250738585072014e-308"), but it writes digits in fixed-size blocks
 * and may touch up to this many bytes, NUL included. */
#define CV_DOUBLE_MAX_TEXT 40

/* Writes text that reads back (strtod) as exactly `value`, always with a
 * '.' or an exponent: "2.0", "0.1", "-1.5e-07", "1e+16", laid out as Python's
 * repr, with the same digits: the shortest that read back as `value`, the
 * closest to it when several are (Schubfach). Needs CV_DOUBLE_MAX_TEXT
 * bytes at `out`; returns the length (then a NUL), or CV_EINVAL for NaN or
 * an infinity (then writes nothing). */
int cv_format_double(char *out, double value);

/* Writes `value` in decimal; returns the length (at most 20), no NUL. */
int cv_format_int64(char *out, int64_t value);

#endif
