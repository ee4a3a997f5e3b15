/* clock.h - the engine's two clocks in nanoseconds: wall time for record
 * timestamps and logs, monotonic time for deadlines, durations and
 * heartbeats. Inline: the hot path reads them once per batch. */
#ifndef CONVEYOR_CLOCK_H
#define CONVEYOR_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). */
static inline int64_t clock_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Nanoseconds of CLOCK_MONOTONIC: only differences mean anything. */
static inline int64_t clock_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
