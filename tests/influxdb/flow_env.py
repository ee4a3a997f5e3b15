"""Records flowing from a producer through the mock Kafka cluster into
processors (pipelines/processor.yaml: kafka_in -> anomaly -> influxdb over
HTTPS with auth) and a real influxd: shared by the churn and outage tests."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
sys.path.insert(0, HERE)
import conveyor_test as ct  # noqa: E402
import group_env as ge  # noqa: E402
import influx_env as ie  # noqa: E402
import kafka_env as ke  # noqa: E402

PROCESSOR = os.path.join(ct.SOURCE_DIR, "pipelines", "processor.yaml")
NEEDED = [os.path.join(ct.PLUGIN_DIR, p + ".so") for p in ("kafka_in", "kafka_out", "anomaly")] + \
    [ke.MOCK_BIN, ge.GROUP_OFFSETS]
TOPIC = "conveyor-speed"
GROUP = "processor"
# Unkeyed messages spread evenly: with 300-400k records of ~140 bytes each
# partition stays far below the ~5 MiB the mock cluster keeps.
PARTITIONS = 24
LINES = 20

# No key: messages spread over every partition. A long shutdown timeout: on
# a loaded machine the final flush may take a while, and a record it gives
# up on would be missing from the count.
PRODUCER = """version: 1
engine:
  shutdown_timeout: 60s
pipelines:
  producer:
    source: { plugin: sim_speed, lines: %d, count: %d, rate: %d, seed: 11 }
    sink:
      plugin: kafka_out
      brokers: "%s"
      topic: %s
      key: ""
      properties: { compression.type: lz4 }
    queue: { max_records: 65536 }
"""


def missing():
    return [p for p in NEEDED if not os.path.exists(p)]


def start_producer(mc, total, rate):
    return ct.Engine(PRODUCER % (LINES, total, rate, mc.bootstraps, TOPIC),
                     workdir=ct.tmpdir("conveyor-producer-"))


def processor_env(mc, db, pki, work):
    env = {"KAFKA_BROKERS": mc.bootstraps, "KAFKA_TOPIC": TOPIC, "KAFKA_GROUP": GROUP,
           "INFLUXDB_URL": db.url, "INFLUXDB_USERNAME": ie.WRITER_USER,
           "INFLUXDB_PASSWORD_FILE": ct.write_file(os.path.join(work, "password"),
                                                   ie.WRITER_PASSWORD + "\n"),
           "INFLUXDB_CA_FILE": pki.ca_cert,
           "PROCESSOR_DEAD_LETTER": os.path.join(work, "dead-letter.jsonl")}
    env.update(ke.FAST_GROUP_ENV)
    return env


def offsets(mc):
    return ge.offsets(mc.bootstraps, GROUP, TOPIC, PARTITIONS)


def wait_produced(producer, mc, total, timeout=180):
    """The producer ran to its end and the topic holds all `total` records."""
    rc = producer.wait_exit(timeout)
    ct.check(rc == 0, "producer exited %s:\n%s" % (rc, producer.stderr_text()[-2000:]))
    have = sum(h for _, _, h in offsets(mc).values())
    ct.check(have == total, "the topic holds %d records, not %d: the producer lost some:\n%s" %
             (have, total, producer.stderr_text()[-2000:]))


def stored(db):
    rows = db.rows('SELECT count("seq") FROM conveyor_speed')
    return rows[0]["count"] if rows else 0


def check_exact(db, total):
    """influxd holds every (line_id, seq) of `total` records once."""
    rows = db.rows('SELECT count("seq"), min("seq"), max("seq") FROM conveyor_speed '
                   'GROUP BY line_id')
    per_line = total // LINES
    ct.check(len(rows) == LINES, "expected %d lines, got %d" % (LINES, len(rows)))
    for r in rows:
        ct.check(r["count"] == per_line and r["min"] == 1 and r["max"] == per_line,
                 "line %s holds %s points, seq %s..%s; expected %d points, seq 1..%d" %
                 (r.get("line_id"), r["count"], r["min"], r["max"], per_line, per_line))
    ct.check(stored(db) == total, "influxd holds %d points, expected exactly %d" %
             (stored(db), total))


def check_no_dead_letters(work):
    path = os.path.join(work, "dead-letter.jsonl")
    ct.check(not os.path.exists(path) or os.path.getsize(path) == 0, "points were dead-lettered")
