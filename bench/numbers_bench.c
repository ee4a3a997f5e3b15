/*
 * numbers_bench.c - what the hand-written number code in plugins/common buys:
 * ns per double for the shortest formatter (cv_format_double) against
 * snprintf("%.17g") and the shortest-round-trip loop (%.{1..17}g until strtod
 * reads the same double back), and for the parser (cv_parse_double) against
 * strtod, over a few distributions of values. It also checks every result:
 * our text must read back (strtod) as the same double with no more
 * significant digits than the loop found, and our parse must equal strtod's.
 *
 *     numbers_bench [--quick]
 *
 * Prints one line per measurement, tab-separated, for bench/suite_numbers.py:
 *     op  distribution  implementation  ns_per_double  wrong
 */
#include "record_decode.h"
#include "record_format.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEXT_MAX 48

struct sample {
	double value;
	char text[TEXT_MAX]; /* our formatter's text: what the decoders read */
	int len;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void)
{
	/* splitmix64: fixed seed, so every run measures the same values */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static double from_bits(uint64_t bits)
{
	double d;
	memcpy(&d, &bits, sizeof d);
	return d;
}

static uint64_t to_bits(double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof bits);
	return bits;
}

/* Any finite double, every bit pattern alike. */
static double gen_random_bits(void)
{
	for (;;) {
		uint64_t bits = rng_next();
		if (((bits >> 52) & 0x7ff) != 0x7ff)
			return from_bits(bits);
	}
}

/* A reading with three decimals, such as 12.345 (as strtod reads it). */
static double gen_sensor(void)
{
	char text[32];
	uint64_t r = rng_next();
	snprintf(text, sizeof text, "%s%u.%03u", (r >> 63) ? "-" : "",
	         (unsigned)(r % 1000000) / 1000, (unsigned)(r % 1000));
	return strtod(text, NULL);
}

/* A whole number below a million, of either sign. */
static double gen_integer(void)
{
	uint64_t r = rng_next();
	return (double)(int64_t)(r % 2000001) - 1000000.0;
}

/* Normal doubles with magnitudes near 1e-300 or 1e+300. */
static double gen_extreme(void)
{
	uint64_t r = rng_next();
	uint64_t exp = 1 + (r >> 58); /* 1..64 */
	if (r & 1)
		exp = 2046 - (exp - 1);
	return from_bits((r & 0x800fffffffffffffu) | (exp << 52));
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Significant digits of a decimal text ("1.2300e+05" has 3). */
static int sig_digits(const char *s)
{
	char digits[TEXT_MAX];
	int n = 0;
	for (; *s && *s != 'e' && *s != 'E'; s++) {
		if (*s >= '0' && *s <= '9' && (n || *s != '0'))
			digits[n++] = *s;
	}
	while (n > 0 && digits[n - 1] == '0')
		n--;
	return n;
}

static int shortest_loop(char *out, size_t size, double v)
{
	int len = 0;
	for (int prec = 1; prec <= 17; prec++) {
		len = snprintf(out, size, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	return len;
}

enum impl { OURS_FORMAT, PRINTF_17G, SHORTEST_LOOP, OURS_PARSE, STRTOD };

static const char *const impl_names[] = {"ours", "%.17g", "shortest_loop", "ours", "strtod"};

static volatile uint64_t sink;

/* One pass over the samples; returns ns per double. */
static double run_pass(enum impl impl, const struct sample *s, size_t n)
{
	char buf[CV_DOUBLE_MAX_TEXT + TEXT_MAX];
	uint64_t acc = 0;
	double t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		double d = 0;
		switch (impl) {
		case OURS_FORMAT: acc += (uint64_t)cv_format_double(buf, s[i].value); break;
		case PRINTF_17G:
			acc += (uint64_t)snprintf(buf, sizeof buf, "%.17g", s[i].value);
			break;
		case SHORTEST_LOOP:
			acc += (uint64_t)shortest_loop(buf, sizeof buf, s[i].value);
			break;
		case OURS_PARSE:
			acc += (uint64_t)cv_parse_double(s[i].text, (size_t)s[i].len, &d);
			acc += to_bits(d);
			break;
		case STRTOD:
			d = strtod(s[i].text, NULL);
			acc += to_bits(d);
			break;
		}
	}
	double t = now_ns() - t0;
	sink += acc;
	return t / (double)n;
}

static long count_wrong(enum impl impl, const struct sample *s, size_t n)
{
	char buf[CV_DOUBLE_MAX_TEXT + TEXT_MAX], loop[TEXT_MAX];
	long wrong = 0;
	for (size_t i = 0; i < n; i++) {
		double v = s[i].value, d = 0;
		switch (impl) {
		case OURS_FORMAT:
			if (cv_format_double(buf, v) < 0 ||
			    to_bits(strtod(buf, NULL)) != to_bits(v))
				wrong++;
			else if (shortest_loop(loop, sizeof loop, v) > 0 &&
			         sig_digits(buf) > sig_digits(loop))
				wrong++; /* reads back, but not the shortest */
			break;
		case PRINTF_17G:
			snprintf(buf, sizeof buf, "%.17g", v);
			wrong += to_bits(strtod(buf, NULL)) != to_bits(v);
			break;
		case SHORTEST_LOOP:
			shortest_loop(buf, sizeof buf, v);
			wrong += to_bits(strtod(buf, NULL)) != to_bits(v);
			break;
		case OURS_PARSE:
			if (cv_parse_double(s[i].text, (size_t)s[i].len, &d) < 0 ||
			    to_bits(d) != to_bits(strtod(s[i].text, NULL)))
				wrong++;
			break;
		case STRTOD: wrong += to_bits(strtod(s[i].text, NULL)) != to_bits(v); break;
		}
	}
	return wrong;
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	size_t n = quick ? 4096 : 65536;
	int rounds = quick ? 2 : 7;
	static const struct {
		const char *name;
		double (*gen)(void);
	} dists[] = {
	        {"random_bits", gen_random_bits},
	        {"sensor", gen_sensor},
	        {"integer", gen_integer},
	        {"extreme", gen_extreme},
	};
	static const struct {
		const char *op;
		enum impl impl;
	} runs[] = {
	        {"format", OURS_FORMAT}, {"format", PRINTF_17G}, {"format", SHORTEST_LOOP},
	        {"parse", OURS_PARSE},   {"parse", STRTOD},
	};
	struct sample *samples = malloc(n * sizeof *samples);
	if (!samples)
		return 1;
	for (size_t d = 0; d < sizeof dists / sizeof dists[0]; d++) {
		for (size_t i = 0; i < n; i++) {
			samples[i].value = dists[d].gen();
			char buf[CV_DOUBLE_MAX_TEXT];
			samples[i].len = cv_format_double(buf, samples[i].value);
			memcpy(samples[i].text, buf, (size_t)samples[i].len + 1);
		}
		for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
			enum impl impl = runs[r].impl;
			run_pass(impl, samples, n); /* warm-up */
			double best = 0;
			for (int k = 0; k < rounds; k++) {
				double ns = run_pass(impl, samples, n);
				if (k == 0 || ns < best)
					best = ns;
			}
			printf("%s\t%s\t%s\t%.2f\t%ld\n", runs[r].op, dists[d].name,
			       impl_names[impl], best, count_wrong(impl, samples, n));
			fflush(stdout);
		}
	}
	free(samples);
	return 0;
}
