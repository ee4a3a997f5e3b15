/*
 * kafka_common.c - librdkafka configuration, log forwarding and the embedded
 * cluster shared by kafka_in and kafka_out. See kafka_common.h.
 */
#include "kafka_common.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka_mock.h>

int cv_kafka_conf_set(const struct cv_kafka_ident *id, rd_kafka_conf_t *conf, const char *key,
                      const char *value, const char *what)
{
	char errstr[512];
	rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key, value, errstr, sizeof errstr);
	if (res == RD_KAFKA_CONF_OK)
		return 0;
	/* librdkafka's message for an invalid value quotes the value, which may
	 * be a secret: name the key and the kind of failure only. */
	id->api->log(id->stage, CV_LOG_ERROR, "%s: librdkafka property \"%s\" %s", what, key,
	             res == RD_KAFKA_CONF_UNKNOWN ? "is unknown"
	                                          : "has an invalid value (not shown)");
	return CV_ECONFIG;
}

int cv_kafka_conf_apply_map(const struct cv_kafka_ident *id, rd_kafka_conf_t *conf,
                            const struct cv_string_map *properties, const char *const *managed)
{
	int rc = 0;
	for (size_t i = 0; properties && i < properties->count; i++) {
		const char *key = properties->keys[i];
		bool refused = false;
		for (const char *const *m = managed; m && *m; m++) {
			if (strcmp(*m, key) == 0) {
				refused = true;
				break;
			}
		}
		if (refused) {
			id->api->log(
			        id->stage, CV_LOG_ERROR,
			        "properties: \"%s\" is managed by the plugin and cannot be set",
			        key);
			rc = CV_ECONFIG;
			continue;
		}
		if (cv_kafka_conf_set(id, conf, key, properties->values[i], "properties") < 0)
			rc = CV_ECONFIG;
	}
	return rc;
}

int cv_kafka_check_properties(struct cv_check *check, const struct cv_host_api *api,
                              const struct cv_string_map *properties, const char *const *managed)
{
	int rc = 0;
	for (size_t i = 0; properties && i < properties->count; i++) {
		for (const char *const *m = managed; m && *m; m++) {
			if (strcmp(*m, properties->keys[i]) == 0) {
				api->check_error(
				        check, "properties",
				        "\"%s\" is managed by the plugin and cannot be set",
				        properties->keys[i]);
				rc = CV_ECONFIG;
				break;
			}
		}
	}
	return rc;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	const struct cv_kafka_ident *id = rd_kafka_opaque(rk);
	if (!id)
		return;
	enum cv_log_level l = level <= 3   ? CV_LOG_ERROR
	                      : level == 4 ? CV_LOG_WARN
	                      : level <= 6 ? CV_LOG_INFO
	                                   : CV_LOG_DEBUG;
	if (!id->api->log_enabled(id->stage, l))
		return;
	id->api->log(id->stage, l, "librdkafka %s: %s", fac, buf);
}

void cv_kafka_conf_set_logger(rd_kafka_conf_t *conf)
{
	rd_kafka_conf_set_log_cb(conf, log_cb);
}

void cv_kafka_log_error(const struct cv_kafka_ident *id, rd_kafka_t *rk, int err,
                        const char *reason)
{
	enum cv_log_level l = CV_LOG_WARN;
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char fatal[256];
		rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
		id->api->log(id->stage, CV_LOG_ERROR, "librdkafka fatal error %s: %s",
		             rd_kafka_err2name(ferr), fatal);
		return;
	}
	/* Connection failures are already in librdkafka's own log lines. */
	if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE)
		l = CV_LOG_DEBUG;
	if (!id->api->log_enabled(id->stage, l))
		return;
	id->api->log(id->stage, l, "librdkafka error %s: %s",
	             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

bool cv_kafka_brokers_embedded(const char *brokers)
{
	return brokers && strcmp(brokers, CV_KAFKA_EMBEDDED) == 0;
}

/* The process's embedded cluster: one for every kafka stage of the process,
 * counted so the last release stops it after every client is gone. */
static pthread_mutex_t embedded_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned embedded_refs;
static rd_kafka_t *embedded_rk;
static rd_kafka_mock_cluster_t *embedded_mc;
static char *embedded_bootstraps;

static void silent_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* The mock cluster's handle belongs to no stage; its log lines would
	 * not be JSON. The clients log what matters. */
}

static int embedded_start(const struct cv_kafka_ident *id)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, silent_log_cb);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		id->api->log(id->stage, CV_LOG_ERROR, "embedded Kafka: cannot create handle: %s",
		             errstr);
		return CV_EIO;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
	if (!mc) {
		rd_kafka_destroy(rk);
		id->api->log(id->stage, CV_LOG_ERROR, "embedded Kafka: cannot start mock cluster");
		return CV_EIO;
	}
	char *bs = strdup(rd_kafka_mock_cluster_bootstraps(mc));
	if (!bs) {
		rd_kafka_mock_cluster_destroy(mc);
		rd_kafka_destroy(rk);
		return CV_ENOMEM;
	}
	embedded_rk = rk;
	embedded_mc = mc;
	embedded_bootstraps = bs;
	id->api->log(id->stage, CV_LOG_WARN,
	             "brokers: embedded: started an in-process Kafka cluster on %s; its data "
	             "lives in memory and is lost when the process exits (demo use only)",
	             bs);
	return 0;
}

int cv_kafka_embedded_acquire(const struct cv_kafka_ident *id, const char *const *topics,
                              size_t ntopics, const char **bootstraps)
{
	int rc = 0;
	pthread_mutex_lock(&embedded_lock);
	if (embedded_refs == 0)
		rc = embedded_start(id);
	if (rc == 0) {
		for (size_t i = 0; i < ntopics; i++) {
			rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
			        embedded_mc, topics[i], CV_KAFKA_EMBEDDED_PARTITIONS, 1);
			if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
				id->api->log(id->stage, CV_LOG_WARN,
				             "embedded Kafka: cannot create topic \"%s\": %s",
				             topics[i], rd_kafka_err2str(err));
		}
		embedded_refs++;
		*bootstraps = embedded_bootstraps;
	}
	pthread_mutex_unlock(&embedded_lock);
	return rc;
}

void cv_kafka_embedded_release(void)
{
	pthread_mutex_lock(&embedded_lock);
	if (embedded_refs > 0 && --embedded_refs == 0) {
		rd_kafka_mock_cluster_destroy(embedded_mc);
		rd_kafka_destroy(embedded_rk);
		free(embedded_bootstraps);
		embedded_mc = NULL;
		embedded_rk = NULL;
		embedded_bootstraps = NULL;
	}
	pthread_mutex_unlock(&embedded_lock);
}

int cv_kafka_conf_brokers(const struct cv_kafka_ident *id, rd_kafka_conf_t *conf,
                          const char *brokers, const char *const *topics, size_t ntopics,
                          bool *embedded)
{
	*embedded = false;
	if (!brokers || !*brokers) {
		id->api->log(id->stage, CV_LOG_ERROR,
		             "brokers: empty (a host:port list, or \"embedded\")");
		return CV_ECONFIG;
	}
	const char *bootstraps = brokers;
	if (cv_kafka_brokers_embedded(brokers)) {
		int rc = cv_kafka_embedded_acquire(id, topics, ntopics, &bootstraps);
		if (rc < 0)
			return rc;
		*embedded = true;
	}
	int rc = cv_kafka_conf_set(id, conf, "bootstrap.servers", bootstraps, "brokers");
	if (rc < 0 && *embedded) {
		cv_kafka_embedded_release();
		*embedded = false;
	}
	return rc;
}
