"""What the influxdb sink does with each kind of refusal, against Debian's real
influxd 1.6.7 (HTTPS, auth):

- configuration errors (plain HTTP to the HTTPS port, an unknown database, a
  wrong password): nothing rejected or dead-lettered, /readyz 503, the
  server's message logged once, and with kafka_in nothing committed; once the
  configuration is right every record arrives and /readyz is 200 again;
- refused points in the middle of a request (a field type conflict, a line
  influxd cannot parse): exactly those are dead-lettered, everything else is
  stored, found from influxd's answer rather than by splitting;
- 413 from a small max-body-size: the requests are split and later ones kept
  below the limit; a point larger than the limit is rejected alone.

Run: CONVEYOR_BIN=build/conveyor CONVEYOR_PLUGIN_DIR=build/plugins python3 tests/influxdb/refusals_test.py [test names]
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
sys.path.insert(0, HERE)
import conveyor_test as ct  # noqa: E402
import influx_env as ie  # noqa: E402
import kafka_env as ke  # noqa: E402
import group_env as ge  # noqa: E402

JSONL_PLUGIN = os.path.join(ct.BUILD_DIR, "tests", "influxdb", "test_jsonl.so")
KAFKA_NEEDED = [os.path.join(ct.PLUGIN_DIR, p + ".so") for p in ("kafka_in", "kafka_out")] + \
    [ke.MOCK_BIN, ge.GROUP_OFFSETS]
TOPIC = "speed"
PARTITIONS = 4
# Retries a configuration error goes through before the checks: enough that
# a message logged per retry, or points split per refusal, would show.
RETRIES = 5

_pki = None


def pki():
    global _pki
    if _pki is None:
        _pki = ie.Pki(ct.tmpdir("conveyor-pki-"))
    return _pki


def sink(db, work, url=None, database=ie.DATABASE, password=ie.WRITER_PASSWORD, tls=True,
         extra=""):
    pwf = ct.write_file(os.path.join(work, "password"), password + "\n")
    return ('{ plugin: influxdb, url: "%s", database: "%s", username: %s, password_file: "%s", '
            '%sretry: { initial: 100ms, max: 400ms }%s }' %
            (url or db.url, database, ie.WRITER_USER, pwf,
             'tls: { ca_file: "%s" }, ' % pki().ca_cert if tls else "",
             (", " + extra) if extra else ""))


def spec(source, sink_text, dead_letter):
    return """version: 1
engine:
  shutdown_timeout: 5s
pipelines:
  p:
    source: %s
    sink: %s
    dead_letter: { path: "%s" }
""" % (source, sink_text, dead_letter)


def kafka_source(mc, group):
    return ('{ plugin: kafka_in, brokers: "%s", topic: %s, group: %s, format: json, '
            'commit_interval: 200ms, properties: { session.timeout.ms: "3000", '
            'heartbeat.interval.ms: "300" } }' % (mc.bootstraps, TOPIC, group))


def group_offsets(mc, group):
    """{partition: (committed or -1, low, high)} of `group` on TOPIC."""
    return ge.offsets(mc.bootstraps, group, TOPIC, PARTITIONS)


def committed_total(mc, group):
    return ge.committed(group_offsets(mc, group))


def lag(mc, group):
    return ge.lag(group_offsets(mc, group))


def produce(mc, n):
    prod = ke.start_producer(mc, TOPIC, n, 0, workdir=ct.tmpdir("conveyor-producer-"))
    rc = prod.wait_exit(120)
    ct.check(rc == 0, "producer exited %s:\n%s" % (rc, prod.stderr_text()[-2000:]))
    ct.check(lag(mc, "nobody") == n, "the topic does not hold %d records" % n)


def messages(engine, text):
    return [r["message"] for r in engine.log_records() if text in r.get("message", "")]


def dead_letters(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def metric(engine, name, **labels):
    return engine.metric(name, **labels) or 0


def readyz(engine):
    return ct.http_get(engine.url + "/readyz")[0]


def count(db, database=ie.DATABASE, measurement="conveyor_speed", field="seq"):
    rows = db.rows('SELECT count("%s") FROM "%s"' % (field, measurement), database)
    return rows[0]["count"] if rows else 0


def check_failing_quietly(e, what, message, dl, retries=RETRIES):
    """A configuration error: /readyz 503, retried, the server's message
    logged once, nothing delivered, rejected or dead-lettered."""
    ct.wait_until(lambda: readyz(e) == 503, 60, what="%s: /readyz 503" % what)
    ct.wait_until(lambda: metric(e, "conveyor_influxdb_retries_total") >= retries or
                  metric(e, "conveyor_stage_records_dropped_total", stage="influxdb") > 0, 60,
                  what="%s: %d retries" % (what, retries))
    logged = messages(e, message)
    ct.check(len(logged) == 1,
             "%s: the server's message %r logged %d times, not once: %r" %
             (what, message, len(logged), logged[:3]))
    ct.check(metric(e, "conveyor_stage_records_out_total", stage="influxdb") == 0,
             "%s: records acknowledged as delivered" % what)
    ct.check(metric(e, "conveyor_stage_records_dropped_total", stage="influxdb") == 0,
             "%s: records rejected" % what)
    ct.check(not dead_letters(dl), "%s: records dead-lettered: %r" % (what, dead_letters(dl)[:2]))


# --------------------------------------------------------------------------
# Configuration errors
# --------------------------------------------------------------------------

def test_plain_http_to_https_port():
    """influxd answers 400 "Client sent an HTTP request to an HTTPS server."
    to every request: not the points' fault. Nothing is dead-lettered or
    committed; a restart with the right url delivers every record."""
    n = int(2000 * (0.5 if ct.SANITIZE else 1))
    mc = ke.MockCluster({TOPIC: PARTITIONS})
    produce(mc, n)
    db = ie.Influxd(pki())
    work = ct.tmpdir()
    dl = os.path.join(work, "dead-letter.jsonl")
    # One point a request: what the old sink split a refused request down to
    # (and rejected). influxd reads the start of a request, answers 400 and
    # closes the connection; small requests are read whole first, larger
    # ones end in a connection reset after the answer.
    wrong = sink(db, work, url="http://127.0.0.1:%d" % db.port, tls=False,
                 extra="batch: { max_records: 1 }")
    e = ct.Engine(spec(kafka_source(mc, "g-plain"), wrong, dl), workdir=work)
    check_failing_quietly(e, "plain HTTP", "Client sent an HTTP request to an HTTPS server", dl)
    ct.check(committed_total(mc, "g-plain") == 0, "offsets of undelivered records committed: %r"
             % group_offsets(mc, "g-plain"))
    e.stop(timeout=30)
    ct.check(committed_total(mc, "g-plain") == 0, "offsets committed at shutdown: %r" %
             group_offsets(mc, "g-plain"))
    ct.check(not dead_letters(dl), "records dead-lettered at shutdown")
    ct.check(messages(e, "not delivered"), "the shutdown did not report undelivered points")

    # The url fixed: the group starts again from nothing committed.
    work2 = ct.tmpdir()
    e2 = ct.Engine(spec(kafka_source(mc, "g-plain"), sink(db, work2), dl), workdir=work2)
    ct.wait_until(lambda: count(db) >= n, 120, what="%d points in influxd" % n)
    ct.wait_until(lambda: lag(mc, "g-plain") == 0, 60, what="every offset committed")
    ct.check(readyz(e2) == 200, "/readyz is not 200 while writes succeed")
    ct.check(e2.stop(timeout=30) == 0, "the second processor failed")
    ct.check(count(db) == n, "influxd holds %d points, expected %d" % (count(db), n))
    ct.check(not dead_letters(dl), "records dead-lettered")
    mc.stop()


def test_unknown_database_until_created():
    """404 database not found: records stay unacknowledged (nothing
    committed) until the database is created, then every one arrives."""
    n = int(2000 * (0.5 if ct.SANITIZE else 1))
    mc = ke.MockCluster({TOPIC: PARTITIONS})
    produce(mc, n)
    db = ie.Influxd(pki())
    work = ct.tmpdir()
    dl = os.path.join(work, "dead-letter.jsonl")
    e = ct.Engine(spec(kafka_source(mc, "g-db"), sink(db, work, database="later"), dl),
                  workdir=work)
    check_failing_quietly(e, "unknown database", 'database not found: "later"', dl)
    ct.check(committed_total(mc, "g-db") == 0, "offsets of undelivered records committed: %r" %
             group_offsets(mc, "g-db"))
    db.query('CREATE DATABASE "later"', db=None)
    db.query('GRANT ALL ON "later" TO %s' % ie.WRITER_USER, db=None)
    ct.wait_until(lambda: count(db, "later") >= n, 120, what="%d points in influxd" % n)
    ct.wait_until(lambda: readyz(e) == 200, 30, what="/readyz 200 once the database exists")
    ct.wait_until(lambda: lag(mc, "g-db") == 0, 60, what="every offset committed")
    ct.check(messages(e, "accepts writes again"), "no log of the recovery")
    ct.check(len(messages(e, 'database not found: "later"')) == 1,
             "the server's message was logged again")
    ct.check(e.stop(timeout=30) == 0, "the processor failed")
    ct.check(count(db, "later") == n, "influxd holds %d points, expected %d" %
             (count(db, "later"), n))
    ct.check(not dead_letters(dl), "records dead-lettered")
    mc.stop()


def test_wrong_password_until_fixed():
    """401 authorization failed: nothing rejected, /readyz 503, logged once;
    once influxd takes the password every point arrives."""
    db = ie.Influxd(pki())
    work = ct.tmpdir()
    dl = os.path.join(work, "dead-letter.jsonl")
    other = "not the writer password"
    # About 10 s of points: the engine is still running when writes recover.
    n = 3000
    e = ct.Engine(spec("{ plugin: sim_speed, count: %d, rate: %d }" % (n, n // 10),
                       sink(db, work, password=other), dl), workdir=work)
    check_failing_quietly(e, "wrong password", "authorization failed", dl)
    db.query("SET PASSWORD FOR %s = '%s'" % (ie.WRITER_USER, other), db=None)
    ct.wait_until(lambda: readyz(e) == 200, 30, what="/readyz 200 once the password is right")
    rc = e.wait_exit(60)
    ct.check(rc == 0, "engine exited %d:\n%s" % (rc, e.stderr_text()[-3000:]))
    ct.check(count(db) == n, "influxd holds %d points, expected %d" % (count(db), n))
    ct.check(messages(e, "accepts writes again"), "no log of the recovery")
    ct.check(not dead_letters(dl), "records dead-lettered")
    text = e.stderr_text()
    ct.check(other not in text and ie.WRITER_PASSWORD not in text, "a password was logged")


# --------------------------------------------------------------------------
# Refused points in the middle of a request
# --------------------------------------------------------------------------

def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def test_refused_points_found_from_the_answer():
    """Requests of 1000 points, three of them refused by influxd: a string
    and an integer where the field is a float (field type conflict) and a
    timestamp outside influxd's range (unable to parse). Exactly those are
    dead-lettered, with influxd's message; every other point is stored; and
    the answers name them, so no request is split: at most two refusals per
    bad point (its request, and the point sent apart)."""
    db = ie.Influxd(pki())
    st, body = db.request("POST", "/write", params={"db": ie.DATABASE, "precision": "ns"},
                          body=b"m,line=a v=0.5,id=-1i 1\n")
    ct.check(st == 204, "seed write: %d %s" % (st, body))
    n = 3000
    bad = {700: "time outside range", 1500: "field type conflict", 2200: "field type conflict"}
    records = []
    for i in range(n):
        r = {"measurement": "m", "timestamp": 1000000 + i, "tags": {"line": "a"},
             "fields": {"v": i * 0.25, "id": i}}
        if i == 700:
            r["timestamp"] = -9223372036854775808
        elif i == 1500:
            r["fields"]["v"] = "a string"
        elif i == 2200:
            r["fields"]["v"] = 7
        records.append(r)
    work = ct.tmpdir()
    data = write_jsonl(os.path.join(work, "in.jsonl"), records)
    dl = os.path.join(work, "dead-letter.jsonl")
    # Full requests: the source is far faster than one request per second.
    e = ct.Engine(spec('{ plugin: "%s", path: "%s" }' % (JSONL_PLUGIN, data),
                       sink(db, work, extra="batch: { max_records: 1000, linger: 1s }"),
                       dl), workdir=work)
    rc = e.wait_exit(60)
    ct.check(rc == 0, "engine exited %d:\n%s" % (rc, e.stderr_text()[-3000:]))
    dead = {d["record"]["fields"]["id"]: d["reason"] for d in dead_letters(dl)}
    ct.check(sorted(dead) == sorted(bad), "dead-lettered ids %r, expected %r" %
             (sorted(dead), sorted(bad)))
    for i, words in bad.items():
        ct.check(words in dead[i] and "HTTP 400" in dead[i],
                 "id %d: the reason lacks influxd's message: %r" % (i, dead[i]))
    ids = set(r["id"] for r in db.rows("SELECT id FROM m WHERE id >= 0"))
    ct.check(ids == set(range(n)) - set(bad), "stored ids differ: %d stored, missing %r" %
             (len(ids), sorted(set(range(n)) - set(bad) - ids)[:10]))
    refusals = db.http_stats()["clientError"]
    ct.check(refusals <= 2 * len(bad), "influxd refused %d requests for %d bad points: the "
             "requests were split instead of read" % (refusals, len(bad)))
    print("  %d stored, %d dead-lettered after %d refusals: %s" % (len(ids), len(dead), refusals,
          "; ".join("%d: %s" % (i, dead[i][:90]) for i in sorted(dead))))


# --------------------------------------------------------------------------
# 413: requests larger than influxd's max-body-size
# --------------------------------------------------------------------------

class SmallBodyInfluxd(ie.Influxd):
    """influxd refusing request bodies over MAX_BODY bytes with 413."""
    MAX_BODY = 100000

    def _write_config(self):
        super()._write_config()
        with open(self.conf) as f:
            text = f.read()
        text = text.replace("[http]\n", "[http]\n  max-body-size = %d\n" % self.MAX_BODY, 1)
        ct.write_file(self.conf, text)


def test_too_large_requests_split():
    """Requests of 5000 points (~300 KB) to an influxd taking 100 KB: the
    first is halved until it passes and the next are cut below the refused
    size before they are sent: a couple of 413s in all, not several per
    request. One point larger than 100 KB on its own is rejected."""
    db = SmallBodyInfluxd(pki())
    n = 20000
    big = 10000
    records = []
    for i in range(n):
        r = {"measurement": "m", "timestamp": 1000000 + i, "tags": {"line": "belt-%d" % (i % 5)},
             "fields": {"v": i * 0.25, "id": i, "note": "padding to sixty bytes"}}
        if i == big:
            r["fields"]["note"] = "x" * 150000
        records.append(r)
    work = ct.tmpdir()
    data = write_jsonl(os.path.join(work, "in.jsonl"), records)
    dl = os.path.join(work, "dead-letter.jsonl")
    e = ct.Engine(spec('{ plugin: "%s", path: "%s" }' % (JSONL_PLUGIN, data),
                       sink(db, work, extra="batch: { max_records: 5000, linger: 1s }, "
                            "max_in_flight: 1"), dl), workdir=work)
    rc = e.wait_exit(90)
    ct.check(rc == 0, "engine exited %d:\n%s" % (rc, e.stderr_text()[-3000:]))
    dead = {d["record"]["fields"]["id"]: d["reason"] for d in dead_letters(dl)}
    ct.check(list(dead) == [big], "dead-lettered ids %r, expected [%d]" % (sorted(dead)[:10], big))
    ct.check("413" in dead[big], "the reason does not say 413: %r" % dead[big])
    ct.check(count(db, measurement="m", field="id") == n - 1, "influxd holds %d points, "
             "expected %d" % (count(db, measurement="m", field="id"), n - 1))
    ct.check(messages(e, "as too large (HTTP 413"), "no log of the lowered request size")
    # One 413 per halving of the first request (300 KB -> 150 KB -> 75 KB)
    # and one for the big point alone; later requests are cut before they
    # are sent. Halving each request anew would take three per request.
    refused = db.http_stats()["clientError"]
    ct.check(1 <= refused <= 4, "influxd answered 413 %d times" % refused)
    print("  %d points in requests below 100 KB after %d answers 413" % (n - 1, refused))


if __name__ == "__main__":
    tests = [test_wrong_password_until_fixed, test_refused_points_found_from_the_answer,
             test_too_large_requests_split]
    missing = [p for p in KAFKA_NEEDED if not os.path.exists(p)]
    if missing:
        print("the Kafka-fed cases need %s (not built): skipped" %
              ", ".join(os.path.relpath(p, ct.BUILD_DIR) for p in missing))
    else:
        tests = [test_plain_http_to_https_port, test_unknown_database_until_created] + tests
    ct.main(tests)
