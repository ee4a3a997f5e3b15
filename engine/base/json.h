/* json.h - a small JSON reader (RFC 8259) into a tree, for the command
 * line clients of the engine's JSON API (`conveyor top`, `conveyor tap`).
 * Strict: one value, no trailing commas or comments, valid UTF-8 in
 * strings, \u escapes (surrogate pairs included) decoded to UTF-8. */
#ifndef CONVEYOR_JSON_H
#define CONVEYOR_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

struct json_value {
	enum json_type type;
	bool boolean;
	double number;
	char *string; /* NUL-terminated (may hold NULs: see len) */
	size_t len;
	/* Arrays: count items; objects: count members, keys[i] names items[i]. */
	struct json_value *items;
	char **keys;
	size_t count;
};

/* Nesting deeper than this is refused. */
#define JSON_MAX_DEPTH 64

/* Parses `len` bytes. Returns a tree the caller frees with json_free(), or
 * NULL with a message ("at byte N: ...") in err. */
struct json_value *json_parse(const char *text, size_t len, char *err, size_t errlen);
void json_free(struct json_value *v);

/* The member `key` of an object (the first one), or NULL (also for a
 * NULL or non-object v). */
const struct json_value *json_get(const struct json_value *v, const char *key);
/* The number, or dflt when v is NULL or not a number. */
double json_number(const struct json_value *v, double dflt);
/* The string, or dflt when v is NULL or not a string. */
const char *json_string(const struct json_value *v, const char *dflt);

#endif
