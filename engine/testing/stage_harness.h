/* stage_harness.h - runs one plugin stage in-process for unit tests, with
 * the engine's real option validation, host API and batches. */
#ifndef CONVEYOR_STAGE_HARNESS_H
#define CONVEYOR_STAGE_HARNESS_H

#include <conveyor/plugin.h>

struct harness;

/* Validates `options_yaml` (a YAML flow map such as "{lines: 5, seed: 1}")
 * against the plugin's schema, then calls init and start. Batches hold
 * `batch_records` records. Returns 0, or negative (validation errors are
 * printed to stderr). */
int harness_open(const struct cv_plugin *plugin, const char *options_yaml, uint32_t batch_records,
                 struct harness **out);
/* The host API the plugin was given. */
const struct cv_host_api *harness_api(struct harness *h);
/* The plugin's state (from init). */
void *harness_state(struct harness *h);
/* A fresh, empty batch (the same memory each call: the previous is reset). */
struct cv_batch *harness_batch(struct harness *h);
/* Source: read once into a fresh batch; returns read's result. */
int harness_read(struct harness *h, struct cv_batch **batch);
/* Transform: process(batch). Sink: write(batch) then, for synchronous sinks,
 * settle as the host does. Returns the callback's result. */
int harness_process(struct harness *h, struct cv_batch *batch);
int harness_write(struct harness *h, struct cv_batch *batch);
/* Records settled so far through the host API, by outcome, and records
 * dead-lettered; for assertions. */
uint64_t harness_acked(struct harness *h, enum cv_ack outcome);
uint64_t harness_dead_lettered(struct harness *h);
/* The value of a metric the plugin registered (label_value may be NULL); -1
 * if there is no such series. */
double harness_metric(struct harness *h, const char *name, const char *label_value);
/* Calls stop/flush/destroy and frees. */
void harness_close(struct harness *h);

#endif
