/* json_bytes.h - the bytes a JSON string cannot carry as they are, shared by
 * the record encoder (record_format.c) and decoder (record_decode.c). */
#ifndef CONVEYOR_JSON_BYTES_H
#define CONVEYOR_JSON_BYTES_H

#include <stdint.h>

/* 1 for the quote, the backslash, control characters and everything past
 * ASCII (escaped by the encoder, checked as UTF-8 by the decoder). */
extern const unsigned char cv_json_special[256];

/* Nonzero when one of the 8 bytes of v is a cv_json_special byte. Borrows
 * between bytes may flag a plain byte too, which only sends the word to the
 * slow path; a special byte is never missed. */
static inline uint64_t cv_json_swar_special(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
	uint64_t t = ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b) | v;
	return t & high;
}

#endif
