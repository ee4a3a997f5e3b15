/* http_client.c - a GET over a plain socket, with poll() deadlines. */
#include "cli/http_client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"

#define HEAD_MAX   (16 << 10)
#define BODY_MAX   ((size_t)64 << 20)
#define STOP_CHECK 200 /* ms */

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

int http_url_parse(const char *url, struct http_url *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof *u);
	if (strncmp(url, "http://", 7) != 0) {
		set_err(err, errlen,
		        "URL \"%s\" must start with http:// (the engine serves plain HTTP)", url);
		return -1;
	}
	const char *h = url + 7;
	const char *path = strchr(h, '/');
	size_t hostport = path ? (size_t)(path - h) : strlen(h);
	const char *port = NULL;
	size_t hostlen;
	if (h[0] == '[') {
		const char *close = memchr(h, ']', hostport);
		if (!close) {
			set_err(err, errlen, "URL \"%s\": unclosed [ in the host", url);
			return -1;
		}
		hostlen = (size_t)(close - h - 1);
		h++;
		if (close + 1 < h - 1 + hostport) {
			if (close[1] != ':') {
				set_err(err, errlen, "URL \"%s\": expected :PORT after ]", url);
				return -1;
			}
			port = close + 2;
		}
	} else {
		const char *colon = memchr(h, ':', hostport);
		hostlen = colon ? (size_t)(colon - h) : hostport;
		if (colon)
			port = colon + 1;
	}
	if (hostlen == 0 || hostlen >= sizeof u->host) {
		set_err(err, errlen, "URL \"%s\": bad host", url);
		return -1;
	}
	memcpy(u->host, h, hostlen);
	if (port) {
		size_t plen = (size_t)((path ? path : url + strlen(url)) - port);
		if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen ||
		    atoi(port) > 65535 || atoi(port) == 0) {
			set_err(err, errlen, "URL \"%s\": port must be a number from 1 to 65535",
			        url);
			return -1;
		}
		memcpy(u->port, port, plen);
	} else {
		strcpy(u->port, "80");
	}
	if (path) {
		size_t n = strlen(path);
		while (n > 0 && path[n - 1] == '/')
			n--;
		if (n >= sizeof u->prefix) {
			set_err(err, errlen, "URL \"%s\": path too long", url);
			return -1;
		}
		memcpy(u->prefix, path, n);
	}
	return 0;
}

static int64_t now_ms(void)
{
	return clock_monotonic_ns() / 1000000;
}

/* Waits for `events` on fd up to timeout_ms (<0: for ever), waking to look
 * at *stop. 1 ready, 0 timed out or stopped, -1 error. */
static int wait_fd(int fd, short events, int timeout_ms, const volatile sig_atomic_t *stop)
{
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
	for (;;) {
		if (stop && *stop)
			return 0;
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = fd, .events = events};
		int rc = poll(&pfd, 1, left < STOP_CHECK ? (int)left : STOP_CHECK);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

static int connect_to(const struct http_url *u, int timeout_ms, const volatile sig_atomic_t *stop,
                      char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(u->host, u->port, &hints, &res);
	if (gai != 0) {
		set_err(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(gai));
		return -1;
	}
	int fd = -1, last = 0;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms, stop) == 1) {
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			if (soerr == 0)
				break;
			last = soerr;
		} else {
			last = errno == EINPROGRESS ? ETIMEDOUT : errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		set_err(err, errlen, "cannot connect to %s port %s: %s", u->host, u->port,
		        strerror(last ? last : ECONNREFUSED));
	return fd;
}

static int send_all(int fd, const char *p, size_t n, int timeout_ms)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (wait_fd(fd, POLLOUT, timeout_ms, NULL) != 1)
			return -1;
	}
	return 0;
}

/* The body decoder: length, chunked or to the close. */
struct body {
	bool chunked;
	int64_t left;  /* bytes left: of the body (length) or of the chunk */
	int state;     /* chunked: 0 size line, 1 data, 2 CRLF after data, 3 trailer, 4 done */
	char line[64]; /* chunked: the size line so far */
	size_t linelen;
	http_body_fn fn;
	void *ctx;
	bool stopped;
};

static bool body_done(const struct body *b)
{
	return b->stopped || (b->chunked ? b->state == 4 : b->left == 0);
}

/* Feeds bytes to the decoder. -1 on a broken chunked framing. */
static int body_feed(struct body *b, const char *p, size_t n)
{
	while (n && !body_done(b)) {
		if (!b->chunked) {
			size_t take = b->left >= 0 && (uint64_t)b->left < n ? (size_t)b->left : n;
			if (b->fn(b->ctx, p, take))
				b->stopped = true;
			if (b->left > 0)
				b->left -= (int64_t)take;
			p += take;
			n -= take;
			continue;
		}
		if (b->state == 1) {
			size_t take = (uint64_t)b->left < n ? (size_t)b->left : n;
			if (b->fn(b->ctx, p, take))
				b->stopped = true;
			b->left -= (int64_t)take;
			p += take;
			n -= take;
			if (b->left == 0)
				b->state = 2;
			continue;
		}
		/* A line: the size, the CRLF after data, or a trailer line. */
		char c = *p++;
		n--;
		if (c != '\n') {
			if (b->linelen + 1 >= sizeof b->line)
				return -1;
			b->line[b->linelen++] = c;
			continue;
		}
		if (b->linelen && b->line[b->linelen - 1] == '\r')
			b->linelen--;
		b->line[b->linelen] = '\0';
		size_t len = b->linelen;
		b->linelen = 0;
		if (b->state == 2) {
			if (len != 0)
				return -1;
			b->state = 0;
		} else if (b->state == 0) {
			char *end;
			errno = 0;
			unsigned long long size = strtoull(b->line, &end, 16);
			if (end == b->line || errno || (*end && *end != ';'))
				return -1;
			b->left = (int64_t)size;
			b->state = size ? 1 : 3;
		} else if (b->state == 3 && len == 0) {
			b->state = 4;
		}
	}
	return 0;
}

int http_get_stream(const struct http_url *u, const char *path, int timeout_ms,
                    const volatile sig_atomic_t *stop, int *status, http_body_fn on_data, void *ctx,
                    char *err, size_t errlen)
{
	*status = 0;
	int fd = connect_to(u, timeout_ms, stop, err, errlen);
	if (fd < 0)
		return -1;
	struct strbuf req = {0};
	strbuf_printf(&req,
	              "GET %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: conveyor/%s\r\n"
	              "Accept: */*\r\nConnection: close\r\n\r\n",
	              u->prefix, path, strchr(u->host, ':') ? "[" : "", u->host,
	              strchr(u->host, ':') ? "]" : "", u->port, CONVEYOR_VERSION);
	int rc = -1;
	if (req.failed || send_all(fd, req.data, req.len, timeout_ms) < 0) {
		set_err(err, errlen, "cannot send the request to %s port %s: %s", u->host, u->port,
		        strerror(errno));
		goto out;
	}
	char *head = malloc(HEAD_MAX);
	size_t hlen = 0;
	struct body b = {.left = -1, .fn = on_data, .ctx = ctx};
	bool in_body = false;
	char buf[16384];
	for (;;) {
		int w = wait_fd(fd, POLLIN, timeout_ms, stop);
		if (w == 0 && stop && *stop) {
			rc = 0;
			break;
		}
		if (w != 1) {
			set_err(err, errlen, "no answer from %s port %s within %d ms", u->host,
			        u->port, timeout_ms);
			break;
		}
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			set_err(err, errlen, "reading from %s port %s: %s", u->host, u->port,
			        strerror(errno));
			break;
		}
		if (n == 0) {
			if (in_body && !b.chunked && b.left < 0) {
				rc = 0; /* a body to the close */
			} else {
				set_err(err, errlen, "%s port %s closed the connection %s", u->host,
				        u->port,
				        in_body ? "in the middle of the body"
				                : "without an answer");
			}
			break;
		}
		const char *p = buf;
		size_t left = (size_t)n;
		if (!in_body) {
			if (!head || hlen + left > HEAD_MAX) {
				set_err(err, errlen, "%s port %s: answer headers too long", u->host,
				        u->port);
				break;
			}
			memcpy(head + hlen, buf, left);
			hlen += left;
			char *end = memmem(head, hlen, "\r\n\r\n", 4);
			if (!end)
				continue;
			*end = '\0';
			if (sscanf(head, "HTTP/1.%*d %d", status) != 1) {
				set_err(err, errlen, "%s port %s did not answer HTTP", u->host,
				        u->port);
				break;
			}
			for (char *line = strstr(head, "\r\n"); line;
			     line = strstr(line + 2, "\r\n")) {
				const char *l = line + 2;
				if (strncasecmp(l, "Transfer-Encoding:", 18) == 0 &&
				    strstr(l, "chunked"))
					b.chunked = true;
				else if (strncasecmp(l, "Content-Length:", 15) == 0)
					b.left = strtoll(l + 15, NULL, 10);
			}
			if (b.chunked)
				b.left = 0;
			in_body = true;
			size_t used = (size_t)(end + 4 - head) - (hlen - left);
			p = buf + used;
			left -= used;
		}
		if (body_feed(&b, p, left) < 0) {
			set_err(err, errlen, "%s port %s: broken chunked body", u->host, u->port);
			break;
		}
		if (body_done(&b)) {
			rc = 0;
			break;
		}
	}
	free(head);
out:
	strbuf_free(&req);
	close(fd);
	return rc;
}

static int collect(void *ctx, const char *data, size_t len)
{
	struct strbuf *sb = ctx;
	if (sb->len + len > BODY_MAX)
		return 1;
	return strbuf_append(sb, data, len) < 0;
}

int http_get(const struct http_url *u, const char *path, int timeout_ms, int *status,
             struct strbuf *body, char *err, size_t errlen)
{
	int rc = http_get_stream(u, path, timeout_ms, NULL, status, collect, body, err, errlen);
	if (rc == 0 && body->failed) {
		set_err(err, errlen, "out of memory reading the answer");
		return -1;
	}
	return rc;
}
