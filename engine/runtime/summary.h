/* summary.h - how a run ended: at stop, one line per pipeline with what
 * became of its records, and whether any ended failed (exit code 1). */
#ifndef CONVEYOR_SUMMARY_H
#define CONVEYOR_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pipeline;

/* What became of a pipeline's records so far. in = delivered + rejected +
 * failed + dropped once every record is settled. */
struct pipeline_summary {
	uint64_t in;            /* records the source emitted */
	uint64_t delivered;     /* acknowledged as delivered by the sink */
	uint64_t rejected;      /* rejected for good by the sink (bad data) */
	uint64_t dead_lettered; /* entries written to the dead-letter file (rejected
	                         * records, and inputs and records stages gave up) */
	uint64_t failed;        /* ended failed: not delivered, to be read again */
	uint64_t dropped;       /* filtered out by transforms */
};

/* Reads the pipeline's counters (they settle once its threads are joined). */
void pipeline_summary_get(const struct pipeline *p, struct pipeline_summary *out);

/* Logs the stop summary of each pipeline (after their threads are joined):
 * "summary: in=N delivered=N rejected=N dead_lettered=N failed=N dropped=N",
 * with the counts as numeric members in JSON logs. Returns true when any
 * record of any pipeline ended failed. */
bool summary_log_stop(struct pipeline *const *pipelines, size_t npipelines);

#endif
