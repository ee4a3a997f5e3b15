/*
 * kafka_common.h - what kafka_in and kafka_out share: librdkafka
 * configuration from a stage's options, log forwarding to the host, and the
 * embedded broker (librdkafka's mock cluster) for `brokers: embedded`.
 *
 * Built as the shared library libconveyor_kafka_common.so, not a static one:
 * the embedded cluster is one per process, shared by every kafka plugin
 * instance of both kafka_in.so and kafka_out.so. A static library would give
 * each plugin .so its own copy of the singleton (two clusters, and a consumer
 * that never sees what the producer wrote). Both plugins load the one shared
 * object through their RPATH, and the dynamic loader maps it once.
 */
#ifndef CONVEYOR_KAFKA_COMMON_H
#define CONVEYOR_KAFKA_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include <conveyor/plugin.h>
#include <librdkafka/rdkafka.h>

#define CV_KAFKA_EXPORT __attribute__((visibility("default")))

/* The value of `brokers` that selects the embedded cluster. */
#define CV_KAFKA_EMBEDDED "embedded"

/* Partitions of a topic the embedded cluster creates. */
#define CV_KAFKA_EMBEDDED_PARTITIONS 4

/* Who a librdkafka handle logs for. A plugin's handle opaque (the `opaque`
 * of rd_kafka_conf_set_opaque) must point at a struct whose first member is
 * this, so the shared log callback finds the stage. */
struct cv_kafka_ident {
	const struct cv_host_api *api;
	struct cv_stage *stage;
};

/* Applies `key` = `value` to `conf`. On failure logs an error naming the key
 * (never the value: it may be a secret such as sasl.password) and `what`
 * (e.g. "properties"), and returns CV_ECONFIG. */
CV_KAFKA_EXPORT int cv_kafka_conf_set(const struct cv_kafka_ident *id, rd_kafka_conf_t *conf,
                                      const char *key, const char *value, const char *what);

/* Applies the user's `properties`, refusing (CV_ECONFIG, logged) any key in
 * `managed` (NULL-terminated): settings the plugin owns, such as
 * enable.auto.commit, whose change would break its delivery guarantee. */
CV_KAFKA_EXPORT int cv_kafka_conf_apply_map(const struct cv_kafka_ident *id, rd_kafka_conf_t *conf,
                                            const struct cv_string_map *properties,
                                            const char *const *managed);

/* For a plugin's `check` (ABI 1.1): reports each key of `properties` that
 * is in `managed` (NULL-terminated) at the option "properties", so that
 * `conveyor validate` refuses it at FILE:LINE:COL. Returns 0, or CV_ECONFIG
 * when it reported one. */
CV_KAFKA_EXPORT int cv_kafka_check_properties(struct cv_check *check, const struct cv_host_api *api,
                                              const struct cv_string_map *properties,
                                              const char *const *managed);

/* Sets the log callback that forwards librdkafka's logs to the host (its
 * syslog levels mapped to the host's). The handle's opaque must start with
 * struct cv_kafka_ident. */
CV_KAFKA_EXPORT void cv_kafka_conf_set_logger(rd_kafka_conf_t *conf);

/* Logs a librdkafka error callback's report: a warning, an error when
 * fatal. For plugins' own error_cb. */
CV_KAFKA_EXPORT void cv_kafka_log_error(const struct cv_kafka_ident *id, rd_kafka_t *rk, int err,
                                        const char *reason);

/* True when `brokers` selects the embedded cluster. */
CV_KAFKA_EXPORT bool cv_kafka_brokers_embedded(const char *brokers);

/* Starts the process's embedded cluster on first use (logging a warning that
 * its data lives in memory and dies with the process), creates `topics`
 * (ntopics names) with CV_KAFKA_EMBEDDED_PARTITIONS partitions if absent, and
 * returns its bootstrap string in *bootstraps (owned by the cluster, valid
 * until the matching release). Every successful acquire needs one
 * cv_kafka_embedded_release(); the cluster stops at the last one. Returns 0
 * or CV_EIO (logged). Thread-safe. */
CV_KAFKA_EXPORT int cv_kafka_embedded_acquire(const struct cv_kafka_ident *id,
                                              const char *const *topics, size_t ntopics,
                                              const char **bootstraps);
CV_KAFKA_EXPORT void cv_kafka_embedded_release(void);

/* Resolves `brokers` ("embedded" acquires the cluster, see above; then
 * *embedded is set and the caller releases it) and sets bootstrap.servers.
 * Returns 0, CV_ECONFIG or CV_EIO (logged). */
CV_KAFKA_EXPORT int cv_kafka_conf_brokers(const struct cv_kafka_ident *id, rd_kafka_conf_t *conf,
                                          const char *brokers, const char *const *topics,
                                          size_t ntopics, bool *embedded);

#endif
