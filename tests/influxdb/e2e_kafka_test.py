"""End to end: sim_speed -> kafka_out -> (mock Kafka cluster) -> kafka_in ->
anomaly -> influxdb over HTTPS with auth (pipelines/processor.yaml).
The processor is killed with SIGKILL mid-stream and restarted: InfluxDB ends
up holding exactly N points, every line's seq 1..N/lines (re-delivered
points overwrite the same series and timestamp).

Skips (exit 77, which ctest reports as skipped, with a message) when the Kafka plugins or the mock cluster are
not built.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
sys.path.insert(0, HERE)
import conveyor_test as ct  # noqa: E402
import influx_env as ie  # noqa: E402

PROCESSOR = os.path.join(ct.SOURCE_DIR, "pipelines", "processor.yaml")
MOCK_BIN = os.path.join(ct.BUILD_DIR, "tests", "kafka", "mock_cluster")
NEEDED = [os.path.join(ct.PLUGIN_DIR, p + ".so") for p in ("kafka_in", "kafka_out", "anomaly")]
TOPIC = "conveyor-speed"
LINES = 5

PRODUCER = """version: 1
engine:
  shutdown_timeout: 10s
pipelines:
  producer:
    source: { plugin: sim_speed, lines: %d, count: %d, rate: %d, seed: 3 }
    sink: { plugin: kafka_out, brokers: "%s", topic: %s, key: line_id }
"""


def missing():
    return [p for p in NEEDED + [MOCK_BIN] if not os.path.exists(p)]


def test_kill9_processor_exactly_n_points():
    import kafka_env as ke
    n = 10000 if ct.SANITIZE else 60000
    rate = n // 10
    per_line = n // LINES
    mc = ke.MockCluster({TOPIC: ke.PARTITIONS})
    pki = ie.Pki(ct.tmpdir("conveyor-pki-"))
    db = ie.Influxd(pki)
    work = ct.tmpdir()
    pwfile = ct.write_file(os.path.join(work, "password"), ie.WRITER_PASSWORD + "\n")
    env = {"KAFKA_BROKERS": mc.bootstraps, "KAFKA_TOPIC": TOPIC, "KAFKA_GROUP": "processor",
           "INFLUXDB_URL": db.url, "INFLUXDB_USERNAME": ie.WRITER_USER,
           "INFLUXDB_PASSWORD_FILE": pwfile, "INFLUXDB_CA_FILE": pki.ca_cert,
           "PROCESSOR_DEAD_LETTER": os.path.join(work, "dead-letter.jsonl")}
    env.update(ke.FAST_GROUP_ENV)

    # The processor first, so that it consumes while the producer produces
    # (about 10 s of data) and the kill lands mid-stream.
    proc1 = ct.Engine(PROCESSOR, env=env, workdir=ct.tmpdir("conveyor-processor1-"))
    proc1.wait_ready(60)
    producer = ct.Engine(PRODUCER % (LINES, n, rate, mc.bootstraps, TOPIC),
                         workdir=ct.tmpdir("conveyor-producer-"))

    def stored():
        rows = db.rows('SELECT count("seq") FROM conveyor_speed')
        return rows[0]["count"] if rows else 0

    ct.wait_until(lambda: stored() >= n // 4, 90, what="a quarter of the points in influxd")
    proc1.kill9()
    at_kill = stored()
    ct.check(at_kill < n, "the processor had already written everything before the kill")

    proc2 = ct.Engine(PROCESSOR, env=env, workdir=ct.tmpdir("conveyor-processor2-"))
    ct.check(producer.wait_exit(120) == 0, "producer failed:\n%s" % producer.stderr_text()[-2000:])
    ct.wait_until(lambda: stored() >= n, 120, what="%d points in influxd" % n)
    rc = proc2.stop(timeout=30)
    ct.check(rc == 0, "processor exited %d:\n%s" % (rc, proc2.stderr_text()[-2000:]))

    rows = db.rows('SELECT count("seq"), min("seq"), max("seq"), count("speed_ms") '
                   'FROM conveyor_speed GROUP BY line_id')
    ct.check(len(rows) == LINES, "expected %d lines, got %r" % (LINES, rows))
    for r in rows:
        ct.check(r["count"] == per_line and r["count_1"] == per_line and
                 r["min"] == 1 and r["max"] == per_line,
                 "line %s holds %s points, seq %s..%s; expected %d points, seq 1..%d" %
                 (r.get("line_id"), r["count"], r["min"], r["max"], per_line, per_line))
    ct.check(stored() == n, "influxd holds %d points, expected exactly %d" % (stored(), n))
    for e in (proc1, proc2):
        text = e.stderr_text()
        ct.check(ie.WRITER_PASSWORD not in text, "the password appeared in the processor's log")
    print("  killed at %d of %d points; after restart exactly %d" % (at_kill, n, stored()))
    mc.stop()


if __name__ == "__main__":
    gone = missing()
    if gone:
        print("SKIP: the Kafka end-to-end test needs %s (not built yet)" %
              ", ".join(os.path.relpath(p, ct.BUILD_DIR) for p in gone))
        sys.exit(77)  # ctest's SKIP_RETURN_CODE for this test
    ct.main([test_kill9_processor_exactly_n_points])
