/* units.c - strict parsers for the numbers users write in specs.
 *
 * Strict means the whole text must be the value: no surrounding spaces, no
 * trailing garbage, no silent wrap-around. Integer arithmetic is used where
 * floating point would round ("0.1s" is exactly 100000000 ns).
 */
#include "base/units.h"

#include "text_codec.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parses digits at *p into *v; false on overflow. Advances *p. */
static bool parse_digits(const char **p, uint64_t *v, int *ndigits)
{
	uint64_t x = 0;
	int n = 0;
	const char *s = *p;
	while (is_digit(*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
		s++;
		n++;
	}
	*p = s;
	*v = x;
	*ndigits = n;
	return true;
}

struct unit {
	const char *name;
	uint64_t mult;
};

/* Longest names first so "ms" is not read as "m" then "s". */
static const struct unit duration_units[] = {
        {"ns", 1ull},           {"us", 1000ull},
        {"\xc2\xb5s", 1000ull}, /* µs, micro sign */
        {"\xce\xbcs", 1000ull}, /* μs, Greek mu */
        {"ms", 1000000ull},     {"s", 1000000000ull},
        {"m", 60000000000ull},  {"h", 3600000000000ull},
};

int units_parse_duration(const char *s, int64_t *ns)
{
	if (!s || !*s)
		return -1;
	const char *p = s;
	uint64_t total = 0;
	bool first = true;
	/* One or more NUMBER UNIT parts ("1h30m"); a lone NUMBER is seconds. */
	while (*p) {
		uint64_t ip = 0, mult = 0;
		int nint = 0, nfrac = 0;
		if (!parse_digits(&p, &ip, &nint))
			return -1;
		const char *frac = NULL;
		if (*p == '.') {
			frac = ++p;
			while (is_digit(*p))
				p++;
			nfrac = (int)(p - frac);
		}
		/* Digits on both sides of a point: "1.", ".5" are likely typos. */
		if (nint == 0 || (frac && nfrac == 0))
			return -1;
		size_t ulen = 0;
		for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
			size_t l = strlen(duration_units[i].name);
			if (strncmp(p, duration_units[i].name, l) == 0) {
				mult = duration_units[i].mult;
				ulen = l;
				break;
			}
		}
		if (!ulen) {
			if (!first || *p)
				return -1;
			mult = 1000000000ull; /* a bare number is seconds */
		}
		p += ulen;
		if (ip > (uint64_t)INT64_MAX / mult)
			return -1;
		uint64_t v = ip * mult;
		/* mult is 10^k or 6*10^k, so dividing by ten stays exact down to
		 * whole nanoseconds: digits below 1 ns are dropped. */
		uint64_t scale = mult;
		for (int i = 0; i < nfrac && scale; i++) {
			scale /= 10;
			v += (uint64_t)(frac[i] - '0') * scale;
		}
		if (v > (uint64_t)INT64_MAX - total)
			return -1;
		total += v;
		first = false;
	}
	*ns = (int64_t)total;
	return 0;
}

static const struct unit size_units[] = {
        {"", 1ull},         {"b", 1ull},         {"k", 1000ull},          {"kb", 1000ull},
        {"ki", 1ull << 10}, {"kib", 1ull << 10}, {"m", 1000000ull},       {"mb", 1000000ull},
        {"mi", 1ull << 20}, {"mib", 1ull << 20}, {"g", 1000000000ull},    {"gb", 1000000000ull},
        {"gi", 1ull << 30}, {"gib", 1ull << 30}, {"t", 1000000000000ull}, {"tb", 1000000000000ull},
        {"ti", 1ull << 40}, {"tib", 1ull << 40},
};

int units_parse_size(const char *s, uint64_t *bytes)
{
	if (!s || !*s)
		return -1;
	const char *p = s;
	uint64_t ip;
	int nint;
	if (!parse_digits(&p, &ip, &nint))
		return -1;
	uint64_t frac = 0, denom = 1;
	int nfrac = 0;
	if (*p == '.') {
		p++;
		/* Six digits of a fraction are plenty for a size and keep
		 * frac * mult within 64 bits. */
		while (is_digit(*p)) {
			if (nfrac < 6) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				denom *= 10;
			}
			nfrac++;
			p++;
		}
		if (nfrac == 0)
			return -1;
	}
	if (nint == 0)
		return -1;
	uint64_t mult = 0;
	for (size_t i = 0; i < sizeof size_units / sizeof size_units[0]; i++) {
		if (strcasecmp(p, size_units[i].name) == 0) {
			mult = size_units[i].mult;
			break;
		}
	}
	if (!mult)
		return -1;
	if (ip > UINT64_MAX / mult)
		return -1;
	uint64_t v = ip * mult, f = frac * mult / denom;
	if (f > UINT64_MAX - v)
		return -1;
	*bytes = v + f;
	return 0;
}

int units_parse_int(const char *s, int64_t *v)
{
	if (!s)
		return -1;
	const char *p = s;
	bool neg = false;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	uint64_t x = 0;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
		if (!*p)
			return -1;
		for (; *p; p++) {
			int d = cv_hex_digit(*p);
			if (d < 0 || x > (UINT64_MAX >> 4))
				return -1;
			x = (x << 4) | (uint64_t)d;
		}
	} else {
		int n;
		if (!parse_digits(&p, &x, &n) || n == 0 || *p)
			return -1;
	}
	if (neg) {
		if (x > (uint64_t)INT64_MAX + 1)
			return -1;
		*v = x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x;
	} else {
		if (x > (uint64_t)INT64_MAX)
			return -1;
		*v = (int64_t)x;
	}
	return 0;
}

int units_parse_double(const char *s, double *v)
{
	if (!s)
		return -1;
	/* Check the shape first: strtod also takes spaces, "nan", "inf" and
	 * hex floats, none of which belong in a spec. */
	const char *p = s;
	if (*p == '+' || *p == '-')
		p++;
	size_t digits = 0;
	while (is_digit(*p)) {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (is_digit(*p)) {
			p++;
			digits++;
		}
	}
	if (digits == 0)
		return -1;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!is_digit(*p))
			return -1;
		while (is_digit(*p))
			p++;
	}
	if (*p)
		return -1;
	char *end;
	double d = strtod(s, &end);
	if (*end || !isfinite(d))
		return -1;
	*v = d;
	return 0;
}

int units_parse_bool(const char *s, bool *v)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	if (!s)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*v = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*v = false;
			return 0;
		}
	}
	return -1;
}

void units_format_duration(char *buf, size_t size, double ns)
{
	static const struct {
		const char *name;
		int64_t mult;
	} units[] = {{"h", 3600000000000}, {"m", 60000000000}, {"s", 1000000000},
	             {"ms", 1000000},      {"us", 1000},       {"ns", 1}};
	if (!(ns >= -9.2e18 && ns <= 9.2e18) || ns != floor(ns)) {
		snprintf(buf, size, "%gns", ns);
		return;
	}
	int64_t v = (int64_t)ns;
	if (v == 0) {
		snprintf(buf, size, "0s");
		return;
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (v % units[i].mult == 0) {
			snprintf(buf, size, "%" PRId64 "%s", v / units[i].mult, units[i].name);
			return;
		}
	}
}

void units_format_size(char *buf, size_t size, double bytes)
{
	static const struct {
		const char *name;
		uint64_t mult;
	} units[] = {{"TiB", 1ull << 40}, {"GiB", 1ull << 30},   {"MiB", 1ull << 20},
	             {"KiB", 1ull << 10}, {"TB", 1000000000000}, {"GB", 1000000000},
	             {"MB", 1000000},     {"kB", 1000}};
	if (!(bytes >= 0 && bytes <= 1.8e19) || bytes != floor(bytes)) {
		snprintf(buf, size, "%g", bytes);
		return;
	}
	uint64_t v = (uint64_t)bytes;
	for (size_t i = 0; v && i < sizeof units / sizeof units[0]; i++) {
		if (v % units[i].mult == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", v / units[i].mult, units[i].name);
			return;
		}
	}
	snprintf(buf, size, "%" PRIu64, v);
}
