/* tap_stream.h - GET /api/v1/tap's answer: a tap's records streamed as
 * they come (chunked), one per line, with a status line a second and a
 * final one (internal to http/).
 *
 * Status lines, a second apart and between records, are JSON objects
 * whose only member is "tap" (in line protocol, the same JSON after
 * "# tap "): {"tap":{"pipeline":"p","stage":"s","records":N,"missed":M,
 * "unencodable":U}}: records sent so far, records missed so far (the
 * pipeline went faster than the tap takes or the reader reads). The last
 * one adds "end" ("limit", "pipeline stopped", "engine stopping"); when the
 * engine stops, records not yet sent are dropped and counted as missed, so
 * the last line goes out at once.
 *
 * While the tap has nothing to send, the connection is suspended (MHD
 * serves the others meanwhile); the server's housekeeping thread wakes
 * every suspended stream each tick (tap_streams_wake), so records go out
 * within a tick and a client that went away is noticed at the next status
 * line. */
#ifndef CONVEYOR_HTTP_TAP_STREAM_H
#define CONVEYOR_HTTP_TAP_STREAM_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "runtime/tap.h"

struct tap_stream;

/* The server's open streams. */
struct tap_streams {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a stream ended */
	struct tap_stream *head;
	size_t count;
	_Atomic bool stopping;
};

void tap_streams_init(struct tap_streams *s);
void tap_streams_destroy(struct tap_streams *s);
/* Resumes every suspended stream, to send what came or a status line. */
void tap_streams_wake(struct tap_streams *s);
/* Ends every stream (final status line "engine stopping"), waiting up to
 * timeout_ms for their answers to finish. After it, no stream suspends
 * again, so the daemon can stop. */
void tap_streams_stop(struct tap_streams *s, int timeout_ms);

/* The answer streaming `t` (the stream owns it: tap_close() when MHD frees
 * the answer). `pipeline` and `stage` name it in status lines. NULL when
 * out of memory (the tap is then closed). */
struct MHD_Response *tap_stream_response(struct tap_streams *s, struct MHD_Connection *conn,
                                         struct tap *t, enum tap_format format,
                                         const char *pipeline, const char *stage);

#endif
