/*
 * mock_cluster - runs librdkafka's mock Kafka cluster in its own process for
 * the integration tests and benchmarks.
 *
 *   mock_cluster BOOTSTRAP_FILE BROKERS TOPIC:PARTITIONS [TOPIC:PARTITIONS...]
 *
 * Writes the bootstrap string ("127.0.0.1:port,...") and a newline to
 * BOOTSTRAP_FILE (through a temporary file and a rename, so a reader never
 * sees half of it), then reads commands on stdin, answering one line each:
 *   down N | up N        take broker N (1..BROKERS) down or up  -> ok
 *   topic NAME PARTS     create another topic                    -> ok
 *   quit                                                         -> ok, exits
 * Anything else answers "error ...". Exits on SIGTERM/SIGINT or stdin EOF.
 *
 * Remember the mock keeps at most about 5 MiB (or 100k message sets) per
 * partition and prunes the oldest: use enough partitions or compression.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *name, int parts, int brokers)
{
	int repl = brokers < 3 ? brokers : 3;
	rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, parts, repl);
	if (err) {
		fprintf(stderr, "mock_cluster: topic %s: %s\n", name, rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

static int write_bootstrap(const char *path, const char *bootstraps)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%s\n", bootstraps);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

static void answer(const char *s)
{
	fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

/* Handles one command line; returns 1 on quit. */
static int command(rd_kafka_mock_cluster_t *mc, char *line, int brokers)
{
	char verb[32], name[256];
	int n = 0, parts = 0;
	if (sscanf(line, "%31s", verb) != 1) {
		answer("error empty command");
		return 0;
	}
	if (strcmp(verb, "quit") == 0) {
		answer("ok");
		return 1;
	}
	if ((strcmp(verb, "down") == 0 || strcmp(verb, "up") == 0) &&
	    sscanf(line, "%*s %d", &n) == 1 && n >= 1 && n <= brokers) {
		rd_kafka_resp_err_t err = strcmp(verb, "down") == 0
		                                  ? rd_kafka_mock_broker_set_down(mc, n)
		                                  : rd_kafka_mock_broker_set_up(mc, n);
		answer(err ? "error broker" : "ok");
		return 0;
	}
	if (strcmp(verb, "topic") == 0 && sscanf(line, "%*s %255s %d", name, &parts) == 2 &&
	    parts > 0) {
		answer(create_topic(mc, name, parts, brokers) == 0 ? "ok" : "error topic");
		return 0;
	}
	answer("error unknown command");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s BOOTSTRAP_FILE BROKERS TOPIC:PARTITIONS...\n", argv[0]);
		return 2;
	}
	int brokers = atoi(argv[2]);
	if (brokers < 1 || brokers > 16) {
		fprintf(stderr, "mock_cluster: BROKERS must be 1..16\n");
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk) {
		fprintf(stderr, "mock_cluster: %s\n", errstr);
		return 1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (!mc) {
		fprintf(stderr, "mock_cluster: cannot create the cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	int rc = 0;
	for (int i = 3; i < argc && rc == 0; i++) {
		char name[256];
		int parts;
		char *colon = strrchr(argv[i], ':');
		if (!colon || (size_t)(colon - argv[i]) >= sizeof name ||
		    (parts = atoi(colon + 1)) < 1) {
			fprintf(stderr, "mock_cluster: bad topic spec %s\n", argv[i]);
			rc = 2;
			break;
		}
		memcpy(name, argv[i], (size_t)(colon - argv[i]));
		name[colon - argv[i]] = 0;
		if (create_topic(mc, name, parts, brokers) < 0)
			rc = 1;
	}
	if (rc == 0 && write_bootstrap(argv[1], rd_kafka_mock_cluster_bootstraps(mc)) < 0) {
		fprintf(stderr, "mock_cluster: cannot write %s: %s\n", argv[1], strerror(errno));
		rc = 1;
	}

	char line[512];
	size_t used = 0;
	while (rc == 0 && !stop) {
		struct pollfd p = {.fd = 0, .events = POLLIN};
		int r = poll(&p, 1, 200);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t n = read(0, line + used, sizeof line - 1 - used);
		if (n <= 0)
			break; /* EOF: whoever started us is gone */
		used += (size_t)n;
		line[used] = 0;
		char *nl;
		int quit = 0;
		while (!quit && (nl = strchr(line, '\n'))) {
			*nl = 0;
			quit = command(mc, line, brokers);
			size_t rest = used - (size_t)(nl + 1 - line);
			memmove(line, nl + 1, rest + 1);
			used = rest;
		}
		if (quit)
			break;
		if (used == sizeof line - 1)
			used = 0; /* an absurd line: drop it */
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return rc;
}
