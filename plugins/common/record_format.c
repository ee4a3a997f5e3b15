/* record_format.c - JSON and InfluxDB line protocol encoders; see the header
 * for the exact output and what is refused. */
#include "record_format.h"

#include "json_bytes.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Buffer                                                                     */
/* ------------------------------------------------------------------------ */

int cv_buf_reserve(struct cv_buf *buf, size_t extra)
{
	if (buf->cap - buf->len >= extra)
		return 0;
	if (extra > SIZE_MAX / 2 - buf->len)
		return CV_ENOMEM;
	size_t need = buf->len + extra;
	size_t cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap *= 2;
	char *data = realloc(buf->data, cap);
	if (!data)
		return CV_ENOMEM;
	buf->data = data;
	buf->cap = cap;
	return 0;
}

int cv_buf_append(struct cv_buf *buf, const void *data, size_t len)
{
	int rc = cv_buf_reserve(buf, len);
	if (rc)
		return rc;
	if (len)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	return 0;
}

void cv_buf_reset(struct cv_buf *buf)
{
	buf->len = 0;
}

void cv_buf_free(struct cv_buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                    */
/* ------------------------------------------------------------------------ */

static const char digit_pairs[200] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* Decimal digits of v (1..20). */
static int count_digits64(uint64_t v);

static int format_uint64(char *out, uint64_t v)
{
	/* Straight into `out`, from the end: no scratch copy. */
	int len = count_digits64(v);
	char *p = out + len;
	/* Eight digits per 64-bit division, then 32-bit arithmetic (cheaper
	 * than a 64-bit division per pair of digits). */
	while (v >= 100000000u) {
		uint32_t lo = (uint32_t)(v % 100000000u);
		v /= 100000000u;
		uint32_t hi4 = lo / 10000, lo4 = lo % 10000;
		p -= 8;
		memcpy(p + 6, digit_pairs + (lo4 % 100) * 2, 2);
		memcpy(p + 4, digit_pairs + (lo4 / 100) * 2, 2);
		memcpy(p + 2, digit_pairs + (hi4 % 100) * 2, 2);
		memcpy(p, digit_pairs + (hi4 / 100) * 2, 2);
	}
	uint32_t u = (uint32_t)v;
	while (u >= 100) {
		p -= 2;
		memcpy(p, digit_pairs + (u % 100) * 2, 2);
		u /= 100;
	}
	if (u >= 10) {
		p -= 2;
		memcpy(p, digit_pairs + u * 2, 2);
	} else {
		*--p = (char)('0' + u);
	}
	return len;
}

int cv_format_int64(char *out, int64_t value)
{
	if (value < 0) {
		/* Negate in unsigned arithmetic: INT64_MIN has no positive twin. */
		out[0] = '-';
		return 1 + format_uint64(out + 1, 0 - (uint64_t)value);
	}
	return format_uint64(out, (uint64_t)value);
}

/*
 * Grisu2 (Florian Loitsch, "Printing Floating-Point Numbers Quickly and
 * Accurately with Integers", PLDI 2010): digits of a positive double in
 * 64-bit integer arithmetic, using cached powers of ten. The digits always
 * read back as the same double; they are the shortest such digits in all but
 * a small share of cases, where one more digit is produced. printf("%.17g")
 * round-trips too but is slow and long, and %.15g/%.16g retries cost more.
 */
struct diyfp {
	uint64_t f;
	int e;
};

/* 10^k for k = -348, -340, ..., 340: 64-bit significand (top bit set,
 * rounded to nearest) and binary exponent. Generated with exact rational
 * arithmetic. */
static const struct diyfp cached_powers[87] = {
        {0xfa8fd5a0081c0288ull, -1220}, /* 1e-348 */
        {0xbaaee17fa23ebf76ull, -1193}, /* 1e-340 */
        {0x8b16fb203055ac76ull, -1166}, /* 1e-332 */
        {0xcf42894a5dce35eaull, -1140}, /* 1e-324 */
        {0x9a6bb0aa55653b2dull, -1113}, /* 1e-316 */
        {0xe61acf033d1a45dfull, -1087}, /* 1e-308 */
        {0xab70fe17c79ac6caull, -1060}, /* 1e-300 */
        {0xff77b1fcbebcdc4full, -1034}, /* 1e-292 */
        {0xbe5691ef416bd60cull, -1007}, /* 1e-284 */
        {0x8dd01fad907ffc3cull, -980},  /* 1e-276 */
        {0xd3515c2831559a83ull, -954},  /* 1e-268 */
        {0x9d71ac8fada6c9b5ull, -927},  /* 1e-260 */
        {0xea9c227723ee8bcbull, -901},  /* 1e-252 */
        {0xaecc49914078536dull, -874},  /* 1e-244 */
        {0x823c12795db6ce57ull, -847},  /* 1e-236 */
        {0xc21094364dfb5637ull, -821},  /* 1e-228 */
        {0x9096ea6f3848984full, -794},  /* 1e-220 */
        {0xd77485cb25823ac7ull, -768},  /* 1e-212 */
        {0xa086cfcd97bf97f4ull, -741},  /* 1e-204 */
        {0xef340a98172aace5ull, -715},  /* 1e-196 */
        {0xb23867fb2a35b28eull, -688},  /* 1e-188 */
        {0x84c8d4dfd2c63f3bull, -661},  /* 1e-180 */
        {0xc5dd44271ad3cdbaull, -635},  /* 1e-172 */
        {0x936b9fcebb25c996ull, -608},  /* 1e-164 */
        {0xdbac6c247d62a584ull, -582},  /* 1e-156 */
        {0xa3ab66580d5fdaf6ull, -555},  /* 1e-148 */
        {0xf3e2f893dec3f126ull, -529},  /* 1e-140 */
        {0xb5b5ada8aaff80b8ull, -502},  /* 1e-132 */
        {0x87625f056c7c4a8bull, -475},  /* 1e-124 */
        {0xc9bcff6034c13053ull, -449},  /* 1e-116 */
        {0x964e858c91ba2655ull, -422},  /* 1e-108 */
        {0xdff9772470297ebdull, -396},  /* 1e-100 */
        {0xa6dfbd9fb8e5b88full, -369},  /* 1e-92 */
        {0xf8a95fcf88747d94ull, -343},  /* 1e-84 */
        {0xb94470938fa89bcfull, -316},  /* 1e-76 */
        {0x8a08f0f8bf0f156bull, -289},  /* 1e-68 */
        {0xcdb02555653131b6ull, -263},  /* 1e-60 */
        {0x993fe2c6d07b7facull, -236},  /* 1e-52 */
        {0xe45c10c42a2b3b06ull, -210},  /* 1e-44 */
        {0xaa242499697392d3ull, -183},  /* 1e-36 */
        {0xfd87b5f28300ca0eull, -157},  /* 1e-28 */
        {0xbce5086492111aebull, -130},  /* 1e-20 */
        {0x8cbccc096f5088ccull, -103},  /* 1e-12 */
        {0xd1b71758e219652cull, -77},   /* 1e-4 */
        {0x9c40000000000000ull, -50},   /* 1e4 */
        {0xe8d4a51000000000ull, -24},   /* 1e12 */
        {0xad78ebc5ac620000ull, 3},     /* 1e20 */
        {0x813f3978f8940984ull, 30},    /* 1e28 */
        {0xc097ce7bc90715b3ull, 56},    /* 1e36 */
        {0x8f7e32ce7bea5c70ull, 83},    /* 1e44 */
        {0xd5d238a4abe98068ull, 109},   /* 1e52 */
        {0x9f4f2726179a2245ull, 136},   /* 1e60 */
        {0xed63a231d4c4fb27ull, 162},   /* 1e68 */
        {0xb0de65388cc8ada8ull, 189},   /* 1e76 */
        {0x83c7088e1aab65dbull, 216},   /* 1e84 */
        {0xc45d1df942711d9aull, 242},   /* 1e92 */
        {0x924d692ca61be758ull, 269},   /* 1e100 */
        {0xda01ee641a708deaull, 295},   /* 1e108 */
        {0xa26da3999aef774aull, 322},   /* 1e116 */
        {0xf209787bb47d6b85ull, 348},   /* 1e124 */
        {0xb454e4a179dd1877ull, 375},   /* 1e132 */
        {0x865b86925b9bc5c2ull, 402},   /* 1e140 */
        {0xc83553c5c8965d3dull, 428},   /* 1e148 */
        {0x952ab45cfa97a0b3ull, 455},   /* 1e156 */
        {0xde469fbd99a05fe3ull, 481},   /* 1e164 */
        {0xa59bc234db398c25ull, 508},   /* 1e172 */
        {0xf6c69a72a3989f5cull, 534},   /* 1e180 */
        {0xb7dcbf5354e9beceull, 561},   /* 1e188 */
        {0x88fcf317f22241e2ull, 588},   /* 1e196 */
        {0xcc20ce9bd35c78a5ull, 614},   /* 1e204 */
        {0x98165af37b2153dfull, 641},   /* 1e212 */
        {0xe2a0b5dc971f303aull, 667},   /* 1e220 */
        {0xa8d9d1535ce3b396ull, 694},   /* 1e228 */
        {0xfb9b7cd9a4a7443cull, 720},   /* 1e236 */
        {0xbb764c4ca7a44410ull, 747},   /* 1e244 */
        {0x8bab8eefb6409c1aull, 774},   /* 1e252 */
        {0xd01fef10a657842cull, 800},   /* 1e260 */
        {0x9b10a4e5e9913129ull, 827},   /* 1e268 */
        {0xe7109bfba19c0c9dull, 853},   /* 1e276 */
        {0xac2820d9623bf429ull, 880},   /* 1e284 */
        {0x80444b5e7aa7cf85ull, 907},   /* 1e292 */
        {0xbf21e44003acdd2dull, 933},   /* 1e300 */
        {0x8e679c2f5e44ff8full, 960},   /* 1e308 */
        {0xd433179d9c8cb841ull, 986},   /* 1e316 */
        {0x9e19db92b4e31ba9ull, 1013},  /* 1e324 */
        {0xeb96bf6ebadf77d9ull, 1039},  /* 1e332 */
        {0xaf87023b9bf0ee6bull, 1066},  /* 1e340 */
};

static struct diyfp diyfp_mul(struct diyfp x, struct diyfp y)
{
	/* The high 64 bits of the 128-bit product, rounded. */
#ifdef __SIZEOF_INT128__
	unsigned __int128 prod = (unsigned __int128)x.f * y.f + (1ull << 63);
	return (struct diyfp){(uint64_t)(prod >> 64), x.e + y.e + 64};
#endif
	const uint64_t m32 = 0xffffffffu;
	uint64_t a = x.f >> 32, b = x.f & m32, c = y.f >> 32, d = y.f & m32;
	uint64_t ac = a * c, bc = b * c, ad = a * d, bd = b * d;
	uint64_t mid = (bd >> 32) + (ad & m32) + (bc & m32) + (1u << 31);
	return (struct diyfp){ac + (ad >> 32) + (bc >> 32) + (mid >> 32), x.e + y.e + 64};
}

static struct diyfp cached_power(int e, int *k)
{
	/* The cached power whose product with a number of binary exponent `e`
	 * lands in the exponent range digit generation needs. */
	double dk = (-61 - e) * 0.30102999566398114 + 347;
	int ik = (int)dk;
	if (dk - ik > 0.0)
		ik++;
	unsigned index = (unsigned)((ik >> 3) + 1);
	*k = -(-348 + (int)(index << 3));
	return cached_powers[index];
}

/* clang-format off */
/* 10^0 .. 10^19 */
static const uint64_t pow10_u64[20] = {
	1ull, 10ull, 100ull, 1000ull,
	10000ull, 100000ull, 1000000ull, 10000000ull,
	100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
	1000000000000ull, 10000000000000ull, 100000000000000ull, 1000000000000000ull,
	10000000000000000ull, 100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};
/* clang-format on */

static void grisu_round(char *digits, int len, uint64_t delta, uint64_t rest, uint64_t ten_kappa,
                        uint64_t wp_w)
{
	/* Move the last digit towards the exact value while it stays inside the
	 * safe interval and gets closer. */
	while (rest < wp_w && delta - rest >= ten_kappa &&
	       (rest + ten_kappa < wp_w || wp_w - rest > rest + ten_kappa - wp_w)) {
		digits[len - 1]--;
		rest += ten_kappa;
	}
}

static int count_digits64(uint64_t v)
{
	/* log10 from the bit length (1233 / 4096 ~ log10(2)), then one
	 * correction: no loop. */
	uint64_t x = v | 1; /* 0 has one digit, as 1 */
	int t = ((64 - __builtin_clzll(x)) * 1233) >> 12;
	return t + 1 - (x < pow10_u64[t]);
}

/* p / 10^i for i in 0..9, with a constant divisor per case: the compiler
 * turns each into a multiplication, where a divisor from a table costs a
 * hardware division per digit. */
static uint32_t div_pow10(uint32_t p, int i)
{
	switch (i) {
	case 0: return p;
	case 1: return p / 10u;
	case 2: return p / 100u;
	case 3: return p / 1000u;
	case 4: return p / 10000u;
	case 5: return p / 100000u;
	case 6: return p / 1000000u;
	case 7: return p / 10000000u;
	case 8: return p / 100000000u;
	default: return p / 1000000000u;
	}
}

static int digit_gen(struct diyfp w, struct diyfp mp, uint64_t delta, char *digits, int *k)
{
	const int shift = -mp.e;
	const uint64_t one = 1ull << shift;
	const uint64_t wp_w = mp.f - w.f;
	uint32_t p1 = (uint32_t)(mp.f >> shift);
	uint64_t p2 = mp.f & (one - 1);
	int kappa = count_digits64(p1);
	int len = 0;

	while (kappa > 0) {
		uint32_t d = div_pow10(p1, kappa - 1);
		p1 -= d * (uint32_t)pow10_u64[kappa - 1];
		if (d || len)
			digits[len++] = (char)('0' + d);
		kappa--;
		uint64_t rest = ((uint64_t)p1 << shift) + p2;
		if (rest <= delta) {
			*k += kappa;
			grisu_round(digits, len, delta, rest, pow10_u64[kappa] << shift, wp_w);
			return len;
		}
	}
	for (;;) {
		p2 *= 10;
		delta *= 10;
		char d = (char)(p2 >> shift);
		if (d || len)
			digits[len++] = (char)('0' + d);
		p2 &= one - 1;
		kappa--;
		if (p2 < delta) {
			*k += kappa;
			int index = -kappa;
			grisu_round(digits, len, delta, p2, one,
			            wp_w * (index < 20 ? pow10_u64[index] : 0));
			return len;
		}
	}
}

/* Digits of v > 0 (finite) into `digits` (at most 18); v = digits * 10^*k. */
static int grisu2(double v, char *digits, int *k)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	const uint64_t hidden = 1ull << 52;
	int biased = (int)((bits >> 52) & 0x7ff);
	uint64_t sig = bits & (hidden - 1);
	struct diyfp w;
	if (biased) {
		w.f = sig | hidden;
		w.e = biased - 1075;
	} else {
		w.f = sig;
		w.e = -1074;
	}

	/* The boundaries: halfway to the neighbouring doubles. */
	struct diyfp plus = {(w.f << 1) + 1, w.e - 1};
	while (!(plus.f & (hidden << 1))) {
		plus.f <<= 1;
		plus.e--;
	}
	plus.f <<= 10;
	plus.e -= 10;
	struct diyfp minus = (w.f == hidden) ? (struct diyfp){(w.f << 2) - 1, w.e - 2}
	                                     : (struct diyfp){(w.f << 1) - 1, w.e - 1};
	minus.f <<= minus.e - plus.e;
	minus.e = plus.e;

	/* Normalise: w.f is never 0 here (v > 0). */
	int lz = __builtin_clzll(w.f);
	w.f <<= lz;
	w.e -= lz;

	struct diyfp c = cached_power(plus.e, k);
	struct diyfp wc = diyfp_mul(w, c);
	struct diyfp wp = diyfp_mul(plus, c);
	struct diyfp wm = diyfp_mul(minus, c);
	/* Stay strictly inside the interval: the products are inexact. */
	wm.f++;
	wp.f--;
	return digit_gen(wc, wp, wp.f - wm.f, digits, k);
}

int cv_format_double(char *out, double value)
{
	uint64_t bits;
	memcpy(&bits, &value, sizeof(bits));
	if (((bits >> 52) & 0x7ff) == 0x7ff)
		return CV_EINVAL; /* NaN or an infinity */

	char *p = out;
	if (bits >> 63) {
		*p++ = '-';
		value = -value;
	}
	if (value == 0.0) {
		memcpy(p, "0.0", 4);
		return (int)(p - out) + 3;
	}

	char digits[24];
	int k = 0;
	int len = grisu2(value, digits, &k);
	int exp10 = len + k - 1; /* scientific exponent: d.ddd * 10^exp10 */

	if (exp10 >= -4 && exp10 < 16) {
		/* Fixed notation, as Python's repr between 1e-4 and 1e16. */
		if (k >= 0) {
			memcpy(p, digits, (size_t)len);
			p += len;
			memset(p, '0', (size_t)k);
			p += k;
			memcpy(p, ".0", 2);
			p += 2;
		} else if (len + k > 0) {
			int ints = len + k;
			memcpy(p, digits, (size_t)ints);
			p += ints;
			*p++ = '.';
			memcpy(p, digits + ints, (size_t)(len - ints));
			p += len - ints;
		} else {
			int zeros = -(len + k);
			*p++ = '0';
			*p++ = '.';
			memset(p, '0', (size_t)zeros);
			p += zeros;
			memcpy(p, digits, (size_t)len);
			p += len;
		}
	} else {
		*p++ = digits[0];
		if (len > 1) {
			*p++ = '.';
			memcpy(p, digits + 1, (size_t)(len - 1));
			p += len - 1;
		}
		*p++ = 'e';
		if (exp10 < 0) {
			*p++ = '-';
			exp10 = -exp10;
		} else {
			*p++ = '+';
		}
		if (exp10 >= 100) {
			*p++ = (char)('0' + exp10 / 100);
			exp10 %= 100;
		}
		*p++ = digit_pairs[exp10 * 2];
		*p++ = digit_pairs[exp10 * 2 + 1];
	}
	*p = '\0';
	return (int)(p - out);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */
/* ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 if
 * invalid (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0xc2 || c > 0xf4)
		return 0;
	if (c < 0xe0) {
		if (n < 2 || (s[1] & 0xc0) != 0x80)
			return 0;
		return 2;
	}
	if (c < 0xf0) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
		return 0;
	if (c == 0xf0 && s[1] < 0x90)
		return 0; /* overlong */
	if (c == 0xf4 && s[1] >= 0x90)
		return 0; /* above U+10FFFF */
	return 4;
}

/* The bytes of json_bytes.h, as the encoder escapes them. */
const unsigned char cv_json_special[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* Writes the JSON string literal of s (with quotes) at out, which has room
 * for 6 * n + 2 bytes. Returns the end, or NULL for invalid UTF-8. */
static char *json_string(char *out, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	*out++ = '"';
	size_t i = 0;
	/* Fast path: 8 bytes at a time while none needs escaping or is past
	 * ASCII (most names and values); the first word that has one falls
	 * through to the byte loop below, which starts at that word. */
	while (n - i >= 8) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		if (cv_json_swar_special(v))
			break;
		memcpy(out, &v, 8);
		out += 8;
		i += 8;
	}
	if (n >= 4 && n < 8) {
		/* 4 to 7 bytes: the first 4 and the last 4, overlapping. */
		uint32_t lo, hi;
		memcpy(&lo, s, 4);
		memcpy(&hi, s + n - 4, 4);
		if (!cv_json_swar_special(lo | (uint64_t)hi << 32)) {
			memcpy(out, &lo, 4);
			memcpy(out + n - 4, &hi, 4);
			out += n;
			i = n;
		}
	} else if (i < n && n - i < 8 && n >= 8) {
		/* The last bytes as the last 8, overlapping what the loop above
		 * copied already (so checked plain). */
		uint64_t v;
		memcpy(&v, s + n - 8, 8);
		if (!cv_json_swar_special(v)) {
			memcpy(out - i + (n - 8), &v, 8);
			out += n - i;
			i = n;
		}
	}
	while (i < n) {
		unsigned c = s[i];
		if (!cv_json_special[c]) {
			*out++ = (char)c;
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t len = utf8_sequence(s + i, n - i);
			if (!len)
				return NULL;
			memcpy(out, s + i, len);
			out += len;
			i += len;
			continue;
		}
		*out++ = '\\';
		switch (c) {
		case '"': *out++ = '"'; break;
		case '\\': *out++ = '\\'; break;
		case '\n': *out++ = 'n'; break;
		case '\r': *out++ = 'r'; break;
		case '\t': *out++ = 't'; break;
		case '\b': *out++ = 'b'; break;
		case '\f': *out++ = 'f'; break;
		default:
			*out++ = 'u';
			*out++ = '0';
			*out++ = '0';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
		i++;
	}
	*out++ = '"';
	return out;
}

/* Room a JSON string literal of n bytes may need. */
#define JSON_STR_MAX(n) (6 * (size_t)(n) + 2)
/* Room a number may need (CV_DOUBLE_MAX_TEXT covers an int64 too). */
#define NUM_MAX (CV_DOUBLE_MAX_TEXT + 2)

int cv_record_encode_json(struct cv_buf *buf, const struct cv_record *r)
{
	/* One reservation for the worst case, then plain stores. */
	size_t need = 64 + JSON_STR_MAX(r->measurement_len) + NUM_MAX;
	for (uint16_t i = 0; i < r->ntags; i++)
		need += JSON_STR_MAX(r->tags[i].key_len) + JSON_STR_MAX(r->tags[i].value_len) + 2;
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		need += JSON_STR_MAX(f->key_len) + 2 +
		        (f->type == CV_FIELD_STRING ? JSON_STR_MAX(f->str_len) : NUM_MAX);
	}
	int rc = cv_buf_reserve(buf, need);
	if (rc)
		return rc;

	char *p = buf->data + buf->len;
	memcpy(p, "{\"measurement\":", 15);
	p += 15;
	if (!(p = json_string(p, r->measurement, r->measurement_len)))
		return CV_EINVAL;
	memcpy(p, ",\"timestamp\":", 13);
	p += 13;
	p += cv_format_int64(p, r->timestamp);
	memcpy(p, ",\"tags\":{", 9);
	p += 9;
	for (uint16_t i = 0; i < r->ntags; i++) {
		const struct cv_tag *t = &r->tags[i];
		if (i)
			*p++ = ',';
		if (!(p = json_string(p, t->key, t->key_len)))
			return CV_EINVAL;
		*p++ = ':';
		if (!(p = json_string(p, t->value, t->value_len)))
			return CV_EINVAL;
	}
	memcpy(p, "},\"fields\":{", 12);
	p += 12;
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		if (i)
			*p++ = ',';
		if (!(p = json_string(p, f->key, f->key_len)))
			return CV_EINVAL;
		*p++ = ':';
		switch (f->type) {
		case CV_FIELD_FLOAT: {
			int n = cv_format_double(p, f->v.f);
			if (n < 0)
				return CV_EINVAL;
			p += n;
			break;
		}
		case CV_FIELD_INT: p += cv_format_int64(p, f->v.i); break;
		case CV_FIELD_BOOL:
			if (f->v.b) {
				memcpy(p, "true", 4);
				p += 4;
			} else {
				memcpy(p, "false", 5);
				p += 5;
			}
			break;
		case CV_FIELD_STRING:
			if (!(p = json_string(p, f->v.s, f->str_len)))
				return CV_EINVAL;
			break;
		default: return CV_EINVAL;
		}
	}
	*p++ = '}';
	*p++ = '}';
	/* Only now does the record become part of the buffer: an error above
	 * left buf->len untouched. */
	buf->len = (size_t)(p - buf->data);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* InfluxDB line protocol                                                     */
/* ------------------------------------------------------------------------ */

/* InfluxDB's series key limit (measurement, tags and one field key). */
#define INFLUX_MAX_KEY 65535

/* Writes an escaped measurement, tag key, tag value or field key at out
 * (room for 2 * n). `equals` also escapes '='. Returns the end, or NULL
 * for what line protocol cannot carry (see the header). */
static char *influx_name(char *out, const char *s, size_t n, bool equals)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		switch (c) {
		case ',':
		case ' ': *out++ = '\\'; break;
		case '=':
			if (equals)
				*out++ = '\\';
			break;
		case '\n':
		case '\r': return NULL;
		case '\\':
			if (i + 1 == n)
				return NULL;
			switch (s[i + 1]) {
			case ',':
			case '=':
			case ' ':
			case '"': return NULL;
			}
			break;
		}
		*out++ = c;
	}
	return out;
}

/* Writes a double-quoted string field value at out (room for 2 * n + 2). */
static char *influx_string(char *out, const char *s, size_t n)
{
	*out++ = '"';
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '"' || c == '\\')
			*out++ = '\\';
		else if (c == '\n' || c == '\r')
			return NULL;
		*out++ = c;
	}
	*out++ = '"';
	return out;
}

static bool is_time_key(const char *s, size_t n)
{
	return n == 4 && memcmp(s, "time", 4) == 0;
}

/* Bytewise order of tag keys, as Go's bytes.Compare (which InfluxDB uses). */
static int tag_key_cmp(const struct cv_tag *a, const struct cv_tag *b)
{
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = n ? memcmp(a->key, b->key, n) : 0;
	if (c)
		return c;
	return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* Writes ",key=value" for one tag; NULL if it cannot be written. */
static char *influx_tag(char *p, const struct cv_tag *t)
{
	if (t->key_len == 0 || is_time_key(t->key, t->key_len))
		return NULL;
	if (t->value_len == 0)
		return p; /* no empty tag values in line protocol: omit the tag */
	*p++ = ',';
	if (!(p = influx_name(p, t->key, t->key_len, true)))
		return NULL;
	*p++ = '=';
	return influx_name(p, t->value, t->value_len, true);
}

/* Writes the tags sorted by key; NULL on a bad or duplicate tag. */
static char *influx_tags(char *p, const struct cv_record *r)
{
	const struct cv_tag *tags = r->tags;
	uint16_t n = r->ntags;
	bool sorted = true;
	for (uint16_t i = 1; i < n; i++) {
		int c = tag_key_cmp(&tags[i - 1], &tags[i]);
		if (c == 0)
			return NULL; /* duplicate: InfluxDB refuses the point */
		if (c > 0)
			sorted = false;
	}
	if (sorted) {
		for (uint16_t i = 0; i < n && p; i++)
			p = influx_tag(p, &tags[i]);
		return p;
	}
	if (n <= 64) {
		/* Insertion sort of indexes: records carry a handful of tags. */
		uint16_t order[64];
		for (uint16_t i = 0; i < n; i++) {
			uint16_t j = i;
			while (j > 0 && tag_key_cmp(&tags[order[j - 1]], &tags[i]) > 0) {
				order[j] = order[j - 1];
				j--;
			}
			order[j] = i;
		}
		for (uint16_t i = 0; i < n && p; i++) {
			if (i && tag_key_cmp(&tags[order[i - 1]], &tags[order[i]]) == 0)
				return NULL;
			p = influx_tag(p, &tags[order[i]]);
		}
		return p;
	}
	/* Many tags: select the next smallest each time (quadratic, but needs no
	 * memory and such records are rare). */
	const struct cv_tag *prev = NULL;
	for (uint16_t out = 0; out < n && p; out++) {
		const struct cv_tag *best = NULL;
		for (uint16_t i = 0; i < n; i++) {
			if (prev && tag_key_cmp(&tags[i], prev) <= 0)
				continue;
			int c = best ? tag_key_cmp(&tags[i], best) : -1;
			if (c == 0)
				return NULL; /* duplicate */
			if (c < 0)
				best = &tags[i];
		}
		if (!best)
			return NULL; /* only duplicates were left */
		p = influx_tag(p, best);
		prev = best;
	}
	return p;
}

int cv_record_encode_influx(struct cv_buf *buf, const struct cv_record *r)
{
	if (r->measurement_len == 0 || r->nfields == 0)
		return CV_EINVAL;
	char first = r->measurement[0];
	if (first == '#' || first == '\t' || first == '\0')
		return CV_EINVAL; /* a comment line, or stripped by the parser */

	size_t need = 2 * (size_t)r->measurement_len + 24;
	for (uint16_t i = 0; i < r->ntags; i++)
		need += 2 * ((size_t)r->tags[i].key_len + r->tags[i].value_len) + 2;
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		need += 2 * (size_t)f->key_len + 2 +
		        (f->type == CV_FIELD_STRING ? 2 * (size_t)f->str_len + 2 : NUM_MAX);
	}
	int rc = cv_buf_reserve(buf, need);
	if (rc)
		return rc;

	char *start = buf->data + buf->len;
	char *p = influx_name(start, r->measurement, r->measurement_len, false);
	if (!p || !(p = influx_tags(p, r)))
		return CV_EINVAL;
	size_t key_len = (size_t)(p - start);

	*p++ = ' ';
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		if (f->key_len == 0 || f->key[0] == '\t' || f->key[0] == '\0' ||
		    is_time_key(f->key, f->key_len))
			return CV_EINVAL;
		if (i)
			*p++ = ',';
		char *k = p;
		if (!(p = influx_name(p, f->key, f->key_len, true)))
			return CV_EINVAL;
		if (key_len + 4 + (size_t)(p - k) > INFLUX_MAX_KEY)
			return CV_EINVAL;
		*p++ = '=';
		switch (f->type) {
		case CV_FIELD_FLOAT: {
			int n = cv_format_double(p, f->v.f);
			if (n < 0)
				return CV_EINVAL;
			p += n;
			break;
		}
		case CV_FIELD_INT:
			p += cv_format_int64(p, f->v.i);
			*p++ = 'i';
			break;
		case CV_FIELD_BOOL: *p++ = f->v.b ? 't' : 'f'; break;
		case CV_FIELD_STRING:
			if (!(p = influx_string(p, f->v.s, f->str_len)))
				return CV_EINVAL;
			break;
		default: return CV_EINVAL;
		}
	}
	*p++ = ' ';
	p += cv_format_int64(p, r->timestamp);
	buf->len = (size_t)(p - buf->data);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* By name                                                                    */
/* ------------------------------------------------------------------------ */

const char *const cv_record_format_names[] = {"json", "influx", NULL};

int cv_record_format_parse(const char *name)
{
	for (int i = 0; name && cv_record_format_names[i]; i++) {
		if (strcmp(name, cv_record_format_names[i]) == 0)
			return i;
	}
	return CV_EINVAL;
}

const char *cv_record_format_name(enum cv_record_format format)
{
	if ((unsigned)format > CV_FORMAT_INFLUX)
		return NULL;
	return cv_record_format_names[format];
}

int cv_record_encode(struct cv_buf *buf, enum cv_record_format format, const struct cv_record *r)
{
	switch (format) {
	case CV_FORMAT_JSON: return cv_record_encode_json(buf, r);
	case CV_FORMAT_INFLUX: return cv_record_encode_influx(buf, r);
	}
	return CV_EINVAL;
}
