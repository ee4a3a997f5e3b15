/*
 * kafka_out - sink: produces each record as one Kafka message (JSON or line
 * protocol), keyed by a tag so each key (a belt's line_id) stays ordered in
 * one partition. Idempotent producer by default.
 *
 * Acknowledgement: asynchronous. Every message carries (batch, index) as its
 * opaque; the delivery report settles that record: delivered, or failed with
 * librdkafka's reason. A record that cannot be encoded is rejected at once.
 * write() encodes, enqueues and serves the reports already due; a
 * plugin-owned poller thread serves them while no write comes. The host's
 * queue (records in flight) bounds memory; librdkafka's queue full means a
 * slow or absent broker, and write() waits (backpressure).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <conveyor/plugin.h>

#include "kafka_common.h"
#include "record_format.h"

/* How long write() waits for queue space once the engine is stopping. */
#define STOP_QUEUE_WAIT_NS (5 * 1000000000LL)

/* The poller thread serves delivery reports only once write() has not run
 * for this long: while writes come, write() serves them itself, and a second
 * thread polling the same queue would only contend for its lock and free the
 * messages away from the thread that allocated them. Bounds how late a report
 * is served when writes stop (e.g. the host's in-flight window is full). */
#define POLLER_IDLE_NS (1000000LL)

struct kafka_out_config {
	const char *brokers;
	const char *topic;
	const char *key;
	int format; /* enum cv_record_format */
	struct cv_string_map properties;
};

/* One written batch: the delivery reports of its records find it through
 * their refs; the last one frees it. */
struct out_batch {
	struct cv_batch *batch;
	atomic_uint remaining; /* refs not reported + 1 while write() runs */
	struct out_ref {
		struct out_batch *ob;
		uint32_t idx;
	} refs[];
};

struct kafka_out {
	struct cv_kafka_ident id; /* first: the handle's opaque, see kafka_common.h */
	const struct kafka_out_config *cfg;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	rd_kafka_queue_t *mainq; /* the handle's main queue: delivery reports */
	bool embedded;
	size_t key_len;
	struct cv_buf buf; /* one batch's encoded messages, back to back */

	/* write()'s messages for rd_kafka_produce_batch(), grown to the
	 * largest batch seen. */
	rd_kafka_message_t *msgs;
	uint32_t msgs_cap;
	/* librdkafka's local queue limits (queue.buffering.max.messages and
	 * .kbytes), and the largest message (key + value) produced so far:
	 * together they tell when a batch surely fits, see batch_fits(). */
	uint64_t queue_max_msgs, queue_max_bytes;
	size_t max_msg_len;

	pthread_t poller;
	bool poller_started;
	atomic_bool poller_stop;
	atomic_llong last_write_ns; /* when write() last ran (now_ns) */
	atomic_bool flushing;       /* flush() serves the reports itself */
	atomic_bool unhealthy;
	atomic_llong last_error_log_ns;

	struct cv_metric *m_delivery_errors;
};

static const char *const managed_properties[] = {
        "bootstrap.servers", "metadata.broker.list", "dr_cb", "dr_msg_cb", "opaque", NULL,
};

/* Producer defaults, before the user's properties (which win). Tuned for
 * throughput with bounded memory: larger batches and a short linger.
 * linger.ms (librdkafka's default, 5) is what a message waits at most for
 * its partition's batch to fill; at 1k records/s it is most of the
 * producer's latency (about 5 ms), and a shorter one only makes smaller
 * requests when the producer runs flat out (more CPU per message: measured
 * with kcat against the mock cluster at 1 ms), since librdkafka sends a
 * batch at the linger whether or not the connection is idle. */
static const char *const default_properties[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {"batch.num.messages", "10000"},
        {"batch.size", "1000000"},
        {"queue.buffering.max.messages", "200000"},
        {"queue.buffering.max.kbytes", "262144"},
        {"message.timeout.ms", "300000"},
        {"client.id", "conveyor-kafka_out"},
};

/* Drops `n` references to `ob`; the last one settles what was not settled
 * yet (every record delivered) in one call and frees `ob`. Delivered records
 * are not acknowledged one by one: ack_batch settles them all with one
 * atomic operation, where ack_record would cost one per record. */
static void ob_release_n(struct kafka_out *st, struct out_batch *ob, uint32_t n)
{
	if (atomic_fetch_sub_explicit(&ob->remaining, n, memory_order_acq_rel) == n) {
		st->id.api->ack_batch(ob->batch, CV_ACK_DELIVERED, NULL);
		free(ob);
	}
}

static void ob_release(struct kafka_out *st, struct out_batch *ob)
{
	ob_release_n(st, ob, 1);
}

/* Delivered reports, counted per thread while librdkafka serves them, and
 * released per run of one batch's messages when the serving call returns:
 * one atomic operation per batch instead of one per message (reports come
 * in produce order, so a batch's messages arrive in long runs). Every call
 * that can serve reports is followed by served_release() on the same
 * thread, so nothing is held across calls. */
static _Thread_local struct {
	struct out_batch *ob;
	uint32_t n;
} delivered_run;

static void served_release(struct kafka_out *st)
{
	if (delivered_run.ob) {
		ob_release_n(st, delivered_run.ob, delivered_run.n);
		delivered_run.ob = NULL;
		delivered_run.n = 0;
	}
}

static void serve_reports(struct kafka_out *st, int timeout_ms)
{
	rd_kafka_poll(st->rk, timeout_ms);
	served_release(st);
}

/* Settles one record that was not delivered, at once (the host logs and
 * counts it), then drops its reference. The release ordering of
 * ob_release makes this settlement visible to the final ack_batch. */
static void settle_failed(struct kafka_out *st, struct out_ref *ref, enum cv_ack outcome,
                          const char *reason)
{
	struct out_batch *ob = ref->ob;
	st->id.api->ack_record(ob->batch, ref->idx, outcome, reason);
	ob_release(st, ob);
}

static bool log_allowed(struct kafka_out *st)
{
	/* At most one delivery-error line per second: a broker outage fails
	 * thousands of messages at once; the metric counts them all. */
	int64_t now = st->id.api->now_ns();
	long long last = atomic_load(&st->last_error_log_ns);
	return now - last >= 1000000000LL &&
	       atomic_compare_exchange_strong(&st->last_error_log_ns, &last, now);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_out *st = opaque;
	struct out_ref *ref = m->_private;
	const struct cv_host_api *api = st->id.api;
	if (!ref)
		return;
	if (!m->err) {
		if (atomic_load_explicit(&st->unhealthy, memory_order_relaxed) &&
		    atomic_exchange(&st->unhealthy, false))
			api->set_healthy(st->id.stage, true, NULL);
		if (delivered_run.ob != ref->ob) {
			served_release(st);
			delivered_run.ob = ref->ob;
		}
		delivered_run.n++;
		return;
	}
	const char *name = rd_kafka_err2name(m->err);
	if (st->m_delivery_errors)
		api->metric_add(st->m_delivery_errors, name, 1);
	if (log_allowed(st))
		api->log(st->id.stage, CV_LOG_WARN, "delivery to topic \"%s\" failed: %s",
		         st->cfg->topic, rd_kafka_err2str(m->err));
	/* Too large for the broker: no retry can help, so it is bad data. */
	enum cv_ack outcome =
	        m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? CV_ACK_REJECTED : CV_ACK_FAILED;
	settle_failed(st, ref, outcome, rd_kafka_err2str(m->err));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka_out *st = opaque;
	cv_kafka_log_error(&st->id, rk, err, reason);
	if ((err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__FATAL) &&
	    !atomic_exchange(&st->unhealthy, true))
		st->id.api->set_healthy(st->id.stage, false,
		                        err == RD_KAFKA_RESP_ERR__FATAL
		                                ? "Kafka producer failed fatally"
		                                : "all Kafka brokers are down");
}

static void *poller_main(void *arg)
{
	struct kafka_out *st = arg;
	const struct cv_host_api *api = st->id.api;
	while (!atomic_load_explicit(&st->poller_stop, memory_order_acquire)) {
		int64_t idle = api->now_ns() -
		               atomic_load_explicit(&st->last_write_ns, memory_order_relaxed);
		/* While flush() polls, a second poller would take reports
		 * from under it and leave its wait to time out. */
		bool flushing = atomic_load_explicit(&st->flushing, memory_order_acquire);
		if (flushing || (idle >= 0 && idle < POLLER_IDLE_NS)) {
			struct timespec ts = {
			        0, (long)(flushing ? POLLER_IDLE_NS : POLLER_IDLE_NS - idle)};
			nanosleep(&ts, NULL);
			continue;
		}
		/* destroy() ends this wait with rd_kafka_queue_yield() (the
		 * yield flag persists, so a yield before the wait is not lost). */
		rd_kafka_queue_poll_callback(st->mainq, 100);
		served_release(st);
	}
	return NULL;
}

static void kafka_out_destroy(void *state);

/* A numeric setting of the handle's final configuration (defaults, then the
 * user's properties), or `fallback` when unreadable. */
static uint64_t conf_u64(rd_kafka_t *rk, const char *name, uint64_t fallback)
{
	char v[64];
	size_t len = sizeof v;
	if (rd_kafka_conf_get(rd_kafka_conf(rk), name, v, &len) != RD_KAFKA_CONF_OK)
		return fallback;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	return end == v ? fallback : (uint64_t)n;
}

static int setup(struct kafka_out *st)
{
	const struct kafka_out_config *cfg = st->cfg;
	const struct cv_host_api *api = st->id.api;
	struct cv_stage *stage = st->id.stage;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof default_properties / sizeof *default_properties;
	     i++)
		rc = cv_kafka_conf_set(&st->id, conf, default_properties[i][0],
		                       default_properties[i][1], "defaults");
	if (rc == 0)
		rc = cv_kafka_conf_apply_map(&st->id, conf, &cfg->properties, managed_properties);
	if (rc == 0) {
		const char *topics[] = {cfg->topic};
		rc = cv_kafka_conf_brokers(&st->id, conf, cfg->brokers, topics, 1, &st->embedded);
	}
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	rd_kafka_conf_set_opaque(conf, st);
	cv_kafka_conf_set_logger(conf);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);

	char errstr[512];
	st->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!st->rk) {
		rd_kafka_conf_destroy(conf);
		api->log(stage, CV_LOG_ERROR, "cannot create the Kafka producer: %s", errstr);
		return CV_ECONFIG;
	}
	st->queue_max_msgs = conf_u64(st->rk, "queue.buffering.max.messages", 100000);
	st->queue_max_bytes = conf_u64(st->rk, "queue.buffering.max.kbytes", 1048576) * 1024;
	st->mainq = rd_kafka_queue_get_main(st->rk);
	st->rkt = rd_kafka_topic_new(st->rk, cfg->topic, NULL);
	if (!st->rkt) {
		api->log(stage, CV_LOG_ERROR, "cannot create topic handle \"%s\": %s", cfg->topic,
		         rd_kafka_err2str(rd_kafka_last_error()));
		return CV_ECONFIG;
	}
	st->m_delivery_errors = api->metric_register(
	        stage, CV_METRIC_COUNTER, "conveyor_kafka_delivery_errors_total",
	        "Kafka messages whose delivery failed, by librdkafka error name.", "error", NULL,
	        0);

	if (pthread_create(&st->poller, NULL, poller_main, st) != 0) {
		api->log(stage, CV_LOG_ERROR, "cannot start the delivery report thread");
		return CV_ENOMEM;
	}
	st->poller_started = true;
	return 0;
}

/* What the option schema cannot say, at the option's FILE:LINE:COL. */
static int kafka_out_check(struct cv_check *ck, const struct cv_host_api *api, const void *config)
{
	const struct kafka_out_config *cfg = config;
	return cv_kafka_check_properties(ck, api, &cfg->properties, managed_properties);
}

static int kafka_out_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                          void **state)
{
	const struct kafka_out_config *cfg = config;
	struct kafka_out *st = calloc(1, sizeof *st);
	if (!st)
		return CV_ENOMEM;
	st->id = (struct cv_kafka_ident){.api = api, .stage = stage};
	st->cfg = cfg;
	st->key_len = cfg->key ? strlen(cfg->key) : 0;
	/* The host calls destroy only after a successful init. */
	int rc = setup(st);
	if (rc < 0) {
		kafka_out_destroy(st);
		return rc;
	}
	*state = st;
	return 0;
}

/* Enqueues one message, waiting while the local queue is full (the broker
 * is slow or away: that is backpressure, not failure). Returns 0, or the
 * librdkafka error that made the message fail. */
static rd_kafka_resp_err_t produce(struct kafka_out *st, const rd_kafka_message_t *m)
{
	int64_t full_since = 0;
	for (;;) {
		if (rd_kafka_produce(st->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
		                     m->payload, m->len, m->key, m->key_len, m->_private) == 0)
			return RD_KAFKA_RESP_ERR_NO_ERROR;
		rd_kafka_resp_err_t err = rd_kafka_last_error();
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return err;
		/* Shutting down and the queue does not drain (brokers away):
		 * fail the rest, so the drain ends and the source commits none
		 * of them, instead of blocking until message.timeout.ms. */
		if (st->id.api->stopping(st->id.stage)) {
			int64_t now = st->id.api->now_ns();
			if (!full_since)
				full_since = now;
			else if (now - full_since > STOP_QUEUE_WAIT_NS ||
			         atomic_load_explicit(&st->unhealthy, memory_order_relaxed))
				return err;
		}
		serve_reports(st, 10);
	}
}

/* True when `n` more messages of `bytes` bytes in all surely fit in
 * librdkafka's local queue. rd_kafka_outq_len() bounds the messages queued
 * from above (it adds the reports not served yet), and only this thread
 * adds messages, so neither limit can be hit: produce_batch() then enqueues
 * every message and none overtakes one refused for a full queue (a
 * concurrent report could free room in the middle of a batch). */
static bool batch_fits(struct kafka_out *st, uint32_t n, size_t bytes)
{
	uint64_t queued = (uint64_t)rd_kafka_outq_len(st->rk);
	return queued + n <= st->queue_max_msgs &&
	       queued * st->max_msg_len + bytes <= st->queue_max_bytes;
}

static void produce_failed(struct kafka_out *st, struct out_ref *ref, rd_kafka_resp_err_t err)
{
	if (st->m_delivery_errors)
		st->id.api->metric_add(st->m_delivery_errors, rd_kafka_err2name(err), 1);
	settle_failed(st, ref,
	              err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? CV_ACK_REJECTED : CV_ACK_FAILED,
	              rd_kafka_err2str(err));
}

static int kafka_out_write(void *state, struct cv_batch *batch)
{
	struct kafka_out *st = state;
	const struct cv_host_api *api = st->id.api;
	atomic_store_explicit(&st->last_write_ns, api->now_ns(), memory_order_relaxed);
	/* Snapshot what we need: once the last record is settled the host may
	 * recycle the batch while this loop still runs. */
	uint32_t n = batch->count, live = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (!(batch->records[i].flags & CV_RECORD_DROPPED))
			live++;
	}
	if (!live)
		return 0;
	if (live > st->msgs_cap) {
		rd_kafka_message_t *msgs = realloc(st->msgs, live * sizeof *msgs);
		if (!msgs)
			return CV_ENOMEM; /* the host fails the batch */
		st->msgs = msgs;
		st->msgs_cap = live;
	}
	struct out_batch *ob = malloc(sizeof *ob + live * sizeof(struct out_ref));
	if (!ob)
		return CV_ENOMEM;
	ob->batch = batch;
	atomic_init(&ob->remaining, live + 1);

	/* Encode every record back to back into one buffer, then enqueue them
	 * all with one rd_kafka_produce_batch(): one topic lock and one clock
	 * reading per batch instead of per message. Payloads are kept as
	 * offsets until the buffer stops growing. */
	cv_buf_reset(&st->buf);
	uint32_t done = 0, nmsg = 0;
	size_t max_len = st->max_msg_len;
	for (uint32_t i = 0; i < n && done < live; i++) {
		struct cv_record *r = &batch->records[i];
		if (r->flags & CV_RECORD_DROPPED)
			continue;
		struct out_ref *ref = &ob->refs[done++];
		ref->ob = ob;
		ref->idx = i;
		size_t off = st->buf.len;
		int rc = cv_record_encode(&st->buf, (enum cv_record_format)st->cfg->format, r);
		if (rc < 0) {
			settle_failed(
			        st, ref, rc == CV_ENOMEM ? CV_ACK_FAILED : CV_ACK_REJECTED,
			        rc == CV_ENOMEM
			                ? "out of memory encoding the record"
			                : (st->cfg->format == CV_FORMAT_INFLUX
			                           ? "record cannot be encoded as line protocol"
			                           : "record cannot be encoded as JSON"));
			continue;
		}
		rd_kafka_message_t *m = &st->msgs[nmsg++];
		m->err = RD_KAFKA_RESP_ERR_NO_ERROR;
		m->payload = (void *)(uintptr_t)off;
		m->len = st->buf.len - off;
		m->key = NULL;
		m->key_len = 0;
		m->_private = ref;
		if (st->key_len) {
			const struct cv_tag *t =
			        cv_record_find_tag(r, st->cfg->key, (uint32_t)st->key_len);
			if (t) {
				m->key = (void *)t->value;
				m->key_len = t->value_len;
			}
		}
		if (m->len + m->key_len > max_len)
			max_len = m->len + m->key_len;
	}
	for (uint32_t k = 0; k < nmsg; k++)
		st->msgs[k].payload = st->buf.data + (uintptr_t)st->msgs[k].payload;
	st->max_msg_len = max_len;

	if (nmsg && batch_fits(st, nmsg, st->buf.len + nmsg * max_len)) {
		int ok = rd_kafka_produce_batch(st->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
		                                st->msgs, (int)nmsg);
		for (uint32_t k = 0; ok < (int)nmsg && k < nmsg; k++) {
			if (st->msgs[k].err)
				produce_failed(st, st->msgs[k]._private, st->msgs[k].err);
		}
	} else {
		/* Near the queue's limits: one by one, waiting for room. */
		for (uint32_t k = 0; k < nmsg; k++) {
			rd_kafka_resp_err_t err = produce(st, &st->msgs[k]);
			if (err)
				produce_failed(st, st->msgs[k]._private, err);
		}
	}
	ob_release(st, ob);
	/* Serve the reports that are ready here too: librdkafka then frees its
	 * messages on the thread that allocated them (cheaper than across
	 * threads); the poller thread covers idle times. */
	serve_reports(st, 0);
	return 0;
}

static int64_t ms_until(const struct cv_host_api *api, int64_t deadline_ns)
{
	int64_t left = deadline_ns - api->now_ns();
	return left <= 0 ? 0 : left / 1000000;
}

static int kafka_out_flush(void *state, int64_t deadline_ns)
{
	struct kafka_out *st = state;
	const struct cv_host_api *api = st->id.api;
	atomic_store_explicit(&st->flushing, true, memory_order_release);
	rd_kafka_queue_yield(st->mainq); /* the poller leaves its wait */
	rd_kafka_resp_err_t err;
	int64_t ms;
	do {
		ms = ms_until(api, deadline_ns);
		err = rd_kafka_flush(st->rk, (int)(ms > 100 ? 100 : ms));
		served_release(st); /* flush served reports through rd_kafka_poll() */
	} while (err != RD_KAFKA_RESP_ERR_NO_ERROR && ms > 0);
	atomic_store_explicit(&st->flushing, false, memory_order_release);
	/* Not all delivered yet: the host calls flush again, in slices of its
	 * own drain deadline; when that passes it destroys the sink, and
	 * destroy() fails what is still queued (its source commits none of
	 * it). Purging here would fail records at the end of a mere slice. */
	return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : CV_EAGAIN;
}

static void kafka_out_destroy(void *state)
{
	struct kafka_out *st = state;
	if (!st)
		return;
	if (st->poller_started) {
		atomic_store(&st->poller_stop, true);
		rd_kafka_queue_yield(st->mainq); /* out of its poll wait now */
		pthread_join(st->poller, NULL);
	}
	if (st->rk) {
		/* Whatever is still queued fails now: the host destroys sinks
		 * before it frees batches, and takes these last acks. */
		int left = rd_kafka_outq_len(st->rk);
		if (left > 0)
			st->id.api->log(
			        st->id.stage, CV_LOG_WARN,
			        "%d message(s) not delivered by the drain deadline; failing "
			        "them",
			        left);
		rd_kafka_purge(st->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		for (int i = 0; i < 100 && rd_kafka_outq_len(st->rk) > 0; i++)
			serve_reports(st, 10);
		if (st->rkt)
			rd_kafka_topic_destroy(st->rkt);
		if (st->mainq)
			rd_kafka_queue_destroy(st->mainq);
		rd_kafka_destroy(st->rk);
		served_release(st);
	}
	if (st->embedded)
		cv_kafka_embedded_release();
	cv_buf_free(&st->buf);
	free(st->msgs);
	free(st);
}

static const struct cv_option options[] = {
        {.name = "brokers",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED | CV_OPT_NONEMPTY,
         .offset = offsetof(struct kafka_out_config, brokers),
         .description = "bootstrap servers (host:port,...), or \"embedded\" for an in-process "
                        "cluster (demo: data lives in memory)"},
        {.name = "topic",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED | CV_OPT_NONEMPTY,
         .offset = offsetof(struct kafka_out_config, topic),
         .description = "topic to produce to"},
        {.name = "key",
         .type = CV_OPT_STRING,
         .default_value = "line_id",
         .offset = offsetof(struct kafka_out_config, key),
         .description = "tag whose value is the message key (same key, same partition, "
                        "in order); \"\" for no key"},
        {.name = "format",
         .type = CV_OPT_ENUM,
         .default_value = "json",
         .enum_values = cv_record_format_names,
         .offset = offsetof(struct kafka_out_config, format),
         .description = "message encoding: json or influx (line protocol)"},
        {.name = "properties",
         .type = CV_OPT_MAP,
         .offset = offsetof(struct kafka_out_config, properties),
         .description = "librdkafka producer settings (TLS, SASL, batching, compression...), "
                        "applied after the defaults (enable.idempotence=true, linger.ms=5)"},
        {0},
};

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "kafka_out",
        .version = "1.0.0",
        .description = "Kafka producer: one message per record, keyed by a tag, acknowledged "
                       "on delivery report",
        .kind = CV_KIND_SINK,
        .flags = CV_PLUGIN_ASYNC_ACK,
        .options = options,
        .config_size = sizeof(struct kafka_out_config),
        .init = kafka_out_init,
        .check = kafka_out_check,
        .destroy = kafka_out_destroy,
        .write = kafka_out_write,
        .flush = kafka_out_flush,
};
