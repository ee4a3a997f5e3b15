/* spec_fuzz.c - libFuzzer target: YAML loading, then option filling against
 * a small schema that uses every option type. Any input must end in either
 * a tree or diagnostics, never a crash, leak or hang. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/options.h"
#include "spec/spec_tree.h"
#include "base/units.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cfg {
	const char *s;
	int64_t i;
	bool b;
	double d;
	uint64_t size;
	int64_t dur;
	int e;
	struct cv_string_list list;
	struct cv_string_map map;
	const char *token;
	const char *nested;
	int64_t nested_n;
};

static const char *const modes[] = {"mark", "drop_normal", NULL};

static const struct cv_option schema[] = {
        {.name = "s",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED,
         .offset = offsetof(struct cfg, s)},
        {.name = "i",
         .type = CV_OPT_INT,
         .flags = CV_OPT_HAS_MIN | CV_OPT_HAS_MAX,
         .min = -5,
         .max = 1e6,
         .default_value = "7",
         .offset = offsetof(struct cfg, i)},
        {.name = "b",
         .type = CV_OPT_BOOL,
         .default_value = "on",
         .offset = offsetof(struct cfg, b)},
        {.name = "d",
         .type = CV_OPT_DOUBLE,
         .flags = CV_OPT_HAS_MIN,
         .min = 0.5,
         .default_value = "3.0",
         .offset = offsetof(struct cfg, d)},
        {.name = "size",
         .type = CV_OPT_SIZE,
         .flags = CV_OPT_HAS_MAX,
         .max = 1 << 30,
         .default_value = "4MiB",
         .offset = offsetof(struct cfg, size)},
        {.name = "dur",
         .type = CV_OPT_DURATION,
         .flags = CV_OPT_HAS_MIN,
         .min = 1e6,
         .default_value = "1s",
         .offset = offsetof(struct cfg, dur)},
        {.name = "mode",
         .type = CV_OPT_ENUM,
         .enum_values = modes,
         .default_value = "mark",
         .offset = offsetof(struct cfg, e)},
        {.name = "list",
         .type = CV_OPT_LIST,
         .default_value = "[a, b]",
         .offset = offsetof(struct cfg, list)},
        {.name = "map",
         .type = CV_OPT_MAP,
         .default_value = "{k: v}",
         .offset = offsetof(struct cfg, map)},
        {.name = "token",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_SECRET,
         .offset = offsetof(struct cfg, token)},
        {.name = "tls.ca_file", .type = CV_OPT_STRING, .offset = offsetof(struct cfg, nested)},
        {.name = "batch.max", .type = CV_OPT_INT, .offset = offsetof(struct cfg, nested_n)},
        {0},
};

static const char *const reserved[] = {"plugin", "name", NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("FUZZ_VAR", "value", 1);
	setenv("FUZZ_EMPTY", "", 1);
	return 0;
}

static void fill(const struct spec_node *stage)
{
	/* token_file would read whatever path the input names, maybe a FIFO
	 * that blocks forever: not what this target is about. */
	if (spec_map_get(stage, "token_file"))
		return;
	struct diag d = {0};
	struct options_config cfg;
	int rc = options_fill("fuzz.yaml", stage, schema, sizeof(struct cfg), reserved, &d, &cfg);
	if ((rc == 0) != (d.errors == 0))
		abort(); /* failing silently, or succeeding with errors */
	options_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The unit parsers see the first line as a C string. */
	char word[64];
	size_t n = 0;
	while (n < size && n < sizeof word - 1 && data[n] != '\n')
		n++;
	memcpy(word, data, n);
	word[n] = '\0';
	int64_t i64;
	uint64_t u64;
	double d;
	bool b;
	units_parse_duration(word, &i64);
	units_parse_size(word, &u64);
	units_parse_int(word, &i64);
	units_parse_double(word, &d);
	units_parse_bool(word, &b);

	struct diag diag = {0};
	struct spec_doc *doc = NULL;
	int rc = spec_doc_parse("fuzz.yaml", (const char *)data, size, &diag, &doc);
	if (rc != 0) {
		if (doc || diag.errors == 0)
			abort();
		return 0;
	}
	if (diag.errors)
		abort();
	const struct spec_node *root = doc->root;
	fill(root);
	/* Also each map below the root, as the engine does for stages. */
	if (root && root->type == SPEC_MAP)
		for (size_t k = 0; k < root->npairs && k < 8; k++)
			if (root->pairs[k].value->type == SPEC_MAP)
				fill(root->pairs[k].value);
	if (root && root->type == SPEC_SEQ)
		for (size_t k = 0; k < root->nitems && k < 8; k++)
			fill(root->items[k]);
	spec_doc_free(doc);
	return 0;
}
