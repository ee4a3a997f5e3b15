/* spec_tree.h - a YAML document loaded into a tree of nodes that remember
 * where they stood in the file, with ${VAR} / ${VAR:-default} expanded.
 *
 * The loader never crashes on garbage: binary input, bad UTF-8, syntax errors,
 * duplicate keys, non-scalar keys and alias bombs are reported as
 * FILE:LINE:COLUMN: error: MESSAGE (1-based line and column).
 */
#ifndef CONVEYOR_SPEC_TREE_H
#define CONVEYOR_SPEC_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/diag.h"

enum spec_node_type {
	SPEC_SCALAR,
	SPEC_MAP,
	SPEC_SEQ,
};

struct spec_node;

struct spec_pair {
	struct spec_node *key; /* always a scalar */
	struct spec_node *value;
};

struct spec_node {
	enum spec_node_type type;
	int line;   /* 1-based */
	int column; /* 1-based */
	/* SPEC_SCALAR: the value after ${} expansion, NUL-terminated. */
	char *scalar;
	size_t scalar_len;
	bool quoted;       /* written with quotes: never null/bool-like by plain style */
	bool interpolated; /* ${...} was expanded in it: do not echo it in errors */
	/* SPEC_MAP */
	struct spec_pair *pairs;
	size_t npairs;
	/* SPEC_SEQ */
	struct spec_node **items;
	size_t nitems;
};

/* All memory of a document; free with spec_doc_free(). */
struct spec_doc {
	char *file;             /* the name used in messages */
	struct spec_node *root; /* NULL for an empty document */
	void *arena;            /* private */
};

/* Limits against hostile input. */
#define SPEC_MAX_NODES 100000 /* nodes after alias expansion */
#define SPEC_MAX_DEPTH 64

/* Parses `len` bytes of `text` as one YAML document. `file` names it in
 * messages. Errors go to `diag` (all that can be found, at least one on
 * failure). Returns 0 and sets *out (caller frees with spec_doc_free), or -1.
 * Aliases are expanded as copies, counted against SPEC_MAX_NODES. */
int spec_doc_parse(const char *file, const char *text, size_t len, struct diag *diag,
                   struct spec_doc **out);

/* Reads `path` (at most 16 MiB) and parses it. */
int spec_doc_load(const char *path, struct diag *diag, struct spec_doc **out);

void spec_doc_free(struct spec_doc *doc);

/* The value of `key` in a map node, or NULL. */
struct spec_node *spec_map_get(const struct spec_node *map, const char *key);

/* "map", "sequence" or "scalar", for messages. */
const char *spec_node_type_name(enum spec_node_type type);

/* True for a missing node or a YAML null: a plain, not interpolated scalar
 * that is empty, "~" or "null" ("key:" with nothing after it). */
bool spec_node_is_null(const struct spec_node *node);

/* Writes `len` bytes of `s` into `buf` (size >= 8) for a message: control
 * characters, quotes and backslashes escaped as \xNN, cut with "..." when
 * it does not fit. Returns buf. Never use it on secret or interpolated
 * values. */
const char *spec_text_escape(char *buf, size_t size, const char *s, size_t len);

#endif
