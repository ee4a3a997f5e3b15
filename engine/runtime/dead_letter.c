#include "runtime/dead_letter.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/host_api.h"
#include "base/strbuf.h"

struct dead_letter {
	int fd;
	pthread_mutex_t mu;
};

struct dead_letter *dead_letter_open(const char *path)
{
	struct dead_letter *dl = calloc(1, sizeof *dl);
	if (!dl)
		return NULL;
	dl->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (dl->fd < 0) {
		int e = errno;
		free(dl);
		errno = e;
		return NULL;
	}
	pthread_mutex_init(&dl->mu, NULL);
	return dl;
}

void dead_letter_close(struct dead_letter *dl)
{
	if (!dl)
		return;
	close(dl->fd);
	pthread_mutex_destroy(&dl->mu);
	free(dl);
}

int dead_letter_record_json(struct strbuf *sb, const struct cv_record *r)
{
	strbuf_puts(sb, "{\"measurement\":\"");
	strbuf_json_escape(sb, r->measurement ? r->measurement : "", r->measurement_len);
	strbuf_printf(sb, "\",\"timestamp\":%lld,\"tags\":{", (long long)r->timestamp);
	for (uint16_t i = 0; i < r->ntags; i++) {
		strbuf_puts(sb, i ? ",\"" : "\"");
		strbuf_json_escape(sb, r->tags[i].key, r->tags[i].key_len);
		strbuf_puts(sb, "\":\"");
		strbuf_json_escape(sb, r->tags[i].value, r->tags[i].value_len);
		strbuf_puts(sb, "\"");
	}
	strbuf_puts(sb, "},\"fields\":{");
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct cv_field *f = &r->fields[i];
		strbuf_puts(sb, i ? ",\"" : "\"");
		strbuf_json_escape(sb, f->key, f->key_len);
		strbuf_puts(sb, "\":");
		switch (f->type) {
		case CV_FIELD_FLOAT:
			if (isfinite(f->v.f))
				strbuf_printf(sb, "%.17g", f->v.f);
			else
				strbuf_puts(sb, "null");
			break;
		case CV_FIELD_INT: strbuf_printf(sb, "%lld", (long long)f->v.i); break;
		case CV_FIELD_BOOL: strbuf_puts(sb, f->v.b ? "true" : "false"); break;
		default:
			strbuf_puts(sb, "\"");
			strbuf_json_escape(sb, f->v.s, f->str_len);
			strbuf_puts(sb, "\"");
		}
	}
	return strbuf_puts(sb, "}}");
}

int dead_letter_write(struct dead_letter *dl, const char *pipeline, const char *stage,
                      const char *reason, const struct cv_record *record, const void *raw,
                      size_t raw_len)
{
	struct strbuf sb = {0};
	int64_t now = host_now_ns();
	strbuf_printf(&sb, "{\"time_ns\":%lld,\"pipeline\":\"", (long long)now);
	strbuf_json_escape(&sb, pipeline, strlen(pipeline));
	strbuf_puts(&sb, "\",\"stage\":\"");
	strbuf_json_escape(&sb, stage, strlen(stage));
	strbuf_puts(&sb, "\",\"reason\":\"");
	strbuf_json_escape(&sb, reason ? reason : "", reason ? strlen(reason) : 0);
	strbuf_puts(&sb, "\"");
	if (record) {
		strbuf_puts(&sb, ",\"record\":");
		dead_letter_record_json(&sb, record);
	}
	if (raw) {
		strbuf_puts(&sb, ",\"raw\":\"");
		strbuf_json_escape(&sb, raw, raw_len);
		strbuf_puts(&sb, "\"");
	}
	strbuf_puts(&sb, "}\n");
	int rc = 0;
	if (sb.failed) {
		rc = CV_ENOMEM;
	} else {
		pthread_mutex_lock(&dl->mu);
		size_t off = 0;
		while (off < sb.len) {
			ssize_t n = write(dl->fd, sb.data + off, sb.len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				rc = CV_EIO;
				break;
			}
			off += (size_t)n;
		}
		pthread_mutex_unlock(&dl->mu);
	}
	strbuf_free(&sb);
	return rc;
}
