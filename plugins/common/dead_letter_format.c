/* dead_letter_format.c - the dead-letter line; see the header. */
#include "dead_letter_format.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int put(struct cv_buf *b, const char *s)
{
	return cv_buf_append(b, s, strlen(s));
}

static int put_int(struct cv_buf *b, int64_t v)
{
	int rc = cv_buf_reserve(b, 24);
	if (rc)
		return rc;
	b->len += (size_t)cv_format_int64(b->data + b->len, v);
	return 0;
}

/* A JSON string for text meant for people: bytes that are not UTF-8
 * become U+FFFD. */
static int put_text(struct cv_buf *b, const char *s, size_t len)
{
	int rc = cv_buf_reserve(b, CV_JSON_ESCAPED_MAX(len) + 2);
	if (rc)
		return rc;
	char *p = b->data + b->len;
	*p++ = '"';
	p = cv_json_escape(p, s, len, CV_JSON_REPLACE);
	*p++ = '"';
	b->len = (size_t)(p - b->data);
	return 0;
}

/* ,"name":"text" or ,"name_base64":"..." for bytes that are not UTF-8. */
static int put_bytes(struct cv_buf *b, const char *name, const void *data, size_t len)
{
	bool text = cv_utf8_valid(data, len);
	int rc = cv_buf_reserve(b, strlen(name) + 16 +
	                                   (text ? CV_JSON_ESCAPED_MAX(len) : CV_BASE64_LEN(len)));
	if (rc)
		return rc;
	put(b, ",\"");
	put(b, name);
	put(b, text ? "\":\"" : "_base64\":\"");
	char *p = b->data + b->len;
	if (text)
		p = cv_json_escape(p, data, len, CV_JSON_REFUSE);
	else
		p += cv_base64_encode(p, data, len);
	*p++ = '"';
	b->len = (size_t)(p - b->data);
	return 0;
}

/* ,"record":{...} and, when that could not be exact, ,"record_base64". */
static int put_record(struct cv_buf *b, const struct cv_record *r)
{
	int rc = put(b, ",\"record\":");
	rc = rc ? rc : cv_record_encode_json(b, r);
	if (rc != CV_EINVAL)
		return rc;
	size_t at = b->len;
	rc = cv_record_encode_json_any(b, r, CV_JSON_REPLACE);
	struct cv_buf exact = {0};
	rc = rc ? rc : cv_record_encode_json_any(&exact, r, CV_JSON_VERBATIM);
	if (rc == 0 && (exact.len != b->len - at || memcmp(exact.data, b->data + at, exact.len))) {
		rc = put(b, ",\"record_base64\":\"");
		rc = rc ? rc : cv_buf_reserve(b, CV_BASE64_LEN(exact.len) + 1);
		if (rc == 0) {
			b->len += cv_base64_encode(b->data + b->len, exact.data, exact.len);
			b->data[b->len++] = '"';
		}
	}
	cv_buf_free(&exact);
	return rc;
}

static int put_member_text(struct cv_buf *b, const char *member, const char *s)
{
	int rc = put(b, member);
	return rc ? rc : put_text(b, s ? s : "", s ? strlen(s) : 0);
}

int cv_dead_letter_encode(struct cv_buf *b, const struct cv_dead_letter *e)
{
	size_t start = b->len;
	int rc = put(b, "{\"time_ns\":");
	rc = rc ? rc : put_int(b, e->time_ns);
	rc = rc ? rc : put_member_text(b, ",\"pipeline\":", e->pipeline);
	rc = rc ? rc : put_member_text(b, ",\"stage\":", e->stage);
	rc = rc ? rc : put_member_text(b, ",\"reason\":", e->reason);
	if (e->topic) {
		rc = rc ? rc : put_member_text(b, ",\"topic\":", e->topic);
		rc = rc ? rc : put(b, ",\"partition\":");
		rc = rc ? rc : put_int(b, e->partition);
		rc = rc ? rc : put(b, ",\"offset\":");
		rc = rc ? rc : put_int(b, e->offset);
	}
	if (e->key)
		rc = rc ? rc : put_bytes(b, "key", e->key, e->key_len);
	if (e->record)
		rc = rc ? rc : put_record(b, e->record);
	if (e->raw)
		rc = rc ? rc : put_bytes(b, "raw", e->raw, e->raw_len);
	rc = rc ? rc : put(b, "}\n");
	if (rc) {
		b->len = start;
		return CV_ENOMEM;
	}
	return 0;
}

int cv_dead_letter_append(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return CV_EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
