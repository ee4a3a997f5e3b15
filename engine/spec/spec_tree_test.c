/* spec_tree_test.c - YAML loading, positions, ${VAR} expansion, hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "spec/spec_tree.h"

static struct spec_doc *parse_ok(const char *text)
{
	struct diag d = {0};
	struct spec_doc *doc = NULL;
	int rc = spec_doc_parse("t.yaml", text, strlen(text), &d, &doc);
	if (rc != 0)
		fail_msg("parse failed: %s", d.last);
	assert_int_equal(d.errors, 0);
	assert_non_null(doc);
	return doc;
}

/* Parses `len` bytes expecting failure; returns the error count and leaves
 * the last message in *d. */
static int parse_fail_n(const char *text, size_t len, struct diag *d)
{
	struct spec_doc *doc = (struct spec_doc *)1;
	memset(d, 0, sizeof *d);
	int rc = spec_doc_parse("t.yaml", text, len, d, &doc);
	assert_int_equal(rc, -1);
	assert_null(doc);
	assert_true(d->errors >= 1);
	return d->errors;
}

/* Expects exactly `errors` errors, the last being `last`. */
static void expect_error(const char *text, int errors, const char *last)
{
	struct diag d;
	int n = parse_fail_n(text, strlen(text), &d);
	assert_string_equal(d.last, last);
	assert_int_equal(n, errors);
}

static void assert_scalar(const struct spec_node *n, const char *text, int line, int column)
{
	assert_non_null(n);
	assert_int_equal(n->type, SPEC_SCALAR);
	assert_string_equal(n->scalar, text);
	assert_int_equal(n->scalar_len, strlen(text));
	assert_int_equal(n->line, line);
	assert_int_equal(n->column, column);
}

static void test_tree_and_positions(void **state)
{
	(void)state;
	struct spec_doc *doc = parse_ok("version: 1\n"
	                                "engine:\n"
	                                "  log: { level: info, format: \"json\" }\n"
	                                "  list:\n"
	                                "    - a\n"
	                                "    - 'b c'\n"
	                                "  empty:\n"
	                                "  block: |\n"
	                                "    text\n"
	                                "# comment ${NOT_EXPANDED\n"
	                                "uni: \"\xc3\xa9t\xc3\xa9\" # UTF-8 is fine\n");
	assert_string_equal(doc->file, "t.yaml");
	const struct spec_node *root = doc->root;
	assert_int_equal(root->type, SPEC_MAP);
	assert_int_equal(root->line, 1);
	assert_int_equal(root->column, 1);
	assert_int_equal(root->npairs, 3);
	assert_scalar(root->pairs[0].key, "version", 1, 1);
	assert_scalar(spec_map_get(root, "version"), "1", 1, 10);
	assert_false(spec_map_get(root, "version")->quoted);

	const struct spec_node *engine = spec_map_get(root, "engine");
	assert_int_equal(engine->type, SPEC_MAP);
	assert_int_equal(engine->line, 3);
	assert_int_equal(engine->column, 3);
	const struct spec_node *log = spec_map_get(engine, "log");
	assert_int_equal(log->type, SPEC_MAP);
	assert_int_equal(log->line, 3);
	assert_int_equal(log->column, 8);
	assert_scalar(spec_map_get(log, "level"), "info", 3, 17);
	assert_scalar(spec_map_get(log, "format"), "json", 3, 31);
	assert_true(spec_map_get(log, "format")->quoted);

	const struct spec_node *list = spec_map_get(engine, "list");
	assert_int_equal(list->type, SPEC_SEQ);
	assert_int_equal(list->nitems, 2);
	assert_scalar(list->items[0], "a", 5, 7);
	assert_scalar(list->items[1], "b c", 6, 7);
	assert_true(list->items[1]->quoted);

	const struct spec_node *empty = spec_map_get(engine, "empty");
	assert_int_equal(empty->type, SPEC_SCALAR);
	assert_string_equal(empty->scalar, "");
	assert_true(spec_node_is_null(empty));
	assert_scalar(spec_map_get(engine, "block"), "text\n", 8, 10);
	assert_true(spec_map_get(engine, "block")->quoted);
	assert_false(spec_node_is_null(spec_map_get(engine, "block")));
	assert_scalar(spec_map_get(root, "uni"), "\xc3\xa9t\xc3\xa9", 11, 6);

	assert_null(spec_map_get(root, "missing"));
	assert_null(spec_map_get(list, "a")); /* not a map */
	assert_null(spec_map_get(NULL, "a"));
	assert_string_equal(spec_node_type_name(SPEC_MAP), "map");
	assert_string_equal(spec_node_type_name(SPEC_SEQ), "sequence");
	assert_string_equal(spec_node_type_name(SPEC_SCALAR), "scalar");
	spec_doc_free(doc);
}

static void test_null_scalars(void **state)
{
	(void)state;
	struct spec_doc *doc = parse_ok("a: ~\nb: null\nc: NULL\nd: \"\"\ne: 'null'\nf: nul\n");
	assert_true(spec_node_is_null(spec_map_get(doc->root, "a")));
	assert_true(spec_node_is_null(spec_map_get(doc->root, "b")));
	assert_true(spec_node_is_null(spec_map_get(doc->root, "c")));
	assert_false(spec_node_is_null(spec_map_get(doc->root, "d")));
	assert_false(spec_node_is_null(spec_map_get(doc->root, "e")));
	assert_false(spec_node_is_null(spec_map_get(doc->root, "f")));
	assert_false(spec_node_is_null(doc->root));
	assert_true(spec_node_is_null(NULL));
	spec_doc_free(doc);
}

static void test_empty_documents(void **state)
{
	(void)state;
	static const char *const empty[] = {"", "\n\n", "# only a comment\n", "---\n",
	                                    "--- # c\n...\n"};
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		struct spec_doc *doc = parse_ok(empty[i]);
		assert_null(doc->root);
		spec_doc_free(doc);
	}
	struct spec_doc *doc = parse_ok("--- \"\"\n"); /* an explicit empty string */
	assert_non_null(doc->root);
	spec_doc_free(doc);
	doc = parse_ok("just text\n");
	assert_scalar(doc->root, "just text", 1, 1);
	spec_doc_free(doc);
}

static void test_aliases_are_copies(void **state)
{
	(void)state;
	struct spec_doc *doc = parse_ok("base: &b { x: 1, y: [a, b] }\n"
	                                "one: *b\n"
	                                "s: &s hello\n"
	                                "two: *s\n"
	                                "s2: &s again\n" /* redefinition: the latest wins */
	                                "three: *s\n");
	const struct spec_node *base = spec_map_get(doc->root, "base");
	const struct spec_node *one = spec_map_get(doc->root, "one");
	assert_int_equal(one->type, SPEC_MAP);
	assert_ptr_not_equal(one, base);
	assert_int_equal(one->line, 2); /* the copy stands where the alias is */
	assert_int_equal(one->column, 6);
	assert_int_equal(one->npairs, 2);
	assert_ptr_not_equal(spec_map_get(one, "y"), spec_map_get(base, "y"));
	assert_string_equal(spec_map_get(one, "y")->items[1]->scalar, "b");
	assert_scalar(spec_map_get(doc->root, "two"), "hello", 4, 6);
	assert_scalar(spec_map_get(doc->root, "three"), "again", 6, 8);
	spec_doc_free(doc);

	/* An alias may be a key. */
	doc = parse_ok("k: &k name\n*k : v\n");
	assert_scalar(spec_map_get(doc->root, "name"), "v", 2, 6);
	spec_doc_free(doc);
}

static void test_interpolation(void **state)
{
	(void)state;
	setenv("CV_T_HOST", "kafka:9092", 1);
	setenv("CV_T_EMPTY", "", 1);
	unsetenv("CV_T_UNSET");
	struct spec_doc *doc = parse_ok("a: ${CV_T_HOST}\n"
	                                "b: \"x-${CV_T_HOST}-y\"\n"
	                                "c: ${CV_T_UNSET:-dflt}\n"
	                                "d: ${CV_T_EMPTY:-dflt}\n"
	                                "e: ${CV_T_EMPTY}\n"
	                                "f: $${CV_T_HOST} costs $5 $\n"
	                                "g: ${CV_T_UNSET:-}\n"
	                                "${CV_T_HOST}: key\n"
	                                "h: [ '${CV_T_HOST}', plain ]\n"
	                                "i: ${CV_T_UNSET:-a b:c}\n");
	const struct spec_node *r = doc->root;
	assert_scalar(spec_map_get(r, "a"), "kafka:9092", 1, 4);
	assert_true(spec_map_get(r, "a")->interpolated);
	assert_string_equal(spec_map_get(r, "b")->scalar, "x-kafka:9092-y");
	assert_string_equal(spec_map_get(r, "c")->scalar, "dflt");
	assert_true(spec_map_get(r, "c")->interpolated);
	assert_string_equal(spec_map_get(r, "d")->scalar, "dflt");
	assert_string_equal(spec_map_get(r, "e")->scalar, "");
	assert_true(spec_map_get(r, "e")->interpolated);
	assert_false(spec_node_is_null(spec_map_get(r, "e")));
	assert_string_equal(spec_map_get(r, "f")->scalar, "${CV_T_HOST} costs $5 $");
	assert_false(spec_map_get(r, "f")->interpolated);
	assert_string_equal(spec_map_get(r, "g")->scalar, "");
	/* keys are not expanded */
	assert_string_equal(spec_map_get(r, "${CV_T_HOST}")->scalar, "key");
	assert_string_equal(spec_map_get(r, "h")->items[0]->scalar, "kafka:9092");
	assert_true(spec_map_get(r, "h")->items[0]->interpolated);
	assert_false(spec_map_get(r, "h")->items[1]->interpolated);
	assert_string_equal(spec_map_get(r, "i")->scalar, "a b:c");
	spec_doc_free(doc);
	unsetenv("CV_T_HOST");
	unsetenv("CV_T_EMPTY");
}

static void test_interpolation_errors(void **state)
{
	(void)state;
	unsetenv("CV_T_UNSET");
	unsetenv("CV_T_UNSET2");
	expect_error("a: 1\nb: \"${CV_T_UNSET}\"\n", 1,
	             "t.yaml:2:4: error: environment variable CV_T_UNSET is not set (use "
	             "${CV_T_UNSET:-default} to give a default)");
	/* every unset variable is reported */
	expect_error("a: ${CV_T_UNSET}\nb:\n  - x ${CV_T_UNSET2}\n", 2,
	             "t.yaml:3:5: error: environment variable CV_T_UNSET2 is not set (use "
	             "${CV_T_UNSET2:-default} to give a default)");
	expect_error("a: ${}\n", 1,
	             "t.yaml:1:4: error: malformed variable reference: \"${\" must be followed "
	             "by a name ([A-Za-z_][A-Za-z0-9_]*)");
	expect_error("a: x\nb: abc${1X}\n", 1,
	             "t.yaml:2:4: error: malformed variable reference: \"${\" must be followed "
	             "by a name ([A-Za-z_][A-Za-z0-9_]*)");
	expect_error("a: ${HOME\n", 1,
	             "t.yaml:1:4: error: malformed variable reference: expected \"}\" or "
	             "\":-default}\" after \"${HOME\"");
	expect_error("a: ${HOME-x}\n", 1,
	             "t.yaml:1:4: error: malformed variable reference: expected \"}\" or "
	             "\":-default}\" after \"${HOME\"");
	expect_error("a: ${HOME:-x\n", 1,
	             "t.yaml:1:4: error: malformed variable reference: \"${HOME:-\" has no "
	             "closing \"}\"");
	expect_error("a: '${'\n", 1,
	             "t.yaml:1:4: error: malformed variable reference: \"${\" must be followed "
	             "by a name ([A-Za-z_][A-Za-z0-9_]*)");
	/* a long name is refused without overflowing anything */
	char text[600] = "a: ${";
	memset(text + 5, 'A', 300);
	strcpy(text + 305, "}\n");
	expect_error(text, 1,
	             "t.yaml:1:4: error: malformed variable reference: name longer than 255 "
	             "characters");
}

static void test_syntax_errors(void **state)
{
	(void)state;
	expect_error("a: [1, 2\nb: 3\n", 1,
	             "t.yaml:2:2: error: did not find expected ',' or ']' (while parsing a flow "
	             "sequence at line 1, column 4)");
	expect_error("a: 1\n b: 2\n", 1,
	             "t.yaml:2:3: error: mapping values are not allowed in this context");
	expect_error("a: \"unterminated\n", 1,
	             "t.yaml:2:1: error: found unexpected end of stream (while scanning a "
	             "quoted scalar at line 1, column 4)");
	expect_error("a:\n\tb: 1\n", 1,
	             "t.yaml:2:1: error: found character that cannot start any token (while "
	             "scanning for the next token at line 2, column 1); tabs are not allowed "
	             "here, indent with spaces");
	expect_error("a: \x01\n", 1, "t.yaml:1:4: error: control characters are not allowed");
	expect_error("a: 1\n- b\n", 1,
	             "t.yaml:2:1: error: did not find expected key (while parsing a block "
	             "mapping at line 1, column 1)");
	expect_error("a: 1\nb\n", 1,
	             "t.yaml:3:1: error: could not find expected ':' (while scanning a simple "
	             "key at line 2, column 1)");
}

static void test_binary_and_utf8(void **state)
{
	(void)state;
	struct diag d;
	parse_fail_n("a: 1\nb: x\0y\n", 11, &d);
	assert_string_equal(d.last, "t.yaml:2:5: error: not a text file (NUL byte)");
	/* columns count characters: "é" is one */
	parse_fail_n("a: \xc3\xa9\xff\n", 7, &d);
	assert_string_equal(d.last, "t.yaml:1:5: error: invalid UTF-8 (byte 0xFF)");
	expect_error("a: b\nc: \xc0\xaf\n", 1, "t.yaml:2:4: error: invalid UTF-8 (byte 0xC0)");
	expect_error("k: \xed\xa0\x80\n", 1, "t.yaml:1:4: error: invalid UTF-8 (byte 0xED)");
	expect_error("k: \xe2\x82\n", 1, "t.yaml:1:4: error: invalid UTF-8 (byte 0xE2)");
	expect_error("k: \xf4\x90\x80\x80\n", 1, "t.yaml:1:4: error: invalid UTF-8 (byte 0xF4)");
	/* a byte order mark is not counted as a column */
	expect_error("\xef\xbb\xbf"
	             "a: \xfe\n",
	             1, "t.yaml:1:4: error: invalid UTF-8 (byte 0xFE)");
	/* CRLF line ends count one line */
	expect_error("a: 1\r\nb: 2\r\na: 3\r\n", 1,
	             "t.yaml:3:1: error: duplicate key \"a\" (first at line 1, column 1)");
	/* UTF-16 is not accepted */
	parse_fail_n("\xff\xfe"
	             "a\0:\0",
	             6, &d);
	assert_string_equal(d.last, "t.yaml:1:1: error: invalid UTF-8 (byte 0xFF)");
}

static void test_structure_errors(void **state)
{
	(void)state;
	expect_error("a: 1\nb:\n  x: 1\n  x: 2\na: 3\n", 2,
	             "t.yaml:5:1: error: duplicate key \"a\" (first at line 1, column 1)");
	expect_error("{ \"a\\tb\": 1, 'a\tb': 2 }\n", 1,
	             "t.yaml:1:14: error: duplicate key \"a\\x09b\" (first at line 1, column 3)");
	expect_error("a: 1\n? [x, y]\n: 2\n", 1,
	             "t.yaml:2:3: error: map keys must be scalars, not a sequence");
	expect_error("{ {x: 1}: 2, ok: 3 }\n", 1,
	             "t.yaml:1:3: error: map keys must be scalars, not a map");
	expect_error("a: 1\n---\nb: 2\n", 1,
	             "t.yaml:2:1: error: more than one YAML document in the file (one spec per "
	             "file)");
	expect_error("a: [*nope]\n", 1, "t.yaml:1:5: error: undefined alias *nope");
	expect_error("a: &a [1, *a]\n", 1,
	             "t.yaml:1:11: error: alias *a refers to a node that contains it");
	/* errors after an alias error are still found */
	expect_error("a: *x\nb: 1\nb: 2\n", 2,
	             "t.yaml:3:1: error: duplicate key \"b\" (first at line 2, column 1)");
}

static void test_depth_limit(void **state)
{
	(void)state;
	char text[400];
	/* 64 levels are fine, 65 are not */
	memset(text, '[', 64);
	memset(text + 64, ']', 64);
	strcpy(text + 128, "\n");
	struct spec_doc *doc = parse_ok(text);
	spec_doc_free(doc);
	memset(text, '[', 65);
	memset(text + 65, ']', 65);
	strcpy(text + 130, "\n");
	expect_error(text, 1, "t.yaml:1:65: error: nesting too deep (limit 64 levels)");

	/* deep through an alias: 40 levels aliased inside 30 */
	size_t o = 0;
	o += (size_t)sprintf(text + o, "a: &d ");
	memset(text + o, '[', 40);
	o += 40;
	memset(text + o, ']', 40);
	o += 40;
	o += (size_t)sprintf(text + o, "\nb: ");
	memset(text + o, '[', 30);
	o += 30;
	o += (size_t)sprintf(text + o, "*d");
	memset(text + o, ']', 30);
	o += 30;
	strcpy(text + o, "\n");
	expect_error(text, 1, "t.yaml:2:34: error: alias *d nests too deep (limit 64 levels)");

	/* an empty collection takes a level too */
	o = (size_t)sprintf(text, "a: &e []\nb: ");
	memset(text + o, '[', 63);
	o += 63;
	o += (size_t)sprintf(text + o, "*e");
	memset(text + o, ']', 63);
	o += 63;
	strcpy(text + o, "\n");
	expect_error(text, 1, "t.yaml:2:67: error: alias *e nests too deep (limit 64 levels)");
	text[3 + 9 + 62] = ' '; /* one level less fits: "[" before "*e" blanked */
	text[3 + 9 + 62 + 2 + 63 - 1] = ' ';
	struct spec_doc *ok = parse_ok(text);
	spec_doc_free(ok);
}

static void test_node_limit(void **state)
{
	(void)state;
	/* a flat list of 100000 nodes: the list itself plus 99999 items fits */
	size_t n = SPEC_MAX_NODES;
	char *text = malloc(n * 2 + 16);
	assert_non_null(text);
	size_t o = 0;
	text[o++] = '[';
	for (size_t i = 0; i < n - 1; i++) {
		text[o++] = '1';
		text[o++] = ',';
	}
	text[o - 1] = ']';
	text[o++] = '\n';
	struct diag d = {0};
	struct spec_doc *doc;
	assert_int_equal(spec_doc_parse("t.yaml", text, o, &d, &doc), 0);
	assert_int_equal(doc->root->nitems, n - 1);
	spec_doc_free(doc);
	/* one more item is too many */
	o = 0;
	text[o++] = '[';
	for (size_t i = 0; i < n; i++) {
		text[o++] = '1';
		text[o++] = ',';
	}
	text[o - 1] = ']';
	parse_fail_n(text, o, &d);
	assert_string_equal(d.last, "t.yaml:1:200000: error: document has too many nodes (limit "
	                            "100000)");
	free(text);
}

static void test_alias_bomb(void **state)
{
	(void)state;
	/* "billion laughs": 9 levels of 9 aliases each would be 9^9 nodes */
	char text[1024];
	size_t o = (size_t)sprintf(text, "a: &a [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", "
	                                 "\"lol\", \"lol\", \"lol\", \"lol\"]\n");
	for (char c = 'b'; c <= 'i'; c++) {
		o += (size_t)sprintf(text + o, "%c: &%c [", c, c);
		for (int k = 0; k < 9; k++)
			o += (size_t)sprintf(text + o, "%s*%c", k ? ", " : "", c - 1);
		o += (size_t)sprintf(text + o, "]\n");
	}
	/* a..e hold 74732 nodes; the first *e in f would pass 100000 */
	expect_error(text, 1,
	             "t.yaml:6:8: error: alias *e expands to too many nodes (limit "
	             "100000)");
}

static void test_load(void **state)
{
	(void)state;
	struct diag d = {0};
	struct spec_doc *doc = (struct spec_doc *)1;
	assert_int_equal(spec_doc_load("/nonexistent/spec.yaml", &d, &doc), -1);
	assert_null(doc);
	assert_string_equal(
	        d.last, "/nonexistent/spec.yaml: error: cannot read: No such file or directory");
	assert_int_equal(spec_doc_load("/", &d, &doc), -1);
	assert_string_equal(d.last, "/: error: cannot read: Is a directory");

	char path[] = "/tmp/spec_tree_test_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char body[] = "pipelines:\n  p: { x: 1 }\nbad: [\n";
	assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
	memset(&d, 0, sizeof d);
	assert_int_equal(spec_doc_load(path, &d, &doc), -1);
	char want[200];
	snprintf(want, sizeof want,
	         "%s:4:1: error: did not find expected node content (while parsing a flow node "
	         "at line 4, column 1)",
	         path);
	assert_string_equal(d.last, want);

	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, body, 24, 0), 24);
	memset(&d, 0, sizeof d);
	assert_int_equal(spec_doc_load(path, &d, &doc), 0);
	assert_string_equal(doc->file, path);
	assert_int_equal(spec_map_get(spec_map_get(doc->root, "pipelines"), "p")->line, 2);
	spec_doc_free(doc);

	/* more than 16 MiB is refused (a sparse file reads as NULs, but the size
	 * check comes first) */
	assert_int_equal(ftruncate(fd, (16 << 20) + 1), 0);
	assert_int_equal(spec_doc_load(path, &d, &doc), -1);
	snprintf(want, sizeof want, "%s: error: file too large (limit 16 MiB)", path);
	assert_string_equal(d.last, want);
	close(fd);
	unlink(path);
}

/* xorshift: a fixed, portable pseudo-random sequence */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void parse_any(const char *text, size_t len)
{
	struct diag d = {0};
	struct spec_doc *doc = NULL;
	int rc = spec_doc_parse("g.yaml", text, len, &d, &doc);
	if (rc == 0) {
		assert_int_equal(d.errors, 0);
		spec_doc_free(doc);
	} else {
		assert_int_equal(rc, -1);
		assert_null(doc);
		assert_true(d.errors > 0);
	}
}

static void test_garbage(void **state)
{
	(void)state;
	static const char alphabet[] = "ab:-[]{},&*!|>'\"#%@`?$ \n\t\\01.~";
	char buf[256];
	setenv("CV_T_G", "v", 1);
	for (int i = 0; i < 3000; i++) {
		size_t len = rng() % sizeof buf;
		bool raw = i % 3 == 0;
		for (size_t k = 0; k < len; k++)
			buf[k] = raw ? (char)rng() : alphabet[rng() % (sizeof alphabet - 1)];
		parse_any(buf, len);
	}

	static const char valid[] = "version: 1\n"
	                            "engine:\n"
	                            "  http: { listen: \"127.0.0.1:8000\" }\n"
	                            "  shutdown_timeout: 10s\n"
	                            "x: &x { a: [1, 2, ${CV_T_G:-d}], b: 'q' }\n"
	                            "pipelines:\n"
	                            "  p:\n"
	                            "    source: { plugin: sim_speed, lines: 5 }\n"
	                            "    transforms:\n"
	                            "      - { plugin: anomaly, field: speed_ms, y: *x }\n"
	                            "    sink: { plugin: influxdb, url: \"https://h:8086\",\n"
	                            "            tls: { ca_file: /etc/ca.pem } }\n";
	char m[sizeof valid + 64];
	for (int i = 0; i < 3000; i++) {
		size_t len = sizeof valid - 1;
		memcpy(m, valid, len);
		int edits = 1 + (int)(rng() % 4);
		for (int e = 0; e < edits; e++) {
			size_t at = rng() % (len + 1);
			switch (rng() % 4) {
			case 0: /* flip a byte */
				if (at < len)
					m[at] = (char)rng();
				break;
			case 1: /* insert a YAML character */
				if (len + 1 < sizeof m) {
					memmove(m + at + 1, m + at, len - at);
					m[at] = alphabet[rng() % (sizeof alphabet - 1)];
					len++;
				}
				break;
			case 2: /* delete a byte */
				if (at < len) {
					memmove(m + at, m + at + 1, len - at - 1);
					len--;
				}
				break;
			default: /* truncate */ len = at; break;
			}
		}
		parse_any(m, len);
	}
	unsetenv("CV_T_G");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_tree_and_positions),
	        cmocka_unit_test(test_null_scalars),
	        cmocka_unit_test(test_empty_documents),
	        cmocka_unit_test(test_aliases_are_copies),
	        cmocka_unit_test(test_interpolation),
	        cmocka_unit_test(test_interpolation_errors),
	        cmocka_unit_test(test_syntax_errors),
	        cmocka_unit_test(test_binary_and_utf8),
	        cmocka_unit_test(test_structure_errors),
	        cmocka_unit_test(test_depth_limit),
	        cmocka_unit_test(test_node_limit),
	        cmocka_unit_test(test_alias_bomb),
	        cmocka_unit_test(test_load),
	        cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
