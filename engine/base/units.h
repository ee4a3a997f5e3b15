/* units.h - durations, sizes and numbers as users write them in specs. */
#ifndef CONVEYOR_UNITS_H
#define CONVEYOR_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "500ms", "10s", "1.5s", "2m", "1h", "250us", "100ns"; a bare number is
 * seconds. Negative or overflowing values fail. Returns 0 or -1. */
int units_parse_duration(const char *s, int64_t *ns);
/* "4MiB", "512KiB", "1GiB", "10MB", "1000B", "1000"; Returns 0 or -1. */
int units_parse_size(const char *s, uint64_t *bytes);
/* Whole decimal number (optionally signed, "0x" hex allowed); 0 or -1. */
int units_parse_int(const char *s, int64_t *v);
/* A finite floating point number; 0 or -1. */
int units_parse_double(const char *s, double *v);
/* true/false/yes/no/on/off (any case); 0 or -1. */
int units_parse_bool(const char *s, bool *v);

/* The inverse, for messages and docs: `ns` in the largest unit that divides
 * it ("500ms", "1h", "0s"), or "%gns" when not a whole number of ns. */
void units_format_duration(char *buf, size_t size, double ns);
/* `bytes` in the largest binary (KiB..TiB) or else decimal (kB..TB) unit that
 * divides it ("4MiB", "10MB"), else plain ("1000", "0"); "%g" when not a
 * whole number of bytes. */
void units_format_size(char *buf, size_t size, double bytes);

#endif
