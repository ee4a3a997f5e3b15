#include "runtime/dead_letter.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "dead_letter_format.h"
#include "runtime/host_api.h"

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

int dead_letter_write(struct dead_letter *dl, const char *pipeline, const char *stage,
                      const char *reason, const struct cv_record *record, const void *raw,
                      size_t raw_len)
{
	struct cv_dead_letter entry = {
	        .time_ns = host_now_ns(),
	        .pipeline = pipeline,
	        .stage = stage,
	        .reason = reason,
	        .record = record,
	        .raw = raw,
	        .raw_len = raw_len,
	};
	struct cv_buf line = {0};
	int rc = cv_dead_letter_encode(&line, &entry);
	if (rc == 0) {
		pthread_mutex_lock(&dl->mu);
		rc = cv_dead_letter_append(dl->fd, line.data, line.len);
		pthread_mutex_unlock(&dl->mu);
	}
	cv_buf_free(&line);
	return rc;
}
