/*
 * influxdb.c - the `influxdb` sink: records as line protocol over HTTP(S) to
 * InfluxDB's v1 /write or v2 /api/v2/write, with libcurl.
 *
 * Threads. write() runs on the host's sink thread: it encodes the batch's
 * live records into the open chunk (one future request body) and seals the
 * chunk when it holds batch.max_records records or batch.max_bytes bytes.
 * One sender thread owns a curl multi handle: it seals a chunk that waited
 * batch.max_delay (or at once when nothing is in flight, so a light load is
 * not delayed), keeps up to max_in_flight requests going over keep-alive
 * connections, and acknowledges every record of a request once the server
 * answered 2xx. Nothing else ever acknowledges a record as delivered.
 *
 * Failures. What an answer means decides what happens to the points:
 * - network errors, 5xx, 408 and 429: the server cannot now. Retried with
 *   exponential backoff and jitter (Retry-After honoured).
 * - 400 or 422 about the data (unable to parse, field type conflict,
 *   partial write, points beyond the retention policy): only the points the
 *   answer names are refused. Lines it quotes as unparsable are rejected at
 *   once; points matching a named field type conflict are resent on their
 *   own, the rest apart; a request whose bad points the answer does not name
 *   is split in halves until each refused point stands alone. Only refused
 *   points are rejected (dead-lettered) with the server's message.
 *   Resending good points is harmless: a point with the same series and
 *   timestamp overwrites itself.
 * - 413: the request, not its points, is too large: it is split in halves
 *   and later requests are kept under the size that was refused; a single
 *   point too large is rejected.
 * - 401, 403, 404, any other 4xx and a 400 not about the data ("Client sent
 *   an HTTP request to an HTTPS server", a proxy's error page): the
 *   configuration is wrong. Retried with backoff like an outage, never
 *   rejected, logged once with the server's message (again when the message
 *   changes, and when writes succeed again).
 * While requests fail (not for refused points) the stage reports itself
 * failing, so /readyz answers 503. Records stay pending, so write() blocks
 * once too much is queued and the source slows down.
 *
 * Memory. Chunks and their buffers are recycled through a small pool; the
 * hot path allocates nothing per record.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/x509_vfy.h>
#include <zlib.h>

#include <conveyor/plugin.h>

#include "record_format.h"
#include "text_codec.h"

#define INFLUX_VERSION     "1.0.0"
#define MS                 1000000LL
#define SEC                1000000000LL
#define RETRY_AFTER_CAP_NS (300 * SEC) /* a longer Retry-After is not honoured */
#define LOG_REPEAT_NS      (30 * SEC)  /* the same failure is logged again after */
#define RESP_MAX           65536       /* bytes of a response body kept */
#define MSG_MAX            480         /* bytes of the server's message in a log line */

enum { API_V1 = 0, API_V2 = 1 };
static const char *const api_names[] = {"v1", "v2", NULL};

struct influx_config {
	const char *url;
	int api;
	const char *database;
	const char *retention_policy;
	const char *username;
	const char *password;
	const char *org;
	const char *bucket;
	const char *token;
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
	bool tls_insecure_skip_verify;
	int64_t batch_max_records;
	uint64_t batch_max_bytes;
	int64_t batch_max_delay;
	int64_t batch_linger;
	int64_t max_in_flight;
	bool gzip;
	int64_t retry_initial;
	int64_t retry_max;
	int64_t timeout;
	struct cv_string_list resolve;
};

#define OPT(field) offsetof(struct influx_config, field)

static const struct cv_option influx_options[] = {
        {"url", CV_OPT_STRING, CV_OPT_REQUIRED, NULL, 0, 0, NULL, OPT(url),
         "base URL of the server, https://host:8086 (no credentials, no query)"},
        {"api", CV_OPT_ENUM, 0, "v1", 0, 0, api_names, OPT(api),
         "write API: v1 (/write, database + username/password) or v2 (/api/v2/write, "
         "org + bucket + token)"},
        {"database", CV_OPT_STRING, 0, NULL, 0, 0, NULL, OPT(database),
         "v1: the database to write to (required with v1)"},
        {"retention_policy", CV_OPT_STRING, 0, NULL, 0, 0, NULL, OPT(retention_policy),
         "v1: the retention policy (default: the database's default)"},
        {"username", CV_OPT_STRING, 0, NULL, 0, 0, NULL, OPT(username),
         "v1: user name for basic authentication"},
        {"password", CV_OPT_STRING, CV_OPT_SECRET, NULL, 0, 0, NULL, OPT(password),
         "v1: password for basic authentication"},
        {"org", CV_OPT_STRING, 0, NULL, 0, 0, NULL, OPT(org),
         "v2: organization (required with v2)"},
        {"bucket", CV_OPT_STRING, 0, NULL, 0, 0, NULL, OPT(bucket),
         "v2: bucket (required with v2)"},
        {"token", CV_OPT_STRING, CV_OPT_SECRET, NULL, 0, 0, NULL, OPT(token),
         "v2: API token (required with v2)"},
        {"tls.ca_file", CV_OPT_STRING, 0, NULL, 0, 0, NULL, OPT(tls_ca_file),
         "PEM file of the CA(s) to verify the server with (default: the system store)"},
        {"tls.cert_file", CV_OPT_STRING, 0, NULL, 0, 0, NULL, OPT(tls_cert_file),
         "PEM client certificate, for servers that require mutual TLS"},
        {"tls.key_file", CV_OPT_STRING, 0, NULL, 0, 0, NULL, OPT(tls_key_file),
         "PEM private key of the client certificate"},
        {"tls.insecure_skip_verify", CV_OPT_BOOL, 0, "false", 0, 0, NULL,
         OPT(tls_insecure_skip_verify),
         "do not verify the server's certificate and host name (insecure: tests only)"},
        {"batch.max_records", CV_OPT_INT, CV_OPT_HAS_MIN | CV_OPT_HAS_MAX, "5000", 1, 1000000, NULL,
         OPT(batch_max_records), "points per request at most"},
        {"batch.max_bytes", CV_OPT_SIZE, CV_OPT_HAS_MIN | CV_OPT_HAS_MAX, "4MiB", 1024,
         1073741824.0, NULL, OPT(batch_max_bytes),
         "request body size at most (before gzip; a single larger point is sent alone)"},
        {"batch.max_delay", CV_OPT_DURATION, CV_OPT_HAS_MIN, "1s", 1e6, 0, NULL,
         OPT(batch_max_delay), "longest a point waits for its request to fill"},
        {"batch.linger", CV_OPT_DURATION, 0, "0s", 0, 0, NULL, OPT(batch_linger),
         "when no request is in flight, how long a partial request waits for more points "
         "(0: sent at once; more means fewer, larger requests at low rates)"},
        {"max_in_flight", CV_OPT_INT, CV_OPT_HAS_MIN | CV_OPT_HAS_MAX, "4", 1, 64, NULL,
         OPT(max_in_flight), "requests sent concurrently (one keep-alive connection each)"},
        {"gzip", CV_OPT_BOOL, 0, "false", 0, 0, NULL, OPT(gzip),
         "compress request bodies (Content-Encoding: gzip)"},
        {"retry.initial", CV_OPT_DURATION, CV_OPT_HAS_MIN, "200ms", 1e6, 0, NULL,
         OPT(retry_initial), "first backoff after a failed request; doubles each time"},
        {"retry.max", CV_OPT_DURATION, CV_OPT_HAS_MIN, "10s", 1e6, 0, NULL, OPT(retry_max),
         "longest backoff between retries"},
        {"timeout", CV_OPT_DURATION, CV_OPT_HAS_MIN, "30s", 1e8, 0, NULL, OPT(timeout),
         "time limit of one request, connection included"},
        {"resolve", CV_OPT_LIST, 0, NULL, 0, 0, NULL, OPT(resolve),
         "HOST:PORT:ADDRESS entries that pin a host name to an address, as curl --resolve "
         "(TLS still verifies HOST)"},
        {0},
};

/* One record in a chunk: where to acknowledge it, where its line ends. */
struct line_ref {
	struct cv_batch *batch;
	uint32_t index;
	uint32_t end; /* offset just past the line's '\n' in the body */
};

/* One request body and the records it carries. */
struct chunk {
	struct chunk *next;
	struct cv_buf body;
	struct cv_buf gz; /* the body gzipped, made before the first send */
	struct line_ref *lines;
	uint32_t nlines;
	uint32_t lines_cap;
	int64_t born_ns; /* monotonic: when its first line went in */
};

/* One concurrent request: an easy handle reused over keep-alive. */
struct slot {
	struct influx *s;
	CURL *easy;
	struct chunk *chunk; /* NULL when free */
	int64_t started_ns;
	char *resp; /* the response body, up to RESP_MAX bytes; grown on demand */
	size_t resp_len;
	size_t resp_cap;
	char errbuf[CURL_ERROR_SIZE];
};

struct influx {
	struct cv_stage *stage;
	const struct cv_host_api *api;
	const struct influx_config *cfg;
	char *base_url; /* the url without a trailing '/': safe to log */
	char *write_url;
	struct curl_slist *headers; /* holds the v2 token: never logged */
	struct curl_slist *resolve;
	CURLM *multi;
	struct slot *slots;
	uint32_t nslots;
	uint32_t max_records;
	size_t max_bytes;
	uint64_t limit_records; /* write() waits while this much is pending */
	uint64_t limit_bytes;

	pthread_mutex_t mu;
	pthread_cond_t settled_cv; /* pending went down */
	struct chunk *open;        /* being filled by write() */
	struct chunk *head, *tail; /* sealed, waiting to be sent */
	struct chunk *pool;        /* recycled chunks */
	uint32_t npool;
	uint64_t pending_records; /* queued, in flight or waiting to retry */
	uint64_t pending_bytes;
	uint32_t in_flight;
	bool flush_now;
	bool quit;
	pthread_t thread;
	bool thread_started;

	/* Sender thread only. */
	uint32_t failures;       /* consecutive failed attempts */
	int64_t last_failure_ns; /* when the last failed request had started */
	int64_t backoff_until;   /* monotonic ns */
	uint64_t rng;
	bool unhealthy;
	int64_t split_logged_ns;    /* when narrowing down a refused request was logged */
	uint64_t fail_key;          /* the failure being handled: its status, curl code or text */
	uint64_t logged_key;        /* the last outage failure logged at its level; 0: none */
	uint64_t config_logged_key; /* the last configuration error logged; 0: none */
	int64_t logged_ns;
	uint64_t repeats; /* failures of that kind not logged since */
	char status_label[8];

	struct cv_metric *m_requests;
	struct cv_metric *m_retries;
	struct cv_metric *m_duration;
	struct cv_metric *m_bytes;
	struct cv_metric *m_pending;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void deadline_in(struct timespec *ts, int64_t ns)
{
	int64_t t = mono_ns() + ns;
	ts->tv_sec = (time_t)(t / SEC);
	ts->tv_nsec = (long)(t % SEC);
}

static uint64_t rng_next(struct influx *s)
{
	/* xorshift64*: jitter needs no quality, only no shared state. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ULL;
}

/* ------------------------------------------------------------------------ */
/* Chunks                                                                    */
/* ------------------------------------------------------------------------ */

static void chunk_free(struct chunk *c)
{
	if (!c)
		return;
	cv_buf_free(&c->body);
	cv_buf_free(&c->gz);
	free(c->lines);
	free(c);
}

/* A clean chunk from the pool or new; NULL when out of memory. Under mu. */
static struct chunk *chunk_get_locked(struct influx *s)
{
	struct chunk *c = s->pool;
	if (c) {
		s->pool = c->next;
		s->npool--;
	} else {
		c = calloc(1, sizeof *c);
		if (!c)
			return NULL;
		c->lines_cap = s->max_records;
		c->lines = malloc(sizeof *c->lines * c->lines_cap);
		/* Start small: the buffer grows to what the load needs, and the
		 * pool keeps grown buffers for the next requests. */
		size_t initial = s->max_bytes < 65536 ? s->max_bytes + 4096 : 65536;
		if (!c->lines || cv_buf_reserve(&c->body, initial) != 0) {
			chunk_free(c);
			return NULL;
		}
	}
	c->next = NULL;
	c->nlines = 0;
	c->born_ns = 0;
	cv_buf_reset(&c->body);
	cv_buf_reset(&c->gz);
	return c;
}

/* Back to the pool (a few are kept: enough for the requests in flight and
 * the ones being filled) or freed. Under mu. */
static void chunk_put_locked(struct influx *s, struct chunk *c)
{
	if (s->npool < s->nslots + 2 && c->body.cap <= s->max_bytes * 2 + 65536) {
		c->next = s->pool;
		s->pool = c;
		s->npool++;
	} else {
		chunk_free(c);
	}
}

static void push_tail_locked(struct influx *s, struct chunk *c)
{
	c->next = NULL;
	if (s->tail)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
}

static void push_head_locked(struct influx *s, struct chunk *c)
{
	c->next = s->head;
	s->head = c;
	if (!s->tail)
		s->tail = c;
}

static struct chunk *pop_head_locked(struct influx *s)
{
	struct chunk *c = s->head;
	if (c) {
		s->head = c->next;
		if (!s->head)
			s->tail = NULL;
		c->next = NULL;
	}
	return c;
}

static void seal_locked(struct influx *s)
{
	if (s->open && s->open->nlines) {
		push_tail_locked(s, s->open);
		s->open = NULL;
	}
}

/* Settles every record of `c` and returns the chunk to the pool. Acks
 * happen outside the lock: the host may complete batches from here. */
static void chunk_settle(struct influx *s, struct chunk *c, enum cv_ack outcome, const char *reason)
{
	for (uint32_t i = 0; i < c->nlines; i++)
		s->api->ack_record(c->lines[i].batch, c->lines[i].index, outcome, reason);
	pthread_mutex_lock(&s->mu);
	s->pending_records -= c->nlines;
	s->pending_bytes -= c->body.len;
	chunk_put_locked(s, c);
	pthread_cond_broadcast(&s->settled_cv);
	pthread_mutex_unlock(&s->mu);
}

static int chunk_gzip(struct chunk *c)
{
	z_stream z = {0};
	/* windowBits 15 + 16: a gzip wrapper, as Content-Encoding: gzip wants. */
	if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return CV_ENOMEM;
	size_t bound = deflateBound(&z, c->body.len);
	cv_buf_reset(&c->gz);
	if (cv_buf_reserve(&c->gz, bound) != 0) {
		deflateEnd(&z);
		return CV_ENOMEM;
	}
	z.next_in = (unsigned char *)c->body.data;
	z.avail_in = (uInt)c->body.len;
	z.next_out = (unsigned char *)c->gz.data;
	z.avail_out = (uInt)bound;
	int rc = deflate(&z, Z_FINISH);
	c->gz.len = z.total_out;
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : CV_ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

/* Why cv_record_encode_influx() refused a record, for the dead letter. Only
 * runs on that rare path. */
static const char *explain_unencodable(const struct cv_record *r)
{
	if (!r->measurement_len)
		return "cannot be written as line protocol: empty measurement";
	if (!r->nfields)
		return "cannot be written as line protocol: no fields";
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		if (f->type == CV_FIELD_FLOAT && (f->v.f != f->v.f || f->v.f - f->v.f != 0))
			return "cannot be written as line protocol: a float field is NaN or "
			       "infinite";
		if (f->type == CV_FIELD_STRING && f->v.s &&
		    (memchr(f->v.s, '\n', f->str_len) || memchr(f->v.s, '\r', f->str_len)))
			return "cannot be written as line protocol: a string field holds a newline";
	}
	return "cannot be written as line protocol (a newline, an unescapable backslash, an "
	       "empty or reserved key, or a duplicate tag)";
}

/* A strict reader of the JSON InfluxDB answers errors with: {"error":"..."}
 * from 1.x, {"code":"...","message":"..."} from 2.x. */
struct json_in {
	const char *p;
	const char *end;
};

static void json_ws(struct json_in *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* Reads the string at j->p (its opening quote). With `out`, writes its
 * decoded bytes there (never more than the string's encoded length) and
 * their count to *len. False when malformed. */
static bool json_string(struct json_in *j, char *out, size_t *len)
{
	if (j->p >= j->end || *j->p != '"')
		return false;
	j->p++;
	size_t o = 0;
	while (j->p < j->end) {
		unsigned char ch = (unsigned char)*j->p++;
		if (ch == '"') {
			if (len)
				*len = o;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch != '\\') {
			if (out)
				out[o] = (char)ch;
			o++;
			continue;
		}
		if (j->p >= j->end)
			return false;
		char e = *j->p++;
		uint32_t cp;
		switch (e) {
		case '"':
		case '\\':
		case '/': cp = (uint32_t)e; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u': {
			long u = j->end - j->p >= 4 ? cv_json_hex4(j->p) : -1;
			if (u < 0)
				return false;
			j->p += 4;
			cp = (uint32_t)u;
			if (u >= 0xD800 && u <= 0xDBFF && j->end - j->p >= 6 && j->p[0] == '\\' &&
			    j->p[1] == 'u') {
				long lo = cv_json_hex4(j->p + 2);
				if (lo >= 0xDC00 && lo <= 0xDFFF) {
					cp = 0x10000 + (((uint32_t)u - 0xD800) << 10) +
					     ((uint32_t)lo - 0xDC00);
					j->p += 6;
				}
			}
			if (cp >= 0xD800 && cp <= 0xDFFF)
				cp = 0xFFFD; /* a lone surrogate */
			break;
		}
		default: return false;
		}
		char tmp[4];
		size_t n = cv_utf8_put(tmp, cp);
		if (out)
			memcpy(out + o, tmp, n);
		o += n;
	}
	return false;
}

/* Skips one value of any type; false when malformed or nested too deep. */
static bool json_skip(struct json_in *j, int depth)
{
	json_ws(j);
	if (j->p >= j->end || depth > 32)
		return false;
	char c = *j->p;
	if (c == '"')
		return json_string(j, NULL, NULL);
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		j->p++;
		json_ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (;;) {
			if (c == '{') {
				json_ws(j);
				if (!json_string(j, NULL, NULL))
					return false;
				json_ws(j);
				if (j->p >= j->end || *j->p++ != ':')
					return false;
			}
			if (!json_skip(j, depth + 1))
				return false;
			json_ws(j);
			if (j->p >= j->end)
				return false;
			char sep = *j->p++;
			if (sep == close)
				return true;
			if (sep != ',')
				return false;
		}
	}
	/* A number or a literal: its characters up to a delimiter. */
	const char *start = j->p;
	while (j->p < j->end && *j->p && strchr("+-.0123456789eEtruefalsn", *j->p))
		j->p++;
	return j->p > start;
}

/* The member "error" (1.x), else "message" (2.x), of a JSON object `body`,
 * decoded into `out` (room for `len` + 1 bytes); its length, or -1 when the
 * body is not such an object. */
static ssize_t json_error_member(const char *body, size_t len, char *out)
{
	struct json_in j = {body, body + len};
	json_ws(&j);
	if (j.p >= j.end || *j.p++ != '{')
		return -1;
	ssize_t found = -1;
	bool found_error = false;
	json_ws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
	} else {
		for (;;) {
			json_ws(&j);
			char key[8];
			const char *kstart = j.p;
			size_t klen = 0;
			if (!json_string(&j, NULL, &klen))
				return -1;
			bool want = false, is_error = false;
			if (klen < sizeof key) {
				struct json_in k = {kstart, j.p};
				json_string(&k, key, &klen);
				is_error = klen == 5 && memcmp(key, "error", 5) == 0;
				want = is_error || (klen == 7 && memcmp(key, "message", 7) == 0);
			}
			json_ws(&j);
			if (j.p >= j.end || *j.p++ != ':')
				return -1;
			json_ws(&j);
			if (want && j.p < j.end && *j.p == '"' && (is_error || !found_error)) {
				size_t mlen = 0;
				if (!json_string(&j, out, &mlen))
					return -1;
				found = (ssize_t)mlen;
				found_error = is_error;
			} else if (!json_skip(&j, 0)) {
				return -1;
			}
			json_ws(&j);
			if (j.p >= j.end)
				return -1;
			char sep = *j.p++;
			if (sep == '}')
				break;
			if (sep != ',')
				return -1;
		}
	}
	json_ws(&j);
	return j.p == j.end ? found : -1;
}

/* The server's message in a response body, decoded into `out` (room for
 * `len` + 1 bytes) and NUL-terminated; returns its length. A JSON error
 * body gives its "error" or "message"; an HTML page its title; other text
 * its first non-empty line. */
static size_t server_message(const char *body, size_t len, char *out)
{
	ssize_t n = json_error_member(body, len, out);
	if (n >= 0) {
		out[n] = 0;
		return (size_t)n;
	}
	const char *p = body, *end = body + len;
	const char *title = memmem(body, len, "<title>", 7);
	if (!title)
		title = memmem(body, len, "<TITLE>", 7);
	if (title) {
		p = title + 7;
		const char *close = memchr(p, '<', (size_t)(end - p));
		end = close ? close : end;
	}
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	const char *eol = p;
	while (eol < end && *eol != '\n' && *eol != '\r')
		eol++;
	while (eol > p && (eol[-1] == ' ' || eol[-1] == '\t'))
		eol--;
	size_t o = (size_t)(eol - p);
	memcpy(out, p, o);
	out[o] = 0;
	return o;
}

/* `msg` shortened for a log line or a reason: at most MSG_MAX bytes, cut at
 * a character boundary, control characters as spaces. */
static const char *short_message(const char *msg, size_t n, char out[MSG_MAX + 4])
{
	bool cut = n > MSG_MAX;
	if (cut) {
		n = MSG_MAX;
		while (n && ((unsigned char)msg[n] & 0xC0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)msg[i] < 0x20 ? ' ' : msg[i];
	if (cut) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = 0;
	return out;
}
/* Logs a delivery failure `msg` (plus `detail`, which changes each time).
 * s->fail_key names the failure. A configuration error (`once`) is logged
 * when it is new and not again until writes succeed, even when outage
 * errors come in between (a server refusing plain HTTP also resets some
 * connections); an outage at once, then at most every LOG_REPEAT_NS (debug
 * in between), so neither floods the log. */
static void log_failure(struct influx *s, enum cv_log_level level, const char *msg,
                        const char *detail, bool once)
{
	if (once) {
		if (s->fail_key == s->config_logged_key) {
			s->api->log(s->stage, CV_LOG_DEBUG, "%s%s", msg, detail);
		} else {
			s->api->log(s->stage, level, "%s%s", msg, detail);
			s->config_logged_key = s->fail_key;
		}
		return;
	}
	int64_t now = mono_ns();
	bool same = s->fail_key == s->logged_key;
	if (same && now - s->logged_ns < LOG_REPEAT_NS) {
		s->repeats++;
		s->api->log(s->stage, CV_LOG_DEBUG, "%s%s", msg, detail);
		return;
	}
	if (same && s->repeats)
		s->api->log(s->stage, level, "%s%s (%" PRIu64 " similar failures not logged)", msg,
		            detail, s->repeats);
	else
		s->api->log(s->stage, level, "%s%s", msg, detail);
	s->logged_key = s->fail_key;
	s->logged_ns = now;
	s->repeats = 0;
}

/* Names the cause of a TLS failure from curl's code and message and
 * OpenSSL's verify result. */
static const char *tls_cause(CURLcode rc, long verify, const char *detail)
{
	switch (verify) {
	case X509_V_ERR_CERT_HAS_EXPIRED: return "the server's certificate has expired";
	case X509_V_ERR_CERT_NOT_YET_VALID: return "the server's certificate is not valid yet";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return "unknown CA: the server's certificate is not signed by a trusted CA "
		       "(set tls.ca_file to the CA that signed it)";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return "host name mismatch: the certificate does not name the url's host";
	default: break;
	}
	if (strstr(detail, "subject name") || strstr(detail, "does not match"))
		return "host name mismatch: the certificate does not name the url's host";
	if (strstr(detail, "expired"))
		return "the server's certificate has expired";
	if (rc == CURLE_SSL_CERTPROBLEM)
		return "the client certificate or key cannot be used";
	if (rc == CURLE_SSL_CACERT_BADFILE)
		return "tls.ca_file cannot be read as PEM certificates";
	return "TLS error";
}

static bool is_tls_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CRL_BADFILE: return true;
	default: return false;
	}
}

/* ------------------------------------------------------------------------ */
/* The sender thread                                                         */
/* ------------------------------------------------------------------------ */

static void set_healthy(struct influx *s, bool healthy, const char *reason)
{
	if (s->unhealthy == !healthy)
		return;
	s->unhealthy = !healthy;
	s->api->set_healthy(s->stage, healthy, reason);
}

/* Puts `c` back at the head of the queue and pauses sending a little. */
static void requeue_soon(struct influx *s, struct chunk *c)
{
	pthread_mutex_lock(&s->mu);
	push_head_locked(s, c);
	s->in_flight--;
	pthread_mutex_unlock(&s->mu);
	s->backoff_until = mono_ns() + s->cfg->retry_initial;
}

static void start_request(struct influx *s, struct slot *sl, struct chunk *c)
{
	const char *body = c->body.data;
	size_t len = c->body.len;
	if (s->cfg->gzip) {
		/* Compressed once; a retry or nothing else reuses it. */
		if (!c->gz.len && chunk_gzip(c) != 0) {
			s->api->log(s->stage, CV_LOG_WARN, "out of memory compressing a request");
			requeue_soon(s, c);
			return;
		}
		body = c->gz.data;
		len = c->gz.len;
	}
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDS, body);
	sl->chunk = c;
	sl->resp_len = 0;
	sl->errbuf[0] = 0;
	sl->started_ns = mono_ns();
	CURLMcode mc = curl_multi_add_handle(s->multi, sl->easy);
	if (mc != CURLM_OK) {
		/* Cannot happen with a removed handle; keep the data anyway. */
		s->api->log(s->stage, CV_LOG_ERROR, "cannot start a request: %s",
		            curl_multi_strerror(mc));
		sl->chunk = NULL;
		requeue_soon(s, c);
		return;
	}
	s->api->metric_add(s->m_bytes, NULL, (double)len);
}

/* Schedules `c` again after a backoff; the records stay pending. With
 * `unhealthy` (what the host logs), the stage reports itself failing. A
 * configuration error (`once`) is logged once while it lasts. */
static void retry_later(struct influx *s, struct slot *sl, struct chunk *c, const char *msg,
                        enum cv_log_level level, const char *unhealthy, bool once,
                        curl_off_t retry_after)
{
	int64_t now = mono_ns();
	/* Requests that were in flight together fail together: count one failure
	 * per round, so the backoff doubles once, not max_in_flight times. */
	if (sl->started_ns >= s->last_failure_ns || !s->failures) {
		s->failures++;
		s->last_failure_ns = now;
	}
	uint32_t shift = s->failures > 1 ? s->failures - 1 : 0;
	if (shift > 30)
		shift = 30;
	int64_t delay = s->cfg->retry_initial;
	while (shift-- && delay < s->cfg->retry_max)
		delay *= 2;
	if (delay > s->cfg->retry_max)
		delay = s->cfg->retry_max;
	/* Jitter: somewhere in [delay/2, delay], so that many engines that lost
	 * the same server do not come back in step. */
	delay = delay / 2 + (int64_t)(rng_next(s) % (uint64_t)(delay / 2 + 1));
	if (retry_after > 0) {
		int64_t ra = retry_after > RETRY_AFTER_CAP_NS / SEC ? RETRY_AFTER_CAP_NS
		                                                    : (int64_t)retry_after * SEC;
		if (ra > delay)
			delay = ra;
	}
	if (now + delay > s->backoff_until)
		s->backoff_until = now + delay;
	s->api->metric_add(s->m_retries, NULL, 1);

	char detail[96];
	snprintf(detail, sizeof detail, "; %" PRIu32 " points kept, retrying in %.1fs", c->nlines,
	         (double)delay / SEC);
	log_failure(s, level, msg, detail, once);
	if (unhealthy)
		set_healthy(s, false, unhealthy);

	pthread_mutex_lock(&s->mu);
	push_head_locked(s, c);
	pthread_mutex_unlock(&s->mu);
}

/* The server processed a request (2xx, or an answer about its points): it
 * is reachable and the configuration works. */
static void server_answers(struct influx *s)
{
	if (s->failures)
		s->api->log(s->stage, CV_LOG_INFO,
		            "influxdb at %s accepts writes again after %" PRIu32 " failed attempts",
		            s->base_url, s->failures);
	s->failures = 0;
	s->logged_key = 0;
	s->config_logged_key = 0;
	s->backoff_until = 0;
	set_healthy(s, true, NULL);
}

/* What an answer means for the request's points. */
enum answer {
	ANSWER_DELIVERED, /* 2xx: every point is written */
	ANSWER_BAD_DATA,  /* some points are refused for good: find them */
	ANSWER_TOO_LARGE, /* 413: the request is too large, not its points */
	ANSWER_CONFIG,    /* the requests are refused whatever they hold */
	ANSWER_LATER,     /* the server cannot now: 5xx, 408, 429 */
};

/* The words of InfluxDB's answers about points (1.x and 2.x): "unable to
 * parse 'LINE': why", "partial write: field type conflict: ...", "partial
 * write: points beyond retention policy dropped=N", and the limits. */
static const char *const data_error_words[] = {
        "unable to parse",
        "partial write",
        "field type conflict",
        "failed to parse",
        "points beyond retention policy",
        "max-values-per-tag limit exceeded",
        "max-series-per-database limit exceeded",
        NULL,
};

static enum answer classify(long status, const char *msg)
{
	if (status >= 200 && status < 300)
		return ANSWER_DELIVERED;
	if (status == 413)
		return ANSWER_TOO_LARGE;
	if (status == 408 || status == 429 || status >= 500)
		return ANSWER_LATER;
	if (status == 422) /* "unprocessable": 2.x's partial writes */
		return ANSWER_BAD_DATA;
	if (status == 400)
		for (size_t i = 0; data_error_words[i]; i++)
			if (strcasestr(msg, data_error_words[i]))
				return ANSWER_BAD_DATA;
	/* 401, 403, 404, a 400 not about the data ("Client sent an HTTP
	 * request to an HTTPS server", a proxy's page), redirects, ... */
	return ANSWER_CONFIG;
}

/* Marks of the lines of a refused request. */
enum { LINE_KEEP = 0, LINE_BAD, LINE_APART };

static uint32_t line_start(const struct chunk *c, uint32_t i)
{
	return i ? c->lines[i - 1].end : 0;
}

/* Removes the lines of `c` marked `what`, keeping `mark` in step with the
 * lines; returns the bytes removed. */
static size_t chunk_remove(struct chunk *c, uint8_t *mark, uint8_t what)
{
	uint32_t w = 0, start = 0, out = 0;
	size_t removed = 0;
	for (uint32_t i = 0; i < c->nlines; i++) {
		uint32_t end = c->lines[i].end, len = end - start;
		if (mark[i] == what) {
			removed += len;
		} else {
			memmove(c->body.data + out, c->body.data + start, len);
			out += len;
			c->lines[w] = c->lines[i];
			c->lines[w].end = out;
			mark[w++] = mark[i];
		}
		start = end;
	}
	c->nlines = w;
	c->body.len = out;
	cv_buf_reset(&c->gz); /* the body changed: compress it again */
	return removed;
}

/* A fresh chunk with the lines of `c` marked `what`; NULL without memory.
 * Under mu. */
static struct chunk *chunk_pick_locked(struct influx *s, const struct chunk *c, const uint8_t *mark,
                                       uint8_t what)
{
	struct chunk *n = chunk_get_locked(s);
	if (!n)
		return NULL;
	for (uint32_t i = 0; i < c->nlines; i++) {
		if (mark[i] != what)
			continue;
		uint32_t start = line_start(c, i);
		if (cv_buf_append(&n->body, c->body.data + start, c->lines[i].end - start) != 0) {
			chunk_put_locked(s, n);
			return NULL;
		}
		n->lines[n->nlines] = c->lines[i];
		n->lines[n->nlines].end = (uint32_t)n->body.len;
		n->nlines++;
	}
	n->born_ns = c->born_ns;
	return n;
}

/* Moves the second half of the lines of `c` (two or more) into a fresh
 * chunk, returned; NULL without memory, `c` unchanged. Under mu. */
static struct chunk *chunk_split_locked(struct influx *s, struct chunk *c)
{
	uint32_t half = c->nlines / 2, start = c->lines[half - 1].end;
	struct chunk *n = chunk_get_locked(s);
	if (!n)
		return NULL;
	if (cv_buf_append(&n->body, c->body.data + start, c->body.len - start) != 0) {
		chunk_put_locked(s, n);
		return NULL;
	}
	for (uint32_t i = half; i < c->nlines; i++) {
		n->lines[n->nlines] = c->lines[i];
		n->lines[n->nlines++].end -= start;
	}
	n->born_ns = c->born_ns;
	c->nlines = half;
	c->body.len = start;
	cv_buf_reset(&c->gz);
	return n;
}

static void reject_line(struct influx *s, const struct chunk *c, uint32_t i, long status,
                        const char *why, size_t why_len)
{
	char reason[MSG_MAX + 64], m[MSG_MAX + 4];
	snprintf(reason, sizeof reason, "influxdb refused the point (HTTP %ld): %s", status,
	         short_message(why, why_len, m));
	s->api->ack_record(c->lines[i].batch, c->lines[i].index, CV_ACK_REJECTED, reason);
}

/* Where the " dropped=N" that ends a partial write's message starts, with
 * N in *count; NULL (and -1) without one. */
static const char *dropped_suffix(const char *msg, size_t len, long long *count)
{
	static const char key[] = " dropped=";
	const size_t klen = sizeof key - 1;
	const char *end = msg + len;
	*count = -1;
	while (end > msg && (end[-1] == ' ' || end[-1] == '\n'))
		end--;
	const char *d = end;
	while (d > msg && d[-1] >= '0' && d[-1] <= '9')
		d--;
	if (d == end || end - d > 18 || (size_t)(d - msg) < klen ||
	    memcmp(d - klen, key, klen) != 0)
		return NULL;
	*count = strtoll(d, NULL, 10);
	return d - klen;
}

#define UNPARSABLE "unable to parse '"

/* Rejects each line of `c` the message quotes as unparsable ("unable to
 * parse 'LINE': why", InfluxDB's words, one a line in the order of the
 * body) with its own error, and marks it LINE_BAD; returns how many. */
static uint32_t reject_unparsable(struct influx *s, const struct chunk *c, long status,
                                  const char *msg, size_t msg_len, uint8_t *mark)
{
	const size_t plen = sizeof UNPARSABLE - 1;
	const char *end = msg + msg_len, *p = msg;
	uint32_t found = 0, next = 0;
	while ((p = memmem(p, (size_t)(end - p), UNPARSABLE, plen))) {
		const char *q = p + plen;
		for (uint32_t k = 0; k < c->nlines; k++) {
			uint32_t i = next + k < c->nlines ? next + k : next + k - c->nlines;
			uint32_t start = line_start(c, i);
			size_t len = c->lines[i].end - start - 1; /* without its '\n' */
			if (mark[i] || (size_t)(end - q) < len + 3 ||
			    memcmp(q, c->body.data + start, len) != 0 ||
			    memcmp(q + len, "': ", 3) != 0)
				continue;
			/* The line's own error runs to the end of the message's line. */
			const char *stop = q + len + 3;
			while (stop < end && *stop != '\n')
				stop++;
			long long d;
			const char *suffix = dropped_suffix(p, (size_t)(stop - p), &d);
			if (suffix)
				stop = suffix;
			while (stop > p && stop[-1] == ' ')
				stop--;
			reject_line(s, c, i, status, p, (size_t)(stop - p));
			mark[i] = LINE_BAD;
			found++;
			next = i + 1 < c->nlines ? i + 1 : 0;
			break;
		}
		p = q;
	}
	return found;
}

#define FIELD_QUOTE    "input field \""
#define ON_MEASUREMENT "\" on measurement \""

/* Marks LINE_APART each point of `c` that has a field the message names
 * (`input field "F" on measurement "M" is type T, already exists as type
 * U`, InfluxDB's field type conflict, or `... is too long`): the same
 * measurement and field and, when named, the field's type. Returns how
 * many. These are not sure to be refused (field types are per shard): they
 * are sent again on their own. */
static uint32_t mark_named_fields(const struct chunk *c, const char *msg, size_t msg_len,
                                  uint8_t *mark)
{
	/* Indexed by enum cv_field_type. */
	static const char *const types[] = {"float", "integer", "boolean", "string"};
	const size_t flen = sizeof FIELD_QUOTE - 1, olen = sizeof ON_MEASUREMENT - 1;
	const char *end = msg + msg_len, *p = msg;
	uint32_t found = 0;
	while ((p = memmem(p, (size_t)(end - p), FIELD_QUOTE, flen))) {
		const char *f = p + flen;
		const char *fe = memmem(f, (size_t)(end - f), ON_MEASUREMENT, olen);
		if (!fe)
			break;
		const char *m = fe + olen;
		const char *me = memmem(m, (size_t)(end - m), "\" is ", 5);
		if (!me)
			break;
		p = me;
		int type = -1; /* any */
		const char *t = me + 5;
		if (end - t > 5 && memcmp(t, "type ", 5) == 0) {
			t += 5;
			type = -2; /* a type the encoder never writes (unsigned) */
			for (int k = 0; k < 4; k++) {
				size_t tl = strlen(types[k]);
				if ((size_t)(end - t) >= tl && memcmp(t, types[k], tl) == 0 &&
				    ((size_t)(end - t) == tl || t[tl] == ',' || t[tl] == ' '))
					type = k;
			}
		}
		if (type == -2 || (size_t)(fe - f) > UINT16_MAX)
			continue;
		for (uint32_t i = 0; i < c->nlines; i++) {
			const struct cv_record *r = &c->lines[i].batch->records[c->lines[i].index];
			if (mark[i] || r->measurement_len != (size_t)(me - m) ||
			    memcmp(r->measurement, m, r->measurement_len) != 0)
				continue;
			const struct cv_field *fd = cv_record_find_field(r, f, (uint32_t)(fe - f));
			if (fd && (type < 0 || fd->type == type)) {
				mark[i] = LINE_APART;
				found++;
			}
		}
	}
	return found;
}

/* The server refused points of `c` (400 or 422 about the data). Rejects the
 * points the answer refuses for sure: every point when it says so (a single
 * point, or a partial write that dropped them all), the lines it quotes as
 * unparsable. Queues the others again: the points matching a named field
 * apart from the rest; when the answer names none, the two halves, so that
 * a refused point ends up alone and is rejected with the server's message.
 * Good points sent again overwrite themselves. */
static void refused_points(struct influx *s, struct chunk *c, long status, const char *msg,
                           size_t msg_len)
{
	char m[MSG_MAX + 4];
	long long dropped = -1;
	if (strstr(msg, "partial write"))
		dropped_suffix(msg, msg_len, &dropped);
	if (c->nlines == 1 || dropped == (long long)c->nlines) {
		char reason[MSG_MAX + 64];
		snprintf(reason, sizeof reason, "influxdb refused the point (HTTP %ld): %s", status,
		         short_message(msg, msg_len, m));
		chunk_settle(s, c, CV_ACK_REJECTED, reason);
		return;
	}
	uint32_t n = c->nlines;
	uint8_t *mark = calloc(n, 1);
	if (!mark) {
		pthread_mutex_lock(&s->mu);
		push_head_locked(s, c); /* out of memory: the whole again, later */
		pthread_mutex_unlock(&s->mu);
		s->backoff_until = mono_ns() + s->cfg->retry_initial;
		return;
	}
	uint32_t bad = reject_unparsable(s, c, status, msg, msg_len, mark);
	uint32_t apart = mark_named_fields(c, msg, msg_len, mark);
	bool halves = !bad && (!apart || apart == n);
	if (halves) {
		for (uint32_t i = 0; i < n; i++)
			mark[i] = i < n / 2 ? LINE_KEEP : LINE_APART;
		apart = n - n / 2;
	}
	int64_t now = mono_ns();
	if (!s->split_logged_ns || now - s->split_logged_ns >= LOG_REPEAT_NS) {
		s->split_logged_ns = now;
		if (halves)
			s->api->log(
			        s->stage, CV_LOG_INFO,
			        "influxdb refused points of a request of %" PRIu32
			        " (HTTP %ld: %s) without naming them; splitting it to find them",
			        n, status, short_message(msg, msg_len, m));
		else
			s->api->log(s->stage, CV_LOG_INFO,
			            "influxdb refused points of a request of %" PRIu32
			            " (HTTP %ld: %s): %" PRIu32 " unparsable rejected, %" PRIu32
			            " with the named field sent apart, %" PRIu32 " sent again",
			            n, status, short_message(msg, msg_len, m), bad, apart,
			            n - bad - apart);
	}
	pthread_mutex_lock(&s->mu);
	if (bad) {
		/* Settled already: out of the request and of the pending counts. */
		s->pending_bytes -= chunk_remove(c, mark, LINE_BAD);
		s->pending_records -= bad;
		pthread_cond_broadcast(&s->settled_cv);
	}
	struct chunk *other = NULL;
	if (apart && apart < c->nlines) {
		other = chunk_pick_locked(s, c, mark, LINE_APART);
		if (other)
			chunk_remove(c, mark, LINE_APART);
		else /* out of memory: `c` goes again whole, after a pause */
			s->backoff_until = mono_ns() + s->cfg->retry_initial;
	}
	if (c->nlines)
		push_head_locked(s, c);
	else
		chunk_put_locked(s, c);
	if (other)
		push_head_locked(s, other);
	pthread_mutex_unlock(&s->mu);
	free(mark);
}

/* 413: the request is too large for the server. It goes again in halves,
 * and requests are kept below half its size from now on; a single point is
 * rejected. */
static void too_large(struct influx *s, struct chunk *c, long status, const char *msg,
                      size_t msg_len)
{
	char m[MSG_MAX + 4];
	if (c->nlines == 1) {
		char reason[MSG_MAX + 96];
		snprintf(
		        reason, sizeof reason,
		        "influxdb refused the point as larger than a request may be (HTTP %ld: %s)",
		        status, short_message(msg, msg_len, m));
		chunk_settle(s, c, CV_ACK_REJECTED, reason);
		return;
	}
	size_t refused_bytes = c->body.len;
	pthread_mutex_lock(&s->mu);
	size_t limit = refused_bytes / 2 > 1024 ? refused_bytes / 2 : 1024;
	bool lowered = limit < s->max_bytes;
	if (lowered)
		s->max_bytes = limit;
	/* Its halves go again (the sender halves them further, and every
	 * queued request, while above the limit). */
	struct chunk *rest = chunk_split_locked(s, c);
	push_head_locked(s, c);
	if (rest)
		push_head_locked(s, rest);
	else /* out of memory: the whole again, after a pause */
		s->backoff_until = mono_ns() + s->cfg->retry_initial;
	pthread_mutex_unlock(&s->mu);
	if (lowered)
		s->api->log(s->stage, CV_LOG_WARN,
		            "influxdb at %s refused a request of %zu bytes as too large (HTTP %ld: "
		            "%s): requests are at most %zu bytes from now on; set batch.max_bytes "
		            "below the server's limit",
		            s->base_url, refused_bytes, status, short_message(msg, msg_len, m),
		            limit);
}

/* The answer refuses every request as the sink is configured: retried like
 * an outage, logged once, the stage failing until a request succeeds. */
static void config_error(struct influx *s, struct slot *sl, struct chunk *c, long status,
                         const char *msg, size_t msg_len)
{
	char text[MSG_MAX + 320], m[MSG_MAX + 4];
	const char *server = msg_len ? short_message(msg, msg_len, m) : "no message";
	const bool v2 = s->cfg->api == API_V2;
	switch (status) {
	case 401:
		snprintf(text, sizeof text,
		         "influxdb at %s refused the credentials (HTTP 401: %s): check %s",
		         s->base_url, server, v2 ? "token" : "username and password");
		break;
	case 403:
		snprintf(text, sizeof text, "influxdb at %s denied the write (HTTP 403: %s): %s",
		         s->base_url, server,
		         v2 ? "the token needs write permission on the bucket"
		            : "the user needs WRITE on the database");
		break;
	case 404:
		snprintf(text, sizeof text,
		         "influxdb at %s answered not found (HTTP 404: %s): check url and %s",
		         s->base_url, server, v2 ? "org and bucket" : "database");
		break;
	case 400:
		snprintf(text, sizeof text,
		         "influxdb at %s refused the request, not its points (HTTP 400: %s): check "
		         "url (https:// or http://, host, port, a proxy in between)",
		         s->base_url, server);
		break;
	default:
		snprintf(text, sizeof text,
		         "influxdb at %s answered HTTP %ld (%s), which no write can pass: check "
		         "url%s",
		         s->base_url, status, server,
		         status >= 300 && status < 400
		                 ? " (it redirects: use the server's own address)"
		                 : "");
		break;
	}
	char why[64];
	snprintf(why, sizeof why, "influxdb refuses the writes (HTTP %ld)", status);
	curl_off_t retry_after = 0;
	curl_easy_getinfo(sl->easy, CURLINFO_RETRY_AFTER, &retry_after);
	/* The same message again is the same failure, not logged again. */
	s->fail_key = cv_fnv1a64(text, strlen(text)) | 1u;
	retry_later(s, sl, c, text, CV_LOG_ERROR, why, true, retry_after);
}

static void request_done(struct influx *s, struct slot *sl, CURLcode rc)
{
	struct chunk *c = sl->chunk;
	sl->chunk = NULL;
	long status = 0;
	curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &status);
	s->api->metric_add(s->m_duration, NULL, (double)(mono_ns() - sl->started_ns) / SEC);

	char text[MSG_MAX + 320], m[MSG_MAX + 4];
	/* A server refusing a request may answer and close before it read the
	 * whole body (Go's "Client sent an HTTP request to an HTTPS server"):
	 * the connection is reset, but the answer came and counts. */
	if ((rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR) && status >= 400)
		rc = CURLE_OK;
	if (rc == CURLE_OK)
		snprintf(s->status_label, sizeof s->status_label, "%ld", status);
	else
		snprintf(s->status_label, sizeof s->status_label, "error");
	s->api->metric_add(s->m_requests, s->status_label, 1);

	if (rc != CURLE_OK) {
		s->fail_key = (1ULL << 32) | (uint64_t)rc;
		const char *detail = sl->errbuf[0] ? sl->errbuf : curl_easy_strerror(rc);
		if (is_tls_error(rc)) {
			long verify = 0;
			curl_easy_getinfo(sl->easy, CURLINFO_SSL_VERIFYRESULT, &verify);
			snprintf(text, sizeof text,
			         "TLS with %s failed: %s (curl: %s; certificate verify result %ld: "
			         "%s)",
			         s->base_url, tls_cause(rc, verify, detail), detail, verify,
			         X509_verify_cert_error_string(verify));
			retry_later(s, sl, c, text, CV_LOG_ERROR, "TLS with influxdb fails", false,
			            0);
		} else {
			snprintf(text, sizeof text, "request to %s failed: %s", s->base_url,
			         detail);
			retry_later(s, sl, c, text, CV_LOG_WARN, "influxdb cannot be reached",
			            false, 0);
		}
		return;
	}
	if (status >= 200 && status < 300) {
		chunk_settle(s, c, CV_ACK_DELIVERED, NULL);
		server_answers(s);
		return;
	}

	/* The server's message, whole: the lines it names may be anywhere. */
	char empty = 0;
	char *msg = malloc(sl->resp_len + 1);
	size_t msg_len = msg ? server_message(sl->resp ? sl->resp : "", sl->resp_len, msg) : 0;
	if (!msg)
		msg = &empty;
	switch (classify(status, msg)) {
	case ANSWER_DELIVERED: break; /* handled above */
	case ANSWER_BAD_DATA:
		server_answers(s);
		refused_points(s, c, status, msg, msg_len);
		break;
	case ANSWER_TOO_LARGE:
		server_answers(s);
		too_large(s, c, status, msg, msg_len);
		break;
	case ANSWER_CONFIG: config_error(s, sl, c, status, msg, msg_len); break;
	case ANSWER_LATER: {
		curl_off_t retry_after = 0;
		curl_easy_getinfo(sl->easy, CURLINFO_RETRY_AFTER, &retry_after);
		s->fail_key = (uint64_t)status;
		const char *server = msg_len ? short_message(msg, msg_len, m) : "no message";
		if (status == 429) {
			snprintf(text, sizeof text,
			         "influxdb at %s is throttling writes (HTTP 429: %s)", s->base_url,
			         server);
			/* Throttling is the server pacing us, not a failure of this
			 * stage, unless it goes on. */
			retry_later(s, sl, c, text, CV_LOG_WARN,
			            s->failures >= 2 ? "influxdb keeps throttling writes" : NULL,
			            false, retry_after);
		} else {
			snprintf(text, sizeof text, "influxdb at %s answered HTTP %ld: %s",
			         s->base_url, status, server);
			retry_later(s, sl, c, text, CV_LOG_WARN, "influxdb fails to write", false,
			            retry_after);
		}
		break;
	}
	}
	if (msg != &empty)
		free(msg);
}

static size_t on_response(char *data, size_t size, size_t nmemb, void *arg)
{
	struct slot *sl = arg;
	size_t n = size * nmemb;
	size_t take = RESP_MAX - sl->resp_len < n ? RESP_MAX - sl->resp_len : n;
	if (take && sl->resp_len + take > sl->resp_cap) {
		size_t cap = sl->resp_cap ? sl->resp_cap : 1024;
		while (cap < sl->resp_len + take)
			cap *= 2;
		char *p = realloc(sl->resp, cap < RESP_MAX ? cap : RESP_MAX);
		if (!p)
			return n; /* only the message is cut short */
		sl->resp = p;
		sl->resp_cap = cap < RESP_MAX ? cap : RESP_MAX;
	}
	if (take)
		memcpy(sl->resp + sl->resp_len, data, take);
	sl->resp_len += take;
	return n;
}

static struct slot *free_slot(struct influx *s)
{
	for (uint32_t i = 0; i < s->nslots; i++)
		if (!s->slots[i].chunk)
			return &s->slots[i];
	return NULL;
}

static void *sender_main(void *arg)
{
	struct influx *s = arg;
	for (;;) {
		int64_t now = mono_ns();
		int64_t wake = now + SEC;
		pthread_mutex_lock(&s->mu);
		if (s->quit) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		struct chunk *o = s->open;
		if (o && o->nlines) {
			/* Send a partial chunk when it is due, when asked to flush,
			 * or when the line is idle (after batch.linger): then
			 * waiting would only add delay, and the host's batches it
			 * holds would starve the source. */
			bool idle = s->in_flight == 0 && !s->head;
			int64_t due =
			        o->born_ns + (idle && s->cfg->batch_linger < s->cfg->batch_max_delay
			                              ? s->cfg->batch_linger
			                              : s->cfg->batch_max_delay);
			if (s->flush_now || now >= due)
				seal_locked(s);
			else if (due < wake)
				wake = due;
		}
		bool backing_off = now < s->backoff_until;
		if (backing_off && s->backoff_until < wake)
			wake = s->backoff_until;
		/* While failing, probe with one request at a time. */
		uint32_t limit = s->failures ? 1 : s->nslots;
		while (!backing_off && s->head && s->in_flight < limit) {
			struct slot *sl = free_slot(s);
			if (!sl)
				break;
			struct chunk *c = pop_head_locked(s);
			/* Above the size a 413 taught: halved before it is sent. */
			while (c->nlines > 1 && c->body.len > s->max_bytes) {
				struct chunk *rest = chunk_split_locked(s, c);
				if (!rest)
					break;
				push_head_locked(s, rest);
			}
			s->in_flight++;
			pthread_mutex_unlock(&s->mu);
			start_request(s, sl, c);
			pthread_mutex_lock(&s->mu);
			backing_off = mono_ns() < s->backoff_until;
		}
		uint64_t pending = s->pending_records;
		pthread_mutex_unlock(&s->mu);
		s->api->metric_set(s->m_pending, NULL, (double)pending);

		int running = 0;
		curl_multi_perform(s->multi, &running);
		bool completed = false;
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(s->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *sl = NULL;
			CURL *easy = msg->easy_handle;
			CURLcode rc = msg->data.result;
			curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&sl);
			curl_multi_remove_handle(s->multi, easy);
			request_done(s, sl, rc);
			pthread_mutex_lock(&s->mu);
			s->in_flight--;
			pthread_mutex_unlock(&s->mu);
			completed = true;
		}
		if (completed)
			continue; /* new room: start more before waiting */
		int64_t left_ns = wake - mono_ns();
		int timeout_ms = left_ns <= 0 ? 0 : (int)((left_ns + MS - 1) / MS);
		if (timeout_ms > 1000)
			timeout_ms = 1000;
		curl_multi_poll(s->multi, NULL, 0, timeout_ms, NULL);
	}
	/* Quitting: abandon what is in flight; destroy fails those records. */
	for (uint32_t i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];
		if (!sl->chunk)
			continue;
		curl_multi_remove_handle(s->multi, sl->easy);
		pthread_mutex_lock(&s->mu);
		push_head_locked(s, sl->chunk);
		s->in_flight--;
		pthread_mutex_unlock(&s->mu);
		sl->chunk = NULL;
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Plugin callbacks                                                          */
/* ------------------------------------------------------------------------ */

static void wake_sender(struct influx *s)
{
	curl_multi_wakeup(s->multi);
}

static int influx_write(void *state, struct cv_batch *batch)
{
	struct influx *s = state;
	/* The last live record: once it is queued, the sender may settle the
	 * batch's last record and the host recycle it, so the loop must not read
	 * the batch past that point. */
	int64_t last = -1;
	for (uint32_t i = batch->count; i-- > 0;) {
		if (!(batch->records[i].flags & CV_RECORD_DROPPED)) {
			last = i;
			break;
		}
	}
	if (last < 0)
		return 0;

	bool wake = false;
	pthread_mutex_lock(&s->mu);
	/* Backpressure: hold the host's thread while too much is pending. */
	while (!s->quit &&
	       (s->pending_records >= s->limit_records || s->pending_bytes >= s->limit_bytes) &&
	       !s->api->stopping(s->stage)) {
		struct timespec ts;
		deadline_in(&ts, 100 * MS);
		pthread_cond_timedwait(&s->settled_cv, &s->mu, &ts);
	}
	int64_t now = mono_ns();
	for (uint32_t i = 0; i <= (uint32_t)last; i++) {
		const struct cv_record *r = &batch->records[i];
		if (r->flags & CV_RECORD_DROPPED)
			continue;
		if (!s->open && !(s->open = chunk_get_locked(s))) {
			s->api->ack_record(batch, i, CV_ACK_FAILED, "out of memory");
			continue;
		}
		struct chunk *c = s->open;
		size_t before = c->body.len;
		int rc = cv_record_encode_influx(&c->body, r);
		if (rc == 0) {
			/* The encoder reserved room for more than it wrote, so the
			 * newline nearly always fits without a call. */
			if (c->body.len < c->body.cap)
				c->body.data[c->body.len++] = '\n';
			else if ((rc = cv_buf_append(&c->body, "\n", 1)) != 0)
				c->body.len = before;
		}
		if (rc != 0) {
			if (rc == CV_EINVAL)
				s->api->ack_record(batch, i, CV_ACK_REJECTED,
				                   explain_unencodable(r));
			else
				s->api->ack_record(batch, i, CV_ACK_FAILED, "out of memory");
			continue;
		}
		if (!c->nlines)
			c->born_ns = now;
		c->lines[c->nlines++] = (struct line_ref){batch, i, (uint32_t)c->body.len};
		s->pending_records++;
		s->pending_bytes += c->body.len - before;
		if (c->body.len > s->max_bytes && c->nlines > 1) {
			/* This line overflows the request: it starts the next one. */
			struct chunk *n = chunk_get_locked(s);
			if (n && cv_buf_append(&n->body, c->body.data + before,
			                       c->body.len - before) == 0) {
				n->lines[0] = c->lines[--c->nlines];
				n->lines[0].end = (uint32_t)n->body.len;
				n->nlines = 1;
				n->born_ns = now;
				c->body.len = before;
				seal_locked(s);
				s->open = n;
				wake = true;
				continue;
			}
			if (n)
				chunk_put_locked(s, n);
		}
		if (c->nlines >= s->max_records || c->body.len >= s->max_bytes) {
			seal_locked(s);
			wake = true;
		}
	}
	if (s->in_flight == 0 && !s->head && s->open)
		wake = true; /* idle line: the sender sends what there is */
	pthread_mutex_unlock(&s->mu);
	if (wake)
		wake_sender(s);
	return 0;
}

static int influx_flush(void *state, int64_t deadline_ns)
{
	struct influx *s = state;
	pthread_mutex_lock(&s->mu);
	s->flush_now = true;
	pthread_mutex_unlock(&s->mu);
	wake_sender(s);
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (!s->pending_records)
			break;
		int64_t left = deadline_ns - s->api->now_ns();
		if (left <= 0)
			break;
		struct timespec ts;
		deadline_in(&ts, left < 100 * MS ? left : 100 * MS);
		pthread_cond_timedwait(&s->settled_cv, &s->mu, &ts);
	}
	/* The host calls again in slices until its own deadline: no log here. */
	int rc = s->pending_records ? CV_EAGAIN : 0;
	s->flush_now = false;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static void fail_list(struct influx *s, struct chunk *c, const char *reason)
{
	while (c) {
		struct chunk *next = c->next;
		for (uint32_t i = 0; i < c->nlines; i++)
			s->api->ack_record(c->lines[i].batch, c->lines[i].index, CV_ACK_FAILED,
			                   reason);
		chunk_free(c);
		c = next;
	}
}

static void influx_destroy(void *state)
{
	struct influx *s = state;
	if (!s)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->mu);
		s->quit = true;
		pthread_cond_broadcast(&s->settled_cv);
		pthread_mutex_unlock(&s->mu);
		wake_sender(s);
		pthread_join(s->thread, NULL);
	}
	/* Whatever is left was not delivered: the source must not commit it. */
	if (s->pending_records)
		s->api->log(s->stage, CV_LOG_WARN,
		            "%" PRIu64 " points were not delivered to %s before shutdown; "
		            "they are failed, not acknowledged",
		            s->pending_records, s->base_url ? s->base_url : "influxdb");
	fail_list(s, s->head, "not delivered before shutdown");
	fail_list(s, s->open, "not delivered before shutdown");
	struct chunk *p = s->pool;
	while (p) {
		struct chunk *next = p->next;
		chunk_free(p);
		p = next;
	}
	if (s->slots) {
		for (uint32_t i = 0; i < s->nslots; i++)
			if (s->slots[i].easy)
				curl_easy_cleanup(s->slots[i].easy);
		for (uint32_t i = 0; i < s->nslots; i++)
			free(s->slots[i].resp);
		free(s->slots);
	}
	if (s->multi)
		curl_multi_cleanup(s->multi);
	curl_slist_free_all(s->headers);
	curl_slist_free_all(s->resolve);
	free(s->base_url);
	free(s->write_url);
	pthread_cond_destroy(&s->settled_cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ------------------------------------------------------------------------ */
/* Init                                                                      */
/* ------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool set(const char *v)
{
	return v && *v;
}

#define CONFIG_ERROR(...)                                                                          \
	do {                                                                                       \
		api->log(stage, CV_LOG_ERROR, __VA_ARGS__);                                        \
		return CV_ECONFIG;                                                                 \
	} while (0)

/* What the option schema cannot say, reported at the offending option by
 * `conveyor validate` and `run` alike (ABI 1.1 check). Touches no file:
 * init checks that the TLS files can be read. */
static int influx_check(struct cv_check *ck, const struct cv_host_api *api, const void *config)
{
	const struct influx_config *cfg = config;
	int errors = 0;
#define CHECK_ERROR(option, ...)                                                                   \
	do {                                                                                       \
		api->check_error(ck, option, __VA_ARGS__);                                         \
		errors++;                                                                          \
	} while (0)
	const char *u = cfg->url;
	bool https = strncasecmp(u, "https://", 8) == 0;
	if (!https && strncasecmp(u, "http://", 7) != 0)
		CHECK_ERROR("url", "must start with https:// or http://");
	CURLU *h = curl_url();
	if (!h)
		return CV_ENOMEM;
	CURLUcode uc = curl_url_set(h, CURLUPART_URL, u, 0);
	char *user = NULL, *password = NULL, *query = NULL, *fragment = NULL;
	if (uc == CURLUE_OK) {
		curl_url_get(h, CURLUPART_USER, &user, 0);
		curl_url_get(h, CURLUPART_PASSWORD, &password, 0);
		curl_url_get(h, CURLUPART_QUERY, &query, 0);
		curl_url_get(h, CURLUPART_FRAGMENT, &fragment, 0);
	}
	bool has_user = user || password, has_query = query || fragment;
	curl_free(user);
	curl_free(password);
	curl_free(query);
	curl_free(fragment);
	curl_url_cleanup(h);
	/* The url is logged in errors, so it must hold no secret; never echo it. */
	if (uc != CURLUE_OK && errors == 0)
		CHECK_ERROR("url", "not a valid URL (%s)", curl_url_strerror(uc));
	if (has_user)
		CHECK_ERROR("url", "must not contain credentials: give them as username and "
		                   "password (or password_file), or as token (or token_file)");
	if (has_query)
		CHECK_ERROR("url", "must be the server's base URL, without a query or fragment "
		                   "(the sink adds /write or /api/v2/write and their parameters)");

	static const char *const v1_only[] = {"database", "retention_policy", "username",
	                                      "password"};
	static const char *const v2_only[] = {"org", "bucket", "token"};
	if (cfg->api == API_V1) {
		if (!set(cfg->database))
			CHECK_ERROR("database", "api v1 needs database");
		for (size_t i = 0; i < 3; i++)
			if (api->option_given(ck, v2_only[i]))
				CHECK_ERROR(v2_only[i],
				            "belongs to api v2 (org, bucket, token); with "
				            "api v1 use database, username and password");
		if (set(cfg->password) && !set(cfg->username))
			CHECK_ERROR("password", "is set but username is not");
	} else {
		const char *v2_values[] = {cfg->org, cfg->bucket, cfg->token};
		for (size_t i = 0; i < 3; i++)
			if (!set(v2_values[i]))
				CHECK_ERROR("api", "api v2 needs %s%s", v2_only[i],
				            i == 2 ? " (or token_file)" : "");
		for (size_t i = 0; i < 4; i++)
			if (api->option_given(ck, v1_only[i]))
				CHECK_ERROR(v1_only[i],
				            "belongs to api v1 (database, retention_policy, "
				            "username, password); with api v2 use org, "
				            "bucket and token");
	}
	if (set(cfg->tls_key_file) && !set(cfg->tls_cert_file))
		CHECK_ERROR("tls.key_file", "is set but tls.cert_file is not: a client key "
		                            "needs its certificate");
	if (set(cfg->tls_cert_file) && !set(cfg->tls_key_file))
		CHECK_ERROR("tls.cert_file", "is set but tls.key_file is not: a client "
		                             "certificate needs its key");
	const char *tls_options[] = {"tls.ca_file", "tls.cert_file", "tls.key_file",
	                             "tls.insecure_skip_verify"};
	bool tls_set[] = {set(cfg->tls_ca_file), set(cfg->tls_cert_file), set(cfg->tls_key_file),
	                  cfg->tls_insecure_skip_verify};
	for (size_t i = 0; !https && i < 4; i++)
		if (tls_set[i])
			CHECK_ERROR(tls_options[i], "TLS options need an https:// url");
	if (cfg->retry_max < cfg->retry_initial)
		CHECK_ERROR(api->option_given(ck, "retry.max") ? "retry.max" : "retry.initial",
		            "retry.max (%gs) is shorter than retry.initial (%gs)",
		            (double)cfg->retry_max / SEC, (double)cfg->retry_initial / SEC);
#undef CHECK_ERROR
	return errors ? CV_ECONFIG : 0;
}

/* What only the machine that runs the sink can check, and warnings. */
static int check_environment(struct cv_stage *stage, const struct cv_host_api *api,
                             const struct influx_config *cfg)
{
	const char *files[][2] = {{"tls.ca_file", cfg->tls_ca_file},
	                          {"tls.cert_file", cfg->tls_cert_file},
	                          {"tls.key_file", cfg->tls_key_file}};
	for (size_t i = 0; i < 3; i++) {
		if (set(files[i][1]) && access(files[i][1], R_OK) != 0)
			CONFIG_ERROR("%s %s cannot be read: %s", files[i][0], files[i][1],
			             strerror(errno));
	}
	bool https = strncasecmp(cfg->url, "https://", 8) == 0;
	if (!https && (set(cfg->password) || set(cfg->token)))
		api->log(stage, CV_LOG_WARN,
		         "url is plain http://: credentials and data travel unencrypted");
	if (cfg->tls_insecure_skip_verify)
		api->log(stage, CV_LOG_WARN,
		         "tls.insecure_skip_verify is true: the server's certificate and host "
		         "name are NOT verified; anyone on the path can read and change the data "
		         "and credentials");
	return 0;
}

/* url-escaped `v` appended to `out` after `key`; false without memory. */
static bool append_param(char *out, size_t n, const char *sep, const char *key, const char *v)
{
	char *e = curl_easy_escape(NULL, v, 0);
	if (!e)
		return false;
	size_t len = strlen(out);
	int w = snprintf(out + len, n - len, "%s%s=%s", sep, key, e);
	curl_free(e);
	return w > 0 && (size_t)w < n - len;
}

static int build_urls(struct influx *s)
{
	const struct influx_config *cfg = s->cfg;
	size_t ulen = strlen(cfg->url);
	while (ulen && cfg->url[ulen - 1] == '/')
		ulen--;
	s->base_url = strndup(cfg->url, ulen);
	size_t n = ulen * 3 + 64 + 3 * (cfg->database ? strlen(cfg->database) : 0) +
	           3 * (cfg->retention_policy ? strlen(cfg->retention_policy) : 0) +
	           3 * (cfg->org ? strlen(cfg->org) : 0) +
	           3 * (cfg->bucket ? strlen(cfg->bucket) : 0);
	s->write_url = malloc(n);
	if (!s->base_url || !s->write_url)
		return CV_ENOMEM;
	bool ok;
	if (cfg->api == API_V1) {
		snprintf(s->write_url, n, "%s/write", s->base_url);
		ok = append_param(s->write_url, n, "?", "db", cfg->database);
		if (ok && set(cfg->retention_policy))
			ok = append_param(s->write_url, n, "&", "rp", cfg->retention_policy);
	} else {
		snprintf(s->write_url, n, "%s/api/v2/write", s->base_url);
		ok = append_param(s->write_url, n, "?", "org", cfg->org) &&
		     append_param(s->write_url, n, "&", "bucket", cfg->bucket);
	}
	if (ok)
		ok = append_param(s->write_url, n, "&", "precision", "ns");
	return ok ? 0 : CV_ENOMEM;
}

static int build_headers(struct influx *s)
{
	const char *fixed[] = {"Content-Type: text/plain; charset=utf-8",
	                       /* No 100-continue round trip before each body. */
	                       "Expect:", s->cfg->gzip ? "Content-Encoding: gzip" : NULL};
	for (size_t i = 0; i < 3; i++) {
		if (!fixed[i])
			continue;
		struct curl_slist *l = curl_slist_append(s->headers, fixed[i]);
		if (!l)
			return CV_ENOMEM;
		s->headers = l;
	}
	if (s->cfg->api == API_V2) {
		size_t n = strlen(s->cfg->token) + 32;
		char *h = malloc(n);
		if (!h)
			return CV_ENOMEM;
		snprintf(h, n, "Authorization: Token %s", s->cfg->token);
		struct curl_slist *l = curl_slist_append(s->headers, h);
		explicit_bzero(h, n);
		free(h);
		if (!l)
			return CV_ENOMEM;
		s->headers = l;
	}
	for (size_t i = 0; i < s->cfg->resolve.count; i++) {
		struct curl_slist *l = curl_slist_append(s->resolve, s->cfg->resolve.items[i]);
		if (!l)
			return CV_ENOMEM;
		s->resolve = l;
	}
	return 0;
}

static int setup_easy(struct influx *s, struct slot *sl)
{
	const struct influx_config *cfg = s->cfg;
	CURL *e = curl_easy_init();
	if (!e)
		return CV_ENOMEM;
	sl->easy = e;
	sl->s = s;
	CURLcode rc = CURLE_OK;
#define SETOPT(opt, val)                                                                           \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(e, opt, val);                                        \
	} while (0)
	SETOPT(CURLOPT_URL, s->write_url);
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_HTTPHEADER, s->headers);
	SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_ERRORBUFFER, sl->errbuf);
	SETOPT(CURLOPT_WRITEFUNCTION, on_response);
	SETOPT(CURLOPT_WRITEDATA, sl);
	SETOPT(CURLOPT_PRIVATE, (char *)sl);
	SETOPT(CURLOPT_TIMEOUT_MS, (long)(cfg->timeout / MS));
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS,
	       (long)((cfg->timeout < 10 * SEC ? cfg->timeout : 10 * SEC) / MS));
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_USERAGENT, "conveyor-influxdb/" INFLUX_VERSION);
	SETOPT(CURLOPT_SSL_VERIFYPEER, cfg->tls_insecure_skip_verify ? 0L : 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, cfg->tls_insecure_skip_verify ? 0L : 2L);
	if (set(cfg->tls_ca_file))
		SETOPT(CURLOPT_CAINFO, cfg->tls_ca_file);
	if (set(cfg->tls_cert_file))
		SETOPT(CURLOPT_SSLCERT, cfg->tls_cert_file);
	if (set(cfg->tls_key_file))
		SETOPT(CURLOPT_SSLKEY, cfg->tls_key_file);
	if (cfg->api == API_V1 && set(cfg->username)) {
		SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		SETOPT(CURLOPT_USERNAME, cfg->username);
		SETOPT(CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
	}
	if (s->resolve)
		SETOPT(CURLOPT_RESOLVE, s->resolve);
#undef SETOPT
	if (rc != CURLE_OK) {
		s->api->log(s->stage, CV_LOG_ERROR, "libcurl refused an option: %s",
		            curl_easy_strerror(rc));
		return CV_ECONFIG;
	}
	return 0;
}

static int influx_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                       void **state)
{
	const struct influx_config *cfg = config;
	int rc = check_environment(stage, api, cfg);
	if (rc)
		return rc;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		CONFIG_ERROR("libcurl failed to initialise: %s", curl_easy_strerror(curl_init_rc));

	struct influx *s = calloc(1, sizeof *s);
	if (!s)
		return CV_ENOMEM;
	s->stage = stage;
	s->api = api;
	s->cfg = cfg;
	s->nslots = (uint32_t)cfg->max_in_flight;
	s->max_records = (uint32_t)cfg->batch_max_records;
	s->max_bytes = (size_t)cfg->batch_max_bytes;
	/* Room for every slot's request, one being filled and one waiting. */
	s->limit_records = (uint64_t)s->max_records * (s->nslots + 2);
	s->limit_bytes = (uint64_t)s->max_bytes * (s->nslots + 2);
	s->rng = (uint64_t)api->now_ns() | 1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->settled_cv, &ca);
	pthread_condattr_destroy(&ca);

	if ((rc = build_urls(s)) || (rc = build_headers(s)))
		goto fail;
	s->multi = curl_multi_init();
	s->slots = calloc(s->nslots, sizeof *s->slots);
	if (!s->multi || !s->slots) {
		rc = CV_ENOMEM;
		goto fail;
	}
	curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)s->nslots);
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)s->nslots);
	curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	for (uint32_t i = 0; i < s->nslots; i++)
		if ((rc = setup_easy(s, &s->slots[i])))
			goto fail;

	s->m_requests =
	        api->metric_register(stage, CV_METRIC_COUNTER, "conveyor_influxdb_requests_total",
	                             "Write requests answered, by HTTP status "
	                             "(\"error\": no answer)",
	                             "code", NULL, 0);
	s->m_retries = api->metric_register(
	        stage, CV_METRIC_COUNTER, "conveyor_influxdb_retries_total",
	        "Write requests scheduled again after a failure", NULL, NULL, 0);
	s->m_duration = api->metric_register(
	        stage, CV_METRIC_HISTOGRAM, "conveyor_influxdb_request_duration_seconds",
	        "Time from sending a write request to its answer", NULL, NULL, 0);
	s->m_bytes =
	        api->metric_register(stage, CV_METRIC_COUNTER, "conveyor_influxdb_sent_bytes_total",
	                             "Request body bytes sent (after gzip)", NULL, NULL, 0);
	s->m_pending = api->metric_register(
	        stage, CV_METRIC_GAUGE, "conveyor_influxdb_pending_records",
	        "Points queued, in flight or waiting to be retried", NULL, NULL, 0);

	if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
		rc = CV_ENOMEM;
		goto fail;
	}
	s->thread_started = true;
	api->log(stage, CV_LOG_INFO,
	         "writing to %s (api %s, %s) with up to %" PRIu32 " requests of %" PRIu32
	         " points in flight",
	         s->base_url, api_names[cfg->api],
	         strncasecmp(cfg->url, "https://", 8) ? "no TLS"
	         : cfg->tls_insecure_skip_verify      ? "TLS NOT verified"
	                                              : "TLS verified",
	         s->nslots, s->max_records);
	*state = s;
	return 0;
fail:
	if (rc == CV_ENOMEM)
		api->log(stage, CV_LOG_ERROR, "out of memory");
	influx_destroy(s);
	return rc;
}

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "influxdb",
        .version = INFLUX_VERSION,
        .description = "writes points to InfluxDB (v1 /write or v2 /api/v2/write) over "
                       "verified HTTPS, batched, retried, acknowledged on 2xx",
        .kind = CV_KIND_SINK,
        .flags = CV_PLUGIN_ASYNC_ACK,
        .options = influx_options,
        .config_size = sizeof(struct influx_config),
        .init = influx_init,
        .destroy = influx_destroy,
        .write = influx_write,
        .flush = influx_flush,
        .check = influx_check,
};
