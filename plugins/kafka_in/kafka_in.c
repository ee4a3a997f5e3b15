/*
 * kafka_in - source: a Kafka consumer group member that decodes each message
 * (JSON or line protocol) into a record and commits an offset only once every
 * record up to it was settled by the sink (at least once, end to end).
 *
 * Offsets: auto commit and auto offset store are off. Each record's token is
 * (partition slot, offset) from offset_tracker; the host's `ack` callback
 * settles tokens, and the tracker yields per partition the contiguous settled
 * prefix. It is committed every commit_interval, on partition revocation
 * (before the partition goes), and at shutdown: once the source is stopping,
 * the ack that settles the last record in flight commits and waits for the
 * broker's answer, and destroy commits again (whatever settled later). A record the sink failed
 * pins its partition's commit position there (logged) so a restart re-reads it.
 *
 * An undecodable message goes to the host's dead-letter destination (counted)
 * and to `dead_letter` (a file or a topic) with its partition and offset; its
 * offset counts as settled once written there, so it never stalls the
 * partition.
 *
 * Threads: everything runs on the source thread (read, ack, librdkafka's
 * rebalance and commit callbacks, which librdkafka serves from read's poll),
 * except stop(), which only sets a flag and wakes the poll.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <conveyor/plugin.h>

#include "dead_letter_format.h"
#include "kafka_common.h"
#include "offset_tracker.h"
#include "record_decode.h"
#include "record_format.h"

#define POLL_WAIT_MS      100 /* read() blocks at most about this long */
#define MAX_FETCH         4096
#define COMMIT_TIMEOUT_MS 5000
#define LOG_INTERVAL_NS   1000000000LL

struct kafka_in_config {
	const char *brokers;
	const char *topic;
	const char *group;
	int format; /* enum cv_record_format */
	const char *dead_letter;
	struct cv_string_map properties;
	int64_t commit_interval; /* ns */
	int64_t lag_interval;    /* ns */
	int auto_offset_reset;   /* index into offset_resets */
};

static const char *const offset_resets[] = {"earliest", "latest", NULL};

enum dl_kind { DL_NONE, DL_FILE, DL_TOPIC };

struct kafka_in {
	struct cv_kafka_ident id; /* first: the handle's opaque, see kafka_common.h */
	const struct kafka_in_config *cfg;
	rd_kafka_t *rk;
	rd_kafka_queue_t *q; /* the consumer queue */
	char **topics;
	size_t ntopics;
	bool embedded;
	struct offset_tracker *trk;

	atomic_bool stop_requested;
	bool eof_returned;
	bool final_committed;
	bool commit_broken; /* a shutdown commit timed out: do not wait again */

	/* Messages fetched but not yet in a batch (the arena filled up). */
	rd_kafka_message_t **msgs;
	size_t pend_pos, pend_n;

	int64_t next_commit_ns, next_lag_ns, last_log_ns;
	const rd_kafka_topic_t *last_rkt;
	int last_topic;
	/* Messages come in runs per partition: the last one's slot. */
	int32_t cached_partition;
	int cached_topic, cached_slot;

	enum dl_kind dl;
	int dl_fd; /* DL_FILE: opened O_APPEND; -1 otherwise */
	rd_kafka_t *dl_rk;
	rd_kafka_topic_t *dl_rkt;
	struct cv_buf dl_buf;
	char reason[1024];

	struct cv_metric *m_lag, *m_commit_errors, *m_dead_letters, *m_rebalances;
};

static const char *const managed_properties[] = {
        "bootstrap.servers",
        "metadata.broker.list",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "rebalance_cb",
        "offset_commit_cb",
        "opaque",
        NULL,
};

static const char *const default_properties[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"client.id", "conveyor-kafka_in"},
        /* A fetch returns as soon as one byte is there (fetch.min.bytes 1,
         * librdkafka's default, kept): while data flows, no fetch waits.
         * fetch.wait.max.ms bounds the wait on quiet partitions. A real
         * broker answers early when data comes, but librdkafka's mock
         * cluster (the embedded broker, the tests, the benchmarks) holds an
         * empty fetch for the whole wait: at 100 ms that was most of the
         * demo's latency. 10 ms costs an idle consumer about 100 small
         * requests per second per broker. Bigger fetches per partition keep
         * the throughput at high rates. Prefetching stays within
         * librdkafka's default bound (queued.max.messages.kbytes, 64 MiB). */
        {"fetch.wait.max.ms", "10"},
        {"fetch.min.bytes", "1"},
        {"fetch.message.max.bytes", "4194304"},
        /* A subscribed consumer forwards every partition's fetch queue to
         * the one consumer queue, and librdkafka compares that queue's
         * length with queued.min.messages (default 100000) for each
         * partition: with a deep backlog all fetching pauses at 100000
         * queued messages and resumes only on the broker thread's next
         * wakeup, which capped kafka_in near 250k msgs/s. Memory stays
         * bounded by queued.max.messages.kbytes. */
        {"queued.min.messages", "1000000"},
};

/* Settings the dead-letter producer shares with the consumer: how to reach
 * and authenticate to the cluster. Consumer tuning is left out (librdkafka
 * would warn about each consumer-only key). */
static const char *const dl_shared_prefixes[] = {
        "security.", "ssl.", "ssl_",       "sasl.",      "socket.", "broker.",
        "client.",   "api.", "enable.ssl", "reconnect.", "debug",   NULL,
};

static bool log_allowed(struct kafka_in *st)
{
	int64_t now = st->id.api->now_ns();
	if (now - st->last_log_ns < LOG_INTERVAL_NS)
		return false;
	st->last_log_ns = now;
	return true;
}

static int topic_index(struct kafka_in *st, const char *name)
{
	for (size_t i = 0; i < st->ntopics; i++) {
		if (strcmp(st->topics[i], name) == 0)
			return (int)i;
	}
	return -1;
}

static int message_topic(struct kafka_in *st, const rd_kafka_topic_t *rkt)
{
	if (rkt != st->last_rkt) {
		st->last_topic = topic_index(st, rd_kafka_topic_name(rkt));
		st->last_rkt = rkt;
	}
	return st->last_topic;
}

static void partition_label(struct kafka_in *st, uint32_t topic, int32_t partition, char *buf,
                            size_t len)
{
	/* One topic (the usual case): the partition number alone. */
	if (st->ntopics == 1)
		snprintf(buf, len, "%" PRId32, partition);
	else
		snprintf(buf, len, "%s:%" PRId32, st->topics[topic], partition);
}

/* ------------------------------------------------------------------------ */
/* Commits                                                                    */
/* ------------------------------------------------------------------------ */

static bool in_list(const rd_kafka_topic_partition_list_t *list, const char *topic,
                    int32_t partition)
{
	return rd_kafka_topic_partition_list_find(list, topic, partition) != NULL;
}

/* The committable positions of the active slots (only those in `only` when
 * not NULL), or NULL when there is nothing new. */
static rd_kafka_topic_partition_list_t *commit_list(struct kafka_in *st,
                                                    const rd_kafka_topic_partition_list_t *only)
{
	rd_kafka_topic_partition_list_t *list = NULL;
	for (int s = offset_tracker_next(st->trk, 0); s; s = offset_tracker_next(st->trk, s)) {
		uint32_t topic;
		int32_t part;
		int64_t off;
		if (!offset_tracker_slot_info(st->trk, s, &topic, &part) ||
		    (only && !in_list(only, st->topics[topic], part)) ||
		    !offset_tracker_committable(st->trk, s, &off))
			continue;
		if (!list)
			list = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_add(list, st->topics[topic], part)->offset = off;
	}
	return list;
}

static void mark_committed(struct kafka_in *st, const rd_kafka_topic_partition_list_t *list)
{
	for (int i = 0; i < list->cnt; i++) {
		const rd_kafka_topic_partition_t *p = &list->elems[i];
		int t = topic_index(st, p->topic);
		int s = t < 0 ? 0 : offset_tracker_find(st->trk, (uint32_t)t, p->partition);
		if (s)
			offset_tracker_mark_committed(st->trk, s, p->offset);
	}
}

/* Periodic commit: asynchronous; positions are marked committed at once and
 * forgotten again if the commit fails (offset_commit_cb). */
static void commit_async(struct kafka_in *st)
{
	rd_kafka_topic_partition_list_t *list = commit_list(st, NULL);
	if (!list)
		return;
	rd_kafka_resp_err_t err = rd_kafka_commit(st->rk, list, 1);
	if (err) {
		st->id.api->metric_add(st->m_commit_errors, NULL, 1);
		if (log_allowed(st))
			st->id.api->log(st->id.stage, CV_LOG_WARN, "offset commit failed: %s",
			                rd_kafka_err2str(err));
	} else {
		mark_committed(st, list);
	}
	rd_kafka_topic_partition_list_destroy(list);
}

/* Commit that waits for the broker's answer, at most COMMIT_TIMEOUT_MS:
 * before partitions are revoked and at shutdown. A plain synchronous
 * rd_kafka_commit() could block much longer with the coordinator away. */
static int commit_wait(struct kafka_in *st, const rd_kafka_topic_partition_list_t *only,
                       const char *why)
{
	if (st->commit_broken)
		return CV_EIO;
	rd_kafka_topic_partition_list_t *list = commit_list(st, only);
	if (!list)
		return 0;
	int rc = 0;
	rd_kafka_queue_t *tq = rd_kafka_queue_new(st->rk);
	rd_kafka_resp_err_t err = rd_kafka_commit_queue(st->rk, list, tq, NULL, NULL);
	if (!err) {
		rd_kafka_event_t *ev = rd_kafka_queue_poll(tq, COMMIT_TIMEOUT_MS);
		if (!ev) {
			err = RD_KAFKA_RESP_ERR__TIMED_OUT;
			if (st->eof_returned)
				st->commit_broken = true;
		} else {
			err = rd_kafka_event_error(ev);
			rd_kafka_event_destroy(ev);
		}
	}
	rd_kafka_queue_destroy(tq);
	if (err) {
		st->id.api->metric_add(st->m_commit_errors, NULL, 1);
		st->id.api->log(st->id.stage, CV_LOG_WARN, "offset commit (%s) failed: %s", why,
		                rd_kafka_err2str(err));
		rc = CV_EIO;
	} else {
		mark_committed(st, list);
		if (st->id.api->log_enabled(st->id.stage, CV_LOG_DEBUG))
			st->id.api->log(st->id.stage, CV_LOG_DEBUG,
			                "committed %d partition(s) (%s)", list->cnt, why);
	}
	rd_kafka_topic_partition_list_destroy(list);
	return rc;
}

static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	struct kafka_in *st = opaque;
	if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || !offsets)
		return;
	bool failed = err != RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int i = 0; i < offsets->cnt; i++) {
		const rd_kafka_topic_partition_t *p = &offsets->elems[i];
		if (!err && !p->err)
			continue;
		failed = true;
		/* Commit it again next time. */
		int t = topic_index(st, p->topic);
		int s = t < 0 ? 0 : offset_tracker_find(st->trk, (uint32_t)t, p->partition);
		if (s)
			offset_tracker_forget_committed(st->trk, s);
	}
	if (failed) {
		st->id.api->metric_add(st->m_commit_errors, NULL, 1);
		if (log_allowed(st))
			st->id.api->log(st->id.stage, CV_LOG_WARN, "offset commit failed: %s",
			                rd_kafka_err2str(err ? err : offsets->elems[0].err));
	}
}

/* ------------------------------------------------------------------------ */
/* Rebalances                                                                 */
/* ------------------------------------------------------------------------ */

static void log_partitions(struct kafka_in *st, const char *what,
                           const rd_kafka_topic_partition_list_t *parts)
{
	char buf[512];
	size_t n = 0;
	buf[0] = 0;
	for (int i = 0; i < parts->cnt && n + 32 < sizeof buf; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s:%" PRId32, i ? "," : "",
		                      parts->elems[i].topic, parts->elems[i].partition);
	st->id.api->log(st->id.stage, CV_LOG_INFO, "%s %d partition(s): %s%s", what, parts->cnt,
	                buf, n + 32 >= sizeof buf ? "..." : "");
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kafka_in *st = opaque;
	const struct cv_host_api *api = st->id.api;
	bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *error = NULL;
	api->metric_add(st->m_rebalances, NULL, 1);
	st->cached_slot = 0; /* slots change below */

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++) {
			int t = topic_index(st, parts->elems[i].topic);
			if (t < 0 || offset_tracker_assign(st->trk, (uint32_t)t,
			                                   parts->elems[i].partition) < 0)
				api->log(st->id.stage, CV_LOG_ERROR,
				         "cannot track partition %s:%" PRId32,
				         parts->elems[i].topic, parts->elems[i].partition);
		}
		log_partitions(st, "assigned", parts);
		if (cooperative)
			error = rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		/* Commit what was delivered before the partitions go; a lost
		 * assignment can no longer commit. Records still in flight
		 * for them are then ignored: the next owner re-reads them. */
		if (!rd_kafka_assignment_lost(rk))
			commit_wait(st, parts, "revocation");
		for (int i = 0; i < parts->cnt; i++) {
			int t = topic_index(st, parts->elems[i].topic);
			int s = t < 0 ? 0
			              : offset_tracker_find(st->trk, (uint32_t)t,
			                                    parts->elems[i].partition);
			if (!s)
				continue;
			char label[300];
			partition_label(st, (uint32_t)t, parts->elems[i].partition, label,
			                sizeof label);
			api->metric_set(st->m_lag, label, 0);
			offset_tracker_revoke(st->trk, s);
		}
		log_partitions(st, rd_kafka_assignment_lost(rk) ? "lost" : "revoked", parts);
		if (cooperative)
			error = rd_kafka_incremental_unassign(rk, parts);
		else
			rd_kafka_assign(rk, NULL);
	} else {
		api->log(st->id.stage, CV_LOG_ERROR, "rebalance error: %s", rd_kafka_err2str(err));
		rd_kafka_assign(rk, NULL);
	}
	if (error) {
		api->log(st->id.stage, CV_LOG_ERROR, "rebalance: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka_in *st = opaque;
	cv_kafka_log_error(&st->id, rk, err, reason);
}

/* ------------------------------------------------------------------------ */
/* Dead letters                                                               */
/* ------------------------------------------------------------------------ */

/* One line of plugins/common/dead_letter_format.h, the engine's own, with
 * the message's topic, partition, offset and key. */
static int dl_file_write(struct kafka_in *st, const rd_kafka_message_t *m, const char *why)
{
	const struct cv_host_api *api = st->id.api;
	struct cv_dead_letter entry = {
	        .time_ns = api->now_ns(),
	        .pipeline = api->pipeline_name(st->id.stage),
	        .stage = api->stage_name(st->id.stage),
	        .reason = why,
	        .topic = rd_kafka_topic_name(m->rkt),
	        .partition = m->partition,
	        .offset = m->offset,
	        .key = m->key,
	        .key_len = m->key_len,
	        .raw = m->payload ? m->payload : "",
	        .raw_len = m->len,
	};
	cv_buf_reset(&st->dl_buf);
	int rc = cv_dead_letter_encode(&st->dl_buf, &entry);
	return rc ? rc : cv_dead_letter_append(st->dl_fd, st->dl_buf.data, st->dl_buf.len);
}

/* The dead-letter producer's delivery report settles the message's offset:
 * only once it is safely in the dead-letter topic may it be committed. */
static void dl_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_in *st = opaque;
	uint64_t token = (uint64_t)(uintptr_t)m->_private;
	if (m->err) {
		st->id.api->log(
		        st->id.stage, CV_LOG_ERROR,
		        "dead-letter topic: delivery failed: %s; the offset is not committed",
		        rd_kafka_err2str(m->err));
		offset_tracker_settle(st->trk, token, OT_FAILED);
	} else {
		offset_tracker_settle(st->trk, token, OT_DONE);
	}
}

static void dead_letter(struct kafka_in *st, int slot, const rd_kafka_message_t *m, const char *why)
{
	const struct cv_host_api *api = st->id.api;
	const char *topic = rd_kafka_topic_name(m->rkt);
	snprintf(st->reason, sizeof st->reason,
	         "undecodable message (topic %s, partition %" PRId32 ", offset %" PRId64 "): %s",
	         topic, m->partition, m->offset, why);
	/* The host counts it, logs it (rate-limited) and writes it to the
	 * pipeline's dead-letter file. */
	api->dead_letter(st->id.stage, m->payload ? m->payload : "", m->len, NULL, st->reason);
	api->metric_add(st->m_dead_letters, NULL, 1);

	uint64_t token = offset_tracker_consume(st->trk, slot, m->offset);
	if (!token)
		return;
	switch (st->dl) {
	case DL_NONE: offset_tracker_settle(st->trk, token, OT_DONE); break;
	case DL_FILE:
		if (dl_file_write(st, m, why) < 0) {
			api->log(st->id.stage, CV_LOG_ERROR,
			         "dead_letter: cannot write to \"%s\"; the offset is not committed",
			         st->cfg->dead_letter + 5);
			offset_tracker_settle(st->trk, token, OT_FAILED);
		} else {
			offset_tracker_settle(st->trk, token, OT_DONE);
		}
		break;
	case DL_TOPIC: {
		char part[16], off[24];
		snprintf(part, sizeof part, "%" PRId32, m->partition);
		snprintf(off, sizeof off, "%" PRId64, m->offset);
		rd_kafka_resp_err_t err;
		for (int tries = 0; tries < 100; tries++) {
			err = rd_kafka_producev(st->dl_rk, RD_KAFKA_V_RKT(st->dl_rkt),
			                        RD_KAFKA_V_VALUE(m->payload, m->len),
			                        RD_KAFKA_V_KEY(m->key, m->key_len),
			                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			                        RD_KAFKA_V_HEADER("conveyor.topic", topic, -1),
			                        RD_KAFKA_V_HEADER("conveyor.partition", part, -1),
			                        RD_KAFKA_V_HEADER("conveyor.offset", off, -1),
			                        RD_KAFKA_V_HEADER("conveyor.error", why, -1),
			                        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)token),
			                        RD_KAFKA_V_END);
			if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				break;
			rd_kafka_poll(st->dl_rk, 10);
		}
		if (err) {
			api->log(st->id.stage, CV_LOG_ERROR,
			         "dead-letter topic: cannot produce: %s; the offset is not "
			         "committed",
			         rd_kafka_err2str(err));
			offset_tracker_settle(st->trk, token, OT_FAILED);
		}
		break;
	}
	}
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                    */
/* ------------------------------------------------------------------------ */

static void update_lag(struct kafka_in *st)
{
	for (int s = offset_tracker_next(st->trk, 0); s; s = offset_tracker_next(st->trk, s)) {
		uint32_t topic;
		int32_t part;
		int64_t lo, hi;
		if (!offset_tracker_slot_info(st->trk, s, &topic, &part))
			continue;
		/* Cached from fetch responses: no request, no blocking. */
		if (rd_kafka_get_watermark_offsets(st->rk, st->topics[topic], part, &lo, &hi) ||
		    hi < 0)
			continue;
		int64_t pos = offset_tracker_position(st->trk, s);
		if (pos < 0) {
			/* Nothing consumed since the assignment: the fetch
			 * position (caught up, or not started yet). */
			rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
			rd_kafka_topic_partition_list_add(l, st->topics[topic], part);
			if (rd_kafka_position(st->rk, l) == 0 && l->elems[0].offset >= 0)
				pos = l->elems[0].offset;
			rd_kafka_topic_partition_list_destroy(l);
		}
		if (pos < 0)
			continue;
		char label[300];
		partition_label(st, topic, part, label, sizeof label);
		st->id.api->metric_set(st->m_lag, label, (double)(hi > pos ? hi - pos : 0));
	}
}

static void housekeeping(struct kafka_in *st)
{
	int64_t now = st->id.api->now_ns();
	if (now >= st->next_commit_ns) {
		commit_async(st);
		st->next_commit_ns = now + st->cfg->commit_interval;
	}
	if (now >= st->next_lag_ns) {
		update_lag(st);
		st->next_lag_ns = now + st->cfg->lag_interval;
	}
	if (st->dl_rk)
		rd_kafka_poll(st->dl_rk, 0);
}

/* Puts one message into the batch (or the dead letters). Returns 0 when the
 * message is done with (and destroyed), CV_ENOMEM when the batch is full
 * (the message is kept for the next batch). */
static int take(struct kafka_in *st, struct cv_batch *batch, rd_kafka_message_t *m)
{
	const struct cv_host_api *api = st->id.api;
	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && log_allowed(st))
			api->log(st->id.stage, CV_LOG_WARN, "consumer: %s",
			         rd_kafka_message_errstr(m));
		rd_kafka_message_destroy(m);
		return 0;
	}
	int topic = message_topic(st, m->rkt);
	int slot = st->cached_slot;
	if (!slot || topic != st->cached_topic || m->partition != st->cached_partition) {
		slot = topic < 0 ? 0 : offset_tracker_find(st->trk, (uint32_t)topic, m->partition);
		st->cached_slot = slot;
		st->cached_topic = topic;
		st->cached_partition = m->partition;
	}
	if (!slot) {
		/* Revoked since it was fetched: its next owner reads it. */
		rd_kafka_message_destroy(m);
		return 0;
	}
	struct cv_record *r = cv_batch_record_new(batch);
	if (!r)
		return CV_ENOMEM;
	int64_t ts = rd_kafka_message_timestamp(m, NULL);
	ts = ts >= 0 ? ts * 1000000 : api->now_ns();
	const char *why = NULL;
	int rc = cv_record_decode(api, batch, (enum cv_record_format)st->cfg->format, r,
	                          m->payload ? m->payload : "", m->len, ts, &why);
	uint64_t token = rc == 0 ? offset_tracker_consume(st->trk, slot, m->offset) : 0;
	if (token) {
		r->token = token;
		rd_kafka_message_destroy(m);
		return 0;
	}
	/* Take the record back: the batch never saw it. */
	batch->count--;
	batch->live--;
	if (rc == CV_ENOMEM)
		return CV_ENOMEM;
	if (rc < 0)
		dead_letter(st, slot, m, why ? why : "cannot decode");
	/* else: an offset not above the last one (a re-fetch): skip it. */
	rd_kafka_message_destroy(m);
	return 0;
}

/* Drains the fetched-but-pending messages into the batch. Returns false when
 * the batch filled up first. */
static bool take_pending(struct kafka_in *st, struct cv_batch *batch)
{
	while (st->pend_pos < st->pend_n) {
		if (take(st, batch, st->msgs[st->pend_pos]) == CV_ENOMEM) {
			if (batch->count == 0) {
				/* Too big for an empty batch: it never fits. */
				rd_kafka_message_t *m = st->msgs[st->pend_pos];
				int topic = message_topic(st, m->rkt);
				int slot = topic < 0 ? 0
				                     : offset_tracker_find(st->trk, (uint32_t)topic,
				                                           m->partition);
				if (slot)
					dead_letter(st, slot, m, "message too large for a batch");
				rd_kafka_message_destroy(m);
				st->pend_pos++;
				continue;
			}
			return false;
		}
		st->pend_pos++;
	}
	st->pend_pos = st->pend_n = 0;
	return true;
}

static bool stopping(struct kafka_in *st)
{
	return atomic_load_explicit(&st->stop_requested, memory_order_acquire) ||
	       st->id.api->stopping(st->id.stage);
}

static void final_commit(struct kafka_in *st)
{
	if (st->final_committed || offset_tracker_in_flight(st->trk) != 0)
		return;
	st->final_committed = true;
	commit_wait(st, NULL, "shutdown");
}

static int kafka_in_read(void *state, struct cv_batch *batch)
{
	struct kafka_in *st = state;
	if (stopping(st)) {
		if (!st->eof_returned) {
			st->eof_returned = true;
			st->id.api->log(st->id.stage, CV_LOG_INFO,
			                "stopping: %" PRIu64 " record(s) in flight",
			                offset_tracker_in_flight(st->trk));
			/* Nothing in flight: no ack will come to commit. */
			final_commit(st);
		}
		return CV_EOF;
	}
	housekeeping(st);
	if (!take_pending(st, batch))
		return 0;

	bool waited = false;
	while (batch->count < batch->capacity) {
		size_t room = batch->capacity - batch->count;
		if (room > MAX_FETCH)
			room = MAX_FETCH;
		ssize_t n = rd_kafka_consume_batch_queue(st->q, 0, st->msgs, room);
		if (n < 0) {
			st->id.api->log(st->id.stage, CV_LOG_ERROR, "consume: %s",
			                rd_kafka_err2str(rd_kafka_last_error()));
			return CV_EIO;
		}
		if (n == 0) {
			/* Nothing ready: wait once for the first message (so an
			 * idle read lasts about POLL_WAIT_MS), then return. */
			if (batch->count > 0 || waited || stopping(st))
				break;
			waited = true;
			rd_kafka_message_t *m = rd_kafka_consumer_poll(st->rk, POLL_WAIT_MS);
			if (!m)
				break;
			st->msgs[0] = m;
			n = 1;
		}
		st->pend_pos = 0;
		st->pend_n = (size_t)n;
		if (!take_pending(st, batch))
			break;
	}
	return 0;
}

static void kafka_in_ack(void *state, const struct cv_batch *batch)
{
	struct kafka_in *st = state;
	for (uint32_t i = 0; i < batch->count; i++) {
		const struct cv_record *r = &batch->records[i];
		if (!r->token)
			continue;
		if (r->flags & CV_RECORD_FAILED) {
			if (offset_tracker_settle(st->trk, r->token, OT_FAILED)) {
				int s = offset_tracker_token_slot(r->token);
				uint32_t topic = 0;
				int32_t part = -1;
				offset_tracker_slot_info(st->trk, s, &topic, &part);
				st->id.api->log(st->id.stage, CV_LOG_WARN,
				                "partition %s:%" PRId32
				                ": the record at offset %" PRId64
				                " failed in the sink; this partition's commits "
				                "stop before it "
				                "until a restart or rebalance reads it again",
				                st->topics[topic], part,
				                offset_tracker_token_offset(r->token));
			}
		} else if (r->flags &
		           (CV_RECORD_DELIVERED | CV_RECORD_REJECTED | CV_RECORD_DROPPED)) {
			offset_tracker_settle(st->trk, r->token, OT_DONE);
		}
		/* No outcome at all: left unsettled, so never committed. */
	}
	/* The host reads no more once it stopped the source: the ack that
	 * settles the last record in flight makes the final commit. */
	if (stopping(st)) {
		st->eof_returned = true;
		final_commit(st);
	}
}

static void kafka_in_stop(void *state)
{
	struct kafka_in *st = state;
	atomic_store_explicit(&st->stop_requested, true, memory_order_release);
	if (st->q)
		rd_kafka_queue_yield(st->q);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                  */
/* ------------------------------------------------------------------------ */

/* The next name of the topic list at *p ("a,b, c": a comma list, spaces
 * around names ignored): its start in *name and length in *len; false at
 * the end. */
static bool next_topic(const char **p, const char **name, size_t *len)
{
	const char *q = *p;
	while (*q == ' ' || *q == ',')
		q++;
	if (!*q)
		return false;
	const char *s = q;
	while (*q && *q != ',')
		q++;
	const char *e = q;
	while (e > s && e[-1] == ' ')
		e--;
	*name = s;
	*len = (size_t)(e - s);
	*p = q;
	return true;
}

static int split_topics(struct kafka_in *st, const char *list)
{
	size_t cap = 1;
	for (const char *p = list; *p; p++)
		cap += *p == ',';
	st->topics = calloc(cap, sizeof *st->topics);
	if (!st->topics)
		return CV_ENOMEM;
	const char *p = list, *name;
	size_t len;
	while (next_topic(&p, &name, &len)) {
		char *t = strndup(name, len);
		if (!t)
			return CV_ENOMEM;
		if (topic_index(st, t) >= 0) {
			free(t);
			continue;
		}
		st->topics[st->ntopics++] = t;
	}
	return 0;
}

static bool has_prefix(const char *s, const char *const *prefixes)
{
	for (; *prefixes; prefixes++) {
		if (strncmp(s, *prefixes, strlen(*prefixes)) == 0)
			return true;
	}
	return false;
}

static int setup_dead_letter_topic(struct kafka_in *st, const char *name, const char *bootstraps)
{
	const struct kafka_in_config *cfg = st->cfg;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int rc = cv_kafka_conf_set(&st->id, conf, "bootstrap.servers", bootstraps, "dead_letter");
	rc = rc ? rc
	        : cv_kafka_conf_set(&st->id, conf, "enable.idempotence", "true", "dead_letter");
	rc = rc ? rc : cv_kafka_conf_set(&st->id, conf, "linger.ms", "50", "dead_letter");
	for (size_t i = 0; rc == 0 && i < cfg->properties.count; i++) {
		if (has_prefix(cfg->properties.keys[i], dl_shared_prefixes))
			rc = cv_kafka_conf_set(&st->id, conf, cfg->properties.keys[i],
			                       cfg->properties.values[i], "properties");
	}
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	rd_kafka_conf_set_opaque(conf, st);
	cv_kafka_conf_set_logger(conf);
	rd_kafka_conf_set_dr_msg_cb(conf, dl_dr_msg_cb);
	char errstr[512];
	st->dl_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!st->dl_rk) {
		rd_kafka_conf_destroy(conf);
		st->id.api->log(st->id.stage, CV_LOG_ERROR,
		                "dead_letter: cannot create the producer: %s", errstr);
		return CV_ECONFIG;
	}
	st->dl_rkt = rd_kafka_topic_new(st->dl_rk, name, NULL);
	return st->dl_rkt ? 0 : CV_ECONFIG;
}

static void kafka_in_destroy(void *state);

static int setup(struct kafka_in *st)
{
	const struct kafka_in_config *cfg = st->cfg;
	const struct cv_host_api *api = st->id.api;
	struct cv_stage *stage = st->id.stage;
	int rc = split_topics(st, cfg->topic);
	if (rc < 0)
		return rc;

	/* kafka_in_check vouched for the shape of dead_letter. */
	const char *dl_topic = NULL;
	const char *dl = cfg->dead_letter ? cfg->dead_letter : "";
	if (strncmp(dl, "file:", 5) == 0 && dl[5]) {
		st->dl = DL_FILE;
		st->dl_fd = open(dl + 5, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (st->dl_fd < 0) {
			api->log(stage, CV_LOG_ERROR,
			         "dead_letter: cannot open \"%s\" for appending", dl + 5);
			return CV_ECONFIG;
		}
	} else if (strncmp(dl, "topic:", 6) == 0 && dl[6]) {
		st->dl = DL_TOPIC;
		dl_topic = dl + 6;
	}

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	for (size_t i = 0; rc == 0 && i < sizeof default_properties / sizeof *default_properties;
	     i++)
		rc = cv_kafka_conf_set(&st->id, conf, default_properties[i][0],
		                       default_properties[i][1], "defaults");
	rc = rc ? rc : cv_kafka_conf_set(&st->id, conf, "group.id", cfg->group, "group");
	rc = rc ? rc
	        : cv_kafka_conf_set(&st->id, conf, "auto.offset.reset",
	                            offset_resets[cfg->auto_offset_reset], "auto_offset_reset");
	rc = rc ? rc : cv_kafka_conf_apply_map(&st->id, conf, &cfg->properties, managed_properties);
	if (rc == 0) {
		/* The embedded cluster creates the topics, dead letters too. */
		const char **topics = calloc(st->ntopics + 1, sizeof *topics);
		if (!topics) {
			rc = CV_ENOMEM;
		} else {
			size_t n = 0;
			for (; n < st->ntopics; n++)
				topics[n] = st->topics[n];
			if (dl_topic)
				topics[n++] = dl_topic;
			rc = cv_kafka_conf_brokers(&st->id, conf, cfg->brokers, topics, n,
			                           &st->embedded);
			free(topics);
		}
	}
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	if (dl_topic) {
		char bs[1024];
		size_t bsl = sizeof bs;
		if (rd_kafka_conf_get(conf, "bootstrap.servers", bs, &bsl) != RD_KAFKA_CONF_OK ||
		    (rc = setup_dead_letter_topic(st, dl_topic, bs)) < 0) {
			rd_kafka_conf_destroy(conf);
			return rc < 0 ? rc : CV_ECONFIG;
		}
	}
	rd_kafka_conf_set_opaque(conf, st);
	cv_kafka_conf_set_logger(conf);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);

	char errstr[512];
	st->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
	if (!st->rk) {
		rd_kafka_conf_destroy(conf);
		api->log(stage, CV_LOG_ERROR, "cannot create the Kafka consumer: %s", errstr);
		return CV_ECONFIG;
	}
	rd_kafka_poll_set_consumer(st->rk);
	st->q = rd_kafka_queue_get_consumer(st->rk);
	st->trk = offset_tracker_new();
	st->msgs = calloc(MAX_FETCH, sizeof *st->msgs);
	if (!st->q || !st->trk || !st->msgs)
		return CV_ENOMEM;

	st->m_lag = api->metric_register(stage, CV_METRIC_GAUGE, "conveyor_kafka_consumer_lag",
	                                 "Messages in the partition after the position this "
	                                 "consumer may commit (high watermark - position).",
	                                 "partition", NULL, 0);
	st->m_commit_errors =
	        api->metric_register(stage, CV_METRIC_COUNTER, "conveyor_kafka_commit_errors_total",
	                             "Offset commits that failed.", NULL, NULL, 0);
	st->m_dead_letters = api->metric_register(
	        stage, CV_METRIC_COUNTER, "conveyor_kafka_dead_letters_total",
	        "Messages that could not be decoded, sent to the dead-letter destination.", NULL,
	        NULL, 0);
	st->m_rebalances =
	        api->metric_register(stage, CV_METRIC_COUNTER, "conveyor_kafka_rebalances_total",
	                             "Partition assignments and revocations.", NULL, NULL, 0);
	if (!st->m_lag || !st->m_commit_errors || !st->m_dead_letters || !st->m_rebalances) {
		api->log(stage, CV_LOG_ERROR, "cannot register metrics");
		return CV_ENOMEM;
	}
	return 0;
}

/* What the option schema cannot say, at the option's FILE:LINE:COL: the
 * topic list names a topic, dead_letter has its shape and is not a topic
 * this stage reads, and properties leave the plugin's own settings alone.
 * (That dead_letter's file opens is init's to find out.) */
static int kafka_in_check(struct cv_check *ck, const struct cv_host_api *api, const void *config)
{
	const struct kafka_in_config *cfg = config;
	int rc = cv_kafka_check_properties(ck, api, &cfg->properties, managed_properties);
	const char *p = cfg->topic, *name;
	size_t len;
	if (!next_topic(&p, &name, &len)) {
		api->check_error(ck, "topic", "empty: the list names no topic");
		rc = CV_ECONFIG;
	}
	const char *dl = cfg->dead_letter ? cfg->dead_letter : "";
	if (strncmp(dl, "topic:", 6) == 0 && dl[6]) {
		const char *dl_topic = dl + 6;
		for (p = cfg->topic; next_topic(&p, &name, &len);) {
			if (strlen(dl_topic) == len && memcmp(dl_topic, name, len) == 0) {
				api->check_error(ck, "dead_letter",
				                 "the topic is one this stage reads");
				rc = CV_ECONFIG;
				break;
			}
		}
	} else if (*dl && !(strncmp(dl, "file:", 5) == 0 && dl[5])) {
		api->check_error(ck, "dead_letter",
		                 "expected \"file:/path\" or \"topic:name\", got \"%s\"", dl);
		rc = CV_ECONFIG;
	}
	return rc;
}

static int kafka_in_init(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
                         void **state)
{
	struct kafka_in *st = calloc(1, sizeof *st);
	if (!st)
		return CV_ENOMEM;
	st->id = (struct cv_kafka_ident){.api = api, .stage = stage};
	st->cfg = config;
	st->dl_fd = -1;
	/* The host calls destroy only after a successful init. */
	int rc = setup(st);
	if (rc < 0) {
		kafka_in_destroy(st);
		return rc;
	}
	*state = st;
	return 0;
}

static int kafka_in_start(void *state)
{
	struct kafka_in *st = state;
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new((int)st->ntopics);
	for (size_t i = 0; i < st->ntopics; i++)
		rd_kafka_topic_partition_list_add(sub, st->topics[i], RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(st->rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (err) {
		st->id.api->log(st->id.stage, CV_LOG_ERROR, "cannot subscribe: %s",
		                rd_kafka_err2str(err));
		return CV_ECONFIG;
	}
	int64_t now = st->id.api->now_ns();
	st->next_commit_ns = now + st->cfg->commit_interval;
	st->next_lag_ns = now + st->cfg->lag_interval;
	return 0;
}

/* Leaves the group before rd_kafka_consumer_close(): unsubscribes and
 * serves the revocation here, through the normal poll path, with a bound.
 * librdkafka 2.0 can hang forever in rd_kafka_assign() when the revocation
 * callback runs inside rd_kafka_consumer_close() while the group is
 * rebalancing (librdkafka issues #4884, #4527), which is just what a rolling
 * restart does; with nothing assigned, close has no callback to run. */
static void leave_group(struct kafka_in *st)
{
	if (rd_kafka_unsubscribe(st->rk))
		return;
	int64_t deadline = st->id.api->now_ns() + COMMIT_TIMEOUT_MS * 1000000LL;
	int idle = 0;
	while (idle < 2 && st->id.api->now_ns() < deadline) {
		/* Short polls: leaving is done once two in a row find nothing
		 * assigned and nothing to serve; each idle one costs its wait. */
		rd_kafka_message_t *m = rd_kafka_consumer_poll(st->rk, 10);
		if (m) {
			rd_kafka_message_destroy(m);
			idle = 0;
			continue;
		}
		rd_kafka_topic_partition_list_t *a = NULL;
		bool empty = rd_kafka_assignment(st->rk, &a) == 0 && a->cnt == 0;
		if (a)
			rd_kafka_topic_partition_list_destroy(a);
		idle = empty ? idle + 1 : 0;
	}
}

static void kafka_in_destroy(void *state)
{
	struct kafka_in *st = state;
	if (!st)
		return;
	for (size_t i = st->pend_pos; i < st->pend_n; i++)
		rd_kafka_message_destroy(st->msgs[i]);
	st->pend_pos = st->pend_n = 0;
	if (st->dl_rk) {
		/* Dead letters settle their offsets on delivery: before the
		 * last commit. */
		rd_kafka_flush(st->dl_rk, COMMIT_TIMEOUT_MS);
		rd_kafka_topic_destroy(st->dl_rkt);
	}
	if (st->rk) {
		st->eof_returned = true;
		if (st->trk)
			commit_wait(st, NULL, "shutdown");
		if (st->trk)
			leave_group(st);
		if (st->q)
			rd_kafka_queue_destroy(st->q);
		st->q = NULL;
		rd_kafka_consumer_close(st->rk);
		rd_kafka_destroy(st->rk);
	}
	if (st->dl_rk)
		rd_kafka_destroy(st->dl_rk);
	if (st->dl_fd >= 0)
		close(st->dl_fd);
	if (st->embedded)
		cv_kafka_embedded_release();
	cv_buf_free(&st->dl_buf);
	offset_tracker_free(st->trk);
	free(st->msgs);
	for (size_t i = 0; i < st->ntopics; i++)
		free(st->topics[i]);
	free(st->topics);
	free(st);
}

static const struct cv_option options[] = {
        {.name = "brokers",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED | CV_OPT_NONEMPTY,
         .offset = offsetof(struct kafka_in_config, brokers),
         .description = "bootstrap servers (host:port,...), or \"embedded\" for the process's "
                        "in-process cluster (demo: data lives in memory)"},
        {.name = "topic",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED | CV_OPT_NONEMPTY,
         .offset = offsetof(struct kafka_in_config, topic),
         .description = "topic to consume; a comma-separated list for several"},
        {.name = "group",
         .type = CV_OPT_STRING,
         .flags = CV_OPT_REQUIRED | CV_OPT_NONEMPTY,
         .offset = offsetof(struct kafka_in_config, group),
         .description = "consumer group: members split the partitions; offsets are committed "
                        "for the group"},
        {.name = "format",
         .type = CV_OPT_ENUM,
         .default_value = "json",
         .enum_values = cv_record_format_names,
         .offset = offsetof(struct kafka_in_config, format),
         .description = "message encoding: json or influx (line protocol)"},
        {.name = "dead_letter",
         .type = CV_OPT_STRING,
         .default_value = "",
         .offset = offsetof(struct kafka_in_config, dead_letter),
         .description = "where undecodable messages go, with partition and offset: "
                        "\"file:/path\" (JSON lines, as the pipeline's dead-letter file) or "
                        "\"topic:name\"; they also go to the "
                        "pipeline's dead_letter"},
        {.name = "properties",
         .type = CV_OPT_MAP,
         .offset = offsetof(struct kafka_in_config, properties),
         .description = "librdkafka consumer settings (TLS, SASL, session.timeout.ms, "
                        "fetch sizes...); offset commit settings are the plugin's own"},
        {.name = "commit_interval",
         .type = CV_OPT_DURATION,
         .flags = CV_OPT_HAS_MIN,
         .default_value = "1s",
         .min = 1e6,
         .offset = offsetof(struct kafka_in_config, commit_interval),
         .description = "how often delivered offsets are committed (also on rebalance and "
                        "shutdown)"},
        {.name = "lag_interval",
         .type = CV_OPT_DURATION,
         .flags = CV_OPT_HAS_MIN,
         .default_value = "5s",
         .min = 1e6,
         .offset = offsetof(struct kafka_in_config, lag_interval),
         .description = "how often conveyor_kafka_consumer_lag is updated"},
        {.name = "auto_offset_reset",
         .type = CV_OPT_ENUM,
         .default_value = "earliest",
         .enum_values = offset_resets,
         .offset = offsetof(struct kafka_in_config, auto_offset_reset),
         .description = "where a group without a committed offset starts: earliest or latest"},
        {0},
};

CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {
        CV_PLUGIN_HEADER,
        .name = "kafka_in",
        .version = "1.0.0",
        .description = "Kafka consumer group: commits an offset only once every record up to it "
                       "was delivered",
        .kind = CV_KIND_SOURCE,
        .options = options,
        .config_size = sizeof(struct kafka_in_config),
        .init = kafka_in_init,
        .check = kafka_in_check,
        .destroy = kafka_in_destroy,
        .read = kafka_in_read,
        .ack = kafka_in_ack,
        .stop = kafka_in_stop,
        .start = kafka_in_start,
};
