/* http_server.h - the engine's HTTP endpoints (/metrics, /healthz, /readyz,
 * POST /-/reload) on libmicrohttpd, served from its own thread. */
#ifndef CONVEYOR_HTTP_SERVER_H
#define CONVEYOR_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "runtime/tap.h"

/* Called from the server's thread, one request at a time. A NULL metrics
 * makes /metrics answer 404; a NULL healthy or ready answers 200 "ok". */
struct http_handlers {
	void *ctx;
	/* Appends the exposition; 0 or negative (answers 500). */
	int (*metrics)(void *ctx, struct strbuf *out);
	/* true for 200; `why` gets a short text body either way. */
	bool (*healthy)(void *ctx, struct strbuf *why);
	bool (*ready)(void *ctx, struct strbuf *why);
	/* POST /-/reload: returns the HTTP status, with a text body in `out`.
	 * NULL answers 404. */
	unsigned (*reload)(void *ctx, struct strbuf *out);
	/* GET /api/v1/pipelines: appends the JSON; 0 or negative (500). NULL:
	 * 404. */
	int (*api_pipelines)(void *ctx, struct strbuf *out);
	/* GET /api/v1/tap?pipeline=P[&stage=S][&limit=N][&format=json|influx]:
	 * attaches a tap to stage S (NULL: what reaches the sink) of pipeline
	 * P. Returns 200 and sets *out and *stage_name (the stage tapped, valid
	 * while the tap is), or the HTTP status to answer (400, 403, 404, 503)
	 * with a message in why. NULL: 404. */
	int (*tap_open)(void *ctx, const char *pipeline, const char *stage, enum tap_format format,
	                uint64_t limit, struct tap **out, const char **stage_name,
	                struct strbuf *why);
};

struct http_server;

/* Listens on `listen` ("127.0.0.1:8000", "0.0.0.0:8000", "[::1]:8000", "localhost:8000",
 * ":8000" for all IPv4 addresses; port 0 picks a free port). GET:
 * /metrics (text/plain; version=0.0.4), /healthz, /readyz, /api/v1/pipelines,
 * /api/v1/tap (streamed, see http/tap_stream.h); POST: /-/reload; 404 otherwise, 405
 * for other methods (HEAD is served as GET without the body). Up to 1024
 * connections (fewer when the descriptor limit is low; the soft limit is
 * raised towards the hard one); each request must arrive whole within 5 s,
 * an answer or a kept-alive connection may idle 10 s; past the limit a new
 * connection takes the slot of the oldest unfinished request, so slow
 * clients cannot lock out the probes. Returns 0 and sets *out, or -1 with a
 * message in err (*out is then NULL). */
int http_server_start(const char *listen, const struct http_handlers *handlers,
                      struct http_server **out, char *err, size_t errlen);
/* Checks `listen` as http_server_start() parses it, binding nothing, so
 * that a spec's address is refused before the run. 0, or -1 with err. */
int http_listen_check(const char *listen, char *err, size_t errlen);
/* The port actually bound. */
uint16_t http_server_port(const struct http_server *srv);
/* Stops the thread, closes the socket, frees. NULL is fine. */
void http_server_stop(struct http_server *srv);

#endif
