/* roundtrip_fuzz.c - libFuzzer target: encode -> decode -> encode for both
 * formats, on records built from the input (any bytes in any name or value,
 * any float bits, unknown field types, empty names, duplicate keys). When an
 * encoder writes a record, its decoder must read it back as the same record
 * (as the format keeps it: fuzz_check_same) and the encoder must write the
 * same bytes again; any mismatch aborts. Then the decode side: the input
 * itself as a JSON and a line protocol text (fuzz_decode_round_trip). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TAGS   6
#define MAX_FIELDS 6
#define MAX_TEXT   24

/* Takes bytes from the front of the input; zeros once it is used up. */
struct reader {
	const uint8_t *p;
	size_t left;
};

static uint8_t take_byte(struct reader *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

static uint64_t take_u64(struct reader *r)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | take_byte(r);
	return v;
}

/* A string: a length byte, then that many bytes of the input (which the
 * record points into). Short and plain most of the time, so the encoders
 * get past their refusals and the decoders see what they write. */
static const char *take_text(struct reader *r, uint32_t *len)
{
	uint8_t n = take_byte(r);
	size_t want = n % (MAX_TEXT + 1);
	if (want > r->left)
		want = r->left;
	const char *s = (const char *)r->p;
	r->p += want;
	r->left -= want;
	*len = (uint32_t)want;
	return s;
}

static void check_format(enum cv_record_format format, const struct cv_record *rec)
{
	struct cv_buf one = {0}, two = {0};
	int rc = cv_record_encode(&one, format, rec);
	if (rc != 0 && rc != CV_EINVAL)
		fuzz_fail("encode", "neither success nor CV_EINVAL", NULL, 0);
	if (rc == CV_EINVAL && one.len != 0)
		fuzz_fail("encode", "a refusal left bytes in the buffer", one.data, one.len);
	if (rc == 0) {
		struct cv_batch *batch = fuzz_batch_new(1);
		struct cv_record *back = cv_batch_record_new(batch);
		const char *why = NULL;
		if (cv_record_decode(&fuzz_api, batch, format, back, one.data, one.len, 0, &why))
			fuzz_fail(format == CV_FORMAT_JSON ? "JSON encode -> decode"
			                                   : "line protocol encode -> decode",
			          why ? why : "refused", one.data, one.len);
		fuzz_check_same(format, rec, back, "encode -> decode");
		if (cv_record_encode(&two, format, back) != 0 || two.len != one.len ||
		    memcmp(one.data, two.data, one.len) != 0)
			fuzz_fail("encode -> decode -> encode", "the bytes differ", two.data,
			          two.len);
		fuzz_batch_free(batch);
	}
	cv_buf_free(&one);
	cv_buf_free(&two);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reader r = {data, size};
	struct cv_tag tags[MAX_TAGS];
	struct cv_field fields[MAX_FIELDS];
	struct cv_record rec = {.tags = tags, .fields = fields, .fields_cap = MAX_FIELDS};
	uint8_t shape = take_byte(&r);
	rec.measurement = take_text(&r, &rec.measurement_len);
	rec.timestamp = (int64_t)take_u64(&r);
	rec.ntags = (uint16_t)(shape % (MAX_TAGS + 1));
	for (uint16_t i = 0; i < rec.ntags; i++) {
		tags[i].key = take_text(&r, &tags[i].key_len);
		tags[i].value = take_text(&r, &tags[i].value_len);
	}
	rec.nfields = (uint16_t)((shape >> 3) % (MAX_FIELDS + 1));
	for (uint16_t i = 0; i < rec.nfields; i++) {
		struct cv_field *f = &fields[i];
		memset(f, 0, sizeof *f);
		uint32_t klen;
		f->key = take_text(&r, &klen);
		f->key_len = (uint16_t)klen;
		uint8_t type = take_byte(&r);
		f->type = (uint8_t)(type % 5); /* 4 is no type at all */
		switch (f->type) {
		case CV_FIELD_FLOAT: {
			uint64_t bits = take_u64(&r);
			memcpy(&f->v.f, &bits, sizeof bits);
			break;
		}
		case CV_FIELD_INT: f->v.i = (int64_t)take_u64(&r); break;
		case CV_FIELD_BOOL: f->v.b = take_byte(&r) & 1; break;
		case CV_FIELD_STRING: f->v.s = take_text(&r, &f->str_len); break;
		default: f->type = (uint8_t)(type | 4); break;
		}
	}
	check_format(CV_FORMAT_JSON, &rec);
	check_format(CV_FORMAT_INFLUX, &rec);

	/* The input as text for both decoders. */
	fuzz_decode_round_trip(CV_FORMAT_JSON, data, size);
	fuzz_decode_round_trip(CV_FORMAT_INFLUX, data, size);
	return 0;
}
