/* fuzz_record.c - see fuzz_record.h. */
#include "fuzz_record.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every allocation of a batch, freed with it. */
struct fuzz_batch {
	struct cv_batch pub;
	void **allocs;
	size_t nallocs, cap;
};

static struct fuzz_batch *fb_of(struct cv_batch *b)
{
	return (struct fuzz_batch *)b; /* pub is first */
}

static void *track(struct fuzz_batch *fb, void *p)
{
	if (!p)
		return NULL;
	if (fb->nallocs == fb->cap) {
		size_t cap = fb->cap ? fb->cap * 2 : 16;
		void **a = realloc(fb->allocs, cap * sizeof *a);
		if (!a) {
			free(p);
			return NULL;
		}
		fb->allocs = a;
		fb->cap = cap;
	}
	fb->allocs[fb->nallocs++] = p;
	return p;
}

static void *fuzz_alloc(struct cv_batch *b, size_t size)
{
	return track(fb_of(b), malloc(size ? size : 1));
}

static char *fuzz_strdup(struct cv_batch *b, const char *s, size_t len)
{
	char *p = fuzz_alloc(b, len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

static struct cv_field *fuzz_grow(struct cv_batch *b, struct cv_record *r)
{
	uint16_t cap = (uint16_t)(r->fields_cap ? r->fields_cap * 2 : 2);
	if (cap <= r->fields_cap)
		return NULL;
	struct cv_field *f = fuzz_alloc(b, cap * sizeof *f);
	if (!f)
		return NULL;
	memcpy(f, r->fields, r->nfields * sizeof *f);
	r->fields = f;
	r->fields_cap = cap;
	return &r->fields[r->nfields++];
}

const struct cv_host_api fuzz_api = {
        .struct_size = sizeof(struct cv_host_api),
        .batch_alloc = fuzz_alloc,
        .batch_strdup = fuzz_strdup,
        .record_grow_fields = fuzz_grow,
};

struct cv_batch *fuzz_batch_new(uint32_t n)
{
	struct fuzz_batch *fb = calloc(1, sizeof *fb);
	if (!fb)
		abort();
	fb->pub.records = track(fb, calloc(n, sizeof(struct cv_record)));
	if (!fb->pub.records)
		abort();
	fb->pub.capacity = n;
	for (uint32_t i = 0; i < n; i++) {
		fb->pub.records[i].fields = track(fb, calloc(2, sizeof(struct cv_field)));
		if (!fb->pub.records[i].fields)
			abort();
		fb->pub.records[i].fields_cap = 2;
	}
	return &fb->pub;
}

void fuzz_batch_free(struct cv_batch *b)
{
	struct fuzz_batch *fb = fb_of(b);
	for (size_t i = 0; i < fb->nallocs; i++)
		free(fb->allocs[i]);
	free(fb->allocs);
	free(fb);
}

_Noreturn void fuzz_fail(const char *what, const char *detail, const void *data, size_t len)
{
	fprintf(stderr, "fuzz check failed: %s: %s\n  bytes: ", what, detail);
	const unsigned char *p = data;
	for (size_t i = 0; i < len && i < 4096; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			fputc(p[i], stderr);
		else
			fprintf(stderr, "\\x%02x", p[i]);
	}
	fputc('\n', stderr);
	abort();
}

static bool same_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int tag_cmp(const void *x, const void *y)
{
	const struct cv_tag *a = x, *b = y;
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = n ? memcmp(a->key, b->key, n) : 0;
	return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static void check_tags(enum cv_record_format format, const struct cv_record *a,
                       const struct cv_record *b, const char *what)
{
	if (format == CV_FORMAT_JSON) {
		if (a->ntags != b->ntags)
			fuzz_fail(what, "tag count differs", a->measurement, a->measurement_len);
		for (uint16_t i = 0; i < a->ntags; i++)
			if (!same_bytes(a->tags[i].key, a->tags[i].key_len, b->tags[i].key,
			                b->tags[i].key_len) ||
			    !same_bytes(a->tags[i].value, a->tags[i].value_len, b->tags[i].value,
			                b->tags[i].value_len))
				fuzz_fail(what, "a tag differs", a->tags[i].key,
				          a->tags[i].key_len);
		return;
	}
	/* Line protocol: sorted by key, empty values left out. */
	struct cv_tag *want = malloc((a->ntags + 1) * sizeof *want);
	if (!want)
		abort();
	uint16_t n = 0;
	for (uint16_t i = 0; i < a->ntags; i++)
		if (a->tags[i].value_len)
			want[n++] = a->tags[i];
	qsort(want, n, sizeof *want, tag_cmp);
	if (n != b->ntags)
		fuzz_fail(what, "tag count differs", a->measurement, a->measurement_len);
	for (uint16_t i = 0; i < n; i++)
		if (!same_bytes(want[i].key, want[i].key_len, b->tags[i].key, b->tags[i].key_len) ||
		    !same_bytes(want[i].value, want[i].value_len, b->tags[i].value,
		                b->tags[i].value_len))
			fuzz_fail(what, "a tag differs", want[i].key, want[i].key_len);
	free(want);
}

void fuzz_check_same(enum cv_record_format format, const struct cv_record *a,
                     const struct cv_record *b, const char *what)
{
	if (!same_bytes(a->measurement, a->measurement_len, b->measurement, b->measurement_len))
		fuzz_fail(what, "measurement differs", b->measurement, b->measurement_len);
	if (a->timestamp != b->timestamp)
		fuzz_fail(what, "timestamp differs", NULL, 0);
	check_tags(format, a, b, what);
	if (a->nfields != b->nfields)
		fuzz_fail(what, "field count differs", NULL, 0);
	for (uint16_t i = 0; i < a->nfields; i++) {
		const struct cv_field *x = &a->fields[i], *y = &b->fields[i];
		if (!same_bytes(x->key, x->key_len, y->key, y->key_len))
			fuzz_fail(what, "a field key differs", y->key, y->key_len);
		if (x->type != y->type)
			fuzz_fail(what, "a field type differs", x->key, x->key_len);
		bool same = true;
		switch (x->type) {
		case CV_FIELD_FLOAT: same = memcmp(&x->v.f, &y->v.f, sizeof x->v.f) == 0; break;
		case CV_FIELD_INT: same = x->v.i == y->v.i; break;
		case CV_FIELD_BOOL: same = x->v.b == y->v.b; break;
		case CV_FIELD_STRING:
			same = same_bytes(x->v.s, x->str_len, y->v.s, y->str_len);
			break;
		}
		if (!same)
			fuzz_fail(what, "a field value differs", x->key, x->key_len);
	}
}

void fuzz_decode_round_trip(enum cv_record_format format, const uint8_t *data, size_t size)
{
	struct cv_batch *batch = fuzz_batch_new(2);
	struct cv_record *r1 = cv_batch_record_new(batch);
	const char *why = NULL;
	int rc = cv_record_decode(&fuzz_api, batch, format, r1, (const char *)data, size, 42, &why);
	if (rc == 0 && why)
		fuzz_fail("decode", "success with a reason", data, size);
	if (rc == CV_EINVAL && !why)
		fuzz_fail("decode", "refused without a reason", data, size);
	if (rc != 0 && rc != CV_EINVAL)
		fuzz_fail("decode", "neither success nor CV_EINVAL", data, size);
	if (rc == 0) {
		/* What the decoder takes, the encoder writes, and reads back. */
		struct cv_buf one = {0}, two = {0};
		if (cv_record_encode(&one, format, r1) != 0)
			fuzz_fail("decode -> encode", "the encoder refuses a decoded record", data,
			          size);
		struct cv_record *r2 = cv_batch_record_new(batch);
		rc = cv_record_decode(&fuzz_api, batch, format, r2, one.data, one.len, 0, &why);
		if (rc != 0)
			fuzz_fail("decode -> encode -> decode", why ? why : "refused", one.data,
			          one.len);
		fuzz_check_same(format, r1, r2, "decode -> encode -> decode");
		if (cv_record_encode(&two, format, r2) != 0 ||
		    !same_bytes(one.data, one.len, two.data, two.len))
			fuzz_fail("encode -> decode -> encode", "the bytes differ", two.data,
			          two.len);
		cv_buf_free(&one);
		cv_buf_free(&two);
	}
	fuzz_batch_free(batch);
}
