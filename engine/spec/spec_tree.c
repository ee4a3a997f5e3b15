/* spec_tree.c - YAML (libyaml events) to a tree of positioned nodes.
 *
 * The event API is used rather than libyaml's document loader because an
 * alias must be checked, counted and reported where it is written: each
 * alias is expanded as a copy only after its size and depth are known to
 * fit the limits, so an alias bomb fails at the first alias that would
 * exceed SPEC_MAX_NODES, before any memory is spent on it.
 */
#include "spec/spec_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "text_codec.h"

#define SPEC_MAX_FILE (16u << 20)
/* Bytes ${VAR} expansion may add to a document in all: the environment is
 * trusted, but a spec repeating a long variable must not eat the memory. */
#define SPEC_MAX_EXPANSION (64u << 20)
#define SPEC_MAX_VARNAME   255

/* ------------------------------------------------------------------------ */
/* Arena: every node and string of a document, freed at once                */
/* ------------------------------------------------------------------------ */

struct arena_block {
	struct arena_block *next;
	size_t used;
	size_t cap;
	max_align_t data[];
};

struct arena {
	struct arena_block *head;
};

#define ARENA_BLOCK (64u << 10)

static void *arena_alloc(struct arena *a, size_t size)
{
	size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (size == 0)
		size = sizeof(max_align_t);
	struct arena_block *b = a->head;
	if (b && b->cap - b->used >= size) {
		void *p = (char *)b->data + b->used;
		b->used += size;
		return p;
	}
	/* Large allocations get their own block behind the current one so the
	 * current block's free space is not wasted. */
	size_t cap = size > ARENA_BLOCK / 4 ? size : ARENA_BLOCK;
	b = calloc(1, sizeof *b + cap);
	if (!b)
		return NULL;
	b->cap = cap;
	b->used = size;
	if (cap != ARENA_BLOCK && a->head) {
		b->next = a->head->next;
		a->head->next = b;
	} else {
		b->next = a->head;
		a->head = b;
	}
	return b->data;
}

static char *arena_strndup(struct arena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);
	if (p) {
		if (len)
			memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

static void arena_free(struct arena *a)
{
	if (!a)
		return;
	struct arena_block *b = a->head;
	while (b) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	free(a);
}

/* ------------------------------------------------------------------------ */
/* Input checks                                                              */
/* ------------------------------------------------------------------------ */

/* Line and column (1-based, columns in characters as libyaml counts them) of
 * byte `offset`. */
static void offset_position(const char *text, size_t len, size_t offset, int *line, int *col)
{
	const unsigned char *s = (const unsigned char *)text;
	int l = 1, c = 1;
	size_t i = 0;
	if (len >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
		i = 3; /* libyaml does not count the byte order mark */
	if (offset > len)
		offset = len;
	for (; i < offset; i++) {
		if (s[i] == '\n') {
			l++;
			c = 1;
		} else if (s[i] == '\r') {
			if (i + 1 < len && s[i + 1] == '\n')
				continue;
			l++;
			c = 1;
		} else if ((s[i] & 0xC0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

/* Refuses binary input and bad UTF-8 before libyaml sees it, with a precise
 * position (libyaml reports reader errors by byte offset only). */
static int check_text(const char *file, const char *text, size_t len, struct diag *diag)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;
	while (i < len) {
		if (s[i] == 0) {
			int line, col;
			offset_position(text, len, i, &line, &col);
			diag_error(diag, file, line, col, "not a text file (NUL byte)");
			return -1;
		}
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = cv_utf8_seq(s + i, len - i);
		if (n == 0) {
			int line, col;
			offset_position(text, len, i, &line, &col);
			diag_error(diag, file, line, col, "invalid UTF-8 (byte 0x%02X)", s[i]);
			return -1;
		}
		i += n;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Anchors                                                                   */
/* ------------------------------------------------------------------------ */

struct anchor {
	char *name;             /* malloc'd */
	struct spec_node *node; /* NULL while its collection is being built */
	size_t count;           /* nodes in the subtree */
	int height;             /* levels of collections below the node */
	unsigned gen;           /* which definition this is */
};

struct anchors {
	struct anchor *v;
	size_t n, cap;
	uint32_t *slots; /* hash table of index + 1, 0 = empty */
	size_t nslots;
	unsigned gen;
};

static struct anchor *anchor_find(struct anchors *t, const char *name)
{
	if (!t->nslots)
		return NULL;
	size_t mask = t->nslots - 1;
	for (size_t i = cv_fnv1a32(name, strlen(name)) & mask;; i = (i + 1) & mask) {
		uint32_t slot = t->slots[i];
		if (!slot)
			return NULL;
		if (strcmp(t->v[slot - 1].name, name) == 0)
			return &t->v[slot - 1];
	}
}

static int anchor_rehash(struct anchors *t, size_t nslots)
{
	uint32_t *slots = calloc(nslots, sizeof *slots);
	if (!slots)
		return -1;
	for (size_t k = 0; k < t->n; k++) {
		size_t i = cv_fnv1a32(t->v[k].name, strlen(t->v[k].name)) & (nslots - 1);
		while (slots[i])
			i = (i + 1) & (nslots - 1);
		slots[i] = (uint32_t)(k + 1);
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 0;
}

/* Defines (or redefines: the latest definition wins, as YAML says) `name`. */
static struct anchor *anchor_define(struct anchors *t, const char *name)
{
	struct anchor *a = anchor_find(t, name);
	if (!a) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 16;
			struct anchor *v = realloc(t->v, cap * sizeof *v);
			if (!v)
				return NULL;
			t->v = v;
			t->cap = cap;
		}
		if ((t->n + 1) * 2 > t->nslots &&
		    anchor_rehash(t, t->nslots ? t->nslots * 2 : 32) < 0)
			return NULL;
		char *copy = strdup(name);
		if (!copy)
			return NULL;
		a = &t->v[t->n++];
		a->name = copy;
		size_t i = cv_fnv1a32(name, strlen(name)) & (t->nslots - 1);
		while (t->slots[i])
			i = (i + 1) & (t->nslots - 1);
		t->slots[i] = (uint32_t)t->n;
	}
	a->node = NULL;
	a->count = 0;
	a->height = 0;
	a->gen = ++t->gen;
	return a;
}

static void anchors_free(struct anchors *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].name);
	free(t->v);
	free(t->slots);
}

/* ------------------------------------------------------------------------ */
/* Tree building                                                             */
/* ------------------------------------------------------------------------ */

struct frame {
	struct spec_node *node;
	/* children collected here, copied into the arena at the end */
	struct spec_node **items;
	size_t n, cap;
	bool have_key;   /* a map's key was seen, its value is next */
	uint32_t *slots; /* a map's keys: hash set of item index + 1 */
	size_t nslots, nkeys;
	size_t start_nodes;
	int height;
	size_t anchor; /* index + 1 of the anchor naming this collection, or 0 */
	unsigned anchor_gen;
};

struct builder {
	const char *file;
	struct diag *diag;
	struct arena *arena;
	struct frame stack[SPEC_MAX_DEPTH];
	int depth;
	size_t nodes;
	size_t expanded;
	struct anchors anchors;
	struct spec_node *root;
	bool failed; /* errors reported, keep looking for more */
	bool fatal;  /* stop parsing */
};

static void oom(struct builder *b)
{
	if (!b->fatal)
		diag_error(b->diag, b->file, 0, 0, "out of memory");
	b->failed = b->fatal = true;
}

static int frame_push_child(struct builder *b, struct frame *f, struct spec_node *child)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct spec_node **items = realloc(f->items, cap * sizeof *items);
		if (!items) {
			oom(b);
			return -1;
		}
		f->items = items;
		f->cap = cap;
	}
	f->items[f->n++] = child;
	return 0;
}

/* Counts one more node; false (and a fatal error) past the limit. */
static bool count_nodes(struct builder *b, size_t n, int line, int col, const char *alias)
{
	if (b->nodes + n > SPEC_MAX_NODES) {
		if (alias)
			diag_error(b->diag, b->file, line, col,
			           "alias *%s expands to too many nodes (limit %d)", alias,
			           SPEC_MAX_NODES);
		else
			diag_error(b->diag, b->file, line, col,
			           "document has too many nodes (limit %d)", SPEC_MAX_NODES);
		b->failed = b->fatal = true;
		return false;
	}
	b->nodes += n;
	return true;
}

static struct spec_node *node_new(struct builder *b, enum spec_node_type type,
                                  const yaml_mark_t *mark)
{
	struct spec_node *n = arena_alloc(b->arena, sizeof *n);
	if (!n) {
		oom(b);
		return NULL;
	}
	n->type = type;
	n->line = (int)mark->line + 1;
	n->column = (int)mark->column + 1;
	return n;
}

const char *spec_text_escape(char *buf, size_t size, const char *s, size_t len)
{
	size_t o = 0, i;
	if (size < 8) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[8];
		size_t w = 1;
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			w = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
		else
			tmp[0] = (char)c;
		if (o + w + 4 > size) /* keep room for "..." and the NUL */
			break;
		memcpy(buf + o, tmp, w);
		o += w;
	}
	if (i < len) {
		/* do not leave half a UTF-8 character before the ellipsis */
		size_t k = o;
		while (k > 0 && ((unsigned char)buf[k - 1] & 0xC0) == 0x80)
			k--;
		if (k > 0 && ((unsigned char)buf[k - 1] & 0x80))
			o = k - 1;
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static bool same_text(const struct spec_node *a, const struct spec_node *b)
{
	return a->scalar_len == b->scalar_len && memcmp(a->scalar, b->scalar, a->scalar_len) == 0;
}

/* Records the key just pushed at f->items[f->n - 1] in the frame's hash set
 * and reports it, in document order, if the map already has it. A hash set
 * keeps a huge hostile map from taking quadratic time. */
static void check_duplicate(struct builder *b, struct frame *f)
{
	size_t idx = f->n - 1;
	const struct spec_node *key = f->items[idx];
	if ((f->nkeys + 1) * 2 > f->nslots) {
		size_t nslots = f->nslots ? f->nslots * 2 : 16;
		uint32_t *slots = calloc(nslots, sizeof *slots);
		if (!slots) {
			oom(b);
			return;
		}
		for (size_t i = 0; i < f->nslots; i++) {
			if (!f->slots[i])
				continue;
			const struct spec_node *k = f->items[f->slots[i] - 1];
			size_t j = cv_fnv1a32(k->scalar, k->scalar_len) & (nslots - 1);
			while (slots[j])
				j = (j + 1) & (nslots - 1);
			slots[j] = f->slots[i];
		}
		free(f->slots);
		f->slots = slots;
		f->nslots = nslots;
	}
	size_t mask = f->nslots - 1;
	for (size_t j = cv_fnv1a32(key->scalar, key->scalar_len) & mask;; j = (j + 1) & mask) {
		if (!f->slots[j]) {
			f->slots[j] = (uint32_t)(idx + 1);
			f->nkeys++;
			return;
		}
		const struct spec_node *first = f->items[f->slots[j] - 1];
		if (same_text(first, key)) {
			char buf[80];
			diag_error(b->diag, b->file, key->line, key->column,
			           "duplicate key \"%s\" (first at line %d, column %d)",
			           spec_text_escape(buf, sizeof buf, key->scalar, key->scalar_len),
			           first->line, first->column);
			b->failed = true;
			return;
		}
	}
}

/* Adds a finished node (of `height` collection levels) to its parent. */
static void attach(struct builder *b, struct spec_node *node, int height)
{
	if (b->depth == 0) {
		b->root = node;
		return;
	}
	struct frame *f = &b->stack[b->depth - 1];
	if (height + 1 > f->height)
		f->height = height + 1;
	if (f->node->type == SPEC_MAP) {
		if (!f->have_key) {
			f->have_key = true;
			if (node->type != SPEC_SCALAR) {
				diag_error(b->diag, b->file, node->line, node->column,
				           "map keys must be scalars, not a %s",
				           spec_node_type_name(node->type));
				b->failed = true;
				node = NULL; /* its pair is dropped when the value comes */
			}
			if (frame_push_child(b, f, node) == 0 && node)
				check_duplicate(b, f);
			return;
		}
		f->have_key = false;
		if (!f->items[f->n - 1]) {
			f->n--; /* the pair of a refused key */
			return;
		}
	}
	frame_push_child(b, f, node);
}

static bool is_key_position(const struct builder *b)
{
	if (b->depth == 0)
		return false;
	const struct frame *f = &b->stack[b->depth - 1];
	return f->node->type == SPEC_MAP && !f->have_key;
}

/* Appends to the growable buffer *buf. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 64;
		while (c < *len + n + 1)
			c *= 2;
		char *p = realloc(*buf, c);
		if (!p)
			return -1;
		*buf = p;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

static bool var_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool var_char(char c)
{
	return var_start(c) || (c >= '0' && c <= '9');
}

/* Expands ${VAR}, ${VAR:-default} and $$ in a scalar value into the arena.
 * Messages name variables but never echo values. */
static void interpolate(struct builder *b, struct spec_node *n, const char *s, size_t len)
{
	if (!memchr(s, '$', len)) {
		n->scalar = arena_strndup(b->arena, s, len);
		n->scalar_len = len;
		if (!n->scalar)
			oom(b);
		return;
	}
	char *out = NULL;
	size_t olen = 0, ocap = 0;
	bool bad = false;
	size_t i = 0;
	while (i < len && !bad) {
		const char *dollar = memchr(s + i, '$', len - i);
		size_t lit = dollar ? (size_t)(dollar - (s + i)) : len - i;
		if (buf_add(&out, &olen, &ocap, s + i, lit) < 0)
			goto nomem;
		i += lit;
		if (i >= len)
			break;
		/* s[i] == '$' */
		if (i + 1 < len && s[i + 1] == '$') {
			if (buf_add(&out, &olen, &ocap, "$", 1) < 0)
				goto nomem;
			i += 2;
			continue;
		}
		if (i + 1 >= len || s[i + 1] != '{') {
			if (buf_add(&out, &olen, &ocap, "$", 1) < 0)
				goto nomem;
			i++;
			continue;
		}
		size_t j = i + 2, name_start = j;
		if (j < len && var_start(s[j]))
			while (j < len && var_char(s[j]))
				j++;
		size_t name_len = j - name_start;
		if (name_len == 0) {
			diag_error(b->diag, b->file, n->line, n->column,
			           "malformed variable reference: \"${\" must be followed by a "
			           "name ([A-Za-z_][A-Za-z0-9_]*)");
			bad = true;
			break;
		}
		if (name_len > SPEC_MAX_VARNAME) {
			diag_error(b->diag, b->file, n->line, n->column,
			           "malformed variable reference: name longer than %d characters",
			           SPEC_MAX_VARNAME);
			bad = true;
			break;
		}
		char name[SPEC_MAX_VARNAME + 1];
		memcpy(name, s + name_start, name_len);
		name[name_len] = '\0';
		const char *def = NULL;
		size_t def_len = 0;
		if (j < len && s[j] == '}') {
			j++;
		} else if (j + 1 < len && s[j] == ':' && s[j + 1] == '-') {
			def = s + j + 2;
			const char *close = memchr(def, '}', len - (j + 2));
			if (!close) {
				diag_error(
				        b->diag, b->file, n->line, n->column,
				        "malformed variable reference: \"${%s:-\" has no closing "
				        "\"}\"",
				        name);
				bad = true;
				break;
			}
			def_len = (size_t)(close - def);
			j = (size_t)(close - s) + 1;
		} else {
			diag_error(b->diag, b->file, n->line, n->column,
			           "malformed variable reference: expected \"}\" or \":-default}\" "
			           "after \"${%s\"",
			           name);
			bad = true;
			break;
		}
		const char *val = getenv(name);
		const char *use;
		size_t use_len;
		if (def && (!val || !*val)) {
			use = def;
			use_len = def_len;
		} else if (!val) {
			diag_error(b->diag, b->file, n->line, n->column,
			           "environment variable %s is not set (use ${%s:-default} to give "
			           "a default)",
			           name, name);
			b->failed = true;
			use = "";
			use_len = 0;
		} else {
			use = val;
			use_len = strlen(val);
		}
		if (use_len > SPEC_MAX_EXPANSION - b->expanded) {
			diag_error(b->diag, b->file, n->line, n->column,
			           "environment variables expand the document beyond %u MiB",
			           SPEC_MAX_EXPANSION >> 20);
			free(out);
			b->failed = b->fatal = true;
			return;
		}
		b->expanded += use_len;
		if (buf_add(&out, &olen, &ocap, use, use_len) < 0)
			goto nomem;
		n->interpolated = true;
		i = j;
	}
	if (bad)
		b->failed = true;
	n->scalar = arena_strndup(b->arena, out ? out : "", olen);
	n->scalar_len = olen;
	free(out);
	if (!n->scalar)
		oom(b);
	return;
nomem:
	free(out);
	oom(b);
}

/* Copies `src` for an alias; the copy's root stands where the alias is. */
static struct spec_node *copy_tree(struct builder *b, const struct spec_node *src)
{
	struct spec_node *n = arena_alloc(b->arena, sizeof *n);
	if (!n)
		return NULL;
	*n = *src; /* scalars share their (immutable) text */
	if (src->type == SPEC_MAP && src->npairs) {
		n->pairs = arena_alloc(b->arena, src->npairs * sizeof *n->pairs);
		if (!n->pairs)
			return NULL;
		for (size_t i = 0; i < src->npairs; i++) {
			n->pairs[i].key = copy_tree(b, src->pairs[i].key);
			n->pairs[i].value = copy_tree(b, src->pairs[i].value);
			if (!n->pairs[i].key || !n->pairs[i].value)
				return NULL;
		}
	} else if (src->type == SPEC_SEQ && src->nitems) {
		n->items = arena_alloc(b->arena, src->nitems * sizeof *n->items);
		if (!n->items)
			return NULL;
		for (size_t i = 0; i < src->nitems; i++) {
			n->items[i] = copy_tree(b, src->items[i]);
			if (!n->items[i])
				return NULL;
		}
	}
	return n;
}

static void on_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
	struct anchor *a = anchor_find(&b->anchors, name);
	struct spec_node *n;
	int height = 0;
	if (!a || !a->node) {
		char buf[80];
		diag_error(b->diag, b->file, line, col,
		           a ? "alias *%s refers to a node that contains it"
		             : "undefined alias *%s",
		           spec_text_escape(buf, sizeof buf, name, strlen(name)));
		b->failed = true;
		/* Go on with an empty scalar to find further errors. */
		if (!count_nodes(b, 1, line, col, NULL))
			return;
		n = node_new(b, SPEC_SCALAR, &ev->start_mark);
		if (!n)
			return;
		n->scalar = arena_strndup(b->arena, "", 0);
		if (!n->scalar) {
			oom(b);
			return;
		}
	} else {
		if (b->depth + a->height > SPEC_MAX_DEPTH) {
			diag_error(b->diag, b->file, line, col,
			           "alias *%s nests too deep (limit %d levels)", name,
			           SPEC_MAX_DEPTH);
			b->failed = b->fatal = true;
			return;
		}
		if (!count_nodes(b, a->count, line, col, name))
			return;
		n = copy_tree(b, a->node);
		if (!n) {
			oom(b);
			return;
		}
		n->line = line;
		n->column = col;
		height = a->height;
	}
	attach(b, n, height);
}

static void on_scalar(struct builder *b, const yaml_event_t *ev)
{
	if (!count_nodes(b, 1, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1, NULL))
		return;
	struct spec_node *n = node_new(b, SPEC_SCALAR, &ev->start_mark);
	if (!n)
		return;
	const char *tag = (const char *)ev->data.scalar.tag;
	n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	            (tag && strcmp(tag, YAML_STR_TAG) == 0);
	const char *text = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	if (is_key_position(b)) {
		n->scalar = arena_strndup(b->arena, text, len);
		n->scalar_len = len;
		if (!n->scalar) {
			oom(b);
			return;
		}
	} else {
		interpolate(b, n, text, len);
		if (b->fatal)
			return;
	}
	if (ev->data.scalar.anchor) {
		struct anchor *a = anchor_define(&b->anchors, (const char *)ev->data.scalar.anchor);
		if (!a) {
			oom(b);
			return;
		}
		a->node = n;
		a->count = 1;
	}
	attach(b, n, 0);
}

static void on_collection_start(struct builder *b, const yaml_event_t *ev, enum spec_node_type type)
{
	const yaml_mark_t *mark = &ev->start_mark;
	if (b->depth >= SPEC_MAX_DEPTH) {
		diag_error(b->diag, b->file, (int)mark->line + 1, (int)mark->column + 1,
		           "nesting too deep (limit %d levels)", SPEC_MAX_DEPTH);
		b->failed = b->fatal = true;
		return;
	}
	size_t start = b->nodes;
	if (!count_nodes(b, 1, (int)mark->line + 1, (int)mark->column + 1, NULL))
		return;
	struct spec_node *n = node_new(b, type, mark);
	if (!n)
		return;
	struct frame *f = &b->stack[b->depth++];
	memset(f, 0, sizeof *f);
	f->node = n;
	f->start_nodes = start;
	f->height = 1; /* even an empty collection takes a level */
	const yaml_char_t *anchor =
	        type == SPEC_MAP ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
	if (anchor) {
		struct anchor *a = anchor_define(&b->anchors, (const char *)anchor);
		if (!a) {
			oom(b);
			return;
		}
		f->anchor = (size_t)(a - b->anchors.v) + 1;
		f->anchor_gen = a->gen;
	}
}

static void on_collection_end(struct builder *b)
{
	struct frame *f = &b->stack[b->depth - 1];
	struct spec_node *n = f->node;
	if (n->type == SPEC_MAP) {
		if (f->n % 2)
			f->n--; /* cannot happen with a well-formed event stream */
		n->npairs = f->n / 2;
		if (n->npairs) {
			n->pairs = arena_alloc(b->arena, n->npairs * sizeof *n->pairs);
			if (!n->pairs) {
				oom(b);
				return;
			}
			for (size_t i = 0; i < n->npairs; i++) {
				n->pairs[i].key = f->items[2 * i];
				n->pairs[i].value = f->items[2 * i + 1];
			}
		}
	} else {
		n->nitems = f->n;
		if (n->nitems) {
			n->items = arena_alloc(b->arena, n->nitems * sizeof *n->items);
			if (!n->items) {
				oom(b);
				return;
			}
			memcpy(n->items, f->items, n->nitems * sizeof *n->items);
		}
	}
	free(f->items);
	free(f->slots);
	f->items = NULL;
	f->slots = NULL;
	if (f->anchor) {
		struct anchor *a = &b->anchors.v[f->anchor - 1];
		/* A later definition of the same name inside wins over this one. */
		if (a->gen == f->anchor_gen) {
			a->node = n;
			a->count = b->nodes - f->start_nodes;
			a->height = f->height;
		}
	}
	int height = f->height;
	b->depth--;
	attach(b, n, height);
}

static void report_yaml_error(struct builder *b, const yaml_parser_t *p, const char *text,
                              size_t len)
{
	int line = 0, col = 0;
	const char *problem = p->problem ? p->problem : "invalid YAML";
	switch (p->error) {
	case YAML_MEMORY_ERROR: oom(b); return;
	case YAML_READER_ERROR: offset_position(text, len, p->problem_offset, &line, &col); break;
	default:
		line = (int)p->problem_mark.line + 1;
		col = (int)p->problem_mark.column + 1;
		break;
	}
	/* libyaml's words for a tab are obscure; say what is wrong. */
	const char *hint = "";
	if (p->error != YAML_READER_ERROR && p->problem_mark.index < len &&
	    text[p->problem_mark.index] == '\t')
		hint = "; tabs are not allowed here, indent with spaces";
	if (p->context && p->error != YAML_READER_ERROR)
		diag_error(b->diag, b->file, line, col, "%s (%s at line %d, column %d)%s", problem,
		           p->context, (int)p->context_mark.line + 1,
		           (int)p->context_mark.column + 1, hint);
	else
		diag_error(b->diag, b->file, line, col, "%s%s", problem, hint);
	b->failed = b->fatal = true;
}

/* A document that is one empty plain scalar ("---" alone) is empty. */
static bool is_empty_doc(const struct spec_node *root)
{
	return root && root->type == SPEC_SCALAR && !root->quoted && root->scalar_len == 0 &&
	       !root->interpolated;
}

int spec_doc_parse(const char *file, const char *text, size_t len, struct diag *diag,
                   struct spec_doc **out)
{
	*out = NULL;
	if (!file)
		file = "<input>";
	if (check_text(file, text, len, diag) < 0)
		return -1;

	struct builder b = {.file = file, .diag = diag};
	b.arena = calloc(1, sizeof *b.arena);
	struct spec_doc *doc = b.arena ? arena_alloc(b.arena, sizeof *doc) : NULL;
	char *name = doc ? arena_strndup(b.arena, file, strlen(file)) : NULL;
	if (!name) {
		arena_free(b.arena);
		diag_error(diag, file, 0, 0, "out of memory");
		return -1;
	}
	doc->file = name;
	doc->arena = b.arena;
	b.file = name;

	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		arena_free(b.arena);
		diag_error(diag, file, 0, 0, "out of memory");
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

	int documents = 0;
	bool done = false;
	while (!done && !b.fatal) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			report_yaml_error(&b, &parser, text, len);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT: done = true; break;
		case YAML_DOCUMENT_START_EVENT:
			if (++documents > 1) {
				diag_error(diag, b.file, (int)ev.start_mark.line + 1,
				           (int)ev.start_mark.column + 1,
				           "more than one YAML document in the file (one spec per "
				           "file)");
				b.failed = b.fatal = true;
			}
			break;
		case YAML_SCALAR_EVENT: on_scalar(&b, &ev); break;
		case YAML_ALIAS_EVENT: on_alias(&b, &ev); break;
		case YAML_SEQUENCE_START_EVENT: on_collection_start(&b, &ev, SPEC_SEQ); break;
		case YAML_MAPPING_START_EVENT: on_collection_start(&b, &ev, SPEC_MAP); break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (b.depth > 0)
				on_collection_end(&b);
			break;
		default: break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	for (int i = 0; i < b.depth; i++) {
		free(b.stack[i].items);
		free(b.stack[i].slots);
	}
	anchors_free(&b.anchors);

	if (b.failed) {
		arena_free(b.arena);
		return -1;
	}
	doc->root = is_empty_doc(b.root) ? NULL : b.root;
	*out = doc;
	return 0;
}

int spec_doc_load(const char *path, struct diag *diag, struct spec_doc **out)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		diag_error(diag, path, 0, 0, "cannot read: %s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		diag_error(diag, path, 0, 0, "cannot read: %s", strerror(EISDIR));
		return -1;
	}
	/* Read up to one byte past the limit (pipes have no size to ask). */
	size_t cap = 64 << 10, len = 0;
	char *buf = malloc(cap);
	int rc = -1;
	if (!buf) {
		diag_error(diag, path, 0, 0, "out of memory");
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap > SPEC_MAX_FILE) {
				diag_error(diag, path, 0, 0, "file too large (limit %u MiB)",
				           SPEC_MAX_FILE >> 20);
				goto out;
			}
			size_t ncap = cap * 2 > SPEC_MAX_FILE + 1 ? SPEC_MAX_FILE + 1 : cap * 2;
			char *p = realloc(buf, ncap);
			if (!p) {
				diag_error(diag, path, 0, 0, "out of memory");
				goto out;
			}
			buf = p;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			diag_error(diag, path, 0, 0, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > SPEC_MAX_FILE) {
		diag_error(diag, path, 0, 0, "file too large (limit %u MiB)", SPEC_MAX_FILE >> 20);
		goto out;
	}
	rc = spec_doc_parse(path, buf, len, diag, out);
out:
	free(buf);
	close(fd);
	return rc;
}

void spec_doc_free(struct spec_doc *doc)
{
	if (doc)
		arena_free(doc->arena); /* the doc itself lives in its arena */
}

struct spec_node *spec_map_get(const struct spec_node *map, const char *key)
{
	if (!map || map->type != SPEC_MAP || !key)
		return NULL;
	size_t len = strlen(key);
	for (size_t i = 0; i < map->npairs; i++) {
		const struct spec_node *k = map->pairs[i].key;
		if (k->scalar_len == len && memcmp(k->scalar, key, len) == 0)
			return map->pairs[i].value;
	}
	return NULL;
}

bool spec_node_is_null(const struct spec_node *node)
{
	if (!node)
		return true;
	if (node->type != SPEC_SCALAR || node->quoted || node->interpolated)
		return false;
	const char *s = node->scalar;
	return node->scalar_len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const char *spec_node_type_name(enum spec_node_type type)
{
	switch (type) {
	case SPEC_SCALAR: return "scalar";
	case SPEC_MAP: return "map";
	case SPEC_SEQ: return "sequence";
	}
	return "node";
}
