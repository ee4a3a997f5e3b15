/*
 * record_decode.c - JSON and line protocol into a record. See
 * record_decode.h.
 *
 * The input is copied once into the batch arena and parsed in place:
 * unescaping never makes a string longer, so every string is rewritten where
 * it lies and the record points at it. No allocation beyond that copy and the
 * tag array (plus field slots when a record has more fields than the host
 * gave it).
 */
#include "record_decode.h"

#include "text_codec.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 32

/* Word-at-a-time tricks that rely on the first byte being the lowest. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR_DIGITS 1
#endif

/* Parses [s, e) as a strict decimal int64 ("-12", no '+', no spaces).
 * Returns 0 or CV_EINVAL (empty, bad digit, out of range). */
static int parse_int64(const char *s, const char *e, int64_t *out)
{
	bool neg = false;
	if (s < e && *s == '-') {
		neg = true;
		s++;
	}
	if (s == e)
		return CV_EINVAL;
	uint64_t v = 0;
	if (e - s <= 18) {
		/* At most 18 digits cannot overflow. */
		for (; s < e; s++) {
			if (*s < '0' || *s > '9')
				return CV_EINVAL;
			v = v * 10 + (uint64_t)(*s - '0');
		}
		*out = neg ? -(int64_t)v : (int64_t)v;
		return 0;
	}
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return CV_EINVAL;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return CV_EINVAL;
	}
	if (v > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
		return CV_EINVAL;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Copies the input into the arena, NUL-terminated (strtod relies on it). */
static char *arena_copy(const struct cv_host_api *api, struct cv_batch *batch, const char *data,
                        size_t len)
{
	return api->batch_strdup(batch, data, len);
}

static int set_tags(const struct cv_host_api *api, struct cv_batch *batch, struct cv_record *record,
                    const struct cv_tag *tags, size_t n)
{
	if (!n)
		return 0;
	struct cv_tag *t = api->batch_alloc(batch, n * sizeof *t);
	if (!t)
		return CV_ENOMEM;
	memcpy(t, tags, n * sizeof *t);
	record->tags = t;
	record->ntags = (uint16_t)n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Decimal to double                                                          */
/* ------------------------------------------------------------------------ */

/* Exact powers of ten a double holds (Clinger's fast path). */
static const double exact_pow10[] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* 5^q for q in [POW5_MIN, POW5_MAX], normalised to 128 bits (top bit set):
 * truncated for q >= 0, floor(2^b / 5^-q) + 1 for q < 0, as the
 * Eisel-Lemire algorithm needs them (generated with Python's big integers,
 * the rule of Lemire's fast_double_parser table script). The range covers
 * what the encoders write for everyday values; others go to strtod. */
#define POW5_MIN (-64)
#define POW5_MAX 64
static const uint64_t pow5_128[][2] = {
        {0xa87fea27a539e9a5u, 0x3f2398d747b36224u}, /* 5^-64 */
        {0xd29fe4b18e88640eu, 0x8eec7f0d19a03aadu}, /* 5^-63 */
        {0x83a3eeeef9153e89u, 0x1953cf68300424acu}, /* 5^-62 */
        {0xa48ceaaab75a8e2bu, 0x5fa8c3423c052dd7u}, /* 5^-61 */
        {0xcdb02555653131b6u, 0x3792f412cb06794du}, /* 5^-60 */
        {0x808e17555f3ebf11u, 0xe2bbd88bbee40bd0u}, /* 5^-59 */
        {0xa0b19d2ab70e6ed6u, 0x5b6aceaeae9d0ec4u}, /* 5^-58 */
        {0xc8de047564d20a8bu, 0xf245825a5a445275u}, /* 5^-57 */
        {0xfb158592be068d2eu, 0xeed6e2f0f0d56712u}, /* 5^-56 */
        {0x9ced737bb6c4183du, 0x55464dd69685606bu}, /* 5^-55 */
        {0xc428d05aa4751e4cu, 0xaa97e14c3c26b886u}, /* 5^-54 */
        {0xf53304714d9265dfu, 0xd53dd99f4b3066a8u}, /* 5^-53 */
        {0x993fe2c6d07b7fabu, 0xe546a8038efe4029u}, /* 5^-52 */
        {0xbf8fdb78849a5f96u, 0xde98520472bdd033u}, /* 5^-51 */
        {0xef73d256a5c0f77cu, 0x963e66858f6d4440u}, /* 5^-50 */
        {0x95a8637627989aadu, 0xdde7001379a44aa8u}, /* 5^-49 */
        {0xbb127c53b17ec159u, 0x5560c018580d5d52u}, /* 5^-48 */
        {0xe9d71b689dde71afu, 0xaab8f01e6e10b4a6u}, /* 5^-47 */
        {0x9226712162ab070du, 0xcab3961304ca70e8u}, /* 5^-46 */
        {0xb6b00d69bb55c8d1u, 0x3d607b97c5fd0d22u}, /* 5^-45 */
        {0xe45c10c42a2b3b05u, 0x8cb89a7db77c506au}, /* 5^-44 */
        {0x8eb98a7a9a5b04e3u, 0x77f3608e92adb242u}, /* 5^-43 */
        {0xb267ed1940f1c61cu, 0x55f038b237591ed3u}, /* 5^-42 */
        {0xdf01e85f912e37a3u, 0x6b6c46dec52f6688u}, /* 5^-41 */
        {0x8b61313bbabce2c6u, 0x2323ac4b3b3da015u}, /* 5^-40 */
        {0xae397d8aa96c1b77u, 0xabec975e0a0d081au}, /* 5^-39 */
        {0xd9c7dced53c72255u, 0x96e7bd358c904a21u}, /* 5^-38 */
        {0x881cea14545c7575u, 0x7e50d64177da2e54u}, /* 5^-37 */
        {0xaa242499697392d2u, 0xdde50bd1d5d0b9e9u}, /* 5^-36 */
        {0xd4ad2dbfc3d07787u, 0x955e4ec64b44e864u}, /* 5^-35 */
        {0x84ec3c97da624ab4u, 0xbd5af13bef0b113eu}, /* 5^-34 */
        {0xa6274bbdd0fadd61u, 0xecb1ad8aeacdd58eu}, /* 5^-33 */
        {0xcfb11ead453994bau, 0x67de18eda5814af2u}, /* 5^-32 */
        {0x81ceb32c4b43fcf4u, 0x80eacf948770ced7u}, /* 5^-31 */
        {0xa2425ff75e14fc31u, 0xa1258379a94d028du}, /* 5^-30 */
        {0xcad2f7f5359a3b3eu, 0x096ee45813a04330u}, /* 5^-29 */
        {0xfd87b5f28300ca0du, 0x8bca9d6e188853fcu}, /* 5^-28 */
        {0x9e74d1b791e07e48u, 0x775ea264cf55347du}, /* 5^-27 */
        {0xc612062576589ddau, 0x95364afe032a819du}, /* 5^-26 */
        {0xf79687aed3eec551u, 0x3a83ddbd83f52204u}, /* 5^-25 */
        {0x9abe14cd44753b52u, 0xc4926a9672793542u}, /* 5^-24 */
        {0xc16d9a0095928a27u, 0x75b7053c0f178293u}, /* 5^-23 */
        {0xf1c90080baf72cb1u, 0x5324c68b12dd6338u}, /* 5^-22 */
        {0x971da05074da7beeu, 0xd3f6fc16ebca5e03u}, /* 5^-21 */
        {0xbce5086492111aeau, 0x88f4bb1ca6bcf584u}, /* 5^-20 */
        {0xec1e4a7db69561a5u, 0x2b31e9e3d06c32e5u}, /* 5^-19 */
        {0x9392ee8e921d5d07u, 0x3aff322e62439fcfu}, /* 5^-18 */
        {0xb877aa3236a4b449u, 0x09befeb9fad487c3u}, /* 5^-17 */
        {0xe69594bec44de15bu, 0x4c2ebe687989a9b4u}, /* 5^-16 */
        {0x901d7cf73ab0acd9u, 0x0f9d37014bf60a11u}, /* 5^-15 */
        {0xb424dc35095cd80fu, 0x538484c19ef38c95u}, /* 5^-14 */
        {0xe12e13424bb40e13u, 0x2865a5f206b06fbau}, /* 5^-13 */
        {0x8cbccc096f5088cbu, 0xf93f87b7442e45d4u}, /* 5^-12 */
        {0xafebff0bcb24aafeu, 0xf78f69a51539d749u}, /* 5^-11 */
        {0xdbe6fecebdedd5beu, 0xb573440e5a884d1cu}, /* 5^-10 */
        {0x89705f4136b4a597u, 0x31680a88f8953031u}, /* 5^-9 */
        {0xabcc77118461cefcu, 0xfdc20d2b36ba7c3eu}, /* 5^-8 */
        {0xd6bf94d5e57a42bcu, 0x3d32907604691b4du}, /* 5^-7 */
        {0x8637bd05af6c69b5u, 0xa63f9a49c2c1b110u}, /* 5^-6 */
        {0xa7c5ac471b478423u, 0x0fcf80dc33721d54u}, /* 5^-5 */
        {0xd1b71758e219652bu, 0xd3c36113404ea4a9u}, /* 5^-4 */
        {0x83126e978d4fdf3bu, 0x645a1cac083126eau}, /* 5^-3 */
        {0xa3d70a3d70a3d70au, 0x3d70a3d70a3d70a4u}, /* 5^-2 */
        {0xccccccccccccccccu, 0xcccccccccccccccdu}, /* 5^-1 */
        {0x8000000000000000u, 0x0000000000000000u}, /* 5^0 */
        {0xa000000000000000u, 0x0000000000000000u}, /* 5^1 */
        {0xc800000000000000u, 0x0000000000000000u}, /* 5^2 */
        {0xfa00000000000000u, 0x0000000000000000u}, /* 5^3 */
        {0x9c40000000000000u, 0x0000000000000000u}, /* 5^4 */
        {0xc350000000000000u, 0x0000000000000000u}, /* 5^5 */
        {0xf424000000000000u, 0x0000000000000000u}, /* 5^6 */
        {0x9896800000000000u, 0x0000000000000000u}, /* 5^7 */
        {0xbebc200000000000u, 0x0000000000000000u}, /* 5^8 */
        {0xee6b280000000000u, 0x0000000000000000u}, /* 5^9 */
        {0x9502f90000000000u, 0x0000000000000000u}, /* 5^10 */
        {0xba43b74000000000u, 0x0000000000000000u}, /* 5^11 */
        {0xe8d4a51000000000u, 0x0000000000000000u}, /* 5^12 */
        {0x9184e72a00000000u, 0x0000000000000000u}, /* 5^13 */
        {0xb5e620f480000000u, 0x0000000000000000u}, /* 5^14 */
        {0xe35fa931a0000000u, 0x0000000000000000u}, /* 5^15 */
        {0x8e1bc9bf04000000u, 0x0000000000000000u}, /* 5^16 */
        {0xb1a2bc2ec5000000u, 0x0000000000000000u}, /* 5^17 */
        {0xde0b6b3a76400000u, 0x0000000000000000u}, /* 5^18 */
        {0x8ac7230489e80000u, 0x0000000000000000u}, /* 5^19 */
        {0xad78ebc5ac620000u, 0x0000000000000000u}, /* 5^20 */
        {0xd8d726b7177a8000u, 0x0000000000000000u}, /* 5^21 */
        {0x878678326eac9000u, 0x0000000000000000u}, /* 5^22 */
        {0xa968163f0a57b400u, 0x0000000000000000u}, /* 5^23 */
        {0xd3c21bcecceda100u, 0x0000000000000000u}, /* 5^24 */
        {0x84595161401484a0u, 0x0000000000000000u}, /* 5^25 */
        {0xa56fa5b99019a5c8u, 0x0000000000000000u}, /* 5^26 */
        {0xcecb8f27f4200f3au, 0x0000000000000000u}, /* 5^27 */
        {0x813f3978f8940984u, 0x4000000000000000u}, /* 5^28 */
        {0xa18f07d736b90be5u, 0x5000000000000000u}, /* 5^29 */
        {0xc9f2c9cd04674edeu, 0xa400000000000000u}, /* 5^30 */
        {0xfc6f7c4045812296u, 0x4d00000000000000u}, /* 5^31 */
        {0x9dc5ada82b70b59du, 0xf020000000000000u}, /* 5^32 */
        {0xc5371912364ce305u, 0x6c28000000000000u}, /* 5^33 */
        {0xf684df56c3e01bc6u, 0xc732000000000000u}, /* 5^34 */
        {0x9a130b963a6c115cu, 0x3c7f400000000000u}, /* 5^35 */
        {0xc097ce7bc90715b3u, 0x4b9f100000000000u}, /* 5^36 */
        {0xf0bdc21abb48db20u, 0x1e86d40000000000u}, /* 5^37 */
        {0x96769950b50d88f4u, 0x1314448000000000u}, /* 5^38 */
        {0xbc143fa4e250eb31u, 0x17d955a000000000u}, /* 5^39 */
        {0xeb194f8e1ae525fdu, 0x5dcfab0800000000u}, /* 5^40 */
        {0x92efd1b8d0cf37beu, 0x5aa1cae500000000u}, /* 5^41 */
        {0xb7abc627050305adu, 0xf14a3d9e40000000u}, /* 5^42 */
        {0xe596b7b0c643c719u, 0x6d9ccd05d0000000u}, /* 5^43 */
        {0x8f7e32ce7bea5c6fu, 0xe4820023a2000000u}, /* 5^44 */
        {0xb35dbf821ae4f38bu, 0xdda2802c8a800000u}, /* 5^45 */
        {0xe0352f62a19e306eu, 0xd50b2037ad200000u}, /* 5^46 */
        {0x8c213d9da502de45u, 0x4526f422cc340000u}, /* 5^47 */
        {0xaf298d050e4395d6u, 0x9670b12b7f410000u}, /* 5^48 */
        {0xdaf3f04651d47b4cu, 0x3c0cdd765f114000u}, /* 5^49 */
        {0x88d8762bf324cd0fu, 0xa5880a69fb6ac800u}, /* 5^50 */
        {0xab0e93b6efee0053u, 0x8eea0d047a457a00u}, /* 5^51 */
        {0xd5d238a4abe98068u, 0x72a4904598d6d880u}, /* 5^52 */
        {0x85a36366eb71f041u, 0x47a6da2b7f864750u}, /* 5^53 */
        {0xa70c3c40a64e6c51u, 0x999090b65f67d924u}, /* 5^54 */
        {0xd0cf4b50cfe20765u, 0xfff4b4e3f741cf6du}, /* 5^55 */
        {0x82818f1281ed449fu, 0xbff8f10e7a8921a4u}, /* 5^56 */
        {0xa321f2d7226895c7u, 0xaff72d52192b6a0du}, /* 5^57 */
        {0xcbea6f8ceb02bb39u, 0x9bf4f8a69f764490u}, /* 5^58 */
        {0xfee50b7025c36a08u, 0x02f236d04753d5b4u}, /* 5^59 */
        {0x9f4f2726179a2245u, 0x01d762422c946590u}, /* 5^60 */
        {0xc722f0ef9d80aad6u, 0x424d3ad2b7b97ef5u}, /* 5^61 */
        {0xf8ebad2b84e0d58bu, 0xd2e0898765a7deb2u}, /* 5^62 */
        {0x9b934c3b330c8577u, 0x63cc55f49f88eb2fu}, /* 5^63 */
        {0xc2781f49ffcfa6d5u, 0x3cbf6b71c76b25fbu}, /* 5^64 */
};

/* w * 10^q correctly rounded (Eisel-Lemire, "Number Parsing at a Gigabyte
 * per Second", Lemire 2021), or false when this fast path cannot decide and
 * strtod must. strtod costs about as much as the rest of a record's decode. */
static bool decimal_to_double(uint64_t w, int q, bool neg, double *out)
{
	if (w == 0) {
		*out = neg ? -0.0 : 0.0;
		return true;
	}
	if (q >= -22 && q <= 22 && w <= (UINT64_C(1) << 53) - 1) {
		/* Both operands exact: one correctly rounded operation. */
		double d = (double)w;
		d = q < 0 ? d / exact_pow10[-q] : d * exact_pow10[q];
		*out = neg ? -d : d;
		return true;
	}
	if (q < POW5_MIN || q > POW5_MAX)
		return false;
	int64_t exponent = ((INT64_C(217706) * q) >> 16) + 1024 + 63;
	int lz = __builtin_clzll(w);
	w <<= lz;
	const uint64_t *p5 = pow5_128[q - POW5_MIN];
	unsigned __int128 first = (unsigned __int128)w * p5[0];
	uint64_t lower = (uint64_t)first, upper = (uint64_t)(first >> 64);
	if ((upper & 0x1ff) == 0x1ff) {
		unsigned __int128 second = (unsigned __int128)w * p5[1];
		uint64_t add = (uint64_t)(second >> 64);
		lower += add;
		if (add > lower)
			upper++;
		if ((upper & 0x1ff) == 0x1ff && lower == UINT64_MAX)
			return false;
	}
	uint64_t upperbit = upper >> 63;
	uint64_t mantissa = upper >> (upperbit + 9);
	lz += (int)(1 ^ upperbit);
	int64_t real_exponent = exponent - lz;
	if (real_exponent <= 0)
		return false; /* subnormal */
	if (lower <= 1 && q >= -4 && q <= 23 && (mantissa & 3) == 1 &&
	    (mantissa << (upperbit + 64 - 53 - 2)) == upper)
		mantissa &= ~UINT64_C(1); /* exactly halfway: round to even */
	mantissa += mantissa & 1;
	mantissa >>= 1;
	if (mantissa >= (UINT64_C(1) << 53)) {
		mantissa = UINT64_C(1) << 52;
		real_exponent++;
	}
	mantissa &= ~(UINT64_C(1) << 52);
	if (real_exponent > 2046)
		return false;
	uint64_t bits = mantissa | ((uint64_t)real_exponent << 52) | ((uint64_t)neg << 63);
	memcpy(out, &bits, sizeof bits);
	return true;
}

/* Reads [s, e), already checked to be [-+]?digits?[.digits?][(e|E)[-+]?digits]
 * with at least one digit before the exponent, as a double. The buffer
 * holds a delimiter or NUL at e, where strtod (the slow path) stops. */
static int parse_double(char *s, char *e, double *out)
{
	char *p = s;
	bool neg = false;
	if (p < e && (*p == '-' || *p == '+'))
		neg = *p++ == '-';
	uint64_t w = 0;
	int sig = 0, q = 0;
	bool exact = true;
	for (; p < e && *p >= '0' && *p <= '9'; p++) {
		if (w || *p != '0') {
			if (sig == 19)
				exact = false;
			else
				w = w * 10 + (uint64_t)(*p - '0');
			sig++;
		}
	}
	if (p < e && *p == '.') {
		for (p++; p < e && *p >= '0' && *p <= '9'; p++) {
			if (w || *p != '0') {
				if (sig == 19)
					exact = false;
				else
					w = w * 10 + (uint64_t)(*p - '0');
				sig++;
			}
			q--; /* only matters while exact */
		}
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		bool eneg = false;
		if (p < e && (*p == '-' || *p == '+'))
			eneg = *p++ == '-';
		int x = 0;
		for (; p < e && *p >= '0' && *p <= '9'; p++) {
			if (x < 100000)
				x = x * 10 + (*p - '0');
		}
		q += eneg ? -x : x;
	}
	if (!exact || !decimal_to_double(w, q, neg, out)) {
		char *endp;
		*out = strtod(s, &endp);
		if (endp != e)
			return CV_EINVAL;
	}
	return isfinite(*out) ? 0 : CV_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */
/* ------------------------------------------------------------------------ */

struct jp {
	char *p;
	char *end;
	const char *err;
};

static int jfail(struct jp *j, const char *why)
{
	if (!j->err)
		j->err = why;
	return CV_EINVAL;
}

static void jws_skip(struct jp *j)
{
	while (j->p < j->end && (unsigned char)*j->p <= ' ' &&
	       (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static inline void jws(struct jp *j)
{
	/* Encoders write no whitespace: one test in the common case. The
	 * input ends in a NUL (arena_copy), so *j->p is readable even at the
	 * end, and the NUL sends it to the bounded loop. */
	if (__builtin_expect((unsigned char)*j->p <= ' ', 0))
		jws_skip(j);
}

static int jexpect(struct jp *j, char c, const char *why)
{
	jws(j);
	if (j->p >= j->end || *j->p != c)
		return jfail(j, why);
	j->p++;
	return 0;
}

static int hex4(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return CV_EINVAL;
	}
	*out = v;
	return 0;
}

static char *put_utf8(char *w, uint32_t cp)
{
	if (cp < 0x80) {
		*w++ = (char)cp;
	} else if (cp < 0x800) {
		*w++ = (char)(0xc0 | (cp >> 6));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*w++ = (char)(0xe0 | (cp >> 12));
		*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*w++ = (char)(0xf0 | (cp >> 18));
		*w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	}
	return w;
}

static int jstring_rest(struct jp *j, char *r, char **out, size_t *len);

/* A string at the cursor (after whitespace): unescaped in place; *out and
 * *len give the result. */
static int jstring(struct jp *j, char **out, size_t *len)
{
	jws(j);
	if (j->p >= j->end || *j->p != '"')
		return jfail(j, "JSON: expected a string");
	char *r = ++j->p;
	/* Fast path: plain printable ASCII up to the closing quote needs no
	 * rewriting; most keys and values are just that. Words of 8 bytes
	 * first, then bytes up to the first special one. */
	while (j->end - r >= 8) {
		uint64_t v;
		memcpy(&v, r, 8);
		uint64_t t = cv_json_swar_special(v);
		if (t) {
#ifdef SWAR_DIGITS
			/* Little-endian: the lowest flag is exact (borrows only
			 * run towards later bytes), so it is the first special
			 * byte. */
			r += __builtin_ctzll(t) >> 3;
#endif
			break;
		}
		r += 8;
	}
	while (r < j->end && !cv_json_special[(unsigned char)*r])
		r++;
	if (r < j->end && *r == '"') {
		*out = j->p;
		*len = (size_t)(r - j->p);
		j->p = r + 1;
		return 0;
	}
	return jstring_rest(j, r, out, len);
}

/* The rest of a string from its first escape or non-ASCII byte at r (the
 * bytes before are plain). Kept out of line so the fast path above stays
 * small. */
static __attribute__((noinline)) int jstring_rest(struct jp *j, char *r, char **out, size_t *len)
{
	char *w = r;
	*out = j->p;
	for (;;) {
		if (r >= j->end)
			return jfail(j, "JSON: unterminated string");
		unsigned char c = (unsigned char)*r;
		if (c == '"')
			break;
		if (c < 0x20)
			return jfail(j, "JSON: control character in string");
		if (c == '\\') {
			if (r + 1 >= j->end)
				return jfail(j, "JSON: unterminated string");
			char e = r[1];
			r += 2;
			switch (e) {
			case '"': *w++ = '"'; break;
			case '\\': *w++ = '\\'; break;
			case '/': *w++ = '/'; break;
			case 'b': *w++ = '\b'; break;
			case 'f': *w++ = '\f'; break;
			case 'n': *w++ = '\n'; break;
			case 'r': *w++ = '\r'; break;
			case 't': *w++ = '\t'; break;
			case 'u': {
				uint32_t cp, lo;
				if (j->end - r < 4 || hex4(r, &cp) < 0)
					return jfail(j, "JSON: bad \\u escape");
				r += 4;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return jfail(j, "JSON: lone low surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (j->end - r < 6 || r[0] != '\\' || r[1] != 'u' ||
					    hex4(r + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
						return jfail(j, "JSON: lone high surrogate");
					r += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				w = put_utf8(w, cp);
				break;
			}
			default: return jfail(j, "JSON: bad escape in string");
			}
			continue;
		}
		if (c < 0x80) {
			*w++ = (char)c;
			r++;
			continue;
		}
		size_t n = cv_utf8_seq((const unsigned char *)r, (size_t)(j->end - r));
		if (!n)
			return jfail(j, "JSON: invalid UTF-8 in string");
		memmove(w, r, n);
		w += n;
		r += n;
	}
	*len = (size_t)(w - *out);
	j->p = r + 1;
	return 0;
}

#ifdef SWAR_DIGITS
/* True when the 8 bytes of v are all ASCII digits. A carry out of a byte
 * only comes from a byte that fails the test itself. */
static inline bool is_8digits(uint64_t v)
{
	return ((v & 0xf0f0f0f0f0f0f0f0ull) |
	        (((v + 0x0606060606060606ull) & 0xf0f0f0f0f0f0f0f0ull) >> 4)) ==
	       0x3333333333333333ull;
}

/* The value of 8 ASCII digits, the first in the lowest byte (as loaded on
 * a little-endian machine). */
static inline uint32_t parse_8digits(uint64_t v)
{
	v -= 0x3030303030303030ull;
	v = v * 10 + (v >> 8);
	v = ((v & 0x000000ff000000ffull) * (100 + (1000000ull << 32)) +
	     ((v >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))) >>
	    32;
	return (uint32_t)v;
}
#endif

/* Accumulates the digits at *pp (< e) into w, unchecked (w wraps past 19
 * digits, as w * 10 + d would); leaves *pp after them. */
static inline uint64_t digits_acc(char **pp, char *e, uint64_t w)
{
	char *p = *pp;
#ifdef SWAR_DIGITS
	while (e - p >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		if (!is_8digits(v))
			break;
		w = w * 100000000u + parse_8digits(v);
		p += 8;
	}
#endif
	for (; p < e && *p >= '0' && *p <= '9'; p++)
		w = w * 10 + (uint64_t)(*p - '0');
	*pp = p;
	return w;
}

/* A number at the cursor: integer when it has no fraction nor exponent. */
static int jnumber(struct jp *j, bool *is_int, int64_t *iv, double *dv)
{
	jws(j);
	char *s = j->p, *p = j->p, *e = j->end;
	bool neg = false, integer = true, exact = true;
	/* The value accumulates while the grammar is checked: one pass. */
	uint64_t w = 0;
	int sig = 0, q = 0;
	if (p < e && *p == '-') {
		neg = true;
		p++;
	}
	/* Digits accumulate unchecked: past 19 significant ones w wraps, and
	 * `exact` turns false from the count alone. */
	if (p < e && *p == '0') {
		p++;
	} else if (p < e && *p >= '1' && *p <= '9') {
		char *d0 = p;
		w = digits_acc(&p, e, w);
		sig = (int)(p - d0);
	} else {
		return jfail(j, "JSON: expected a value");
	}
	if (p < e && *p == '.') {
		integer = false;
		char *f0 = ++p;
		if (!w) /* leading zeros of a fraction are not significant */
			while (p < e && *p == '0')
				p++;
		char *fs = p;
		w = digits_acc(&p, e, w);
		if (p == f0)
			return jfail(j, "JSON: bad number");
		sig += (int)(p - fs);
		q -= (int)(p - f0);
	}
	exact = sig <= 19;
	if (p < e && (*p == 'e' || *p == 'E')) {
		integer = false;
		p++;
		bool eneg = false;
		if (p < e && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		if (p >= e || *p < '0' || *p > '9')
			return jfail(j, "JSON: bad number");
		int x = 0;
		for (; p < e && *p >= '0' && *p <= '9'; p++) {
			if (x < 100000)
				x = x * 10 + (*p - '0');
		}
		q += eneg ? -x : x;
	}
	*is_int = integer;
	if (integer) {
		/* Up to 19 digits fit w exactly; more never fit an int64. */
		if (!exact || w > (uint64_t)INT64_MAX + neg)
			return jfail(j, "JSON: integer out of range");
		*iv = neg ? (int64_t)(0 - w) : (int64_t)w;
	} else if (!exact || !decimal_to_double(w, q, neg, dv)) {
		if (parse_double(s, p, dv) < 0)
			return jfail(j, "JSON: number out of range");
	} else if (!isfinite(*dv)) {
		return jfail(j, "JSON: number out of range");
	}
	j->p = p;
	return 0;
}

static int jliteral(struct jp *j, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return jfail(j, "JSON: expected a value");
	j->p += n;
	return 0;
}

/* Skips any value (of a key the decoder does not know). */
static int jskip(struct jp *j, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return jfail(j, "JSON: nested too deep");
	jws(j);
	if (j->p >= j->end)
		return jfail(j, "JSON: expected a value");
	char c = *j->p;
	char *s;
	size_t n;
	bool is_int;
	int64_t iv;
	double dv;
	switch (c) {
	case '"': return jstring(j, &s, &n);
	case 't': return jliteral(j, "true");
	case 'f': return jliteral(j, "false");
	case 'n': return jliteral(j, "null");
	case '{':
	case '[': {
		char close = c == '{' ? '}' : ']';
		j->p++;
		jws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				if (jstring(j, &s, &n) < 0 ||
				    jexpect(j, ':', "JSON: expected ':'") < 0)
					return CV_EINVAL;
			}
			if (jskip(j, depth + 1) < 0)
				return CV_EINVAL;
			jws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			return jexpect(j, close, "JSON: expected ',' or a closing bracket");
		}
	}
	default: return jnumber(j, &is_int, &iv, &dv);
	}
}

/* Iterates an object: call with *first true; returns 1 with the cursor on a
 * value (key in *key), 0 at the closing brace, or CV_EINVAL. */
static int jmember(struct jp *j, bool *first, char **key, size_t *klen)
{
	jws(j);
	if (*first) {
		*first = false;
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
	} else {
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		if (jexpect(j, ',', "JSON: expected ',' or '}'") < 0)
			return CV_EINVAL;
	}
	if (jstring(j, key, klen) < 0 || jexpect(j, ':', "JSON: expected ':'") < 0)
		return CV_EINVAL;
	return 1;
}

/* A key against a string literal, its length known at compile time. */
#define KEY_IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

static int jtags(struct jp *j, const struct cv_host_api *api, struct cv_batch *batch,
                 struct cv_record *record)
{
	struct cv_tag tags[CV_DECODE_MAX_TAGS];
	size_t n = 0;
	if (jexpect(j, '{', "JSON: \"tags\" must be an object") < 0)
		return CV_EINVAL;
	bool first = true;
	char *k, *v;
	size_t kl, vl;
	int rc;
	while ((rc = jmember(j, &first, &k, &kl)) == 1) {
		jws(j);
		if (j->p >= j->end || *j->p != '"')
			return jfail(j, "JSON: tag values must be strings");
		if (jstring(j, &v, &vl) < 0)
			return CV_EINVAL;
		if (n == CV_DECODE_MAX_TAGS)
			return jfail(j, "JSON: too many tags");
		if (kl == 0)
			return jfail(j, "JSON: empty tag key");
		tags[n++] = (struct cv_tag){
		        .key = k, .value = v, .key_len = (uint32_t)kl, .value_len = (uint32_t)vl};
	}
	if (rc < 0)
		return rc;
	return set_tags(api, batch, record, tags, n);
}

static int jfields(struct jp *j, const struct cv_host_api *api, struct cv_batch *batch,
                   struct cv_record *record)
{
	if (jexpect(j, '{', "JSON: \"fields\" must be an object") < 0)
		return CV_EINVAL;
	bool first = true;
	char *k;
	size_t kl;
	int rc;
	while ((rc = jmember(j, &first, &k, &kl)) == 1) {
		if (kl == 0 || kl > UINT16_MAX)
			return jfail(j, "JSON: field key empty or too long");
		jws(j);
		if (j->p >= j->end)
			return jfail(j, "JSON: expected a value");
		struct cv_field val = {.key = k, .key_len = (uint16_t)kl};
		char c = *j->p;
		if (c == '"') {
			char *s;
			size_t sl;
			if (jstring(j, &s, &sl) < 0)
				return CV_EINVAL;
			if (sl > UINT32_MAX)
				return jfail(j, "JSON: string too long");
			val.type = CV_FIELD_STRING;
			val.v.s = s;
			val.str_len = (uint32_t)sl;
		} else if (c == 't' || c == 'f') {
			if (jliteral(j, c == 't' ? "true" : "false") < 0)
				return CV_EINVAL;
			val.type = CV_FIELD_BOOL;
			val.v.b = c == 't';
		} else if (c == 'n') {
			return jfail(j, "JSON: null field value");
		} else if (c == '{' || c == '[') {
			return jfail(j, "JSON: field values must be numbers, booleans or strings");
		} else {
			bool is_int;
			int64_t iv;
			double dv;
			if (jnumber(j, &is_int, &iv, &dv) < 0)
				return CV_EINVAL;
			val.type = is_int ? CV_FIELD_INT : CV_FIELD_FLOAT;
			if (is_int)
				val.v.i = iv;
			else
				val.v.f = dv;
		}
		struct cv_field *f = cv_record_add_field(api, batch, record);
		if (!f)
			return CV_ENOMEM;
		*f = val;
	}
	if (rc < 0)
		return rc;
	if (record->nfields == 0)
		return jfail(j, "JSON: \"fields\" is empty");
	return 0;
}

int cv_record_decode_json(const struct cv_host_api *api, struct cv_batch *batch,
                          struct cv_record *record, const char *data, size_t len,
                          int64_t default_ts, const char **reason)
{
	const char *dummy;
	if (!reason)
		reason = &dummy;
	*reason = NULL;
	char *buf = arena_copy(api, batch, data, len);
	if (!buf)
		return CV_ENOMEM;
	struct jp j = {.p = buf, .end = buf + len};
	bool have_m = false, have_ts = false, have_tags = false, have_fields = false;
	int rc = jexpect(&j, '{', "JSON: expected an object");
	bool first = true;
	char *k;
	size_t kl;
	record->timestamp = default_ts;
	while (rc == 0 && (rc = jmember(&j, &first, &k, &kl)) == 1) {
		rc = 0;
		if (KEY_IS(k, kl, "measurement")) {
			char *m;
			size_t ml;
			if (have_m) {
				rc = jfail(&j, "JSON: \"measurement\" given twice");
			} else if ((rc = jstring(&j, &m, &ml)) == 0) {
				if (ml == 0 || ml > UINT32_MAX)
					rc = jfail(&j, "JSON: empty measurement");
				record->measurement = m;
				record->measurement_len = (uint32_t)ml;
			}
			have_m = true;
		} else if (KEY_IS(k, kl, "timestamp")) {
			bool is_int;
			int64_t iv;
			double dv;
			if (have_ts) {
				rc = jfail(&j, "JSON: \"timestamp\" given twice");
			} else if ((rc = jnumber(&j, &is_int, &iv, &dv)) == 0) {
				if (!is_int)
					rc = jfail(&j,
					           "JSON: timestamp must be integer nanoseconds");
				record->timestamp = iv;
			}
			have_ts = true;
		} else if (KEY_IS(k, kl, "tags")) {
			rc = have_tags ? jfail(&j, "JSON: \"tags\" given twice")
			               : jtags(&j, api, batch, record);
			have_tags = true;
		} else if (KEY_IS(k, kl, "fields")) {
			rc = have_fields ? jfail(&j, "JSON: \"fields\" given twice")
			                 : jfields(&j, api, batch, record);
			have_fields = true;
		} else {
			rc = jskip(&j, 1);
		}
	}
	if (rc == CV_ENOMEM)
		return rc;
	if (rc < 0) {
		*reason = j.err ? j.err : "JSON: syntax error";
		return CV_EINVAL;
	}
	jws(&j);
	if (j.p != j.end)
		*reason = "JSON: data after the object";
	else if (!have_m)
		*reason = "JSON: no \"measurement\"";
	else if (!have_fields)
		*reason = "JSON: no \"fields\"";
	return *reason ? CV_EINVAL : 0;
}

/* ------------------------------------------------------------------------ */
/* Line protocol                                                              */
/* ------------------------------------------------------------------------ */

/* A delimiter of a name: ',' and ' ', and '=' but in a measurement. */
static inline bool lp_delim(char c, bool equals)
{
	return c == ',' || c == ' ' || (equals && c == '=');
}

/* Reads a token up to an unescaped delimiter (or the end), removing the
 * backslash before an escaped delimiter in place. A backslash before
 * anything else stays, as InfluxDB reads it. */
static char *lp_token(char **cur, char *end, bool equals, size_t *len)
{
	char *r = *cur, *w = *cur, *start = *cur;
	while (r < end) {
		char c = *r;
		if (c == '\\' && r + 1 < end && lp_delim(r[1], equals)) {
			*w++ = r[1];
			r += 2;
			continue;
		}
		if (lp_delim(c, equals))
			break;
		*w++ = c;
		r++;
	}
	*len = (size_t)(w - start);
	*cur = r;
	return start;
}

static bool lp_word(const char *s, size_t n, const char *const *words)
{
	for (; *words; words++) {
		if (strlen(*words) == n && memcmp(s, *words, n) == 0)
			return true;
	}
	return false;
}

/* A strict float: [-+]?(d+(.d*)?|.d+)([eE][-+]?d+)? and nothing else. */
static int lp_float(char *s, char *e, double *out)
{
	char *p = s;
	size_t digits = 0;
	if (p < e && (*p == '-' || *p == '+'))
		p++;
	while (p < e && *p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (p < e && *p == '.') {
		p++;
		while (p < e && *p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	if (!digits)
		return CV_EINVAL;
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || *p < '0' || *p > '9')
			return CV_EINVAL;
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p != e)
		return CV_EINVAL;
	return parse_double(s, e, out);
}

static int lp_value(char *s, char *e, struct cv_field *f)
{
	static const char *const trues[] = {"t", "T", "true", "True", "TRUE", NULL};
	static const char *const falses[] = {"f", "F", "false", "False", "FALSE", NULL};
	size_t n = (size_t)(e - s);
	if (n == 0)
		return CV_EINVAL;
	if (lp_word(s, n, trues) || lp_word(s, n, falses)) {
		f->type = CV_FIELD_BOOL;
		f->v.b = lp_word(s, n, trues);
		return 0;
	}
	if (e[-1] == 'i' || e[-1] == 'u') {
		int64_t v;
		if (e[-1] == 'u' && *s == '-')
			return CV_EINVAL;
		if (parse_int64(s, e - 1, &v) < 0)
			return CV_EINVAL;
		f->type = CV_FIELD_INT;
		f->v.i = v;
		return 0;
	}
	f->type = CV_FIELD_FLOAT;
	return lp_float(s, e, &f->v.f);
}

int cv_record_decode_influx(const struct cv_host_api *api, struct cv_batch *batch,
                            struct cv_record *record, const char *data, size_t len,
                            int64_t default_ts, const char **reason)
{
	const char *dummy;
	if (!reason)
		reason = &dummy;
	*reason = NULL;
	if (len && data[len - 1] == '\n')
		len--;
	if (len && data[len - 1] == '\r')
		len--;
	if (memchr(data, '\n', len) || memchr(data, '\r', len)) {
		*reason = "line protocol: more than one line";
		return CV_EINVAL;
	}
	char *buf = arena_copy(api, batch, data, len);
	if (!buf)
		return CV_ENOMEM;
	char *p = buf, *end = buf + len;
	size_t n;

	char *m = lp_token(&p, end, false, &n);
	if (n == 0 || !cv_influx_first_ok(*m, true)) {
		*reason = "line protocol: empty measurement, comment or leading white space";
		return CV_EINVAL;
	}
	if (!cv_influx_name_valid(m, n)) {
		*reason = "line protocol: stray backslash in the measurement";
		return CV_EINVAL;
	}
	record->measurement = m;
	record->measurement_len = (uint32_t)n;

	struct cv_tag tags[CV_DECODE_MAX_TAGS];
	size_t ntags = 0;
	while (p < end && *p == ',') {
		p++;
		size_t kl, vl;
		char *k = lp_token(&p, end, true, &kl);
		if (p >= end || *p != '=' || kl == 0) {
			*reason = "line protocol: bad tag";
			return CV_EINVAL;
		}
		p++;
		char *v = lp_token(&p, end, true, &vl);
		if (vl == 0 || (p < end && *p == '=')) {
			*reason = "line protocol: bad tag value";
			return CV_EINVAL;
		}
		if (ntags == CV_DECODE_MAX_TAGS) {
			*reason = "line protocol: too many tags";
			return CV_EINVAL;
		}
		if (!cv_influx_name_valid(k, kl) || !cv_influx_name_valid(v, vl)) {
			*reason = "line protocol: stray backslash in a tag";
			return CV_EINVAL;
		}
		if (cv_influx_is_time_key(k, kl)) {
			*reason = "line protocol: tag key \"time\"";
			return CV_EINVAL;
		}
		for (size_t i = 0; i < ntags; i++) {
			if (tags[i].key_len == kl && memcmp(tags[i].key, k, kl) == 0) {
				*reason = "line protocol: tag key given twice";
				return CV_EINVAL;
			}
		}
		tags[ntags++] = (struct cv_tag){
		        .key = k, .value = v, .key_len = (uint32_t)kl, .value_len = (uint32_t)vl};
	}
	if (p >= end || *p != ' ') {
		*reason = "line protocol: no fields";
		return CV_EINVAL;
	}
	/* The series key as written, which is as the encoder writes it: the
	 * escapes the decoder takes are the ones the encoder makes. */
	size_t series_len = (size_t)(p - buf);
	while (p < end && *p == ' ')
		p++;

	for (;;) {
		size_t kl;
		char *k = lp_token(&p, end, true, &kl);
		if (p >= end || *p != '=' || kl == 0 || kl > UINT16_MAX) {
			*reason = "line protocol: bad field key";
			return CV_EINVAL;
		}
		if (!cv_influx_first_ok(*k, false) || !cv_influx_name_valid(k, kl) ||
		    cv_influx_is_time_key(k, kl)) {
			*reason = "line protocol: bad field key";
			return CV_EINVAL;
		}
		if (series_len + 4 + (size_t)(p - k) > CV_INFLUX_MAX_KEY) {
			*reason = "line protocol: series key too long";
			return CV_EINVAL;
		}
		p++;
		struct cv_field val = {.key = k, .key_len = (uint16_t)kl};
		if (p < end && *p == '"') {
			char *r = ++p, *w = p;
			while (r < end && *r != '"') {
				if (*r == '\\' && r + 1 < end && (r[1] == '"' || r[1] == '\\'))
					r++;
				*w++ = *r++;
			}
			if (r >= end) {
				*reason = "line protocol: unterminated string";
				return CV_EINVAL;
			}
			val.type = CV_FIELD_STRING;
			val.v.s = p;
			val.str_len = (uint32_t)(w - p);
			p = r + 1;
		} else {
			char *s = p;
			while (p < end && *p != ',' && *p != ' ')
				p++;
			if (lp_value(s, p, &val) < 0) {
				*reason = "line protocol: bad field value";
				return CV_EINVAL;
			}
		}
		struct cv_field *f = cv_record_add_field(api, batch, record);
		if (!f)
			return CV_ENOMEM;
		*f = val;
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		break;
	}
	if (p < end && *p != ' ') {
		*reason = "line protocol: bad field value";
		return CV_EINVAL;
	}
	while (p < end && *p == ' ')
		p++;
	record->timestamp = default_ts;
	if (p < end) {
		char *s = p;
		while (p < end && *p != ' ')
			p++;
		if (parse_int64(s, p, &record->timestamp) < 0) {
			*reason = "line protocol: bad timestamp";
			return CV_EINVAL;
		}
		while (p < end && *p == ' ')
			p++;
		if (p != end) {
			*reason = "line protocol: data after the timestamp";
			return CV_EINVAL;
		}
	}
	return set_tags(api, batch, record, tags, ntags);
}

int cv_record_decode(const struct cv_host_api *api, struct cv_batch *batch,
                     enum cv_record_format format, struct cv_record *record, const char *data,
                     size_t len, int64_t default_ts, const char **reason)
{
	switch (format) {
	case CV_FORMAT_JSON:
		return cv_record_decode_json(api, batch, record, data, len, default_ts, reason);
	case CV_FORMAT_INFLUX:
		return cv_record_decode_influx(api, batch, record, data, len, default_ts, reason);
	}
	if (reason)
		*reason = "unknown format";
	return CV_EINVAL;
}
