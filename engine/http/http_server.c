/* http_server.c - /metrics, /healthz and /readyz on libmicrohttpd.
 *
 * The listening socket is made here (not by MHD) so that the exact address
 * asked for is bound and a failure reports the real reason; MHD then serves
 * it from one internal epoll thread, so handlers never run concurrently.
 *
 * Slow clients: MHD's connection timeout is an idle timeout that every byte
 * resets, so a client trickling a header line a second holds its slot for
 * ever. Each connection here gets a deadline for its whole request (from
 * accept, or from the end of its previous answer, to the end of its
 * headers), kept in a list ordered by deadline; a housekeeping thread shuts
 * down the socket of every connection past it (MHD then sees the end and
 * frees the slot). Past HTTP_MAX_CONNECTIONS, a new connection takes the
 * slot of the oldest one still sending its request, or is closed at once
 * when every slot is answering: the probes always get in. */
#include "http/http_server.h"
#include "http/tap_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/units.h"

/* Connections served at once, when the descriptor limit allows. */
#define HTTP_MAX_CONNECTIONS 1024
/* MHD's own limit is higher, so that it keeps accepting and the newcomer
 * can take an old slot instead of waiting in the backlog. */
#define HTTP_ACCEPT_MARGIN 64
/* Idle time allowed while an answer is being sent or between requests. */
#define HTTP_CONNECTION_TIMEOUT_S 10
/* Time allowed for a whole request: accept (or the previous answer) to the
 * end of the headers. */
#define HTTP_REQUEST_DEADLINE_NS (5 * 1000000000LL)
#define HTTP_BACKLOG             1024
/* Idle time allowed to a tap's reader (a pager paused, say). */
#define HTTP_TAP_TIMEOUT_S 60
/* How long a stopping server lets open taps send their last line. */
#define HTTP_TAP_STOP_MS 1000
/* The housekeeping thread looks around at least this often. */
#define HTTP_TICK_NS (100 * 1000000LL)

#define CT_TEXT    "text/plain; charset=utf-8"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON    "application/json"
#define CT_HTML    "text/html; charset=utf-8"

/* The console (http/console.html, compiled in by cmake/embed.cmake). */
extern const char conveyor_console_html[];
extern const unsigned long conveyor_console_html_len;

/* One accepted connection, from MHD's NOTIFY_CONNECTION start to close. */
struct http_conn {
	struct http_conn *prev, *next; /* the waiting list, while `waiting` */
	int fd;
	int64_t deadline_ns; /* monotonic: end of the current request's headers */
	bool waiting;        /* between requests or reading one: the deadline runs */
	bool evicted;        /* shut down by us; MHD closes it */
};

struct http_server {
	struct MHD_Daemon *daemon;
	struct http_handlers handlers;
	uint16_t port;
	unsigned int max_conns;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct http_conn *wait_head, *wait_tail; /* by deadline, oldest first */
	unsigned int nconns;
	bool stopping;
	struct tap_streams taps;
	pthread_t housekeeper;
	bool housekeeper_started;
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

/* ---- slow clients: per-request deadlines, eviction past the limit ---- */

static void wait_unlink(struct http_server *srv, struct http_conn *c)
{
	if (!c->waiting)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->wait_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		srv->wait_tail = c->prev;
	c->prev = c->next = NULL;
	c->waiting = false;
}

/* Starts the deadline of the connection's next request. Deadlines are all
 * now + the same span, so appending keeps the list ordered. */
static void wait_append(struct http_server *srv, struct http_conn *c)
{
	wait_unlink(srv, c);
	if (c->evicted)
		return;
	c->deadline_ns = clock_monotonic_ns() + HTTP_REQUEST_DEADLINE_NS;
	c->prev = srv->wait_tail;
	c->next = NULL;
	if (srv->wait_tail)
		srv->wait_tail->next = c;
	else
		srv->wait_head = c;
	srv->wait_tail = c;
	c->waiting = true;
}

/* Ends a connection from outside MHD's loop: the socket reads EOF, MHD
 * closes it and frees its slot. The descriptor stays MHD's: it is closed
 * only after NOTIFY_CONNECTION_CLOSED, which takes srv->mu first. */
static void evict(struct http_server *srv, struct http_conn *c)
{
	wait_unlink(srv, c);
	c->evicted = true;
	shutdown(c->fd, SHUT_RDWR);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		struct http_conn *c = calloc(1, sizeof *c);
		const union MHD_ConnectionInfo *ci =
		        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!c || !ci) {
			free(c);
			/* Without its bookkeeping the connection cannot be bounded. */
			if (ci)
				shutdown(ci->connect_fd, SHUT_RDWR);
			*socket_ctx = NULL;
			return;
		}
		c->fd = ci->connect_fd;
		*socket_ctx = c;
		pthread_mutex_lock(&srv->mu);
		srv->nconns++;
		if (srv->nconns > srv->max_conns) {
			if (srv->wait_head) {
				evict(srv, srv->wait_head);
			} else {
				/* Every slot is answering: refuse the newcomer. */
				c->evicted = true;
				shutdown(c->fd, SHUT_RDWR);
			}
		}
		wait_append(srv, c);
		pthread_mutex_unlock(&srv->mu);
		return;
	}
	struct http_conn *c = *socket_ctx;
	if (!c)
		return;
	pthread_mutex_lock(&srv->mu);
	wait_unlink(srv, c);
	srv->nconns--;
	pthread_mutex_unlock(&srv->mu);
	free(c);
	*socket_ctx = NULL;
}

static struct http_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* The request's headers are in: its deadline no longer runs (the answer is
 * bounded by the idle timeout). */
static void request_started(struct http_server *srv, struct MHD_Connection *conn)
{
	struct http_conn *c = conn_of(conn);
	if (!c)
		return;
	pthread_mutex_lock(&srv->mu);
	wait_unlink(srv, c);
	pthread_mutex_unlock(&srv->mu);
}

/* The answer went out (or the request ended otherwise): the next request
 * on this connection gets a fresh deadline. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_ctx,
                         enum MHD_RequestTerminationCode code)
{
	struct http_server *srv = cls;
	(void)req_ctx;
	(void)code;
	struct http_conn *c = conn_of(conn);
	if (!c)
		return;
	pthread_mutex_lock(&srv->mu);
	wait_append(srv, c);
	pthread_mutex_unlock(&srv->mu);
}

static void *housekeeper_main(void *arg)
{
	struct http_server *srv = arg;
	pthread_mutex_lock(&srv->mu);
	while (!srv->stopping) {
		int64_t now = clock_monotonic_ns();
		while (srv->wait_head && srv->wait_head->deadline_ns <= now)
			evict(srv, srv->wait_head);
		int64_t wake = now + HTTP_TICK_NS;
		if (srv->wait_head && srv->wait_head->deadline_ns < wake)
			wake = srv->wait_head->deadline_ns;
		struct timespec ts = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000};
		pthread_cond_timedwait(&srv->cv, &srv->mu, &ts);
		/* Taps waiting for records look again (outside srv->mu: a stream
		 * takes its own lock while MHD holds the connection). */
		pthread_mutex_unlock(&srv->mu);
		tap_streams_wake(&srv->taps);
		pthread_mutex_lock(&srv->mu);
	}
	pthread_mutex_unlock(&srv->mu);
	return NULL;
}

/* Connections the descriptor limit allows: raises the soft limit towards
 * the hard one when it is low (a container's 1024), keeps half of it for
 * the rest of the engine (plugins, Kafka, files). */
static unsigned int connection_budget(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 64;
	rlim_t want = 2 * (HTTP_MAX_CONNECTIONS + HTTP_ACCEPT_MARGIN) + 256;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur =
		        rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return HTTP_MAX_CONNECTIONS;
	rlim_t n = rl.rlim_cur / 2 > HTTP_ACCEPT_MARGIN ? rl.rlim_cur / 2 - HTTP_ACCEPT_MARGIN : 16;
	return n < 16 ? 16 : (unsigned int)n;
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
	/* Live views: a cached answer is a wrong answer. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
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

/* 200 with what gen appends, or 500 when it fails. */
static enum MHD_Result respond_generated(struct MHD_Connection *conn, void *ctx,
                                         int (*gen)(void *, struct strbuf *), const char *ctype)
{
	struct strbuf body = {0};
	if (gen(ctx, &body) < 0 || body.failed) {
		strbuf_free(&body);
		return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "unavailable\n");
	}
	return respond(conn, MHD_HTTP_OK, ctype, &body);
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

/* GET /: the console, from the binary; its policy forbids any other
 * origin, so the page cannot load or send anything elsewhere. */
static enum MHD_Result serve_console(struct MHD_Connection *conn)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	        conveyor_console_html_len, (void *)conveyor_console_html, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_HTML);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "Content-Security-Policy",
	                        "default-src 'none'; script-src 'unsafe-inline'; style-src "
	                        "'unsafe-inline'; img-src data:; connect-src 'self'; base-uri "
	                        "'none'; form-action 'none'; frame-ancestors 'none'");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result serve_tap(struct http_server *srv, struct MHD_Connection *conn)
{
	if (!srv->handlers.tap_open)
		return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	const char *pipeline = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "pipeline");
	const char *stage = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "stage");
	const char *limit_s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *format_s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
	int64_t limit = 0;
	enum tap_format format = TAP_FORMAT_JSON;
	if (!pipeline || !*pipeline)
		return respond_text(conn, MHD_HTTP_BAD_REQUEST,
		                    "tap: give the pipeline: /api/v1/tap?pipeline=NAME"
		                    "[&stage=NAME][&limit=N][&format=json|influx]\n");
	if (limit_s && (units_parse_int(limit_s, &limit) < 0 || limit < 0))
		return respond_text(conn, MHD_HTTP_BAD_REQUEST,
		                    "tap: limit must be a whole number, 0 for none\n");
	if (format_s && strcmp(format_s, "influx") == 0)
		format = TAP_FORMAT_INFLUX;
	else if (format_s && strcmp(format_s, "json") != 0)
		return respond_text(conn, MHD_HTTP_BAD_REQUEST,
		                    "tap: format must be json or influx\n");
	struct tap *t = NULL;
	const char *stage_name = NULL;
	struct strbuf why = {0};
	int status =
	        srv->handlers.tap_open(srv->handlers.ctx, pipeline, stage && *stage ? stage : NULL,
	                               format, (uint64_t)limit, &t, &stage_name, &why);
	if (status != MHD_HTTP_OK || !t) {
		if (why.len == 0 || why.data[why.len - 1] != '\n')
			strbuf_append(&why, "\n", 1);
		return respond(conn,
		               status == MHD_HTTP_OK ? MHD_HTTP_INTERNAL_SERVER_ERROR
		                                     : (unsigned)status,
		               CT_TEXT, &why);
	}
	strbuf_free(&why);
	struct MHD_Response *r =
	        tap_stream_response(&srv->taps, conn, t, format, pipeline, stage_name);
	if (!r)
		return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "tap: out of memory\n");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        format == TAP_FORMAT_JSON ? "application/x-ndjson"
	                                                  : "text/plain; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* A reader may pause (a pager): more idle time than a request gets. */
	MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
	                          (unsigned int)HTTP_TAP_TIMEOUT_S);
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_ctx)
{
	struct http_server *srv = cls;
	(void)version;
	(void)upload_data;
	request_started(srv, conn);
	if (strcmp(url, "/-/reload") == 0)
		return on_reload(srv, conn, method, upload_data_size, req_ctx);
	/* Answered on the first call, right after the headers: no endpoint takes
	 * a body, and MHD closes a connection whose body was not read. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/metrics") == 0 && srv->handlers.metrics)
		return respond_generated(conn, srv->handlers.ctx, srv->handlers.metrics,
		                         CT_METRICS);
	if (strcmp(url, "/api/v1/pipelines") == 0 && srv->handlers.api_pipelines)
		return respond_generated(conn, srv->handlers.ctx, srv->handlers.api_pipelines,
		                         CT_JSON);
	if (strcmp(url, "/api/v1/tap") == 0)
		return serve_tap(srv, conn);
	if (strcmp(url, "/") == 0)
		return serve_console(conn);
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
	srv->max_conns = connection_budget();
	pthread_mutex_init(&srv->mu, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->cv, &attr);
	pthread_condattr_destroy(&attr);
	tap_streams_init(&srv->taps);
	/* Suspend/resume: a tap waiting for records must not hold the thread. */
	unsigned int flags =
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->daemon = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	        MHD_OPTION_CONNECTION_LIMIT, srv->max_conns + HTTP_ACCEPT_MARGIN,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_CONNECTION_TIMEOUT_S,
	        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_NOTIFY_COMPLETED,
	        on_completed, srv, MHD_OPTION_END);
	if (!srv->daemon) {
		set_err(err, errlen, "http listen %s: %s", listen_addr,
		        "libmicrohttpd could not start (out of threads or file descriptors?)");
		close(fd);
		goto fail;
	}
	if (pthread_create(&srv->housekeeper, NULL, housekeeper_main, srv) != 0) {
		set_err(err, errlen, "http listen %s: %s", listen_addr, "cannot start a thread");
		MHD_stop_daemon(srv->daemon);
		goto fail;
	}
	srv->housekeeper_started = true;
	*out = srv;
	return 0;
fail:
	tap_streams_destroy(&srv->taps);
	pthread_cond_destroy(&srv->cv);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
	return -1;
}

uint16_t http_server_port(const struct http_server *srv)
{
	return srv ? srv->port : 0;
}

void http_server_stop(struct http_server *srv)
{
	if (!srv)
		return;
	if (srv->housekeeper_started) {
		pthread_mutex_lock(&srv->mu);
		srv->stopping = true;
		pthread_cond_signal(&srv->cv);
		pthread_mutex_unlock(&srv->mu);
		pthread_join(srv->housekeeper, NULL);
	}
	/* Open taps send their last line; none is suspended after this, as
	 * MHD_stop_daemon requires. */
	tap_streams_stop(&srv->taps, HTTP_TAP_STOP_MS);
	/* MHD closes the listening socket it was given. */
	MHD_stop_daemon(srv->daemon);
	tap_streams_destroy(&srv->taps);
	pthread_cond_destroy(&srv->cv);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
}

int http_listen_check(const char *listen_addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	return parse_listen(listen_addr, &ss, &sslen, err, errlen);
}
