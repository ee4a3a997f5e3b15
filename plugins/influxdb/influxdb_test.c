/*
 * influxdb_test.c - the influxdb sink against a scripted HTTP server in this
 * process: option checks, batching, acknowledgement only on 2xx, retries,
 * finding the bad points of a refused request, the v2 API, gzip.
 *
 * The server speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies)
 * and behaves like InfluxDB 1.x: a body holding a line with the measurement
 * "BAD" is refused with 400; as a whole with "field type conflict" (naming
 * nothing), or, with `name_bad`, as influxd refuses unparsable lines: it
 * stores the other lines and quotes each bad one ("partial write: unable to
 * parse 'LINE': ..."), its JSON escaping every byte past ASCII. A body
 * larger than `max_accept` gets 413. The integration tests run the real
 * influxd; this server scripts what it cannot (proxies, exact counts).
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
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

#define MAX_CONNS 256

struct server {
	int fd;
	int port;
	pthread_t thread;
	atomic_bool quit;
	atomic_bool stall; /* hold answers while set */
	pthread_mutex_t mu;
	pthread_t conns[MAX_CONNS]; /* connection threads, joined at stop */
	int nconns;
	/* script: answer the first `fail_count` requests with `fail_status` and
	 * `fail_body` (NULL: a JSON error) of type `fail_type` */
	int fail_count;
	int fail_status;
	const char *fail_body;
	const char *fail_type;
	bool name_bad;     /* refuse BAD lines as unparsable, naming them */
	size_t max_accept; /* larger bodies get 413; 0: no limit */
	/* what arrived */
	int requests;
	int status_count[600];
	uint64_t stored_lines;
	size_t max_body; /* largest body, after gunzip */
	char last_target[512];
	char last_auth[256];
	char last_encoding[64];
	size_t request_bytes[64]; /* body sizes of the first requests */
};

static struct server srv;
static const struct cv_plugin *plugin;

static void *conn_main(void *arg);

static void *server_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&srv.quit)) {
		struct pollfd p = {.fd = srv.fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int c = accept(srv.fd, NULL, NULL);
		if (c < 0)
			continue;
		pthread_mutex_lock(&srv.mu);
		if (srv.nconns == MAX_CONNS || pthread_create(&srv.conns[srv.nconns], NULL,
		                                              conn_main, (void *)(intptr_t)c) != 0)
			close(c);
		else
			srv.nconns++;
		pthread_mutex_unlock(&srv.mu);
	}
	return NULL;
}

/* `n` bytes as the body of a JSON string, as Go's encoder writes them, but
 * escaping every character past ASCII (\uXXXX, surrogate pairs past the
 * BMP): what a client must decode to find a quoted line. */
static size_t json_escape(const char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)in[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
			i++;
			continue;
		}
		if (c >= 0x20 && c < 0x80 && c != '<' && c != '>' && c != '&') {
			out[o++] = (char)c;
			i++;
			continue;
		}
		uint32_t cp = c;
		size_t len = 1;
		if (c >= 0xF0) {
			cp = c & 0x07;
			len = 4;
		} else if (c >= 0xE0) {
			cp = c & 0x0F;
			len = 3;
		} else if (c >= 0xC0) {
			cp = c & 0x1F;
			len = 2;
		}
		for (size_t k = 1; k < len && i + k < n; k++)
			cp = cp << 6 | ((unsigned char)in[i + k] & 0x3F);
		i += len;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			o += (size_t)sprintf(out + o, "\\u%04x\\u%04x", 0xD800 + (cp >> 10),
			                     0xDC00 + (cp & 0x3FF));
		} else {
			o += (size_t)sprintf(out + o, "\\u%04x", cp);
		}
	}
	return o;
}

/* The 400 answer naming each BAD line of `body` as unparsable (1.x's
 * {"error":...}, 2.x's {"code":"invalid","message":...}); stores the
 * others. Under mu. */
static char *name_bad_lines(const char *body, size_t len, bool v2, size_t *resp_len)
{
	char *msg = malloc(len * 12 + 128);
	size_t o = (size_t)sprintf(msg, "%s",
	                           v2 ? "{\"code\":\"invalid\",\"message\":\""
	                              : "{\"error\":\"partial write: ");
	bool first = true;
	for (const char *p = body; p < body + len;) {
		const char *eol = memchr(p, '\n', (size_t)(body + len - p));
		size_t l = (size_t)(eol - p);
		if (l >= 3 && !memcmp(p, "BAD", 3)) {
			o += (size_t)sprintf(msg + o, "%sunable to parse '", first ? "" : "\\n");
			o += json_escape(p, l, msg + o);
			o += (size_t)sprintf(msg + o, "': invalid field format");
			first = false;
		} else {
			srv.stored_lines++;
		}
		p = eol + 1;
	}
	o += (size_t)sprintf(msg + o, " dropped=0\"}");
	*resp_len = o;
	return msg;
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
			if (atomic_load(&srv.quit) || poll(&p, 1, 100) < 0)
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
		char *named = NULL;
		size_t named_len = 0;
		const char *fail_body = NULL, *fail_type = "application/json";
		pthread_mutex_lock(&srv.mu);
		if (srv.requests < 64)
			srv.request_bytes[srv.requests] = blen;
		srv.requests++;
		if (blen > srv.max_body)
			srv.max_body = blen;
		sscanf(head, "POST %511s", srv.last_target);
		snprintf(srv.last_auth, sizeof srv.last_auth, "%s",
		         header(head, "Authorization", auth, sizeof auth));
		snprintf(srv.last_encoding, sizeof srv.last_encoding, "%s", enc);
		if (srv.fail_count > 0) {
			srv.fail_count--;
			status = srv.fail_status;
			fail_body = srv.fail_body;
			if (srv.fail_type)
				fail_type = srv.fail_type;
		} else if (!body || (blen && body[blen - 1] != '\n')) {
			status = 400;
		} else if (srv.max_accept && blen > srv.max_accept) {
			status = 413;
		} else if (memmem(body, blen, "\nBAD", 4) ||
		           (blen >= 3 && !memcmp(body, "BAD", 3))) {
			status = 400;
			if (srv.name_bad)
				named = name_bad_lines(body, blen,
				                       strncmp(srv.last_target, "/api/v2/", 8) == 0,
				                       &named_len);
		} else {
			for (size_t i = 0; i < blen; i++)
				srv.stored_lines += body[i] == '\n';
		}
		srv.status_count[status]++;
		pthread_mutex_unlock(&srv.mu);
		free(plain);
		while (atomic_load(&srv.stall) && !atomic_load(&srv.quit))
			usleep(10000);
		if (atomic_load(&srv.quit)) {
			free(named);
			goto out;
		}
		char head_out[256];
		const char *msg = named           ? named
		                  : fail_body     ? fail_body
		                  : status == 400 ? "{\"error\":\"field type conflict\"}"
		                  : status == 413 ? "{\"error\":\"Request Entity Too Large\"}"
		                                  : "{\"error\":\"try later\"}";
		size_t msg_len = named ? named_len : strlen(msg);
		int n;
		if (status == 204)
			n = snprintf(head_out, sizeof head_out, "HTTP/1.1 204 No Content\r\n\r\n");
		else
			n = snprintf(head_out, sizeof head_out,
			             "HTTP/1.1 %d X\r\nContent-Type: %s\r\n"
			             "Retry-After: 0\r\nContent-Length: %zu\r\n\r\n",
			             status, fail_type, msg_len);
		bool ok = write(c, head_out, (size_t)n) == n &&
		          (status == 204 || write(c, msg, msg_len) == (ssize_t)msg_len);
		free(named);
		if (!ok)
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
	atomic_store(&srv.quit, true);
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	/* Each connection thread sees quit within its 100 ms poll and ends. */
	for (int i = 0; i < srv.nconns; i++)
		pthread_join(srv.conns[i], NULL);
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

/* What the server saw, read under its lock. */
static int seen(int status)
{
	pthread_mutex_lock(&srv.mu);
	int n = status ? srv.status_count[status] : srv.requests;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

static bool wait_seen(int status, int want)
{
	for (int i = 0; i < 1000 && seen(status) < want; i++)
		usleep(10000);
	return seen(status) >= want;
}

/* Fills a fresh batch with n points m,line=L1 v=<i/2> seq=<i>i; with
 * bad_every, every so many is a point the server refuses (measurement
 * "BAD", a tag value that JSON must escape). */
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
		static const char hostile[] = "a<&>\"\xc3\xbc\xf0\x9f\x98\x80\\x"; /* ü, U+1F600 */
		*t = bad ? (struct cv_tag){"line", hostile, 4, sizeof hostile - 1}
		         : (struct cv_tag){"line", "L1", 4, 2};
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

/* influxd names unparsable lines: they are rejected from the answer, the
 * rest is sent once more; no splitting. The names are found after decoding
 * the JSON (\\uXXXX escapes, surrogate pairs). */
static void test_named_lines_rejected_from_the_answer(void **unused)
{
	(void)unused;
	pthread_mutex_lock(&srv.mu);
	srv.name_bad = true;
	pthread_mutex_unlock(&srv.mu);
	struct harness *h = open_sink("batch.max_records: 1000");
	struct cv_batch *b = make_batch(h, 256, "16");
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 256));
	assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 16);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 240);
	assert_int_equal(harness_dead_lettered(h), 0); /* the harness has no destination */
	/* One refusal, one resend of the 240 good points, which the partial
	 * write had stored already (a resent point overwrites itself). */
	assert_int_equal(seen(400), 1);
	assert_int_equal(seen(204), 1);
	assert_int_equal(srv.stored_lines, 480);
	harness_close(h);
}

/* A 400 that is not about the points (plain HTTP to an HTTPS port, a
 * proxy's page, a missing parameter) rejects nothing: retried until the
 * server takes the points. */
static void test_request_errors_not_about_points_retried(void **unused)
{
	(void)unused;
	static const char *const bodies[][2] = {
	        {"Client sent an HTTP request to an HTTPS server.\n", "text/plain"},
	        {"<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center>"
	         "<h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>"
	         "</html>\r\n",
	         "text/html"},
	        {"{\"error\":\"database is required\"}", "application/json"},
	};
	struct harness *h = open_sink("batch.max_records: 1000");
	uint64_t total = 0;
	for (size_t k = 0; k < sizeof bodies / sizeof bodies[0]; k++) {
		int before = seen(400);
		pthread_mutex_lock(&srv.mu);
		srv.fail_count = 1000000;
		srv.fail_status = 400;
		srv.fail_body = bodies[k][0];
		srv.fail_type = bodies[k][1];
		pthread_mutex_unlock(&srv.mu);
		/* Splitting 8 points down to single ones takes 15 requests: 20
		 * refusals with nothing rejected mean none was split off. */
		struct cv_batch *b = make_batch(h, 8, NULL);
		assert_int_equal(harness_write(h, b), 0);
		assert_true(wait_seen(400, before + 20));
		assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 0);
		assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), total);
		pthread_mutex_lock(&srv.mu);
		srv.fail_count = 0;
		pthread_mutex_unlock(&srv.mu);
		total += 8;
		assert_true(wait_acked(h, total));
		assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), total);
	}
	assert_int_equal(srv.stored_lines, total);
	harness_close(h);
}

/* 413: the request is halved until it passes, later requests stay below
 * the refused size, and a point too large on its own is rejected. */
static void test_too_large_requests_split(void **unused)
{
	(void)unused;
	pthread_mutex_lock(&srv.mu);
	srv.max_accept = 4096;
	pthread_mutex_unlock(&srv.mu);
	struct harness *h = open_sink("batch.max_records: 1000");
	struct cv_batch *b = make_batch(h, 300, NULL); /* about 13 KB */
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 300));
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 300);
	int refused = seen(413);
	assert_true(refused >= 1);
	/* The next requests are sized below what was refused: no more 413. */
	b = make_batch(h, 300, NULL);
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 600));
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 600);
	assert_int_equal(seen(413), refused);
	assert_int_equal(srv.stored_lines, 600);
	/* A point larger than the server takes is rejected, alone. */
	const struct cv_host_api *api = harness_api(h);
	b = make_batch(h, 3, NULL);
	static char big[6000];
	memset(big, 'x', sizeof big);
	struct cv_field *f = cv_record_add_field(api, b, &b->records[1]);
	assert_non_null(f);
	*f = (struct cv_field){.key = "s",
	                       .key_len = 1,
	                       .type = CV_FIELD_STRING,
	                       .str_len = sizeof big,
	                       .v.s = big};
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 603));
	assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 1);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 602);
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
	assert_true(wait_seen(401, 3));
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

	/* 2.x names unparsable lines in "message": rejected from the answer. */
	pthread_mutex_lock(&srv.mu);
	srv.name_bad = true;
	pthread_mutex_unlock(&srv.mu);
	b = make_batch(h, 64, "16");
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_acked(h, 564));
	assert_int_equal(harness_acked(h, CV_ACK_REJECTED), 4);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 560);
	assert_int_equal(seen(400), 1);
	harness_close(h);
}

static void test_flush_deadline_and_shutdown_fail(void **unused)
{
	(void)unused;
	atomic_store(&srv.stall, true);
	struct harness *h = open_sink("timeout: 10s");
	struct cv_batch *b = make_batch(h, 20, NULL);
	assert_int_equal(harness_write(h, b), 0);
	assert_true(wait_seen(0, 1));
	assert_int_equal(seen(0), 1);
	const struct cv_host_api *api = harness_api(h);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(plugin->flush(harness_state(h), api->now_ns() + 200000000LL), CV_EAGAIN);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(waited >= 0.15 && waited < 3.0);
	assert_int_equal(harness_acked(h, CV_ACK_DELIVERED), 0);
	atomic_store(&srv.stall, false); /* answered now: close is quick */
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
	        cmocka_unit_test_setup_teardown(test_named_lines_rejected_from_the_answer,
	                                        server_start, server_stop),
	        cmocka_unit_test_setup_teardown(test_request_errors_not_about_points_retried,
	                                        server_start, server_stop),
	        cmocka_unit_test_setup_teardown(test_too_large_requests_split, server_start,
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
