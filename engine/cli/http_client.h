/* http_client.h - the small HTTP/1.1 client `conveyor top` and `conveyor
 * tap` use to read a running engine's JSON API: plain http:// only (the
 * engine serves no TLS), one GET per connection, bodies with a length,
 * chunked or up to the close, streamed as they arrive. */
#ifndef CONVEYOR_HTTP_CLIENT_H
#define CONVEYOR_HTTP_CLIENT_H

#include <signal.h>
#include <stddef.h>

#include "base/strbuf.h"

/* "http://HOST[:PORT][/PREFIX]"; HOST a name, an IPv4 address or an IPv6
 * address in brackets; PORT defaults to 80. */
struct http_url {
	char host[256];
	char port[8];
	char prefix[512]; /* without its trailing slash; "" for none */
};

/* Parses url. Returns 0, or -1 with a message in err. */
int http_url_parse(const char *url, struct http_url *u, char *err, size_t errlen);

/* Called with each piece of the body as it arrives (chunked framing
 * removed). Returns 0 to go on, non-zero to stop reading. */
typedef int (*http_body_fn)(void *ctx, const char *data, size_t len);

/* GETs PREFIX + path. `timeout_ms` bounds the connect and each wait for
 * data; `stop` (may be NULL), checked at least every 200 ms, ends the
 * request early (a signal handler sets it). Sets *status; the body goes to
 * on_data. Returns 0 when the body ended or on_data or stop ended it, -1
 * with a message in err when the engine cannot be reached or the reply is
 * broken. */
int http_get_stream(const struct http_url *u, const char *path, int timeout_ms,
                    const volatile sig_atomic_t *stop, int *status, http_body_fn on_data, void *ctx,
                    char *err, size_t errlen);

/* The same, collecting the body (at most 64 MiB) into `body`. */
int http_get(const struct http_url *u, const char *path, int timeout_ms, int *status,
             struct strbuf *body, char *err, size_t errlen);

#endif
