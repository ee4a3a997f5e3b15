/* process_metrics.c - the standard process_* metrics, read from /proc at
 * scrape time (named and computed as the Go and Python clients do). */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics/metrics.h"

struct proc_stat {
	unsigned long long utime, stime; /* clock ticks */
	unsigned long long starttime;    /* clock ticks after boot */
	unsigned long long vsize;        /* bytes */
	long long rss;                   /* pages */
};

/* Reads a small /proc file whole; returns its length or -1. */
static long read_small_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (long)n;
}

static bool read_proc_stat(struct proc_stat *st)
{
	char buf[2048];
	if (read_small_file("/proc/self/stat", buf, sizeof(buf)) <= 0)
		return false;
	/* The command name may hold spaces and parentheses: fields are
	 * counted from the last ')'. Field 3 (state) follows it. */
	char *p = strrchr(buf, ')');
	if (!p)
		return false;
	p++;
	unsigned long long v[22];
	int field = 3, got = 0;
	char *save = NULL;
	for (char *tok = strtok_r(p, " \n", &save); tok && field <= 24;
	     tok = strtok_r(NULL, " \n", &save), field++) {
		if (field < 14)
			continue;
		v[field - 14] = strtoull(tok, NULL, 10);
		got++;
	}
	if (got < 11)
		return false;
	st->utime = v[14 - 14];
	st->stime = v[15 - 14];
	st->starttime = v[22 - 14];
	st->vsize = v[23 - 14];
	st->rss = (long long)v[24 - 14];
	return true;
}

static bool read_btime(unsigned long long *btime)
{
	char buf[16384];
	if (read_small_file("/proc/stat", buf, sizeof(buf)) <= 0)
		return false;
	char *p = strstr(buf, "\nbtime ");
	if (!p)
		return false;
	*btime = strtoull(p + 7, NULL, 10);
	return true;
}

static long count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	int own = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		/* The descriptor reading the directory is not the process's. */
		if (atoi(e->d_name) == own)
			continue;
		n++;
	}
	closedir(d);
	return n;
}

static void emit(struct strbuf *out, const char *name, const char *type, const char *help, double v)
{
	strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
	if (v >= 0 && v < 9007199254740992.0 && v == (double)(unsigned long long)v)
		strbuf_printf(out, "%llu", (unsigned long long)v);
	else
		metrics_append_double(out, v);
	strbuf_append(out, "\n", 1);
}

void process_metrics_collect(void *ctx, struct strbuf *out)
{
	(void)ctx;
	long tck = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	struct proc_stat st;
	if (read_proc_stat(&st) && tck > 0) {
		emit(out, "process_cpu_seconds_total", "counter",
		     "Total user and system CPU time spent in seconds.",
		     (double)(st.utime + st.stime) / (double)tck);
		emit(out, "process_resident_memory_bytes", "gauge",
		     "Resident memory size in bytes.", (double)st.rss * (double)page);
		emit(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
		     (double)st.vsize);
		unsigned long long btime;
		if (read_btime(&btime))
			emit(out, "process_start_time_seconds", "gauge",
			     "Start time of the process since unix epoch in seconds.",
			     (double)btime + (double)st.starttime / (double)tck);
	}
	long fds = count_open_fds();
	if (fds >= 0)
		emit(out, "process_open_fds", "gauge", "Number of open file descriptors.",
		     (double)fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		emit(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
		     rl.rlim_cur == RLIM_INFINITY ? 18446744073709551615.0 : (double)rl.rlim_cur);
}
