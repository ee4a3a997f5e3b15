/* fuzz_record.h - what the record fuzz targets share: a host whose batch
 * allocations are each their own malloc (so AddressSanitizer sees an overrun
 * of any one), records compared as each format promises to keep them, and
 * the decode -> encode -> decode -> encode check. */
#ifndef CONVEYOR_FUZZ_RECORD_H
#define CONVEYOR_FUZZ_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <conveyor/plugin.h>

#include "record_decode.h"
#include "record_format.h"

/* The host table the decoders get. */
extern const struct cv_host_api fuzz_api;

/* A batch of `n` records with 2 field slots each (so records with more
 * fields grow through the host). */
struct cv_batch *fuzz_batch_new(uint32_t n);
/* Frees the batch and everything allocated for it. */
void fuzz_batch_free(struct cv_batch *batch);

/* Aborts, with what differs, unless `b` is `a` as `format` carries it:
 * everything equal (floats bit for bit), and for line protocol tags as a
 * set sorted by key, those with an empty value left out. */
void fuzz_check_same(enum cv_record_format format, const struct cv_record *a,
                     const struct cv_record *b, const char *what);

/* Aborts with a message (and the bytes, escaped) on stderr. */
_Noreturn void fuzz_fail(const char *what, const char *detail, const void *data, size_t len);

/* Decodes `data`; when that succeeds, the record must encode, decode again
 * to the same record, and encode again to the same bytes. */
void fuzz_decode_round_trip(enum cv_record_format format, const uint8_t *data, size_t size);

#endif
