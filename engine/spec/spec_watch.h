/* spec_watch.h - notices when a spec file's content changes (`conveyor run
 * --watch`). The path is resolved again at every check, so a Kubernetes
 * ConfigMap update, which swaps the `..data` symlink to a new folder, is
 * seen like an edit in place; the content is compared by hash, so touching
 * the file or swapping in the same bytes is no change. */
#ifndef CONVEYOR_SPEC_WATCH_H
#define CONVEYOR_SPEC_WATCH_H

#include <stdbool.h>

struct spec_watch;

/* Watches `path` (copied), taking its current content as the baseline.
 * NULL on allocation failure. */
struct spec_watch *spec_watch_new(const char *path);
/* True once each time the content differs from the last seen. A file that
 * is missing or unreadable for a moment (an editor replacing it) is no
 * change: the next check sees the new content. */
bool spec_watch_changed(struct spec_watch *w);
void spec_watch_free(struct spec_watch *w);

#endif
