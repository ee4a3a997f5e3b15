/*
 * influxdb_test.c - the influxdb sink against a scripted HTTP server in this
 * process: option checks, batching, acknowledgement only on 2xx, retries,
 * finding the bad points of a refused request, the v2 API, gzip.
 *
 * The server speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies)
 * and behaves like InfluxDB 1.x: a body holding a line with the measurement
 * "BAD" is refused with 400 as a whole; otherwise its lines are stored.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include <conveyor/plugin.h>

#include "testing/stage_harness.h"

#define MAX_REQ 4096

struct server {
	int fd;
	int port;
	pthread_t thread;
	volatile int quit;
	pthread_mutex_t mu;
	/* script: answer the first `fail_count` requests with `fail_status` */
	int fail_count;
	int fail_status;
	volatile int stall; /* hold answers while set */
	/* what arrived */
	int requests;
	int status_count[600];
	uint64_t stored_lines;
	size_t max_body; /* largest body, after gunzip */
	char last_target[512];
	char last_auth[256];
	char last_encoding[64];
};

static struct server srv;
static const struct cv_plugin *plugin;

static void *conn_main(void *arg);

static void *server_main(void *arg)
{
	(void)arg;
	while (!srv.quit) {
		struct pollfd p = {.fd = srv.fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int c = accept(srv.fd, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
	return NULL;
}

static const char *header(const char *head, const char *name, char *out, size_t n)
{
	out[0] = 0;
	const char *p = strcasestr(head, name);
	if (!p)
		return out;
	p += strlen(name);
	while (*p == ' ' || *p == ':')
		p++;
	size_t i = 0;
	while (p[i] && p[i] != '\r' && i + 1 < n) {
		out[i] = p[i];
		i++;
	}
	out[i] = 0;
	return out;
}

static char *gunzip(const char *in, size_t len, size_t *out_len)
{
	size_t cap = len * 20 + 1024;
	char *out = malloc(cap);
	z_stream z = {0};
	inflateInit2(&z, 15 + 16);
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	z.next_out = (unsigned char *)out;
	z.avail_out = (uInt)cap;
	int rc = inflate(&z, Z_FINISH);
	*out_len = z.total_out;
	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	return out;
}

static void *conn_main(void *arg)
{
	int c = (int)(intptr_t)arg;
	char *buf = malloc(1 << 20);
	size_t cap = 1 << 20, len = 0;
	for (;;) {
		char *end;
		while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
			if (len == cap)
				goto out;
			struct pollfd p = {.fd = c, .events = POLLIN};
			if (srv.quit || poll(&p, 1, 100) < 0)
				goto out;
			if (!(p.revents & (POLLIN | POLLHUP)))
				continue;
			ssize_t n = read(c, buf + len, cap - len);
			if (n <= 0)
				goto out;
			len += (size_t)n;
		}
		size_t head_len = (size_t)(end - buf) + 4;
		char head[4096];
		size_t hl = head_len < sizeof head - 1 ? head_len : sizeof head - 1;
		memcpy(head, buf, hl);
		head[hl] = 0;
		char cl[32], auth[256], enc[64];
		size_t body_len = (size_t)atol(header(head, "Content-Length", cl, sizeof cl));
		if (head_len + body_len > cap) {
			cap = head_len + body_len;
			buf = realloc(buf, cap);
		}
		while (len < head_len + body_len) {
			ssize_t n = read(c, buf + len, cap - len);
			if (n <= 0)
				goto out;
			len += (size_t)n;
		}
		char *body = buf + head_len;
		size_t blen = body_len;
		char *plain = NULL;
		header(head, "Content-Encoding", enc, sizeof enc);
		if (strcmp(enc, "gzip") == 0) {
			plain = gunzip(body, body_len, &blen);
			body = plain;
		}
		int status = 204;
		pthread_mutex_lock(&srv.mu);
		srv.requests++;
		if (blen > srv.max_body)
			srv.max_body = blen;
		sscanf(head, "POST %511s", srv.last_target);
		snprintf(srv.last_auth, sizeof srv.last_auth, "%s",
		         header(head, "Authorization", auth, sizeof auth));
		snprintf(srv.last_encoding, sizeof srv.last_encoding, "%s", enc);
		int stall = srv.stall;
		if (srv.fail_count > 0) {
			srv.fail_count--;
			status = srv.fail_status;
		} else if (!body || (blen && body[blen - 1] != '\n')) {
			status = 400;
		} else if (memmem(body, blen, "\nBAD", 4) ||
		           (blen >= 3 && !memcmp(body, "BAD", 3))) {
			status = 400;
		} else {
			for (size_t i = 0; i < blen; i++)
				srv.stored_lines += body[i] == '\n';
		}
		srv.status_count[status]++;
		pthread_mutex_unlock(&srv.mu);
		free(plain);
		if (stall) {
			while (!srv.quit && srv.stall)
				usleep(10000);
			if (srv.quit)
				goto out;
		}
		char resp[512];
		const char *msg = status == 400
		                          ? "{\"error\":\"partial write: bad point dropped=1\"}"
		                          : "{\"error\":\"try later\"}";
		int n;
		if (status == 204)
			n = snprintf(resp, sizeof resp, "HTTP/1.1 204 No Content\r\n\r\n");
		else
			n = snprintf(resp, sizeof resp,
			             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
			             "Retry-After: 0\r\nContent-Length: %zu\r\n\r\n%s",
			             status, strlen(msg), msg);
		if (write(c, resp, (size_t)n) != n)
			goto out;
		memmove(buf, buf + head_len + body_len, len - head_len - body_len);
		len -= head_len + body_len;
	}
out:
	free(buf);
	close(c);
	return NULL;
}

static int server_start(void **unused)
{
	(void)unused;
	memset(&srv, 0, sizeof srv);
	pthread_mutex_init(&srv.mu, NULL);
	srv.fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(srv.fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(srv.fd, 16) != 0)
		return -1;
	socklen_t al = sizeof a;
	getsockname(srv.fd, (struct sockaddr *)&a, &al);
	srv.port = ntohs(a.sin_port);
	return pthread_create(&srv.thread, NULL, server_main, NULL);
}

static int server_stop(void **unused)
{
	(void)unused;
	srv.quit = 1;
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	usleep(150000); /* connection threads see quit and end */
	pthread_mutex_destroy(&srv.mu);
	return 0;
}

static struct harness *open_sink(const char *extra)
{
	char opts[1024];
	snprintf(opts, sizeof opts,
	         "{url: \"http://127.0.0.1:%d/\", database: test, username: u, password: \"p w\", "
	         "batch: {max_delay: 20ms}, retry: {initial: 5ms, max: 20ms}%s%s}",
	         srv.port, extra ? ", " : "", extra ? extra : "");
	struct harness *h = NULL;
	assert_int_equal(harness_open(plugin, opts, 1024, &h), 0);
	return h;
}

static bool wait_acked(struct harness *h, uint64_t want)
{
	for (int i = 0; i < 1000; i++) {
		uint64_t n = harness_acked(h, CV_ACK_DELIVERED) +
		             harness_acked(h, CV_ACK_REJECTED) + harness_acked(h, CV_ACK_FAILED);
		if (n >= want)
			return n == want;
		usleep(10000);
	}
	return false;
}

/* Fills a fresh batch with n points m,line=L v=<i> seq=<i>i; names[i] (if
 * given) overrides the measurement. */
static struct cv_batch *make_batch(struct harness *h, uint32_t n, const char *bad_every)
{
	const struct cv_host_api *api = harness_api(h);
	struct cv_batch *b = harness_batch(h);
	int every = bad_every ? atoi(bad_every) : 0;
	for (uint32_t i = 0; i < n; i++) {
		struct cv_record *r = cv_batch_record_new(b);
		assert_non_null(r);
		bool bad = every && i % (uint32_t)every == 3;
		r->measurement = bad ? "BAD" : "m";
		r->measurement_len = bad ? 3 : 1;
		struct cv_tag *t = api->batch_alloc(b, sizeof *t);
		*t = (struct cv_tag){"line", "L1", 4, 2};
		r->tags = t;
		r->ntags = 1;
		r->timestamp = 1700000000000000000LL + i;
		assert_non_null(cv_record_add_float(api, b, r, "v", 1, i * 0.5));
		assert_non_null(cv_record_add_int(api, b, r, "seq", 3, i));
	}
	return b;
}

static void test_config_errors(void **unused)
{
	(void)unused;
	struct harness *h = NULL;
	char o[256];
	/* v1 without database */
	snprintf(o, sizeof o, "{url: \"http://127.0.0.1:%d\"}", srv.port);
	assert_true(harness_open(plugin, o, 16, &h) < 0);
	/* v2 without token */
	snprintf(o, sizeof o, "{url: \"http://127.0.0.1:%d\", api: v2, org: o, bucket: b}",
	         srv.port);
	assert_true(harness_open(plugin, o, 16, &h) < 0);
	/* v1 options with v2 */
	snprintf(o, sizeof o,
	         "{url: \"http://127.0.0.1:%d\", api: v2, org: o, bucket: b, token: t, "
	         "database: d}",
	         srv.port);
	assert_true(harness_open(plugin, o, 16, &h) < 0);
	/* credentials in the url */
	snprintf(o, sizeof o, "{url: \"http://u:secret@127.0.0.1:%d\", database: d}", srv.port);
	assert_true(harness_open(plugin, o, 16, &h) < 0);
	/* a query in the url */
	snprintf(o, sizeof o, "{url: \"http://127.0.0.1:%d/?u=x\", database: d}", srv.port);
	assert_true(harness_open(plugin, o, 16, &h) < 0);
	/* not http */
	assert_true(harness_open(plugin, "{url: \"ftp://x\", database: d}", 16, &h) < 0);
	/* a CA file that does not exist */
	assert_true(harness_open(plugin,
	                         "{url: \"https://x\", database: d, tls: {ca_file: /nonexistent}}",
	                         16, &h) < 0);
	/* tls options on http */
	assert_true(harness_open(plugin,
	                         "{url: \"http://x\", database: d, "
	                         "tls: {insecure_skip_verify: true}}",
	                         16, &h) < 0);
	/* an unknown api */
	assert_true(harness_open(plugin, "{url: \"http://x\", api: v3, database: d}", 16, &h) < 0);
}

static void test_delivers_and_acks(void **unused)
{
	(void)unused;
	struct harness *h = open_sink("batch.max_records: 64");
	uint64_t total = 0;
	for (int round = 0; round < 5; round++) {
		struct cv_batch *b = make_batch(h, 300, NULL);
		assert_int_equal(harness_write(h, b), 0);
		total += 300;
		assert_true(wait_acked(h, total));
	}
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), total);
	assert_int_equal(srv.stored_lines, total);
	/* 300 points in requests of at most 64 */
	assert_true(srv.requests >= 5 * 5);
	assert_string_equal(srv.last_target, "/write?db=test&precision=ns");
	assert_string_equal(srv.last_auth, "Basic dTpwIHc="); /* u:p w */
	assert_true(harness_metric(h, "conveyor_influxdb_requests_total", "204") >= 25);
	harness_close(h);
}

static void test_byte_limit_splits_requests(void **unused)
{
	(void)unused;
	struct harness *h = open_sink("batch.max_bytes: 1KiB");
	struct cv_batch *b = make_batch(h, 300, NULL);
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 300));
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 300);
	assert_int_equal(srv.stored_lines, 300);
	assert_true(srv.max_body <= 1024);
	assert_true(srv.requests >= 300 * 40 / 1024);
	harness_close(h);
}

static void test_refused_points_narrowed_down(void **unused)
{
	(void)unused;
	struct harness *h = open_sink("batch.max_records: 1000");
	/* every 16th point (index 3, 19, ...) is BAD: 16 of 256 */
	struct cv_batch *b = make_batch(h, 256, "16");
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 256));
	assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 16);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 240);
	assert_int_equal(srv.stored_lines, 240);
	harness_close(h);
}

static void test_retries_until_2xx(void **unused)
{
	(void)unused;
	pthread_mutex_lock(&srv.mu);
	srv.fail_count = 3;
	srv.fail_status = 503;
	pthread_mutex_unlock(&srv.mu);
	struct harness *h = open_sink(NULL);
	struct cv_batch *b = make_batch(h, 100, NULL);
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 100));
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 100);
	assert_int_equal(srv.status_count[503], 3);
	assert_int_equal(srv.stored_lines, 100);
	assert_true(harness_metric(h, "conveyor_influxdb_retries_total", NULL) >= 3);
	assert_int_equal(harness_metric(h, "conveyor_influxdb_requests_total", "503"), 3);

	/* 401 is a configuration error: kept and retried, never acknowledged */
	pthread_mutex_lock(&srv.mu);
	srv.fail_count = 1000000;
	srv.fail_status = 401;
	pthread_mutex_unlock(&srv.mu);
	b = make_batch(h, 10, NULL);
	assert_int_equal(harness_write(h, b), 0);
	for (int i = 0; i < 100 && srv.status_count[401] < 3; i++)
		usleep(10000);
	assert_true(srv.status_count[401] >= 3);
	/* counts are cumulative over the harness's batches */
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 100);
	pthread_mutex_lock(&srv.mu);
	srv.fail_count = 0;
	pthread_mutex_unlock(&srv.mu);
	assert_true(wait_acked(h, 110));
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 110);
	harness_close(h);
}

static void test_unencodable_rejected(void **unused)
{
	(void)unused;
	struct harness *h = open_sink(NULL);
	const struct cv_host_api *api = harness_api(h);
	struct cv_batch *b = make_batch(h, 5, NULL);
	b->records[2].fields[0].v.f = 0.0 / 0.0; /* NaN: no line protocol for it */
	cv_record_drop(b, &b->records[4]);
	(void)api;
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 4));
	assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 1);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 3);
	assert_int_equal(srv.stored_lines, 3);
	harness_close(h);
}

static void test_v2_and_gzip(void **unused)
{
	(void)unused;
	char o[512];
	snprintf(o, sizeof o,
	         "{url: \"http://127.0.0.1:%d\", api: v2, org: \"my org\", bucket: b/1, "
	         "token: \"tok en\", gzip: true, batch: {max_delay: 10ms}}",
	         srv.port);
	struct harness *h = NULL;
	assert_int_equal(harness_open(plugin, o, 1024, &h), 0);
	struct cv_batch *b = make_batch(h, 500, NULL);
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 500));
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 500);
	assert_int_equal(srv.stored_lines, 500);
	assert_string_equal(srv.last_target,
	                    "/api/v2/write?org=my%20org&bucket=b%2F1&precision=ns");
	assert_string_equal(srv.last_auth, "Token tok en");
	assert_string_equal(srv.last_encoding, "gzip");
	harness_close(h);
}

static void test_flush_deadline_and_shutdown_fail(void **unused)
{
	(void)unused;
	pthread_mutex_lock(&srv.mu);
	srv.stall = 1;
	pthread_mutex_unlock(&srv.mu);
	struct harness *h = open_sink("timeout: 10s");
	struct cv_batch *b = make_batch(h, 20, NULL);
	assert_int_equal(harness_write(h, b), 0);
	for (int i = 0; i < 200 && srv.requests < 1; i++)
		usleep(10000);
	assert_int_equal(srv.requests, 1);
	const struct cv_host_api *api = harness_api(h);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(plugin->flush(harness_state(h), api->now_ns() + 200000000LL), CV_EAGAIN);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(waited >= 0.15 && waited < 3.0);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 0);
	srv.stall = 0; /* the stalled request is answered now: close is quick */
	harness_close(h);
}

int main(void)
{
	void *so = dlopen(INFLUXDB_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!so) {
		fprintf(stderr, "dlopen %s: %s\n", INFLUXDB_PLUGIN_PATH, dlerror());
		return 1;
	}
	plugin = dlsym(so, CV_PLUGIN_SYMBOL);
	if (!plugin)
		return 1;
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_config_errors, server_start, server_stop),
	        cmocka_unit_test_setup_teardown(test_delivers_and_acks, server_start, server_stop),
	        cmocka_unit_test_setup_teardown(test_byte_limit_splits_requests, server_start,
	                                        server_stop),
	        cmocka_unit_test_setup_teardown(test_refused_points_narrowed_down, server_start,
	                                        server_stop),
	        cmocka_unit_test_setup_teardown(test_retries_until_2xx, server_start, server_stop),
	        cmocka_unit_test_setup_teardown(test_unencodable_rejected, server_start,
	                                        server_stop),
	        cmocka_unit_test_setup_teardown(test_v2_and_gzip, server_start, server_stop),
	        cmocka_unit_test_setup_teardown(test_flush_deadline_and_shutdown_fail, server_start,
	                                        server_stop),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	dlclose(so);
	return rc;
}
