/* options.c - checks a stage's options against a plugin's option schema and
 * fills the plugin's config struct; prints the same schema as a table.
 *
 * Every problem is reported, not only the first, so a user fixes a spec in
 * one pass. A value is echoed in a message only when it is neither secret
 * nor came from the environment.
 */
#include "spec/options.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/units.h"

#define MAX_NAME        256       /* longest dotted option name matched */
#define MAX_SECRET_FILE (1 << 20) /* a secret file is a token, not a dump */
#define KNOWN_FLAGS                                                                                \
	(CV_OPT_REQUIRED | CV_OPT_SECRET | CV_OPT_HAS_MIN | CV_OPT_HAS_MAX |                       \
	 CV_OPT_MIN_EXCLUSIVE | CV_OPT_MAX_EXCLUSIVE | CV_OPT_NONEMPTY)

/* ------------------------------------------------------------------------ */
/* Config memory: a chain of allocations freed together                      */
/* ------------------------------------------------------------------------ */

struct chunk {
	struct chunk *next;
	max_align_t data[];
};

struct mem {
	struct chunk *head;
};

static void *mem_alloc(struct mem *m, size_t size)
{
	struct chunk *c = calloc(1, sizeof *c + (size ? size : 1));
	if (!c)
		return NULL;
	c->next = m->head;
	m->head = c;
	return c->data;
}

static char *mem_strndup(struct mem *m, const char *s, size_t len)
{
	char *p = mem_alloc(m, len + 1);
	if (p && len)
		memcpy(p, s, len);
	return p;
}

static void mem_free(struct mem *m)
{
	if (!m)
		return;
	struct chunk *c = m->head;
	while (c) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
	free(m);
}

/* ------------------------------------------------------------------------ */
/* Schema helpers                                                            */
/* ------------------------------------------------------------------------ */

const char *options_type_name(enum cv_option_type type)
{
	switch (type) {
	case CV_OPT_END: return "end";
	case CV_OPT_STRING: return "string";
	case CV_OPT_INT: return "int";
	case CV_OPT_BOOL: return "bool";
	case CV_OPT_DOUBLE: return "double";
	case CV_OPT_SIZE: return "size";
	case CV_OPT_DURATION: return "duration";
	case CV_OPT_ENUM: return "enum";
	case CV_OPT_LIST: return "list";
	case CV_OPT_MAP: return "map";
	case CV_OPT_FIELD_NAME: return "field";
	}
	return "unknown";
}

static size_t type_size(enum cv_option_type type)
{
	switch (type) {
	case CV_OPT_STRING: return sizeof(const char *);
	case CV_OPT_INT: return sizeof(int64_t);
	case CV_OPT_BOOL: return sizeof(bool);
	case CV_OPT_DOUBLE: return sizeof(double);
	case CV_OPT_SIZE: return sizeof(uint64_t);
	case CV_OPT_DURATION: return sizeof(int64_t);
	case CV_OPT_ENUM: return sizeof(int);
	case CV_OPT_LIST: return sizeof(struct cv_string_list);
	case CV_OPT_MAP: return sizeof(struct cv_string_map);
	case CV_OPT_FIELD_NAME: return sizeof(struct cv_field_name);
	case CV_OPT_END: break;
	}
	return 0;
}

static size_t options_count(const struct cv_option *options)
{
	size_t n = 0;
	if (options)
		while (options[n].type != CV_OPT_END)
			n++;
	return n;
}

static void format_bound(char *buf, size_t size, const struct cv_option *o, double v)
{
	if (o->type == CV_OPT_DURATION)
		units_format_duration(buf, size, v);
	else if (o->type == CV_OPT_SIZE)
		units_format_size(buf, size, v);
	else
		snprintf(buf, size, "%.15g", v);
}

static bool has_min(const struct cv_option *o)
{
	return o->flags & (CV_OPT_HAS_MIN | CV_OPT_MIN_EXCLUSIVE);
}

static bool has_max(const struct cv_option *o)
{
	return o->flags & (CV_OPT_HAS_MAX | CV_OPT_MAX_EXCLUSIVE);
}

/* "between 1 and 10", "greater than 0 and at most 1", "at least 1", "less
 * than 10"; "" without bounds. */
static void format_range(char *buf, size_t size, const struct cv_option *o)
{
	char lo[64], hi[64];
	format_bound(lo, sizeof lo, o, o->min);
	format_bound(hi, sizeof hi, o, o->max);
	bool lo_ex = o->flags & CV_OPT_MIN_EXCLUSIVE, hi_ex = o->flags & CV_OPT_MAX_EXCLUSIVE;
	if (has_min(o) && has_max(o) && !lo_ex && !hi_ex)
		snprintf(buf, size, "between %s and %s", lo, hi);
	else
		snprintf(buf, size, "%s%s%s%s%s",
		         has_min(o) ? (lo_ex ? "greater than " : "at least ") : "",
		         has_min(o) ? lo : "", has_min(o) && has_max(o) ? " and " : "",
		         has_max(o) ? (hi_ex ? "less than " : "at most ") : "",
		         has_max(o) ? hi : "");
}

/* "a, b, c" into buf; cut with ", ..." when it does not fit. */
static void join_enum(char *buf, size_t size, const char *const *values, const char *sep)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; values && values[i]; i++) {
		int w = snprintf(buf + o, size - o, "%s%s", i ? sep : "", values[i]);
		if (w < 0 || (size_t)w >= size - o) {
			if (size > 5)
				memcpy(buf + (o < size - 5 ? o : size - 5), " ...", 5);
			return;
		}
		o += (size_t)w;
	}
}

/* ------------------------------------------------------------------------ */
/* Filling                                                                   */
/* ------------------------------------------------------------------------ */

/* Where each option was found in the stage map. */
struct found {
	const struct spec_node *key, *value;   /* NAME */
	const struct spec_node *fkey, *fvalue; /* NAME_file (secrets) */
};

struct ctx {
	const char *file;
	struct diag *diag;
	const struct spec_node *stage;
	const struct cv_option *opts;
	size_t nopts;
	struct found *found;
	struct mem *mem;
	char *data;
	unsigned flags; /* enum options_flag */
	bool failed;
};

/* A plugin's view of the options while its `check` runs. */
struct cv_check {
	struct ctx *c;
	int errors;
};

/* A value to parse: a node of the spec, of a secret file or of a default. */
struct src {
	const struct spec_node *node;
	bool is_default;
	bool from_file;
	bool hide; /* secret or from the environment: never echoed */
};

static void error_at(struct ctx *c, const struct spec_node *n, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void error_at(struct ctx *c, const struct spec_node *n, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!n)
		n = c->stage;
	diag_error(c->diag, c->file, n ? n->line : 0, n ? n->column : 0, "%s", msg);
	c->failed = true;
}

static void oom(struct ctx *c)
{
	error_at(c, NULL, "out of memory");
}

/* Reports a problem with an option's value; defaults are the plugin's bug. */
static void value_error(struct ctx *c, const struct cv_option *o, const struct src *s,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void value_error(struct ctx *c, const struct cv_option *o, const struct src *s,
                        const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (s->is_default)
		error_at(c, NULL, "plugin bug: option \"%s\" has an invalid default: %s", o->name,
		         msg);
	else if (s->from_file)
		error_at(c, s->node, "option \"%s_file\": the file's content: %s", o->name, msg);
	else
		error_at(c, s->node, "option \"%s\": %s", o->name, msg);
}

/* The value as it may appear in a message: quoted, or "the value". */
static const char *shown(const struct src *s, const struct spec_node *n, char *buf, size_t size)
{
	if (s->hide || n->interpolated)
		return "the value";
	buf[0] = '"';
	spec_text_escape(buf + 1, size - 2, n->scalar, n->scalar_len);
	size_t l = strlen(buf);
	buf[l] = '"';
	buf[l + 1] = '\0';
	return buf;
}

static bool expect_scalar(struct ctx *c, const struct cv_option *o, const struct src *s,
                          const char *what)
{
	if (s->node->type == SPEC_SCALAR)
		return true;
	value_error(c, o, s, "expected %s, got a %s", what, spec_node_type_name(s->node->type));
	return false;
}

/* A scalar's text as a C string; embedded NULs ("\0" escapes) refused. */
static bool scalar_text(struct ctx *c, const struct cv_option *o, const struct src *s,
                        const struct spec_node *n)
{
	if (strlen(n->scalar) == n->scalar_len)
		return true;
	struct src at = *s;
	at.node = n;
	value_error(c, o, &at, "the value contains a NUL character");
	return false;
}

union value {
	const char *s;
	int64_t i;
	bool b;
	double d;
	uint64_t u;
	int e;
	struct cv_string_list l;
	struct cv_string_map m;
	struct cv_field_name f;
};

static bool check_range(struct ctx *c, const struct cv_option *o, const struct src *s, double v)
{
	bool lo_ex = o->flags & CV_OPT_MIN_EXCLUSIVE, hi_ex = o->flags & CV_OPT_MAX_EXCLUSIVE;
	if (!(has_min(o) && (lo_ex ? v <= o->min : v < o->min)) &&
	    !(has_max(o) && (hi_ex ? v >= o->max : v > o->max)))
		return true;
	char range[160], buf[96];
	format_range(range, sizeof range, o);
	value_error(c, o, s, "%s is out of range: must be %s", shown(s, s->node, buf, sizeof buf),
	            range);
	return false;
}

static bool parse_list(struct ctx *c, const struct cv_option *o, const struct src *s,
                       struct cv_string_list *out)
{
	const struct spec_node *n = s->node;
	if (n->type == SPEC_MAP) {
		value_error(c, o, s, "expected a list of strings, got a map");
		return false;
	}
	/* A single scalar is a one-item list. */
	const struct spec_node *const *items =
	        n->type == SPEC_SEQ ? (const struct spec_node *const *)n->items : &s->node;
	size_t count = n->type == SPEC_SEQ ? n->nitems : 1;
	const char **v = mem_alloc(c->mem, (count ? count : 1) * sizeof *v);
	if (!v) {
		oom(c);
		return false;
	}
	bool ok = true;
	for (size_t i = 0; i < count; i++) {
		const struct spec_node *it = items[i];
		struct src at = *s;
		at.node = it;
		if (it->type != SPEC_SCALAR) {
			value_error(c, o, &at, "list items must be strings, got a %s",
			            spec_node_type_name(it->type));
			ok = false;
			continue;
		}
		if (!scalar_text(c, o, s, it)) {
			ok = false;
			continue;
		}
		v[i] = mem_strndup(c->mem, it->scalar, it->scalar_len);
		if (!v[i]) {
			oom(c);
			return false;
		}
	}
	out->items = v;
	out->count = count;
	return ok;
}

struct map_build {
	const char **keys;
	const char **values;
	const struct spec_node **at; /* each key's node, for duplicates */
	size_t count, cap;
};

/* Flattens nested maps into dotted keys: {a: {b: 1}} is "a.b" = "1". */
static bool flatten_map(struct ctx *c, const struct cv_option *o, const struct src *s,
                        const struct spec_node *map, const char *prefix, struct map_build *mb,
                        int depth)
{
	bool ok = true;
	for (size_t i = 0; i < map->npairs; i++) {
		const struct spec_node *k = map->pairs[i].key, *v = map->pairs[i].value;
		struct src at = *s;
		at.node = k;
		if (!scalar_text(c, o, s, k)) {
			ok = false;
			continue;
		}
		size_t plen = prefix ? strlen(prefix) + 1 : 0;
		char *key = mem_alloc(c->mem, plen + k->scalar_len + 1);
		if (!key) {
			oom(c);
			return false;
		}
		if (prefix) {
			memcpy(key, prefix, plen - 1);
			key[plen - 1] = '.';
		}
		memcpy(key + plen, k->scalar, k->scalar_len);
		if (v->type == SPEC_MAP && depth < SPEC_MAX_DEPTH) {
			if (!flatten_map(c, o, s, v, key, mb, depth + 1))
				ok = false;
			continue;
		}
		at.node = v;
		if (v->type != SPEC_SCALAR) {
			value_error(c, o, &at, "map values must be strings, got a %s",
			            spec_node_type_name(v->type));
			ok = false;
			continue;
		}
		if (!scalar_text(c, o, s, v)) {
			ok = false;
			continue;
		}
		/* Duplicates can only arise between "a.b" and a: {b}; the
		 * count of such keys is small, a linear scan is fine. */
		for (size_t j = 0; j < mb->count; j++) {
			if (strcmp(mb->keys[j], key) == 0) {
				char buf[96];
				at.node = k;
				value_error(c, o, &at,
				            "key \"%s\" given twice (first at line %d, column %d)",
				            spec_text_escape(buf, sizeof buf, key, strlen(key)),
				            mb->at[j]->line, mb->at[j]->column);
				ok = false;
				break;
			}
		}
		if (!ok)
			continue;
		if (mb->count == mb->cap) {
			size_t cap = mb->cap ? mb->cap * 2 : 8;
			const char **keys = mem_alloc(c->mem, cap * sizeof *keys);
			const char **values = mem_alloc(c->mem, cap * sizeof *values);
			const struct spec_node **atv = mem_alloc(c->mem, cap * sizeof *atv);
			if (!keys || !values || !atv) {
				oom(c);
				return false;
			}
			if (mb->count) {
				memcpy(keys, mb->keys, mb->count * sizeof *keys);
				memcpy(values, mb->values, mb->count * sizeof *values);
				memcpy(atv, mb->at, mb->count * sizeof *atv);
			}
			mb->keys = keys;
			mb->values = values;
			mb->at = atv;
			mb->cap = cap;
		}
		const char *val = mem_strndup(c->mem, v->scalar, v->scalar_len);
		if (!val) {
			oom(c);
			return false;
		}
		mb->keys[mb->count] = key;
		mb->values[mb->count] = val;
		mb->at[mb->count] = k;
		mb->count++;
	}
	return ok;
}

static bool parse_map(struct ctx *c, const struct cv_option *o, const struct src *s,
                      struct cv_string_map *out)
{
	if (s->node->type != SPEC_MAP) {
		value_error(c, o, s, "expected a map of strings, got a %s",
		            spec_node_type_name(s->node->type));
		return false;
	}
	struct map_build mb = {0};
	if (!flatten_map(c, o, s, s->node, NULL, &mb, 1))
		return false;
	out->keys = mb.keys;
	out->values = mb.values;
	out->count = mb.count;
	return true;
}

/* Parses the value `s` of option `o` into *v. */
static bool parse_value(struct ctx *c, const struct cv_option *o, const struct src *s,
                        union value *v)
{
	const struct spec_node *n = s->node;
	char buf[96];
	switch (o->type) {
	case CV_OPT_LIST:
		if (!parse_list(c, o, s, &v->l))
			return false;
		if ((o->flags & CV_OPT_NONEMPTY) && v->l.count == 0) {
			value_error(c, o, s, "needs at least one item");
			return false;
		}
		return true;
	case CV_OPT_MAP:
		if (!parse_map(c, o, s, &v->m))
			return false;
		if ((o->flags & CV_OPT_NONEMPTY) && v->m.count == 0) {
			value_error(c, o, s, "needs at least one entry");
			return false;
		}
		return true;
	case CV_OPT_STRING:
		if (!expect_scalar(c, o, s, "a string") || !scalar_text(c, o, s, n))
			return false;
		if ((o->flags & CV_OPT_NONEMPTY) && n->scalar_len == 0) {
			value_error(c, o, s, "must not be empty");
			return false;
		}
		v->s = mem_strndup(c->mem, n->scalar, n->scalar_len);
		if (!v->s)
			oom(c);
		return v->s != NULL;
	case CV_OPT_FIELD_NAME:
		if (!expect_scalar(c, o, s, "a field name") || !scalar_text(c, o, s, n))
			return false;
		if (n->scalar_len == 0 || n->scalar_len > UINT16_MAX) {
			value_error(c, o, s, "a field name is 1 to %u bytes long, not %zu",
			            (unsigned)UINT16_MAX, n->scalar_len);
			return false;
		}
		v->f.name = mem_strndup(c->mem, n->scalar, n->scalar_len);
		v->f.len = (uint16_t)n->scalar_len;
		if (!v->f.name)
			oom(c);
		return v->f.name != NULL;
	case CV_OPT_INT:
		if (!expect_scalar(c, o, s, "an integer"))
			return false;
		if (!scalar_text(c, o, s, n) || units_parse_int(n->scalar, &v->i) < 0) {
			value_error(c, o, s, "%s is not an integer (or does not fit in 64 bits)",
			            shown(s, n, buf, sizeof buf));
			return false;
		}
		return check_range(c, o, s, (double)v->i);
	case CV_OPT_BOOL:
		if (!expect_scalar(c, o, s, "a boolean"))
			return false;
		if (!scalar_text(c, o, s, n) || units_parse_bool(n->scalar, &v->b) < 0) {
			value_error(c, o, s, "%s is not a boolean (true/false, yes/no, on/off)",
			            shown(s, n, buf, sizeof buf));
			return false;
		}
		return true;
	case CV_OPT_DOUBLE:
		if (!expect_scalar(c, o, s, "a number"))
			return false;
		if (!scalar_text(c, o, s, n) || units_parse_double(n->scalar, &v->d) < 0) {
			value_error(c, o, s, "%s is not a finite number",
			            shown(s, n, buf, sizeof buf));
			return false;
		}
		return check_range(c, o, s, v->d);
	case CV_OPT_SIZE:
		if (!expect_scalar(c, o, s, "a size"))
			return false;
		if (!scalar_text(c, o, s, n) || units_parse_size(n->scalar, &v->u) < 0) {
			value_error(c, o, s, "%s is not a size (e.g. 1000, 512KiB, 4MiB, 1GB)",
			            shown(s, n, buf, sizeof buf));
			return false;
		}
		return check_range(c, o, s, (double)v->u);
	case CV_OPT_DURATION:
		if (!expect_scalar(c, o, s, "a duration"))
			return false;
		if (!scalar_text(c, o, s, n) || units_parse_duration(n->scalar, &v->i) < 0) {
			value_error(c, o, s,
			            "%s is not a duration (e.g. 250us, 500ms, 10s, 1m, 2h)",
			            shown(s, n, buf, sizeof buf));
			return false;
		}
		return check_range(c, o, s, (double)v->i);
	case CV_OPT_ENUM:
		if (!expect_scalar(c, o, s, "one of the listed values"))
			return false;
		for (int i = 0; o->enum_values[i]; i++) {
			if (strlen(o->enum_values[i]) == n->scalar_len &&
			    memcmp(o->enum_values[i], n->scalar, n->scalar_len) == 0) {
				v->e = i;
				return true;
			}
		}
		char list[200];
		join_enum(list, sizeof list, o->enum_values, ", ");
		value_error(c, o, s, "%s is not one of: %s", shown(s, n, buf, sizeof buf), list);
		return false;
	case CV_OPT_END: break;
	}
	return false;
}

static void store(struct ctx *c, const struct cv_option *o, const union value *v)
{
	memcpy(c->data + o->offset, v, type_size(o->type));
}

/* Reads a secret file into a malloc'd, NUL-terminated buffer: at most
 * MAX_SECRET_FILE bytes, one trailing newline (LF or CRLF) removed.
 * Messages name the path (unless it came from the environment), never the
 * content. */
static char *read_secret_file(struct ctx *c, const struct cv_option *o,
                              const struct spec_node *path, size_t *len)
{
	char pbuf[160], where[170] = "";
	if (!path->interpolated)
		snprintf(where, sizeof where, " \"%s\"",
		         spec_text_escape(pbuf, sizeof pbuf, path->scalar, path->scalar_len));
	if (strlen(path->scalar) != path->scalar_len || path->scalar_len == 0) {
		error_at(c, path, "option \"%s_file\": not a file path", o->name);
		return NULL;
	}
	int fd = open(path->scalar, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		error_at(c, path, "option \"%s_file\": cannot read%s: %s", o->name, where,
		         strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		error_at(c, path, "option \"%s_file\": cannot read%s: %s", o->name, where,
		         strerror(EISDIR));
		return NULL;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		oom(c);
		return NULL;
	}
	for (;;) {
		if (n + 1 >= cap) {
			if (cap > MAX_SECRET_FILE) {
				error_at(c, path,
				         "option \"%s_file\": file%s is larger than %d KiB",
				         o->name, where, MAX_SECRET_FILE >> 10);
				goto fail;
			}
			char *p = realloc(buf, cap * 2);
			if (!p) {
				oom(c);
				goto fail;
			}
			buf = p;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			error_at(c, path, "option \"%s_file\": cannot read%s: %s", o->name, where,
			         strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > MAX_SECRET_FILE) {
		error_at(c, path, "option \"%s_file\": file%s is larger than %d KiB", o->name,
		         where, MAX_SECRET_FILE >> 10);
		free(buf);
		return NULL;
	}
	if (n && buf[n - 1] == '\n') {
		n--;
		if (n && buf[n - 1] == '\r')
			n--;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

/* Fills option `o` from the spec, a secret file or its default. */
static void fill_option(struct ctx *c, const struct cv_option *o, const struct found *f)
{
	union value v;
	memset(&v, 0, sizeof v);
	bool secret = o->flags & CV_OPT_SECRET;
	const struct spec_node *value = spec_node_is_null(f->value) ? NULL : f->value;
	const struct spec_node *fvalue = spec_node_is_null(f->fvalue) ? NULL : f->fvalue;

	if (value && fvalue) {
		error_at(c, f->fkey, "options \"%s\" and \"%s_file\" are both given; use one",
		         o->name, o->name);
		return;
	}
	if (fvalue) {
		if (fvalue->type != SPEC_SCALAR) {
			error_at(c, fvalue, "option \"%s_file\": expected a file path, got a %s",
			         o->name, spec_node_type_name(fvalue->type));
			return;
		}
		if (c->flags & OPTIONS_NO_FILES) {
			if (o->type == CV_OPT_STRING)
				v.s = OPTIONS_SECRET_PLACEHOLDER;
			store(c, o, &v);
			return;
		}
		size_t len;
		char *text = read_secret_file(c, o, fvalue, &len);
		if (!text)
			return;
		if (strlen(text) != len) {
			error_at(c, fvalue, "option \"%s_file\": the file contains a NUL byte",
			         o->name);
			free(text);
			return;
		}
		struct spec_node tmp = {.type = SPEC_SCALAR,
		                        .line = fvalue->line,
		                        .column = fvalue->column,
		                        .scalar = text,
		                        .scalar_len = len,
		                        .quoted = true};
		struct src s = {.node = &tmp, .from_file = true, .hide = true};
		if (parse_value(c, o, &s, &v))
			store(c, o, &v);
		free(text); /* parse_value copied what it keeps */
		return;
	}
	if (value) {
		struct src s = {.node = value, .hide = secret};
		if (parse_value(c, o, &s, &v))
			store(c, o, &v);
		return;
	}
	if (o->flags & CV_OPT_REQUIRED) {
		const struct spec_node *at = f->value ? f->value : f->fvalue;
		if (at)
			error_at(c, at, "option \"%s\" needs a value", o->name);
		else if (secret)
			error_at(c, NULL, "missing required option \"%s\" (or \"%s_file\")",
			         o->name, o->name);
		else
			error_at(c, NULL, "missing required option \"%s\"", o->name);
		return;
	}
	if (!o->default_value)
		return; /* zero: NULL string, 0, false, first enum value, empty list */

	struct src s = {.is_default = true};
	if (o->type == CV_OPT_LIST || o->type == CV_OPT_MAP) {
		/* A list or map default is written as YAML: "[a, b]", "{k: v}". */
		struct diag quiet = {0};
		struct spec_doc *doc;
		if (spec_doc_parse(o->name, o->default_value, strlen(o->default_value), &quiet,
		                   &doc) < 0) {
			value_error(c, o, &s, "not valid YAML");
			return;
		}
		if (doc->root) {
			s.node = doc->root;
			if (parse_value(c, o, &s, &v))
				store(c, o, &v);
		}
		spec_doc_free(doc);
		return;
	}
	struct spec_node tmp = {.type = SPEC_SCALAR,
	                        .scalar = (char *)o->default_value,
	                        .scalar_len = strlen(o->default_value),
	                        .quoted = true};
	s.node = &tmp;
	if (parse_value(c, o, &s, &v))
		store(c, o, &v);
}

/* Checks the schema itself: a broken one is the plugin's bug, reported
 * rather than trusted with the config struct's memory. */
static bool check_schema(struct ctx *c, size_t config_size)
{
	bool ok = true;
	for (size_t i = 0; i < c->nopts; i++) {
		const struct cv_option *o = &c->opts[i];
		const char *name = o->name ? o->name : "(null)";
		size_t size = type_size(o->type);
		if (!o->name || !*o->name) {
			error_at(c, NULL, "plugin bug: option %zu has no name", i);
			ok = false;
		} else if (!size) {
			error_at(c, NULL, "plugin bug: option \"%s\" has unknown type %d", name,
			         (int)o->type);
			ok = false;
		} else if (o->offset > config_size || size > config_size - o->offset) {
			error_at(c, NULL,
			         "plugin bug: option \"%s\" lies outside the config struct "
			         "(offset %zu, size %zu, struct %zu bytes)",
			         name, o->offset, size, config_size);
			ok = false;
		} else if (o->flags & ~KNOWN_FLAGS) {
			error_at(c, NULL, "plugin bug: option \"%s\" has unknown flags 0x%x", name,
			         (unsigned)(o->flags & ~KNOWN_FLAGS));
			ok = false;
		} else if (o->type == CV_OPT_ENUM && (!o->enum_values || !o->enum_values[0])) {
			error_at(c, NULL, "plugin bug: enum option \"%s\" has no values", name);
			ok = false;
		}
	}
	return ok;
}

static size_t levenshtein(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void unknown_key(struct ctx *c, const struct spec_node *key, const char *name)
{
	/* The closest option name, if close enough to be a typo. */
	const char *best = NULL;
	char best_file[MAX_NAME + 8];
	size_t best_d = SIZE_MAX;
	for (size_t i = 0; i < c->nopts; i++) {
		const struct cv_option *o = &c->opts[i];
		size_t d = levenshtein(name, o->name);
		if (d < best_d) {
			best_d = d;
			best = o->name;
		}
		if (o->flags & CV_OPT_SECRET) {
			char alt[MAX_NAME + 8];
			snprintf(alt, sizeof alt, "%s_file", o->name);
			d = levenshtein(name, alt);
			if (d < best_d) {
				best_d = d;
				snprintf(best_file, sizeof best_file, "%s", alt);
				best = best_file;
			}
		}
	}
	char hint[MAX_NAME + 32] = "";
	if (best && best_d > 0 && best_d <= (strlen(best) > 3 ? strlen(best) / 3 : 1))
		snprintf(hint, sizeof hint, " (did you mean \"%s\"?)", best);

	char list[300];
	size_t o = 0;
	list[0] = '\0';
	for (size_t i = 0; i < c->nopts; i++) {
		int w = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", c->opts[i].name);
		if (w < 0 || (size_t)w >= sizeof list - o) {
			memcpy(list + (o < sizeof list - 5 ? o : sizeof list - 5), ", ...", 6);
			break;
		}
		o += (size_t)w;
	}
	char buf[96];
	if (c->nopts)
		error_at(c, key, "unknown option \"%s\"%s; valid options: %s",
		         spec_text_escape(buf, sizeof buf, name, strlen(name)), hint, list);
	else
		error_at(c, key, "unknown option \"%s\"; this plugin takes no options",
		         spec_text_escape(buf, sizeof buf, name, strlen(name)));
}

static ssize_t find_option(const struct ctx *c, const char *name, size_t len)
{
	for (size_t i = 0; i < c->nopts; i++)
		if (strncmp(c->opts[i].name, name, len) == 0 && c->opts[i].name[len] == '\0')
			return (ssize_t)i;
	return -1;
}

/* True when some option's name starts with "prefix.". */
static bool is_group(const struct ctx *c, const char *prefix, size_t len)
{
	for (size_t i = 0; i < c->nopts; i++)
		if (strncmp(c->opts[i].name, prefix, len) == 0 && c->opts[i].name[len] == '.')
			return true;
	return false;
}

static bool is_reserved(const char *const *reserved, const struct spec_node *key)
{
	for (size_t i = 0; reserved && reserved[i]; i++)
		if (strlen(reserved[i]) == key->scalar_len &&
		    memcmp(reserved[i], key->scalar, key->scalar_len) == 0)
			return true;
	return false;
}

static void note_found(struct ctx *c, const struct spec_node **slot_key,
                       const struct spec_node **slot_value, const struct spec_node *key,
                       const struct spec_node *value, const char *name)
{
	if (*slot_key) {
		error_at(c, key, "option \"%s\" given twice (first at line %d, column %d)", name,
		         (*slot_key)->line, (*slot_key)->column);
		return;
	}
	*slot_key = key;
	*slot_value = value;
}

/* Matches the keys of `map` (under `prefix`, "" at the top) to options. */
static void walk(struct ctx *c, const struct spec_node *map, const char *prefix,
                 const char *const *reserved)
{
	size_t plen = strlen(prefix);
	for (size_t i = 0; i < map->npairs; i++) {
		const struct spec_node *k = map->pairs[i].key, *v = map->pairs[i].value;
		if (!plen && is_reserved(reserved, k))
			continue;
		char name[MAX_NAME + 1];
		size_t len = plen + (plen ? 1 : 0) + k->scalar_len;
		bool fits = len <= MAX_NAME && strlen(k->scalar) == k->scalar_len;
		if (!fits) {
			char buf[96];
			error_at(c, k, "unknown option \"%s\"",
			         spec_text_escape(buf, sizeof buf, k->scalar, k->scalar_len));
			continue;
		}
		snprintf(name, sizeof name, "%s%s%s", prefix, plen ? "." : "", k->scalar);
		ssize_t idx = find_option(c, name, len);
		bool group = v->type == SPEC_MAP && is_group(c, name, len);
		if (idx >= 0 && !(group && c->opts[idx].type != CV_OPT_MAP)) {
			note_found(c, &c->found[idx].key, &c->found[idx].value, k, v, name);
			continue;
		}
		if (len > 5 && strcmp(name + len - 5, "_file") == 0) {
			idx = find_option(c, name, len - 5);
			if (idx >= 0 && (c->opts[idx].flags & CV_OPT_SECRET)) {
				note_found(c, &c->found[idx].fkey, &c->found[idx].fvalue, k, v,
				           name);
				continue;
			}
		}
		if (group) {
			walk(c, v, name, reserved);
			continue;
		}
		if (is_group(c, name, len) && !spec_node_is_null(v)) {
			error_at(c, v, "\"%s\" expects a map of %s.* options, got a %s", name, name,
			         spec_node_type_name(v->type));
			continue;
		}
		if (!is_group(c, name, len))
			unknown_key(c, k, name);
	}
}

void options_check_verror(struct cv_check *ck, const char *option, const char *fmt, va_list ap)
{
	if (!ck)
		return;
	struct ctx *c = ck->c;
	char msg[400];
	vsnprintf(msg, sizeof msg, fmt ? fmt : "invalid", ap);
	ssize_t i = option ? find_option(c, option, strlen(option)) : -1;
	const struct spec_node *at = NULL; /* the stage, when the spec does not set it */
	const char *suffix = "";
	if (i >= 0 && !spec_node_is_null(c->found[i].value)) {
		at = c->found[i].value;
	} else if (i >= 0 && !spec_node_is_null(c->found[i].fvalue)) {
		at = c->found[i].fvalue;
		suffix = "_file";
	}
	ck->errors++;
	if (option)
		error_at(c, at, "option \"%s%s\": %s", option, suffix, msg);
	else
		error_at(c, at, "%s", msg);
}

bool options_check_given(const struct cv_check *ck, const char *option)
{
	if (!ck || !option)
		return false;
	ssize_t i = find_option(ck->c, option, strlen(option));
	return i >= 0 && (!spec_node_is_null(ck->c->found[i].value) ||
	                  !spec_node_is_null(ck->c->found[i].fvalue));
}

/* Runs the plugin's check on the filled config; `found` is still valid. */
static void run_check(struct ctx *c, const struct cv_plugin *plugin, const struct cv_host_api *api)
{
	struct cv_check ck = {.c = c};
	int rc = plugin->check(&ck, api, c->data);
	if (rc < 0 && !ck.errors)
		error_at(c, NULL, "plugin %s refused the options (%s) without saying why",
		         plugin->name, cv_error_name(rc));
}

static int fill(const char *file, const struct spec_node *stage, const struct cv_option *options,
                size_t config_size, const char *const *reserved, unsigned flags,
                const struct cv_plugin *plugin, const struct cv_host_api *api, struct diag *diag,
                struct options_config *out)
{
	out->data = NULL;
	out->arena = NULL;
	struct ctx c = {.file = file ? file : "<input>",
	                .diag = diag,
	                .stage = stage,
	                .opts = options,
	                .nopts = options_count(options),
	                .flags = flags};
	if (!check_schema(&c, config_size))
		return -1;
	c.mem = calloc(1, sizeof *c.mem);
	c.found = calloc(c.nopts ? c.nopts : 1, sizeof *c.found);
	c.data = c.mem ? mem_alloc(c.mem, config_size) : NULL;
	if (!c.mem || !c.found || !c.data) {
		oom(&c);
		goto fail;
	}
	if (stage && stage->type != SPEC_MAP && !spec_node_is_null(stage)) {
		error_at(&c, stage, "expected a map of options, got a %s",
		         spec_node_type_name(stage->type));
		goto fail;
	}
	if (stage && stage->type == SPEC_MAP)
		walk(&c, stage, "", reserved);
	for (size_t i = 0; i < c.nopts; i++)
		fill_option(&c, &c.opts[i], &c.found[i]);
	if (!c.failed && plugin && plugin->check)
		run_check(&c, plugin, api);
	if (c.failed)
		goto fail;
	free(c.found);
	out->data = c.data;
	out->arena = c.mem;
	return 0;
fail:
	free(c.found);
	mem_free(c.mem);
	return -1;
}

int options_fill(const char *file, const struct spec_node *stage, const struct cv_option *options,
                 size_t config_size, const char *const *reserved, struct diag *diag,
                 struct options_config *out)
{
	return fill(file, stage, options, config_size, reserved, 0, NULL, NULL, diag, out);
}

int options_fill_plugin(const char *file, const struct spec_node *stage,
                        const struct cv_plugin *plugin, const struct cv_host_api *api,
                        const char *const *reserved, unsigned flags, struct diag *diag,
                        struct options_config *out)
{
	static const struct cv_option none[] = {{0}};
	return fill(file, stage, plugin->options ? plugin->options : none, plugin->config_size,
	            reserved, flags, plugin, api, diag, out);
}

void options_config_free(struct options_config *cfg)
{
	if (!cfg)
		return;
	mem_free(cfg->arena); /* data lives in the arena too */
	cfg->arena = NULL;
	cfg->data = NULL;
}

/* ------------------------------------------------------------------------ */
/* Documentation                                                             */
/* ------------------------------------------------------------------------ */

enum { COL_NAME, COL_TYPE, COL_DEFAULT, COL_FLAGS, COL_VALUES, COL_DESC, NCOLS };

static void option_columns(const struct cv_option *o, char cols[NCOLS][256])
{
	snprintf(cols[COL_NAME], 256, "%s", o->name);
	snprintf(cols[COL_TYPE], 256, "%s", options_type_name(o->type));
	if (!o->default_value)
		snprintf(cols[COL_DEFAULT], 256, "-");
	else if (!*o->default_value)
		snprintf(cols[COL_DEFAULT], 256, "\"\"");
	else
		snprintf(cols[COL_DEFAULT], 256, "%s", o->default_value);
	const char *req = (o->flags & CV_OPT_REQUIRED) ? "required" : "";
	const char *sec = (o->flags & CV_OPT_SECRET) ? "secret" : "";
	snprintf(cols[COL_FLAGS], 256, "%s%s%s", req, *req && *sec ? "," : "", sec);
	if (!*cols[COL_FLAGS])
		snprintf(cols[COL_FLAGS], 256, "-");
	cols[COL_VALUES][0] = '\0';
	if (o->type == CV_OPT_ENUM) {
		join_enum(cols[COL_VALUES], 256, o->enum_values, "|");
	} else if (has_min(o) || has_max(o)) {
		char lo[64], hi[64];
		format_bound(lo, sizeof lo, o, o->min);
		format_bound(hi, sizeof hi, o, o->max);
		bool lo_ex = o->flags & CV_OPT_MIN_EXCLUSIVE,
		     hi_ex = o->flags & CV_OPT_MAX_EXCLUSIVE;
		if (has_min(o) && has_max(o) && !lo_ex && !hi_ex)
			snprintf(cols[COL_VALUES], 256, "%s..%s", lo, hi);
		else
			snprintf(cols[COL_VALUES], 256, "%s%s%s%s%s",
			         has_min(o) ? (lo_ex ? "> " : ">= ") : "", has_min(o) ? lo : "",
			         has_min(o) && has_max(o) ? ", " : "",
			         has_max(o) ? (hi_ex ? "< " : "<= ") : "", has_max(o) ? hi : "");
	} else if (o->flags & CV_OPT_NONEMPTY) {
		snprintf(cols[COL_VALUES], 256, "not empty");
	}
	if (!*cols[COL_VALUES])
		snprintf(cols[COL_VALUES], 256, "-");
	if (o->flags & CV_OPT_SECRET)
		snprintf(cols[COL_DESC], 256, "%s (or %s_file: read from a file)",
		         o->description ? o->description : "", o->name);
	else
		snprintf(cols[COL_DESC], 256, "%s", o->description ? o->description : "");
}

void options_print(FILE *out, const struct cv_option *options)
{
	static const char *const heads[NCOLS] = {"OPTION", "TYPE",   "DEFAULT",
	                                         "FLAGS",  "VALUES", "DESCRIPTION"};
	size_t n = options_count(options);
	if (n == 0) {
		fprintf(out, "(no options)\n");
		return;
	}
	size_t width[NCOLS];
	for (int k = 0; k < NCOLS; k++)
		width[k] = strlen(heads[k]);
	char cols[NCOLS][256];
	for (size_t i = 0; i < n; i++) {
		option_columns(&options[i], cols);
		for (int k = 0; k < NCOLS; k++)
			if (strlen(cols[k]) > width[k])
				width[k] = strlen(cols[k]);
	}
	char line[NCOLS * 258];
	for (size_t i = 0; i <= n; i++) {
		if (i == 0) {
			for (int k = 0; k < NCOLS; k++)
				snprintf(cols[k], sizeof cols[k], "%s", heads[k]);
		} else {
			option_columns(&options[i - 1], cols);
		}
		size_t o = 0;
		for (int k = 0; k < NCOLS; k++) {
			int w = snprintf(line + o, sizeof line - o, "%-*s  ",
			                 k < NCOLS - 1 ? (int)width[k] : 0, cols[k]);
			if (w > 0)
				o += (size_t)w < sizeof line - o ? (size_t)w : sizeof line - o - 1;
		}
		while (o > 0 && line[o - 1] == ' ') /* no padding after the last column */
			o--;
		fprintf(out, "%.*s\n", (int)o, line);
	}
}
