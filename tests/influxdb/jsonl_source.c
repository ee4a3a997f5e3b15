/*
 * jsonl_source.c - a test-only source: emits the records of a JSON-lines
 * file (one record per line, as record_decode.h reads JSON), then ends.
 * Lets the influxdb tests send exact, hostile values through a real
 * pipeline. A line that does not decode goes to the dead letter.
 *
 * Not installed; specs load it by path. Reads the whole file at init: test
 * files are small.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <conveyor/plugin.h>

#include "record_decode.h"

struct jsonl_config {
	const char *path;
};

struct jsonl {
	struct cv_stage *stage;
	const struct cv_host_api *api;
	char *data;
	size_t len;
	size_t pos;
};

static const struct cv_option jsonl_options[] = {
        {"path", CV_OPT_STRING, CV_OPT_REQUIRED, NULL, 0, 0, NULL,
         offsetof(struct jsonl_config, path), "the JSON-lines file to read"},
        {0},
};

static int jsonl_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                      void **state)
{
	const struct jsonl_config *cfg = config;
	FILE *f = fopen(cfg->path, "rb");
	if (!f) {
		api->log(stage, CV_LOG_ERROR, "cannot open %s", cfg->path);
		return CV_ECONFIG;
	}
	struct jsonl *s = calloc(1, sizeof *s);
	size_t cap = 1 << 16;
	char *data = malloc(cap);
	size_t len = 0, n;
	while (data && s && (n = fread(data + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			char *grown = realloc(data, cap * 2);
			if (!grown) {
				free(data);
				data = NULL;
				break;
			}
			data = grown;
			cap *= 2;
		}
	}
	fclose(f);
	if (!s || !data) {
		free(s);
		free(data);
		return CV_ENOMEM;
	}
	s->stage = stage;
	s->api = api;
	s->data = data;
	s->len = len;
	*state = s;
	return 0;
}

static void jsonl_destroy(void *state)
{
	struct jsonl *s = state;
	if (s)
		free(s->data);
	free(s);
}

static int jsonl_read(void *state, struct cv_batch *batch)
{
	struct jsonl *s = state;
	while (s->pos < s->len) {
		const char *line = s->data + s->pos;
		const char *nl = memchr(line, '\n', s->len - s->pos);
		size_t n = nl ? (size_t)(nl - line) : s->len - s->pos;
		if (n == 0) {
			s->pos += 1;
			continue;
		}
		struct cv_record *r = cv_batch_record_new(batch);
		if (!r)
			return 0; /* batch full: the rest next time */
		const char *reason = NULL;
		int rc =
		        cv_record_decode_json(s->api, batch, r, line, n, s->api->now_ns(), &reason);
		if (rc == CV_ENOMEM) {
			batch->count--;
			batch->live--;
			if (batch->count == 0) {
				s->api->dead_letter(s->stage, line, n, NULL, "record too large");
				s->pos += n + (nl != NULL);
			}
			return 0;
		}
		if (rc != 0) {
			batch->count--;
			batch->live--;
			s->api->dead_letter(s->stage, line, n, NULL, reason ? reason : "bad JSON");
		}
		s->pos += n + (nl != NULL);
	}
	return CV_EOF; /* what this batch holds still flows */
}

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "test_jsonl",
        .version = "0.1.0",
        .description = "test source: the records of a JSON-lines file",
        .kind = CV_KIND_SOURCE,
        .options = jsonl_options,
        .config_size = sizeof(struct jsonl_config),
        .init = jsonl_init,
        .destroy = jsonl_destroy,
        .read = jsonl_read,
};
