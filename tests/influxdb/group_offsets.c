/*
 * group_offsets.c - prints what a consumer group committed on a topic,
 * without joining the group: one line "PARTITION COMMITTED LOW HIGH" per
 * partition (COMMITTED -1 when the group committed nothing there, LOW the
 * oldest offset the partition still holds, HIGH its end). Tests read it to tell which records a
 * processor acknowledged, and that no partition is left unconsumed (lag 0).
 *
 * Usage: group_offsets BOOTSTRAP GROUP TOPIC. Exits 1 on any error.
 */
#include <stdio.h>
#include <stdlib.h>

#include <librdkafka/rdkafka.h>

#define TIMEOUT_MS 10000

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s BOOTSTRAP GROUP TOPIC\n", argv[0]);
		return 2;
	}
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) ||
	    rd_kafka_conf_set(conf, "group.id", argv[2], err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!rk) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int rc = 1;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, argv[3], NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *parts = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, TIMEOUT_MS);
	if (e || md->topic_cnt != 1 || md->topics[0].err) {
		fprintf(stderr, "metadata of %s: %s\n", argv[3],
		        rd_kafka_err2str(e               ? e
		                         : md->topic_cnt ? md->topics[0].err
		                                         : e));
		goto out;
	}
	parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(parts, argv[3], md->topics[0].partitions[i].id);
	/* An OffsetFetch to the group's coordinator: no join, no rebalance. */
	if ((e = rd_kafka_committed(rk, parts, TIMEOUT_MS))) {
		fprintf(stderr, "committed offsets of %s: %s\n", argv[2], rd_kafka_err2str(e));
		goto out;
	}
	for (int i = 0; i < parts->cnt; i++) {
		const rd_kafka_topic_partition_t *p = &parts->elems[i];
		int64_t lo = 0, hi = 0;
		if (p->err || (e = rd_kafka_query_watermark_offsets(rk, argv[3], p->partition, &lo,
		                                                    &hi, TIMEOUT_MS))) {
			fprintf(stderr, "partition %d: %s\n", (int)p->partition,
			        rd_kafka_err2str(p->err ? p->err : e));
			goto out;
		}
		printf("%d %lld %lld %lld\n", (int)p->partition,
		       p->offset < 0 ? -1LL : (long long)p->offset, (long long)lo, (long long)hi);
	}
	rc = 0;
out:
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	return rc;
}
