/*
 * file - appends records to a file, one line each, as JSON (default) or
 * line protocol.
 *
 * The file is opened once with O_APPEND (created 0644 if missing). Each
 * batch is encoded into one buffer and written with write(2), looping on
 * partial writes; with fsync, the data is on disk before the batch counts as
 * delivered. The sink is synchronous: the host settles the batch when write
 * returns (0 delivered, CV_EIO failed). A failed write is rolled back with
 * ftruncate to where the batch started, so a retry leaves no partial line
 * (if another process appends to the same file meanwhile, its lines may go
 * too: give each sink its own file).
 * A record the format cannot carry is rejected (dead-lettered) alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <conveyor/plugin.h>

#include "record_format.h"

struct file_config {
	const char *path;
	int format; /* enum cv_record_format */
	bool fsync;
};

struct file_sink {
	struct cv_stage *stage;
	const struct cv_host_api *api;
	const struct file_config *cfg;
	int fd;
	bool regular; /* a regular file: a failed batch can be cut off */
	bool failing;
	struct cv_buf buf;
};

static int file_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                     void **state)
{
	const struct file_config *cfg = config;
	struct file_sink *f = calloc(1, sizeof *f);
	if (!f)
		return CV_ENOMEM;
	f->stage = stage;
	f->api = api;
	f->cfg = cfg;
	f->fd = open(cfg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		api->log(stage, CV_LOG_ERROR, "file: cannot open %s: %s", cfg->path,
		         strerror(errno));
		free(f);
		return CV_ECONFIG;
	}
	struct stat st;
	f->regular = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
	*state = f;
	return 0;
}

static void file_destroy(void *state)
{
	struct file_sink *f = state;
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	cv_buf_free(&f->buf);
	free(f);
}

static void set_failing(struct file_sink *f, bool failing, const char *reason)
{
	if (f->failing == failing)
		return;
	f->failing = failing;
	f->api->set_healthy(f->stage, !failing, reason);
}

/* Writes the whole buffer (and fsyncs if asked); on failure cuts the file
 * back to `start`, as a partial or unsynced batch will be retried. Returns
 * 0 or CV_EIO with the errno in *err. */
static int write_all(struct file_sink *f, off_t start, int *err)
{
	const char *p = f->buf.data;
	size_t left = f->buf.len;
	while (left > 0) {
		ssize_t n = write(f->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*err = n < 0 ? errno : EIO;
			goto rollback;
		}
		p += n;
		left -= (size_t)n;
	}
	if (f->cfg->fsync && fsync(f->fd) != 0) {
		*err = errno;
		goto rollback;
	}
	return 0;

rollback:
	/* A partial line would corrupt the next one. */
	if (f->regular && start >= 0 && ftruncate(f->fd, start) != 0)
		f->api->log(f->stage, CV_LOG_WARN,
		            "file: could not remove a partial batch from %s: %s", f->cfg->path,
		            strerror(errno));
	return CV_EIO;
}

static int file_write(void *state, struct cv_batch *batch)
{
	struct file_sink *f = state;
	const struct cv_host_api *api = f->api;
	enum cv_record_format format = (enum cv_record_format)f->cfg->format;
	cv_buf_reset(&f->buf);
	for (uint32_t i = 0; i < batch->count; i++) {
		const struct cv_record *r = &batch->records[i];
		if (r->flags & CV_RECORD_DROPPED)
			continue;
		int rc = cv_record_encode(&f->buf, format, r);
		if (rc == CV_EINVAL) {
			api->ack_record(
			        batch, i, CV_ACK_REJECTED,
			        format == CV_FORMAT_JSON
			                ? "file: record cannot be encoded as JSON"
			                : "file: record cannot be encoded as line protocol");
			continue;
		}
		if (rc == 0)
			rc = cv_buf_append(&f->buf, "\n", 1);
		if (rc) {
			api->log(f->stage, CV_LOG_ERROR, "file: out of memory");
			return CV_ENOMEM;
		}
	}
	if (f->buf.len == 0)
		return 0;

	off_t start = lseek(f->fd, 0, SEEK_END); /* where this batch begins */
	int err = 0;
	if (write_all(f, start, &err) < 0) {
		api->log(f->stage, CV_LOG_ERROR, "file: writing %s failed: %s", f->cfg->path,
		         strerror(err));
		set_failing(f, true, "file: write failed");
		return CV_EIO;
	}
	set_failing(f, false, NULL);
	return 0;
}

static const struct cv_option file_options[] = {
        {.name = "path",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED | CV_OPT_NONEMPTY,
         .offset = offsetof(struct file_config, path),
         .description = "file to append to (created with mode 0644 if missing)"},
        {.name = "format",
         .type = CV_OPT_ENUM,
         .default_value = "json",
         .enum_values = cv_record_format_names,
         .offset = offsetof(struct file_config, format),
         .description = "json: one JSON object per line; influx: InfluxDB line protocol"},
        {.name = "fsync",
         .type = CV_OPT_BOOL,
         .default_value = "false",
         .offset = offsetof(struct file_config, fsync),
         .description = "fsync after every batch, so delivered means on disk (slower)"},
        {0},
};

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "file",
        .version = "0.1.0",
        .description = "appends records to a file, one JSON object or line-protocol line each",
        .kind = CV_KIND_SINK,
        .options = file_options,
        .config_size = sizeof(struct file_config),
        .init = file_init,
        .destroy = file_destroy,
        .write = file_write,
};
