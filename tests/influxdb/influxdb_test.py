"""Integration tests of the influxdb sink against Debian's real influxd 1.6.7
(HTTPS with a private CA, auth on) and a local HTTPS server for the v2 API.

Each test starts its own influxd (about 0.3 s) so tests stay independent.
Run: CONVEYOR_BIN=build/conveyor CONVEYOR_PLUGIN_DIR=build/plugins python3 tests/influxdb/influxdb_test.py [test names]
"""

import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import conveyor_test as ct  # noqa: E402
import influx_env as ie  # noqa: E402

JSONL_PLUGIN = os.path.join(ct.BUILD_DIR, "tests", "influxdb", "test_jsonl.so")
SCALE = 0.2 if ct.SANITIZE else 1.0

_pki = None


def pki():
    global _pki
    if _pki is None:
        _pki = ie.Pki(ct.tmpdir("conveyor-pki-"))
    return _pki


def password_file(dir):
    return ct.write_file(os.path.join(dir, "password"), ie.WRITER_PASSWORD + "\n")


def sink_v1(db, workdir, extra=""):
    """The influxdb sink options for `db` as the writer user, as flow YAML."""
    return ('{ plugin: influxdb, url: "%s", database: %s, username: %s, password_file: "%s", '
            'tls: { ca_file: "%s" }, retry: { initial: 100ms, max: 1s }%s }' %
            (db.url, ie.DATABASE, ie.WRITER_USER, password_file(workdir), pki().ca_cert,
             (", " + extra) if extra else ""))


def spec(source, sink, extra_pipeline="", engine=""):
    return """version: 1
engine:
  shutdown_timeout: 3s
%s
pipelines:
  p:
    source: %s
    sink: %s
%s
""" % (engine, source, sink, extra_pipeline)


def check_no_secrets(engine, *secrets):
    text = engine.stderr_text() + engine.stdout_text()
    for s in secrets:
        ct.check(s not in text, "a secret appeared in the engine's output")


def sink_out(engine):
    return engine.metric("conveyor_stage_records_out_total", stage="influxdb") or 0


def log_has(engine, text):
    return any(text in r.get("message", "") for r in engine.log_records())


# --------------------------------------------------------------------------
# 100k points, counted back exactly
# --------------------------------------------------------------------------

def test_100k_points_counted_exactly():
    db = ie.Influxd(pki())
    n = int(100000 * SCALE)
    work = ct.tmpdir()
    e = ct.Engine(spec("{ plugin: sim_speed, count: %d, rate: 0, lines: 5, seed: 7 }" % n,
                       sink_v1(db, work)), workdir=work)
    rc = e.wait_exit(120)
    ct.check(rc == 0, "engine exited %d:\n%s" % (rc, e.stderr_text()[-3000:]))
    check_no_secrets(e, ie.WRITER_PASSWORD)
    rows = db.rows('SELECT count("seq"), min("seq"), max("seq") FROM conveyor_speed '
                   'GROUP BY line_id')
    ct.check(len(rows) == 5, "expected 5 lines, got %r" % rows)
    for r in rows:
        ct.check(r["count"] == n // 5 and r["min"] == 1 and r["max"] == n // 5,
                 "line %s: count %s, seq %s..%s; expected %d points, seq 1..%d" %
                 (r.get("line_id"), r["count"], r["min"], r["max"], n // 5, n // 5))
    ct.check(db.count("conveyor_speed", "speed_ms") == n, "speed_ms count differs")


# --------------------------------------------------------------------------
# TLS: unknown CA, host name mismatch, expired certificate, insecure mode
# --------------------------------------------------------------------------

def test_tls_failures_named_and_nothing_acknowledged():
    db = ie.Influxd(pki())
    expired = ie.V2Server(pki(), cert=pki().issue("expired", days=-1))
    work = ct.tmpdir()
    pwf = password_file(work)
    src = "{ plugin: sim_speed, count: 200, rate: 1000, measurement: %s }"
    common = 'database: %s, username: %s, password_file: "%s"' % (ie.DATABASE, ie.WRITER_USER, pwf)
    cases = {
        # No tls.ca_file: the system store does not know the test CA.
        "unknown_ca": (src % "m_unknown_ca",
                       '{ plugin: influxdb, url: "%s", %s }' % (db.url, common),
                       "unknown CA"),
        # A name the certificate lacks, pinned to 127.0.0.1 like curl --resolve.
        "mismatch": (src % "m_mismatch",
                     '{ plugin: influxdb, url: "https://influxdb.test:%d", %s, '
                     'resolve: ["influxdb.test:%d:127.0.0.1"], tls: { ca_file: "%s" } }' %
                     (db.port, common, db.port, pki().ca_cert),
                     "host name mismatch"),
        "expired": (src % "m_expired",
                    '{ plugin: influxdb, url: "%s", api: v2, org: acme, bucket: speeds, '
                    'token: "%s", tls: { ca_file: "%s" } }' %
                    (expired.url, expired.token, pki().ca_cert),
                    "has expired"),
    }
    engines = {}
    for name, (source, sink, _) in cases.items():
        engines[name] = ct.Engine(spec(source, sink), workdir=ct.tmpdir("conveyor-%s-" % name))
    for name, (_, _, cause) in cases.items():
        e = engines[name]
        ct.wait_until(lambda: log_has(e, cause), 30, what="%s: a log naming %r" % (name, cause))
        ct.check(log_has(e, "TLS with"), "%s: the failure is not reported as TLS" % name)
        # Not ready while it cannot deliver, and nothing acknowledged.
        ct.wait_until(lambda: ct.http_get(e.url + "/readyz")[0] == 503, 10,
                      what="%s: /readyz 503" % name)
        ct.check(sink_out(e) == 0, "%s: the sink acknowledged records it could not deliver" % name)
    for e in engines.values():
        e.proc.terminate()  # all at once: each waits out its shutdown timeout
    for name, e in engines.items():
        e.wait_exit(timeout=30)  # one signal: a second one means "exit now"
        check_no_secrets(e, ie.WRITER_PASSWORD, expired.token)
        ct.check(log_has(e, "not delivered"), "%s: undelivered points not reported" % name)
    for m in ("m_unknown_ca", "m_mismatch"):
        ct.check(db.count(m, "seq") == 0, "%s: points reached influxd" % m)
    ct.check(not expired.lines, "the expired server received points")
    expired.stop()

    # insecure_skip_verify: delivers without the CA, and says so.
    work = ct.tmpdir()
    e = ct.Engine(spec(src % "m_insecure",
                       '{ plugin: influxdb, url: "%s", %s, tls: { insecure_skip_verify: true } }'
                       % (db.url, common)), workdir=work)
    rc = e.wait_exit(60)
    ct.check(rc == 0, "insecure run exited %d" % rc)
    ct.check(any(r.get("level") == "warn" and "insecure_skip_verify" in r.get("message", "")
                 for r in e.log_records()), "no warning about insecure_skip_verify")
    ct.check(db.count("m_insecure", "seq") == 200, "insecure run did not deliver")


# --------------------------------------------------------------------------
# influxd down for 10 s mid-stream
# --------------------------------------------------------------------------

def test_outage_nothing_lost_memory_bounded():
    db = ie.Influxd(pki())
    n = int(60000 * SCALE)
    rate = int(5000 * SCALE)
    queue_max = 20000
    work = ct.tmpdir()
    e = ct.Engine(spec("{ plugin: sim_speed, count: %d, rate: %d, lines: 4 }" % (n, rate),
                       sink_v1(db, work, "batch: { max_records: 2000, max_delay: 200ms }"),
                       "    queue: { max_records: %d, batch_records: 500 }" % queue_max),
                  workdir=work)
    e.wait_ready()
    ct.wait_until(lambda: sink_out(e) >= n // 10, 60, what="first points delivered")

    def sample():
        m = e.metrics()
        src = ct.metric_sum(m, "conveyor_stage_records_out_total", stage="sim_speed") or 0
        snk = ct.metric_sum(m, "conveyor_stage_records_out_total", stage="influxdb") or 0
        rss = ct.metric_sum(m, "process_resident_memory_bytes") or 0
        ready = ct.http_get(e.url + "/readyz")[0]
        return src, snk, rss, ready

    rss_before = sample()[2]
    db.stop()
    t_end = time.monotonic() + 10
    saw_503 = False
    max_backlog = 0
    max_rss = rss_before
    delivered_during = None
    while time.monotonic() < t_end:
        src, snk, rss, ready = sample()
        saw_503 = saw_503 or ready == 503
        if delivered_during is None:
            delivered_during = snk
        max_backlog = max(max_backlog, src - snk)
        max_rss = max(max_rss, rss)
        time.sleep(0.2)
    src_at_restart, snk_at_restart, _, _ = sample()
    db.start()
    # Ready again once writes succeed (the source still has seconds to go).
    ct.wait_until(lambda: ct.http_get(e.url + "/readyz")[0] == 200, 60,
                  what="/readyz 200 after influxd came back")
    rc = e.wait_exit(120)
    ct.check(rc == 0, "engine exited %d:\n%s" % (rc, e.stderr_text()[-3000:]))
    ct.check(saw_503, "/readyz never answered 503 while influxd was down")
    ct.check(log_has(e, "accepts writes again"), "no log of the recovery")
    # Backpressure: the source stopped once the pipeline's bound was reached.
    ct.check(max_backlog <= queue_max,
             "%d records out of the source but not delivered: more than the queue bound %d" %
             (max_backlog, queue_max))
    ct.check(src_at_restart < n, "the source was not held back (it emitted all %d)" % n)
    limit = (256 if ct.SANITIZE else 64) << 20
    ct.check(max_rss - rss_before <= limit,
             "RSS grew by %d MiB during the outage" % (int(max_rss - rss_before) >> 20))
    check_no_secrets(e, ie.WRITER_PASSWORD)
    rows = db.rows('SELECT count("seq") FROM conveyor_speed')
    got = rows[0]["count"] if rows else 0
    ct.check(got == n, "influxd holds %d points, expected %d" % (got, n))
    print("  outage: backlog max %d, RSS +%.1f MiB, %d delivered during the outage" %
          (max_backlog, (max_rss - rss_before) / 1048576.0, snk_at_restart - delivered_during))


# --------------------------------------------------------------------------
# Exact values: hostile names and values, and points the server refuses
# --------------------------------------------------------------------------

def hostile_records():
    """(records that must round-trip, records line protocol cannot carry,
    records that either round-trip or are rejected: never stored altered)."""
    names = ["plain", "with space", "with,comma", "with=equals", 'with"quote', "back\\slash",
             "ünïcødé ✓ 日本", "tab\tinside", "hash#inside", "eq=,mix ed"]
    good = []
    i = 0
    for m in names:
        tags = {"tag key": "a b", "k,1": "v,1", "k=2": "v=2", 'q"k': 'q"v', "bs": "a\\b",
                "uni": "日本語 ✓", "lead": " x", "trail": "x ", "hash": "#x", "eq": "==",
                "m": m}
        fields = {"id": i, "fl": 0.1, "in": -9223372036854775808, "bo": True,
                  "st": 'He said "hi", then \\ left, a=b c',
                  "f space": "tab\there", "f,comma": "x=1,y=2 z", "f=eq": "trailing \\",
                  'f"q': "", "emoji": "🚀 \\\\ \"\"", "bs\\key": "\\"}
        good.append({"measurement": m, "timestamp": 1700000000123456789 + i, "tags": tags,
                     "fields": fields})
        i += 1
    floats = [0.1, 2.0, 1e-300, 1.7976931348623157e308, 5e-324, 123456789.123456789,
              -0.0, 1 / 3.0, 2.5e-8, 9007199254740993.0]
    for v in floats:
        good.append({"measurement": "numbers", "timestamp": 1 + i, "tags": {"kind": "float"},
                     "fields": {"id": i, "fl": v, "in": 9223372036854775807, "bo": False}})
        i += 1
    refused = [
        {"measurement": "bad", "timestamp": 5, "tags": {"t": "new\nline"},
         "fields": {"id": 1000}},
        {"measurement": "bad", "timestamp": 6, "tags": {"t": "ends with \\"},
         "fields": {"id": 1001}},
    ]
    either = [
        {"measurement": "multi", "timestamp": 7, "tags": {"t": "x"},
         "fields": {"id": 2000, "st": "line one\nline two\r\n"}},
    ]
    return good, refused, either


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def read_dead_letters(path):
    out = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                out.append(json.loads(line))
    return out


def stored_by_id(db):
    """Every stored point with an `id` field: id -> (measurement, tags, fields, time)."""
    data = db.query("SELECT * FROM /.*/ GROUP BY *")
    out = {}
    for res in data.get("results", []):
        for s in res.get("series", []):
            tags = {k: v for k, v in (s.get("tags") or {}).items() if v != ""}
            for vals in s["values"]:
                row = dict(zip(s["columns"], vals))
                t = row.pop("time")
                fields = {k: v for k, v in row.items() if v is not None}
                if "id" in fields:
                    out[fields["id"]] = (s["name"], tags, fields, t)
    return out


def same_value(want, got):
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if isinstance(want, float):
        return isinstance(got, (int, float)) and (float(got) == want or
                                                  (math.isnan(want) and math.isnan(got)))
    return want == got


def test_hostile_values_round_trip():
    if not os.path.exists(JSONL_PLUGIN):
        raise ct.TestFailure("%s is not built" % JSONL_PLUGIN)
    db = ie.Influxd(pki())
    good, refused, either = hostile_records()
    work = ct.tmpdir()
    data = write_jsonl(os.path.join(work, "in.jsonl"), good + refused + either)
    dl = os.path.join(work, "dead.jsonl")
    e = ct.Engine(spec('{ plugin: "%s", path: "%s" }' % (JSONL_PLUGIN, data), sink_v1(db, work),
                       '    dead_letter: { path: "%s" }' % dl), workdir=work)
    rc = e.wait_exit(60)
    ct.check(rc == 0, "engine exited %d:\n%s" % (rc, e.stderr_text()[-3000:]))
    stored = stored_by_id(db)
    dead = {d["record"]["fields"]["id"]: d for d in read_dead_letters(dl) if "record" in d}
    for r in good:
        i = r["fields"]["id"]
        ct.check(i in stored, "point id %d (%r) was not stored; dead letter: %r" %
                 (i, r["measurement"], dead.get(i, {}).get("reason")))
        m, tags, fields, t = stored[i]
        ct.check(m == r["measurement"], "measurement %r came back as %r" % (r["measurement"], m))
        ct.check(tags == r["tags"], "tags of id %d: sent %r, got %r" % (i, r["tags"], tags))
        ct.check(set(fields) == set(r["fields"]), "field keys of id %d: sent %r, got %r" %
                 (i, sorted(r["fields"]), sorted(fields)))
        for k, v in r["fields"].items():
            ct.check(same_value(v, fields[k]), "field %r of id %d: sent %r, got %r" %
                     (k, i, v, fields[k]))
        ct.check(t == r["timestamp"], "timestamp of id %d: sent %d, got %d" % (i, r["timestamp"], t))
    for r in refused:
        i = r["fields"]["id"]
        ct.check(i not in stored, "id %d cannot be carried by line protocol but was stored as %r"
                 % (i, stored.get(i)))
        ct.check(i in dead and dead[i]["reason"], "id %d was not dead-lettered with a reason" % i)
    for r in either:
        i = r["fields"]["id"]
        if i in stored:
            ct.check(stored[i][2]["st"] == r["fields"]["st"],
                     "id %d was stored altered: %r" % (i, stored[i][2]["st"]))
        else:
            ct.check(i in dead, "id %d was neither stored nor dead-lettered" % i)
    # Types: integers stay integers (the 'i' suffix), 2.0 stays a float.
    types = {}
    for row in db.rows("SHOW FIELD KEYS FROM numbers"):
        types[row["fieldKey"]] = row["fieldType"]
    ct.check(types.get("fl") == "float" and types.get("in") == "integer" and
             types.get("bo") == "boolean", "field types: %r" % types)
    print("  %d hostile points round-tripped, %d dead-lettered, multi-line string %s" %
          (len(good), len(dead), "stored" if 2000 in stored else "dead-lettered"))


def test_refused_point_dead_lettered_rest_written():
    if not os.path.exists(JSONL_PLUGIN):
        raise ct.TestFailure("%s is not built" % JSONL_PLUGIN)
    db = ie.Influxd(pki())
    # The field v exists as a float: a string or an integer v conflicts.
    st, body = db.request("POST", "/write", params={"db": ie.DATABASE, "precision": "ns"},
                          body=b"m,line=a v=0.5,id=-1i 1\n")
    ct.check(st == 204, "seed write: %d %s" % (st, body))
    n = int(3000 * SCALE)
    bad_ids = {n // 3: "oops", (2 * n) // 3: 7}
    records = []
    for i in range(n):
        v = bad_ids.get(i, i * 0.25)
        records.append({"measurement": "m", "timestamp": 1000000 + i, "tags": {"line": "a"},
                        "fields": {"v": v, "id": i}})
    work = ct.tmpdir()
    data = write_jsonl(os.path.join(work, "in.jsonl"), records)
    dl = os.path.join(work, "dead.jsonl")
    e = ct.Engine(spec('{ plugin: "%s", path: "%s" }' % (JSONL_PLUGIN, data),
                       sink_v1(db, work, "batch: { max_records: 1000 }"),
                       '    dead_letter: { path: "%s" }' % dl), workdir=work)
    rc = e.wait_exit(60)
    ct.check(rc == 0, "engine exited %d:\n%s" % (rc, e.stderr_text()[-3000:]))
    dead = read_dead_letters(dl)
    ids = sorted(d["record"]["fields"]["id"] for d in dead)
    ct.check(ids == sorted(bad_ids), "dead-lettered ids %r, expected %r" % (ids, sorted(bad_ids)))
    for d in dead:
        ct.check("field type conflict" in d["reason"] and "400" in d["reason"],
                 "dead letter reason lacks the server's message: %r" % d["reason"])
    rows = db.rows('SELECT count("v") FROM m WHERE id >= 0')
    got = rows[0]["count"] if rows else 0
    ct.check(got == n - len(bad_ids), "stored %d points, expected %d" % (got, n - len(bad_ids)))
    check_no_secrets(e, ie.WRITER_PASSWORD)


# --------------------------------------------------------------------------
# v2 API against the local HTTPS server: path, query, token, body; retries
# --------------------------------------------------------------------------

def test_v2_api_token_mtls_gzip_and_retries():
    p = pki()
    client_cert, client_key = p.issue("client", client=True)
    srv = ie.V2Server(p, client_ca=p.ca_cert)
    # 429 with Retry-After: 1, then 503, then success. One request in flight,
    # so the gap after the 429 is the sink's own wait.
    srv.script = [(429, 1), (503, None)]
    work = ct.tmpdir()
    token_file = ct.write_file(os.path.join(work, "token"), srv.token + "\n")
    n = int(20000 * SCALE)
    sink = ('{ plugin: influxdb, url: "%s", api: v2, org: %s, bucket: %s, token_file: "%s", '
            'gzip: true, batch: { max_records: 1000 }, max_in_flight: 1, '
            'retry: { initial: 50ms, max: 200ms }, '
            'tls: { ca_file: "%s", cert_file: "%s", key_file: "%s" } }' %
            (srv.url, srv.org, srv.bucket, token_file, p.ca_cert, client_cert, client_key))
    e = ct.Engine(spec("{ plugin: sim_speed, count: %d, rate: 0, lines: 4 }" % n, sink),
                  workdir=work)
    try:
        rc = e.wait_exit(60)
        ct.check(rc == 0, "engine exited %d:\n%s" % (rc, e.stderr_text()[-3000:]))
        ct.check(not srv.errors, "malformed requests: %r" % srv.errors[:5])
        statuses = [r[0] for r in srv.requests]
        ct.check(statuses[:2] == [429, 503], "first answers were %r" % statuses[:5])
        gap = srv.requests[1][3] - srv.requests[0][3]
        ct.check(gap >= 0.9, "retried %.2fs after a 429 with Retry-After: 1" % gap)
        ct.check(all(r[1].get("Content-Encoding") == "gzip" for r in srv.requests),
                 "a request was not gzipped")
        keys = set()
        for line in srv.lines:
            head, fields, ts = line.split(" ")
            seq = [f for f in fields.split(",") if f.startswith("seq=")][0]
            ct.check(seq.endswith("i"), "seq is not an integer: %r" % line)
            keys.add((head, seq))
        ct.check(len(keys) == n, "server got %d distinct points, expected %d" % (len(keys), n))
        ct.check(len(srv.lines) == n, "server stored %d lines for %d points" %
                 (len(srv.lines), n))
        check_no_secrets(e, srv.token)
    finally:
        srv.stop()


def test_v2_wrong_token_unhealthy_then_recovers():
    """401 is a configuration error: /readyz 503, nothing acknowledged, and
    delivery resumes once the server accepts the token again."""
    srv = ie.V2Server(pki())
    srv.script = [(401, None)] * 1000
    work = ct.tmpdir()
    sink = ('{ plugin: influxdb, url: "%s", api: v2, org: %s, bucket: %s, token: "%s", '
            'retry: { initial: 50ms, max: 300ms }, tls: { ca_file: "%s" } }' %
            (srv.url, srv.org, srv.bucket, srv.token, pki().ca_cert))
    e = ct.Engine(spec("{ plugin: sim_speed, count: 500, rate: 0 }", sink), workdir=work)
    try:
        ct.wait_until(lambda: log_has(e, "refused the credentials"), 30, what="401 logged")
        ct.wait_until(lambda: ct.http_get(e.url + "/readyz")[0] == 503, 10, what="/readyz 503")
        ct.check(sink_out(e) == 0, "acknowledged records the server refused")
        with srv.lock:
            srv.script = []
        rc = e.wait_exit(60)
        ct.check(rc == 0, "engine exited %d" % rc)
        ct.check(len(srv.lines) == 500, "server got %d points, expected 500" % len(srv.lines))
        check_no_secrets(e, srv.token)
    finally:
        srv.stop()


def test_sink_backpressure_bounds_its_memory():
    """While the server does not answer, write() blocks once the sink holds
    max_records * (max_in_flight + 2) points, although the pipeline's own
    bound would let far more through."""
    srv = ie.V2Server(pki())
    srv.release.clear()
    work = ct.tmpdir()
    max_records, in_flight, host_batch = 500, 1, 1000
    sink = ('{ plugin: influxdb, url: "%s", api: v2, org: %s, bucket: %s, token: "%s", '
            'batch: { max_records: %d }, max_in_flight: %d, tls: { ca_file: "%s" } }' %
            (srv.url, srv.org, srv.bucket, srv.token, max_records, in_flight, pki().ca_cert))
    e = ct.Engine(spec("{ plugin: sim_speed, count: 200000, rate: 0 }", sink,
                       "    queue: { max_records: 100000, batch_records: %d }" % host_batch),
                  workdir=work)
    try:
        e.wait_ready()
        ct.wait_until(lambda: srv.held >= 1, 30, what="a request held by the server")
        limit = max_records * (in_flight + 2)
        in_sink = lambda: e.metric("conveyor_influxdb_pending_records") or 0  # noqa: E731
        # The sink fills up to its limit (plus the one host batch being written)...
        ct.wait_until(lambda: in_sink() >= limit, 30, what="the sink to fill up")
        # ...and stays there while the source is held back by the pipeline.
        src = lambda: e.metric("conveyor_stage_records_out_total", stage="sim_speed") or 0  # noqa: E731,E501
        ct.wait_until(lambda: src() > limit + 2 * host_batch, 30, what="the source to run ahead")
        for _ in range(10):
            pending = in_sink()
            ct.check(pending <= limit + host_batch,
                     "the sink holds %d points, more than its bound %d" %
                     (pending, limit + host_batch))
            time.sleep(0.1)
        srv.release.set()
        rc = e.wait_exit(60)
        ct.check(rc == 0, "engine exited %d" % rc)
        ct.check(len(srv.lines) == 200000, "server got %d points" % len(srv.lines))
    finally:
        srv.stop()


if __name__ == "__main__":
    ct.main([
        test_100k_points_counted_exactly,
        test_tls_failures_named_and_nothing_acknowledged,
        test_hostile_values_round_trip,
        test_refused_point_dead_lettered_rest_written,
        test_v2_api_token_mtls_gzip_and_retries,
        test_v2_wrong_token_unhealthy_then_recovers,
        test_sink_backpressure_bounds_its_memory,
        test_outage_nothing_lost_memory_bounded,
    ])
