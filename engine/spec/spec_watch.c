#include "spec/spec_watch.h"

#include "text_codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What stat(2) says of the file the path resolves to now: for a large
 * file, a change of these (a new inode after a symlink swap, a write) is
 * what makes us read it again. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

#define SMALL_FILE (1 << 20)

struct spec_watch {
	char *path;
	struct file_id id;
	bool have_id;
	bool have_hash;
	uint64_t hash;
};

static bool file_id_get(const char *path, struct file_id *out)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	*out = (struct file_id){.dev = st.st_dev,
	                        .ino = st.st_ino,
	                        .size = st.st_size,
	                        .mtime = st.st_mtim,
	                        .ctime = st.st_ctim};
	return true;
}

static bool file_id_equal(const struct file_id *a, const struct file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* FNV-1a 64 of the file's bytes; false when it cannot be read. */
static bool file_hash(const char *path, uint64_t *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	uint64_t h = CV_FNV1A64_BASIS;
	unsigned char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		h = cv_fnv1a64_more(h, buf, n);
	bool ok = !ferror(f);
	fclose(f);
	*out = h;
	return ok;
}

struct spec_watch *spec_watch_new(const char *path)
{
	struct spec_watch *w = calloc(1, sizeof *w);
	if (!w || !(w->path = strdup(path))) {
		free(w);
		return NULL;
	}
	w->have_id = file_id_get(path, &w->id);
	w->have_hash = file_hash(path, &w->hash);
	return w;
}

bool spec_watch_changed(struct spec_watch *w)
{
	struct file_id id;
	if (!file_id_get(w->path, &id))
		return false;
	/* Timestamps move in coarse ticks: two writes within one tick look
	 * alike to stat. Small files (specs are) are hashed at every check;
	 * only a large one is trusted to stat. */
	if (w->have_id && file_id_equal(&id, &w->id) && id.size > SMALL_FILE)
		return false;
	uint64_t h;
	if (!file_hash(w->path, &h))
		return false;
	w->id = id;
	w->have_id = true;
	bool changed = !w->have_hash || h != w->hash;
	w->hash = h;
	w->have_hash = true;
	return changed;
}

void spec_watch_free(struct spec_watch *w)
{
	if (!w)
		return;
	free(w->path);
	free(w);
}
