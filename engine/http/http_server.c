/* http_server.c - /metrics, /healthz and /readyz on libmicrohttpd.
 *
 * The listening socket is made here (not by MHD) so that the exact address
 * asked for is bound and a failure reports the real reason; MHD then serves
 * it from one internal epoll thread, so handlers never run concurrently. */
#include "http/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_MAX_CONNECTIONS      64
#define HTTP_CONNECTION_TIMEOUT_S 10
#define HTTP_BACKLOG              64

#define CT_TEXT    "text/plain; charset=utf-8"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct http_server {
	struct MHD_Daemon *daemon;
	struct http_handlers handlers;
	uint16_t port;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Parses "HOST:PORT" ("127.0.0.1:8000", "[::1]:8000", ":8000", "localhost:0")
 * into a numeric socket address. */
static int parse_listen(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen, char *err,
                        size_t errlen)
{
	const char *what = addr ? addr : "(null)";
	if (!addr || !*addr) {
		set_err(err, errlen, "http listen address is empty (want HOST:PORT, e.g. %s)",
		        "127.0.0.1:8000");
		return -1;
	}
	char host[64];
	const char *port_str;
	bool v6 = false;
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (!close || close[1] != ':') {
			set_err(err, errlen, "http listen address \"%s\": %s", what,
			        "want [IPV6]:PORT");
			return -1;
		}
		size_t n = (size_t)(close - addr - 1);
		if (n == 0 || n >= sizeof(host)) {
			set_err(err, errlen, "http listen address \"%s\": %s", what,
			        "bad IPv6 address");
			return -1;
		}
		memcpy(host, addr + 1, n);
		host[n] = '\0';
		port_str = close + 2;
		v6 = true;
	} else {
		const char *colon = strrchr(addr, ':');
		if (!colon) {
			set_err(err, errlen, "http listen address \"%s\": %s", what,
			        "missing :PORT (want HOST:PORT, e.g. 127.0.0.1:8000)");
			return -1;
		}
		size_t n = (size_t)(colon - addr);
		if (n >= sizeof(host) || memchr(addr, ':', n)) {
			set_err(err, errlen, "http listen address \"%s\": %s", what,
			        "bad host (IPv6 addresses go in brackets: [::1]:8000)");
			return -1;
		}
		memcpy(host, addr, n);
		host[n] = '\0';
		port_str = colon + 1;
	}

	unsigned long port = 0;
	size_t digits = strspn(port_str, "0123456789");
	if (digits == 0 || port_str[digits] != '\0' || digits > 5 ||
	    (port = strtoul(port_str, NULL, 10)) > 65535) {
		set_err(err, errlen, "http listen address \"%s\": %s", what,
		        "port must be a number from 0 to 65535");
		return -1;
	}

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			set_err(err, errlen, "http listen address \"%s\": %s", what,
			        "bad IPv6 address");
			return -1;
		}
		*sslen = sizeof(*sin6);
		return 0;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	if (host[0] == '\0') {
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (strcmp(host, "localhost") == 0) {
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		set_err(err, errlen, "http listen address \"%s\": %s", what,
		        "host must be an IPv4 address, [IPv6] address, localhost or empty");
		return -1;
	}
	*sslen = sizeof(*sin);
	return 0;
}

static int open_listener(const char *addr, const struct sockaddr_storage *ss, socklen_t sslen,
                         uint16_t *port, char *err, size_t errlen)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_err(err, errlen, "http listen %s: socket: %s", addr, strerror(errno));
		return -1;
	}
	int one = 1;
	/* A restarted engine rebinds while old connections sit in TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, sslen) != 0) {
		set_err(err, errlen, "http listen %s: bind: %s", addr, strerror(errno));
		goto fail;
	}
	if (listen(fd, HTTP_BACKLOG) != 0) {
		set_err(err, errlen, "http listen %s: listen: %s", addr, strerror(errno));
		goto fail;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
		set_err(err, errlen, "http listen %s: getsockname: %s", addr, strerror(errno));
		goto fail;
	}
	*port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
	                                          : ((struct sockaddr_in *)&bound)->sin_port);
	return fd;
fail:
	close(fd);
	return -1;
}

/* Hands body's memory to MHD (freed with free()) to avoid a copy. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status, const char *ctype,
                               struct strbuf *body)
{
	struct MHD_Response *r;
	if (body->data && body->len && !body->failed) {
		r = MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_FREE);
		if (r)
			*body = (struct strbuf){0};
	} else {
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	strbuf_free(body);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned int status,
                                    const char *text)
{
	struct strbuf body = {0};
	strbuf_puts(&body, text);
	return respond(conn, status, CT_TEXT, &body);
}

static enum MHD_Result respond_check(struct MHD_Connection *conn, void *ctx,
                                     bool (*check)(void *, struct strbuf *))
{
	struct strbuf body = {0};
	bool ok = check ? check(ctx, &body) : true;
	if (body.len == 0)
		strbuf_puts(&body, ok ? "ok" : "unavailable");
	if (body.data && body.data[body.len - 1] != '\n')
		strbuf_append(&body, "\n", 1);
	return respond(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, CT_TEXT, &body);
}

/* POST /-/reload: the answer comes once the request (and any body, read and
 * ignored) is in, so the connection stays usable. */
static enum MHD_Result on_reload(struct http_server *srv, struct MHD_Connection *conn,
                                 const char *method, size_t *upload_data_size, void **req_ctx)
{
	static int started;
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
		static const char text[] = "method not allowed\n";
		struct MHD_Response *r = MHD_create_response_from_buffer(
		        sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_TEXT);
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
		enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (!*req_ctx) {
		*req_ctx = &started;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!srv->handlers.reload)
		return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	struct strbuf body = {0};
	unsigned status = srv->handlers.reload(srv->handlers.ctx, &body);
	return respond(conn, status, CT_TEXT, &body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_ctx)
{
	struct http_server *srv = cls;
	(void)version;
	(void)upload_data;
	if (strcmp(url, "/-/reload") == 0)
		return on_reload(srv, conn, method, upload_data_size, req_ctx);
	/* Answered on the first call, right after the headers: no endpoint takes
	 * a body, and MHD closes a connection whose body was not read. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/metrics") == 0 && srv->handlers.metrics) {
		struct strbuf body = {0};
		if (srv->handlers.metrics(srv->handlers.ctx, &body) < 0 || body.failed) {
			strbuf_free(&body);
			return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
			                    "metrics unavailable\n");
		}
		return respond(conn, MHD_HTTP_OK, CT_METRICS, &body);
	}
	if (strcmp(url, "/healthz") == 0)
		return respond_check(conn, srv->handlers.ctx, srv->handlers.healthy);
	if (strcmp(url, "/readyz") == 0)
		return respond_check(conn, srv->handlers.ctx, srv->handlers.ready);
	return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

int http_server_start(const char *listen_addr, const struct http_handlers *handlers,
                      struct http_server **out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	*out = NULL;
	if (parse_listen(listen_addr, &ss, &sslen, err, errlen) != 0)
		return -1;
	struct http_server *srv = calloc(1, sizeof(*srv));
	if (!srv) {
		set_err(err, errlen, "http listen %s: %s", listen_addr, "out of memory");
		return -1;
	}
	if (handlers)
		srv->handlers = *handlers;
	int fd = open_listener(listen_addr, &ss, sslen, &srv->port, err, errlen);
	if (fd < 0) {
		free(srv);
		return -1;
	}
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->daemon =
	        MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_LISTEN_SOCKET,
	                         (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
	                         (unsigned int)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
	                         (unsigned int)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
	if (!srv->daemon) {
		set_err(err, errlen, "http listen %s: %s", listen_addr,
		        "libmicrohttpd could not start (out of threads or file descriptors?)");
		close(fd);
		free(srv);
		return -1;
	}
	*out = srv;
	return 0;
}

uint16_t http_server_port(const struct http_server *srv)
{
	return srv ? srv->port : 0;
}

void http_server_stop(struct http_server *srv)
{
	if (!srv)
		return;
	/* MHD closes the listening socket it was given. */
	MHD_stop_daemon(srv->daemon);
	free(srv);
}

int http_listen_check(const char *listen_addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	return parse_listen(listen_addr, &ss, &sslen, err, errlen);
}
