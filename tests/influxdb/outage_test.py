"""InfluxDB stopped for 30 s while 10k records/s arrive through Kafka
(pipelines/processor.yaml: kafka_in -> anomaly -> influxdb over HTTPS with
auth; the mock Kafka cluster in its own process):

- /readyz answers 503 from the moment the sink notices until influxd is back,
  then 200 again;
- the processor's memory (VmRSS, sampled every 0.25 s) stays under the bound
  plugins/influxdb/README.md states, computed here from the spec's queue and
  batch settings and librdkafka's prefetch bound;
- every record arrives after the outage: influxd holds each (line_id, seq)
  exactly once, and the group has committed every partition to its end.

The sanitizer build scales the rate down (same 30 s outage) and allows its
shadow memory. Skips (exit 77) when the Kafka plugins or tools are not built.
Run: CONVEYOR_BIN=build/conveyor CONVEYOR_PLUGIN_DIR=build/plugins python3 tests/influxdb/outage_test.py
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
sys.path.insert(0, HERE)
import conveyor_test as ct  # noqa: E402
import flow_env as fe  # noqa: E402
import group_env as ge  # noqa: E402
import influx_env as ie  # noqa: E402
import kafka_env as ke  # noqa: E402

OUTAGE_S = 30
RATE = 2500 if ct.SANITIZE else 10000
BEFORE_S, AFTER_S = 6, 6
TOTAL = RATE * (BEFORE_S + OUTAGE_S + AFTER_S)
MiB = 1 << 20

# pipelines/processor.yaml's settings, and the engine's and librdkafka's
# defaults it leaves: the terms of the bound in plugins/influxdb/README.md,
# "Memory".
QUEUE_MAX_RECORDS, QUEUE_BATCH_RECORDS = 32768, 1024
SINK_MAX_RECORDS, SINK_MAX_IN_FLIGHT, SINK_MAX_BYTES = 5000, 4, 4 * MiB
PREFETCH_KBYTES = 65536      # librdkafka's queued.max.messages.kbytes
RECORD_BYTES = 56 + 8 * 24   # struct cv_record and 8 field slots (struct cv_field)
LINE_BYTES = 200             # a point in line protocol, with anomaly's 4 fields
MESSAGE_OVERHEAD = 400       # librdkafka's bookkeeping per fetched message


def memory_bound(message_bytes):
    """(bound in bytes above the idle engine, its terms), as the README
    states it."""
    arena = min(max(QUEUE_BATCH_RECORDS * 256, 64 << 10), 4 * MiB)
    batches = -(-QUEUE_MAX_RECORDS // QUEUE_BATCH_RECORDS)
    pool = batches * (arena + QUEUE_BATCH_RECORDS * RECORD_BYTES)
    request = min(SINK_MAX_RECORDS * LINE_BYTES, SINK_MAX_BYTES)
    sink = 2 * (2 * (SINK_MAX_IN_FLIGHT + 2) + 1) * request
    prefetch = PREFETCH_KBYTES * 1024 * (message_bytes + MESSAGE_OVERHEAD) // message_bytes
    return pool + sink + prefetch, {"pool": pool, "sink": sink, "prefetch": prefetch}


def message_bytes(mc):
    """The smallest of a sample of the topic's messages (the smaller the
    messages, the more of them the prefetch bound lets in)."""
    rc, out, err = ct.run(["kcat", "-b", mc.bootstraps, "-t", fe.TOPIC, "-C", "-c", "200", "-e",
                           "-q", "-f", "%S\n"], timeout=60)
    ct.check(rc == 0 and out.strip(), "kcat failed (%d): %s" % (rc, err))
    return min(int(x) for x in out.split())


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ct.TestFailure("no VmRSS for pid %d" % pid)


def state(e, mc):
    """What the processor and the group hold, for a failure message."""
    m = e.metrics()
    parts = []
    for name, stage in (("conveyor_stage_records_out_total", "kafka_in"),
                        ("conveyor_stage_records_in_total", "influxdb"),
                        ("conveyor_stage_records_out_total", "influxdb"),
                        ("conveyor_stage_records_dropped_total", "influxdb"),
                        ("conveyor_influxdb_pending_records", None),
                        ("conveyor_kafka_consumer_lag", None)):
        v = ct.metric_sum(m, name, stage=stage) if stage else ct.metric_sum(m, name)
        parts.append("%s%s %s" % (name, "{%s}" % stage if stage else "", v))
    parts.append("group offsets (committed, low, high) %r" % fe.offsets(mc))
    return ", ".join(parts)


def test_influxdb_down_30s_under_10k_per_second():
    mc = ke.MockCluster({fe.TOPIC: fe.PARTITIONS})
    pki = ie.Pki(ct.tmpdir("conveyor-pki-"))
    db = ie.Influxd(pki)
    work = ct.tmpdir("conveyor-outage-")
    e = ct.Engine(fe.PROCESSOR, env=fe.processor_env(mc, db, pki, work), workdir=work)
    e.wait_ready(60)
    ke.wait_assigned(e, timeout=60)
    idle_rss = rss(e.proc.pid)

    def stored():
        return fe.stored(db)

    producer = fe.start_producer(mc, TOTAL, RATE)
    ct.wait_until(lambda: stored() >= RATE * BEFORE_S // 2, 60, what="points flowing")
    bound, terms = memory_bound(message_bytes(mc))
    limit = idle_rss + bound
    if ct.SANITIZE:
        limit = idle_rss + 3 * bound  # ASan's redzones, shadow and quarantine
    ct.check(ct.http_get(e.url + "/readyz")[0] == 200, "/readyz not 200 while delivering")

    db.stop()
    t_stop = time.monotonic()
    first_503 = None
    after_503 = []  # /readyz answers after the first 503
    peak = idle_rss
    delivered_at_503 = None

    def sample_memory():
        nonlocal peak
        peak = max(peak, rss(e.proc.pid))
        ct.check(peak <= limit, "RSS %.1f MiB passed the bound %.1f MiB (idle %.1f + %s)" %
                 (peak / MiB, limit / MiB, idle_rss / MiB,
                  ", ".join("%s %.1f" % (k, v / MiB) for k, v in terms.items())))

    while time.monotonic() - t_stop < OUTAGE_S:
        sample_memory()
        ready = ct.http_get(e.url + "/readyz")[0]
        if first_503 is None and ready == 503:
            first_503 = time.monotonic() - t_stop
            delivered_at_503 = e.metric("conveyor_stage_records_out_total", stage="influxdb")
        if first_503 is not None:
            after_503.append(ready)
        ct.check(e.alive(), "the processor exited during the outage:\n" +
                 e.stderr_text()[-3000:])
        time.sleep(0.25)
    in_pipeline = e.metric("conveyor_stage_records_out_total", stage="kafka_in") or 0
    ct.check(first_503 is not None, "/readyz never answered 503 while influxd was down")
    delivered_during = (e.metric("conveyor_stage_records_out_total", stage="influxdb") or 0) - \
        (delivered_at_503 or 0)
    ct.check(all(r == 503 for r in after_503), "/readyz answered %r during the outage" %
             sorted(set(after_503)))
    ct.check(delivered_during <= 0, "%d records acknowledged while influxd was down" %
             delivered_during)
    db.start()
    ct.wait_until(lambda: ct.http_get(e.url + "/readyz")[0] == 200, 60,
                  what="/readyz 200 after influxd came back")
    fe.wait_produced(producer, mc, TOTAL)
    # The backlog drains: memory stays under the bound meanwhile too.
    deadline = time.monotonic() + 120
    while stored() < TOTAL:
        sample_memory()
        ct.check(time.monotonic() < deadline, "timed out waiting for %d points in influxd "
                 "(have %d); %s" % (TOTAL, stored(), state(e, mc)))
        time.sleep(0.25)
    ct.wait_until(lambda: ge.lag(fe.offsets(mc)) == 0, 60,
                  what="every partition committed to its end")
    ge.check_nothing_pruned(fe.offsets(mc))
    ct.check(e.stop(timeout=30) == 0, "the processor did not exit 0")
    fe.check_exact(db, TOTAL)
    fe.check_no_dead_letters(work)
    print("  %d records at %d/s, influxd down %d s: /readyz 503 after %.1f s; RSS idle %.1f MiB, "
          "peak %.1f MiB, bound %.1f MiB (%s); %d records in the pipeline by the end of the "
          "outage; all %d stored" %
          (TOTAL, RATE, OUTAGE_S, first_503, idle_rss / MiB, peak / MiB, limit / MiB,
           ", ".join("%s %.1f" % (k, v / MiB) for k, v in terms.items()), in_pipeline, TOTAL))
    mc.stop()


if __name__ == "__main__":
    gone = fe.missing()
    if gone:
        print("SKIP: the outage test needs %s (not built)" %
              ", ".join(os.path.relpath(p, ct.BUILD_DIR) for p in gone))
        sys.exit(77)
    ct.main([test_influxdb_down_30s_under_10k_per_second])
