/*
 * conveyor/test_harness.h - unit tests for a plugin against the real host.
 *
 * The harness runs one stage of a plugin in the test's own process with the
 * engine's option validation (the plugin's `check` included), its host API,
 * its batches and its acknowledgements: the same code `conveyor run` uses,
 * without threads or a spec file. Link the test with the plugin's source and
 * `pkg-config --cflags --libs conveyor-sdk-test` (a static library):
 *
 *     cc -std=c11 $(pkg-config --cflags conveyor-sdk-test) -o scale_test \
 *        scale_test.c scale.c $(pkg-config --libs conveyor-sdk-test)
 *
 * and pass it the plugin's descriptor, `&cv_plugin_descriptor`. Everything
 * here is since ABI 1.1; the functions are not thread-safe (one test thread
 * per harness). Ownership: the harness owns the batch, the config and the
 * plugin's state until cv_harness_close().
 */
#ifndef CONVEYOR_TEST_HARNESS_H
#define CONVEYOR_TEST_HARNESS_H

#include <conveyor/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cv_harness;

/* Validates `options_yaml` (a YAML flow map such as "{lines: 5, seed: 1}";
 * NULL or "" for none) against the plugin's schema and its check, then calls
 * init and start. Batches hold `batch_records` records (0: 1024). Returns 0
 * and *out, CV_ECONFIG when the options are refused (each error printed to
 * stderr as <harness options>:LINE:COLUMN: error: ...), or init's or start's
 * negative code. */
int cv_harness_open(const struct cv_plugin *plugin, const char *options_yaml,
                    uint32_t batch_records, struct cv_harness **out);
/* The host API the plugin was given. */
const struct cv_host_api *cv_harness_api(struct cv_harness *h);
/* The plugin's state (what init returned, or the host's cv_context). */
void *cv_harness_state(struct cv_harness *h);
/* A fresh, empty batch, owned by the harness: the same memory each call, so
 * the previous batch is gone (its outcomes stay counted). */
struct cv_batch *cv_harness_batch(struct cv_harness *h);
/* Source: read once into a fresh batch (*batch); returns read's result. */
int cv_harness_read(struct cv_harness *h, struct cv_batch **batch);
/* Transform: process(batch); returns its result. */
int cv_harness_process(struct cv_harness *h, struct cv_batch *batch);
/* Sink: write(batch), then for a synchronous sink settles the rest as the
 * host does (delivered, or failed on a negative return); returns write's
 * result. An asynchronous sink settles later, through the host API. */
int cv_harness_write(struct cv_harness *h, struct cv_batch *batch);
/* Records settled with `outcome` so far, over every batch. */
uint64_t cv_harness_acked(struct cv_harness *h, enum cv_ack outcome);
/* Records a source or transform dead-lettered (dead_letter(), reject()); a
 * sink's rejections are cv_harness_acked(h, CV_ACK_REJECTED). */
uint64_t cv_harness_dead_lettered(struct cv_harness *h);
/* The value of a metric the plugin registered, by name and label value
 * (NULL for a metric without a label); -1 when there is no such series. */
double cv_harness_metric(struct cv_harness *h, const char *name, const char *label_value);
/* Calls stop (sources), flush (sinks, 5 s at most) and destroy, and frees
 * everything. NULL is fine. */
void cv_harness_close(struct cv_harness *h);

#ifdef __cplusplus
}
#endif

#endif /* CONVEYOR_TEST_HARNESS_H */
