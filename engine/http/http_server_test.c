/* http_server_test.c - the endpoints over a real loopback socket. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/http_server.h"
#include "metrics/metrics.h"

struct fake_engine {
	struct metrics *m;
	bool healthy, ready, metrics_fail;
	int scrapes;
};

static int fake_metrics(void *ctx, struct strbuf *out)
{
	struct fake_engine *e = ctx;
	e->scrapes++;
	if (e->metrics_fail)
		return -1;
	return metrics_render(e->m, out);
}

static bool fake_healthy(void *ctx, struct strbuf *why)
{
	struct fake_engine *e = ctx;
	strbuf_puts(why, e->healthy ? "alive" : "loop stalled: sink");
	return e->healthy;
}

static bool fake_ready(void *ctx, struct strbuf *why)
{
	struct fake_engine *e = ctx;
	if (!e->ready)
		strbuf_puts(why, "stage influx not started\n");
	return e->ready;
}

struct reply {
	int status;
	char head[2048];
	char *body;
	size_t body_len;
};

/* Sends `req` to 127.0.0.1:port and reads the reply until the server closes
 * (requests say Connection: close); timeouts bound every read. */
static void http_raw(int family, uint16_t port, const char *req, struct reply *r)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int rc;
	if (family == AF_INET6) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
		a.sin6_addr = in6addr_loopback;
		rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (rc != 0)
		fail_msg("connect to port %u: %s", port, strerror(errno));
	size_t len = strlen(req);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);

	size_t cap = 1 << 20, got = 0;
	char *buf = malloc(cap + 1);
	assert_non_null(buf);
	for (int i = 0; i < 10000 && got < cap; i++) {
		ssize_t n = recv(fd, buf + got, cap - got, 0);
		if (n < 0)
			fail_msg("recv: %s", strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';

	memset(r, 0, sizeof(*r));
	char *sep = strstr(buf, "\r\n\r\n");
	if (!sep)
		fail_msg("no header end in reply: %s", buf);
	size_t hlen = (size_t)(sep - buf);
	assert_true(hlen < sizeof(r->head));
	memcpy(r->head, buf, hlen);
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d ", &r->status), 1);
	r->body_len = got - hlen - 4;
	r->body = malloc(r->body_len + 1);
	memcpy(r->body, sep + 4, r->body_len);
	r->body[r->body_len] = '\0';
	free(buf);
}

static void http_get(uint16_t port, const char *method, const char *path, struct reply *r)
{
	char req[512];
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
	         method, path);
	http_raw(AF_INET, port, req, r);
}

/* The header's value (case-insensitive name), copied into out. */
static bool header(const struct reply *r, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);
	for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1;
			while (*v == ' ')
				v++;
			size_t vlen = strcspn(v, "\r\n");
			snprintf(out, outlen, "%.*s", (int)vlen, v);
			return true;
		}
	}
	return false;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int fake_api(void *ctx, struct strbuf *out)
{
	struct fake_engine *e = ctx;
	if (e->metrics_fail)
		return -2;
	return strbuf_puts(out, "{\"pipelines\":[]}\n");
}

static struct http_handlers handlers_for(struct fake_engine *e)
{
	return (struct http_handlers){.ctx = e,
	                              .metrics = fake_metrics,
	                              .healthy = fake_healthy,
	                              .ready = fake_ready,
	                              .api_pipelines = fake_api};
}

static void test_endpoints(void **state)
{
	(void)state;
	struct fake_engine e = {.m = metrics_new(), .healthy = true, .ready = true};
	const char *labels[] = {"stage"};
	const char *vals[] = {"a\"b"};
	struct metric_family *f =
	        metrics_family(e.m, METRIC_COUNTER, "conveyor_x_total", "X.", labels, 1, NULL, 0);
	metric_inc(metrics_series(f, vals), 7);
	struct http_handlers h = handlers_for(&e);
	struct http_server *srv = NULL;
	char err[256] = "";
	assert_int_equal(http_server_start("127.0.0.1:0", &h, &srv, err, sizeof(err)), 0);
	assert_non_null(srv);
	uint16_t port = http_server_port(srv);
	assert_int_not_equal(port, 0);

	struct reply r;
	char v[256];
	http_get(port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_true(header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "text/plain; version=0.0.4; charset=utf-8");
	assert_string_equal(r.body, "# HELP conveyor_x_total X.\n"
	                            "# TYPE conveyor_x_total counter\n"
	                            "conveyor_x_total{stage=\"a\\\"b\"} 7\n");
	free(r.body);

	http_get(port, "GET", "/metrics?debug=1", &r);
	assert_int_equal(r.status, 200);
	free(r.body);

	http_get(port, "HEAD", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	free(r.body);

	http_get(port, "GET", "/healthz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "alive\n");
	assert_true(header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "text/plain; charset=utf-8");
	free(r.body);

	http_get(port, "GET", "/readyz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	free(r.body);

	e.healthy = false;
	e.ready = false;
	http_get(port, "GET", "/healthz", &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "loop stalled: sink\n");
	free(r.body);
	http_get(port, "GET", "/readyz", &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "stage influx not started\n");
	free(r.body);

	http_get(port, "GET", "/", &r);
	assert_int_equal(r.status, 200);
	assert_true(header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "text/html; charset=utf-8");
	assert_true(header(&r, "Content-Security-Policy", v, sizeof(v)));
	assert_non_null(strstr(v, "default-src 'none'"));
	assert_non_null(strstr(r.body, "<title>Conveyor console</title>"));
	/* Self-contained: nothing from another origin (the SVG namespace is a
	 * name, not a fetch). */
	for (const char *p = strstr(r.body, "://"); p; p = strstr(p + 1, "://"))
		assert_true(p - r.body >= 4 &&
		            strncmp(p - 4, "http://www.w3.org/2000/svg", 26) == 0);
	assert_null(strstr(r.body, "src=\""));
	assert_null(strstr(r.body, "@import"));
	free(r.body);

	const char *missing[] = {"/index.html", "/metric", "/metrics/", "/healthz2", "/READYZ"};
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		http_get(port, "GET", missing[i], &r);
		assert_int_equal(r.status, 404);
		free(r.body);
	}

	const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		http_get(port, methods[i], "/metrics", &r);
		assert_int_equal(r.status, 405);
		assert_true(header(&r, "Allow", v, sizeof(v)));
		assert_string_equal(v, "GET, HEAD");
		free(r.body);
	}
	/* A POST with a body is refused without reading it. */
	http_raw(AF_INET, port,
	         "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	         "Connection: close\r\n\r\nhello",
	         &r);
	assert_int_equal(r.status, 405);
	free(r.body);

	http_get(port, "GET", "/api/v1/pipelines", &r);
	assert_int_equal(r.status, 200);
	assert_true(header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json");
	assert_true(header(&r, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "no-store");
	assert_string_equal(r.body, "{\"pipelines\":[]}\n");
	free(r.body);

	int scrapes = e.scrapes;
	e.metrics_fail = true;
	http_get(port, "GET", "/api/v1/pipelines", &r);
	assert_int_equal(r.status, 500);
	free(r.body);
	http_get(port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 500);
	assert_int_equal(e.scrapes, scrapes + 1);
	free(r.body);

	http_server_stop(srv);
	metrics_free(e.m);
}

static void test_bad_listen(void **state)
{
	(void)state;
	struct fake_engine e = {.m = NULL};
	struct http_handlers h = handlers_for(&e);
	const char *bad[] = {
	        "",
	        "127.0.0.1",
	        "127.0.0.1:",
	        "127.0.0.1:65536",
	        "127.0.0.1:-1",
	        "127.0.0.1:8x",
	        "127.0.0.1: 80",
	        "999.1.1.1:80",
	        "example.invalid:80",
	        "::1:80",
	        "[::1]80",
	        "[::1:80",
	        "[]:80",
	        "[nothost]:80",
	        ":",
	        "127.0.0.1:123456",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_server *srv = (struct http_server *)&e; /* must be reset */
		char err[256] = "";
		if (http_server_start(bad[i], &h, &srv, err, sizeof(err)) != -1)
			fail_msg("listen \"%s\" accepted", bad[i]);
		assert_null(srv);
		if (strlen(err) < 10)
			fail_msg("listen \"%s\": message too short: \"%s\"", bad[i], err);
	}
	struct http_server *srv = NULL;
	char err[256] = "";
	assert_int_equal(http_server_start(NULL, &h, &srv, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
	http_server_stop(NULL);
}

static void test_port_in_use(void **state)
{
	(void)state;
	struct fake_engine e = {.m = metrics_new(), .healthy = true, .ready = true};
	struct http_handlers h = handlers_for(&e);
	struct http_server *a = NULL, *b = NULL;
	char err[256] = "";
	assert_int_equal(http_server_start("127.0.0.1:0", &h, &a, err, sizeof(err)), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", http_server_port(a));
	assert_int_equal(http_server_start(addr, &h, &b, err, sizeof(err)), -1);
	assert_null(b);
	assert_non_null(strstr(err, addr));
	assert_non_null(strstr(err, "in use"));
	http_server_stop(a);
	metrics_free(e.m);
}

static void test_restart_releases_everything(void **state)
{
	(void)state;
	struct fake_engine e = {.m = metrics_new(), .healthy = true, .ready = true};
	struct http_handlers h = handlers_for(&e);
	int fds = count_fds();
	uint16_t port = 0;
	for (int i = 0; i < 10; i++) {
		struct http_server *srv = NULL;
		char err[256] = "", addr[64];
		/* The same port again: the socket was closed and can be rebound. */
		snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
		if (http_server_start(addr, &h, &srv, err, sizeof(err)) != 0)
			fail_msg("start %d on %s: %s", i, addr, err);
		port = http_server_port(srv);
		struct reply r;
		http_get(port, "GET", "/healthz", &r);
		assert_int_equal(r.status, 200);
		free(r.body);
		http_server_stop(srv);
	}
	assert_int_equal(count_fds(), fds);
	metrics_free(e.m);
}

static void test_ipv6_loopback(void **state)
{
	(void)state;
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	if (probe < 0)
		skip();
	close(probe);
	struct fake_engine e = {.m = metrics_new(), .healthy = true, .ready = true};
	struct http_handlers h = handlers_for(&e);
	struct http_server *srv = NULL;
	char err[256] = "";
	if (http_server_start("[::1]:0", &h, &srv, err, sizeof(err)) != 0) {
		metrics_free(e.m);
		if (strstr(err, "Cannot assign") || strstr(err, "not supported"))
			skip(); /* no IPv6 loopback on this machine */
		fail_msg("[::1]:0: %s", err);
	}
	struct reply r;
	http_raw(AF_INET6, http_server_port(srv),
	         "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	http_server_stop(srv);
	metrics_free(e.m);
}

static unsigned fake_reload(void *ctx, struct strbuf *out)
{
	int *calls = ctx;
	(*calls)++;
	strbuf_puts(out, "reloaded: kept: p\n");
	return 200;
}

/* POST /-/reload calls the handler once per request, body or not; other
 * methods get 405 naming POST; without a handler it is not there. */
static void test_reload_route(void **state)
{
	(void)state;
	int calls = 0;
	struct http_handlers h = {.ctx = &calls, .reload = fake_reload};
	struct http_server *srv = NULL;
	char err[256];
	assert_int_equal(http_server_start("127.0.0.1:0", &h, &srv, err, sizeof err), 0);
	uint16_t port = http_server_port(srv);
	struct reply r;
	http_get(port, "POST", "/-/reload", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "reloaded: kept: p\n");
	free(r.body);
	http_raw(AF_INET, port,
	         "POST /-/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	         "Content-Length: 10\r\n\r\n0123456789",
	         &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	assert_int_equal(calls, 2);
	http_get(port, "GET", "/-/reload", &r);
	assert_int_equal(r.status, 405);
	char allow[64];
	assert_true(header(&r, "Allow", allow, sizeof allow));
	assert_string_equal(allow, "POST");
	free(r.body);
	assert_int_equal(calls, 2);
	http_server_stop(srv);

	h.reload = NULL;
	assert_int_equal(http_server_start("127.0.0.1:0", &h, &srv, err, sizeof err), 0);
	http_get(http_server_port(srv), "POST", "/-/reload", &r);
	assert_int_equal(r.status, 404);
	free(r.body);
	http_server_stop(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_endpoints),
	        cmocka_unit_test(test_bad_listen),
	        cmocka_unit_test(test_port_in_use),
	        cmocka_unit_test(test_restart_releases_everything),
	        cmocka_unit_test(test_ipv6_loopback),
	        cmocka_unit_test(test_reload_route),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
