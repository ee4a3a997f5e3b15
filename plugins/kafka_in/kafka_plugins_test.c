/* kafka_plugins_test.c - kafka_out and kafka_in, loaded from their .so files
 * as the engine loads them, against the embedded cluster: records go out
 * and come back; acknowledged offsets are committed (a second member of the
 * group reads only what is new); undecodable messages are dead-lettered;
 * bad records and bad properties are refused. Both plugins must share one
 * embedded cluster through libconveyor_kafka_common.so, or nothing that
 * kafka_out writes ever reaches kafka_in. */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kafka_common.h"
#include "testing/stage_harness.h"

static const struct cv_plugin *out_plugin, *in_plugin;

static const struct cv_plugin *load(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return NULL;
	}
	return dlsym(h, CV_PLUGIN_SYMBOL);
}

static int setup_group(void **state)
{
	out_plugin = load(KAFKA_OUT_SO);
	in_plugin = load(KAFKA_IN_SO);
	return out_plugin && in_plugin ? 0 : -1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Appends `n` readings of line-1 with seq first.. to the batch. */
static void add_records(struct harness *h, struct cv_batch *b, int first, int n)
{
	const struct cv_host_api *api = harness_api(h);
	static const struct cv_tag tag = {
	        .key = "line_id", .value = "line-1", .key_len = 7, .value_len = 6};
	for (int i = 0; i < n; i++) {
		struct cv_record *r = cv_batch_record_new(b);
		assert_non_null(r);
		r->measurement = "conveyor_speed";
		r->measurement_len = 14;
		r->timestamp = 1700000000000000000LL + first + i;
		r->tags = &tag;
		r->ntags = 1;
		assert_non_null(cv_record_add_float(api, b, r, "speed_ms", 8, 2.0 + i / 1000.0));
		assert_non_null(cv_record_add_int(api, b, r, "seq", 3, first + i));
	}
}

/* Writes seq first..first+n-1 and waits for every delivery report. */
static void produce(struct harness *out, int first, int n)
{
	struct cv_batch *b = harness_batch(out);
	add_records(out, b, first, n);
	uint64_t before = harness_acked(out, CV_ACK_DELIVERED);
	assert_int_equal(harness_write(out, b), 0);
	assert_int_equal(out_plugin->flush(harness_state(out),
	                                   harness_api(out)->now_ns() + 10 * 1000000000LL),
	                 0);
	assert_int_equal(harness_acked(out, CV_ACK_DELIVERED) - before, (uint64_t)n);
}

/* Reads until `n` records came (or 20 s: the group join takes ~3 s),
 * acknowledging each batch as delivered; returns the seqs seen, in order. */
static int consume(struct harness *in, int n, int64_t *seqs, int max)
{
	int got = 0;
	double deadline = now_s() + 20;
	while (got < n && now_s() < deadline) {
		struct cv_batch *b;
		int rc = harness_read(in, &b);
		assert_true(rc == 0 || rc == CV_EOF);
		for (uint32_t i = 0; i < b->count; i++) {
			struct cv_record *r = &b->records[i];
			assert_true(r->token != 0);
			assert_int_equal(r->measurement_len, 14);
			const struct cv_field *f = cv_record_find_field(r, "seq", 3);
			assert_non_null(f);
			assert_int_equal(f->type, CV_FIELD_INT);
			if (got < max)
				seqs[got] = f->v.i;
			got++;
			r->flags |= CV_RECORD_DELIVERED;
		}
		if (b->count)
			in_plugin->ack(harness_state(in), b);
	}
	return got;
}

static const char *const in_options =
        "{brokers: embedded, topic: rt, group: g1, commit_interval: 100ms,"
        " properties: {session.timeout.ms: '3000', heartbeat.interval.ms: '300'}}";

static void test_round_trip_and_commit(void **state)
{
	struct harness *out, *in;
	assert_int_equal(harness_open(out_plugin, "{brokers: embedded, topic: rt}", 256, &out), 0);
	produce(out, 1, 100);

	assert_int_equal(harness_open(in_plugin, in_options, 256, &in), 0);
	int64_t seqs[200];
	assert_int_equal(consume(in, 100, seqs, 200), 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(seqs[i], i + 1); /* one key: one partition, in order */
	/* Closing commits the acknowledged offsets. */
	harness_close(in);

	produce(out, 101, 10);
	assert_int_equal(harness_open(in_plugin, in_options, 256, &in), 0);
	assert_int_equal(consume(in, 10, seqs, 200), 10);
	assert_int_equal(seqs[0], 101); /* resumed after the commit, no re-read */
	harness_close(in);
	harness_close(out);
}

static void test_dead_letters(void **state)
{
	/* Garbage straight from librdkafka into the embedded cluster. */
	static struct cv_kafka_ident id; /* logs nothing: no call reaches the host */
	struct harness *out, *in;
	assert_int_equal(harness_open(out_plugin, "{brokers: embedded, topic: dl}", 64, &out), 0);
	id.api = harness_api(out);
	const char *topics[] = {"dl"};
	const char *bootstraps;
	assert_int_equal(cv_kafka_embedded_acquire(&id, topics, 1, &bootstraps), 0);
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	assert_int_equal(
	        rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr),
	        RD_KAFKA_CONF_OK);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	assert_non_null(rk);
	assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("dl"), RD_KAFKA_V_KEY("line-1", 6),
	                                   RD_KAFKA_V_VALUE("not json", 8), RD_KAFKA_V_END),
	                 0);
	assert_int_equal(rd_kafka_flush(rk, 10000), 0);
	rd_kafka_destroy(rk);
	cv_kafka_embedded_release();
	produce(out, 1, 5); /* same key: after the garbage, same partition */

	struct harness *in2;
	assert_int_equal(harness_open(in_plugin,
	                              "{brokers: embedded, topic: dl, group: g2,"
	                              " properties: {session.timeout.ms: '3000'}}",
	                              64, &in2),
	                 0);
	in = in2;
	int64_t seqs[8];
	assert_int_equal(consume(in, 5, seqs, 8), 5);
	assert_int_equal(harness_dead_lettered(in), 1);
	assert_true(harness_metric(in, "conveyor_kafka_dead_letters_total", NULL) == 1.0);
	harness_close(in);
	harness_close(out);
}

static void test_unencodable_record_rejected(void **state)
{
	struct harness *out;
	assert_int_equal(harness_open(out_plugin, "{brokers: embedded, topic: rej}", 16, &out), 0);
	struct cv_batch *b = harness_batch(out);
	add_records(out, b, 1, 2);
	b->records[1].fields[0].v.f = NAN; /* no JSON for NaN */
	assert_int_equal(harness_write(out, b), 0);
	assert_int_equal(out_plugin->flush(harness_state(out),
	                                   harness_api(out)->now_ns() + 10 * 1000000000LL),
	                 0);
	assert_int_equal(harness_acked(out, CV_ACK_REJECTED), 1);
	assert_int_equal(harness_acked(out, CV_ACK_DELIVERED), 1);
	harness_close(out);
}

/* A record too large for the broker (message.max.bytes) is rejected and the
 * rest delivered, both when a batch fits librdkafka's queue (enqueued at
 * once) and when it does not (queue.buffering.max.messages smaller than the
 * batch: one by one, waiting for room). */
static void write_with_one_too_large(const char *options, int n)
{
	static char big[4000];
	memset(big, 'x', sizeof big);
	struct harness *out;
	assert_int_equal(harness_open(out_plugin, options, 256, &out), 0);
	struct cv_batch *b = harness_batch(out);
	add_records(out, b, 1, n);
	struct cv_field *f = cv_record_add_field(harness_api(out), b, &b->records[n / 2]);
	assert_non_null(f);
	*f = (struct cv_field){
	        .key = "note", .key_len = 4, .type = CV_FIELD_STRING, .str_len = sizeof big};
	f->v.s = big;
	assert_int_equal(harness_write(out, b), 0);
	assert_int_equal(out_plugin->flush(harness_state(out),
	                                   harness_api(out)->now_ns() + 10 * 1000000000LL),
	                 0);
	assert_int_equal(harness_acked(out, CV_ACK_REJECTED), 1);
	assert_int_equal(harness_acked(out, CV_ACK_DELIVERED), (uint64_t)n - 1);
	harness_close(out);
}

static void test_too_large_and_small_queue(void **state)
{
	write_with_one_too_large("{brokers: embedded, topic: big,"
	                         " properties: {message.max.bytes: '1000'}}",
	                         200);
	write_with_one_too_large("{brokers: embedded, topic: big,"
	                         " properties: {message.max.bytes: '1000',"
	                         " queue.buffering.max.messages: '10'}}",
	                         200);
}

/* The host flushes in slices of its drain deadline: a slice that ends
 * before every report came fails nothing, and the next slice delivers. */
static void test_flush_slice_fails_nothing(void **state)
{
	struct harness *out;
	/* A long linger: nothing can be delivered before the first flush. */
	assert_int_equal(harness_open(out_plugin,
	                              "{brokers: embedded, topic: slice,"
	                              " properties: {linger.ms: '1000'}}",
	                              64, &out),
	                 0);
	struct cv_batch *b = harness_batch(out);
	add_records(out, b, 1, 50);
	assert_int_equal(harness_write(out, b), 0);
	assert_int_equal(out_plugin->flush(harness_state(out), harness_api(out)->now_ns()),
	                 CV_EAGAIN);
	assert_int_equal(harness_acked(out, CV_ACK_FAILED), 0);
	assert_int_equal(out_plugin->flush(harness_state(out),
	                                   harness_api(out)->now_ns() + 10 * 1000000000LL),
	                 0);
	assert_int_equal(harness_acked(out, CV_ACK_DELIVERED), 50);
	assert_int_equal(harness_acked(out, CV_ACK_FAILED), 0);
	harness_close(out);
}

static void test_bad_options(void **state)
{
	struct harness *h = NULL;
	/* An invalid value is an init error (the log names the key only). */
	assert_true(harness_open(out_plugin,
	                         "{brokers: embedded, topic: t, properties: {linger.ms: hunter2}}",
	                         16, &h) < 0);
	assert_true(harness_open(out_plugin,
	                         "{brokers: embedded, topic: t, properties: {no.such.key: x}}", 16,
	                         &h) < 0);
	/* Settings kafka_in owns cannot be overridden. */
	assert_true(harness_open(in_plugin,
	                         "{brokers: embedded, topic: t, group: g,"
	                         " properties: {enable.auto.commit: 'true'}}",
	                         16, &h) < 0);
	assert_true(harness_open(in_plugin,
	                         "{brokers: embedded, topic: t, group: g, dead_letter: 'nowhere'}",
	                         16, &h) < 0);
	/* ... nor a dead-letter topic it reads, an empty topic list, empty names. */
	assert_true(
	        harness_open(in_plugin,
	                     "{brokers: embedded, topic: 'a, b', group: g, dead_letter: 'topic:b'}",
	                     16, &h) < 0);
	assert_true(harness_open(in_plugin, "{brokers: embedded, topic: ' , ', group: g}", 16, &h) <
	            0);
	assert_true(harness_open(in_plugin, "{brokers: embedded, topic: t, group: ''}", 16, &h) <
	            0);
	assert_true(harness_open(out_plugin, "{brokers: '', topic: t}", 16, &h) < 0);
	assert_true(harness_open(out_plugin,
	                         "{brokers: embedded, topic: t, properties: {dr_msg_cb: x}}", 16,
	                         &h) < 0);
	assert_null(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip_and_commit),
	        cmocka_unit_test(test_dead_letters),
	        cmocka_unit_test(test_unencodable_record_rejected),
	        cmocka_unit_test(test_too_large_and_small_queue),
	        cmocka_unit_test(test_flush_slice_fails_nothing),
	        cmocka_unit_test(test_bad_options),
	};
	return cmocka_run_group_tests(tests, setup_group, NULL);
}
