/* stage_harness.c - <conveyor/test_harness.h>: one plugin stage run in the
 * test's process with the engine's own option validation, host API, batches
 * and acknowledgements. Installed as libconveyor-sdk-test.a with the engine
 * core, so that plugins built out of tree test the way in-tree plugins do. */
#include "testing/stage_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "metrics/metrics.h"
#include "runtime/batch.h"
#include "runtime/dead_letter.h"
#include "runtime/host_api.h"
#include "runtime/stage.h"
#include "spec/options.h"
#include "spec/spec_tree.h"

struct cv_harness {
	struct spec_doc *doc;
	struct options_config cfg;
	struct metrics *registry;
	struct dead_letter *dead_letter; /* no file: counts and warns, as a pipeline's */
	struct batch_owner owner;        /* a completed batch stays for tally() */
	struct cv_stage stage;
	struct batch *batch;
	uint64_t acked[3]; /* settled records of batches already reset */
};

static void batch_completed(void *ctx, struct batch *b)
{
}

int cv_harness_open(const struct cv_plugin *plugin, const char *options_yaml,
                    uint32_t batch_records, struct cv_harness **out)
{
	static const char *const reserved[] = {"plugin", "name", NULL};
	struct cv_harness *h = calloc(1, sizeof *h);
	if (!h)
		return CV_ENOMEM;
	struct diag diag = {.out = stderr};
	const char *text = options_yaml && *options_yaml ? options_yaml : "{}";
	if (spec_doc_parse("<harness options>", text, strlen(text), &diag, &h->doc) < 0 ||
	    options_fill_plugin("<harness options>", h->doc->root, plugin, &host_api, reserved, 0,
	                        &diag, &h->cfg) < 0) {
		cv_harness_close(h);
		return CV_ECONFIG;
	}
	h->registry = metrics_new();
	h->dead_letter = dead_letter_open("test", NULL);
	h->batch = batch_new(batch_records ? batch_records : 1024, 8, 4u << 20);
	if (!h->registry || !h->dead_letter || !h->batch) {
		cv_harness_close(h);
		return CV_ENOMEM;
	}
	h->owner = (struct batch_owner){
	        .complete = batch_completed, .dead_letter = h->dead_letter, .sink = plugin->name};
	h->batch->owner = &h->owner;
	h->stage.dead_letter = h->dead_letter;
	h->stage.pipeline_name = "test";
	h->stage.name = plugin->name;
	h->stage.plugin = plugin;
	h->stage.config = h->cfg.data;
	h->stage.registry = h->registry;
	atomic_store(&h->stage.healthy, true);
	int rc = stage_init(&h->stage);
	if (rc == 0 && plugin->start)
		rc = plugin->start(h->stage.state);
	if (rc < 0) {
		cv_harness_close(h);
		return rc;
	}
	h->stage.started = true;
	*out = h;
	return 0;
}

const struct cv_host_api *cv_harness_api(struct cv_harness *h)
{
	return &host_api;
}

void *cv_harness_state(struct cv_harness *h)
{
	return h->stage.state;
}

static void tally(struct cv_harness *h, uint64_t counts[3])
{
	memcpy(counts, h->acked, sizeof h->acked);
	const struct cv_batch *b = &h->batch->pub;
	for (uint32_t i = 0; i < b->count; i++) {
		uint16_t f = b->records[i].flags;
		counts[CV_ACK_DELIVERED] += !!(f & CV_RECORD_DELIVERED);
		counts[CV_ACK_REJECTED] += !!(f & CV_RECORD_REJECTED);
		counts[CV_ACK_FAILED] += !!(f & CV_RECORD_FAILED);
	}
}

struct cv_batch *cv_harness_batch(struct cv_harness *h)
{
	tally(h, h->acked);
	batch_reset(h->batch);
	return &h->batch->pub;
}

int cv_harness_read(struct cv_harness *h, struct cv_batch **batch)
{
	struct cv_batch *b = cv_harness_batch(h);
	*batch = b;
	return h->stage.plugin->read(h->stage.state, b);
}

int cv_harness_process(struct cv_harness *h, struct cv_batch *batch)
{
	return stage_process(&h->stage, batch_of(batch));
}

int cv_harness_write(struct cv_harness *h, struct cv_batch *batch)
{
	struct batch *b = batch_of(batch);
	batch_hold(b, batch->live); /* as the pipeline: a hold during write */
	int rc = h->stage.plugin->write(h->stage.state, batch);
	if (rc < 0)
		batch_settle_all(b, CV_ACK_FAILED, "write failed");
	else if (!(h->stage.plugin->flags & CV_PLUGIN_ASYNC_ACK))
		batch_settle_all(b, CV_ACK_DELIVERED, NULL);
	batch_release(b);
	return rc;
}

uint64_t cv_harness_acked(struct cv_harness *h, enum cv_ack outcome)
{
	uint64_t counts[3];
	tally(h, counts);
	return (unsigned)outcome < 3 ? counts[outcome] : 0;
}

uint64_t cv_harness_dead_lettered(struct cv_harness *h)
{
	return atomic_load(&h->stage.total_dead_lettered);
}

double cv_harness_metric(struct cv_harness *h, const char *name, const char *label_value)
{
	struct strbuf sb = {0};
	double value = -1;
	if (metrics_render(h->registry, &sb) < 0 || !sb.data) {
		strbuf_free(&sb);
		return -1;
	}
	size_t nlen = strlen(name);
	char want[256];
	snprintf(want, sizeof want, "=\"%s\"", label_value ? label_value : "");
	for (char *line = sb.data; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (strncmp(line, name, nlen) == 0 && (line[nlen] == '{' || line[nlen] == ' ') &&
		    (!label_value || strstr(line, want))) {
			char *sp = strrchr(line, ' ');
			if (sp)
				value = strtod(sp + 1, NULL);
			break;
		}
		line = end ? end + 1 : NULL;
	}
	strbuf_free(&sb);
	return value;
}

void cv_harness_close(struct cv_harness *h)
{
	if (!h)
		return;
	const struct cv_plugin *pl = h->stage.plugin;
	if (h->stage.initialised) {
		if (pl->stop)
			pl->stop(h->stage.state);
		if (pl->flush)
			pl->flush(h->stage.state, clock_now_ns() + 5 * 1000000000LL);
	}
	stage_destroy(&h->stage);
	batch_free(h->batch);
	dead_letter_close(h->dead_letter);
	metrics_free(h->registry);
	options_config_free(&h->cfg);
	spec_doc_free(h->doc);
	free(h);
}
