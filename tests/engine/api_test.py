"""GET /api/v1/pipelines: the topology and the same numbers as /metrics.

A finite pipeline runs to its end beside a slow endless one (which keeps the
engine up), so its counters are still while the API and /metrics are read
and must agree exactly."""

import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

N = 20000


def _spec(metrics=True, tap=False):
    engine = "  metrics: { enabled: %s }\n" % ("true" if metrics else "false")
    if tap:
        engine += "  http: { tap: true }\n"
    return ec.spec({"finite": """
    source: { plugin: sim_speed, lines: 4, rate: 0, count: %d, seed: 5, anomaly_rate: 0.01 }
    transforms:
      - { plugin: anomaly, field: speed_ms, key: line_id, window: 30, threshold: 3.0 }
      - { name: only_anomalies, plugin: anomaly, field: speed_ms, key: line_id, mode: drop_normal }
    sink: { plugin: null }
""" % N, "endless": """
    source: { plugin: sim_speed, lines: 1, rate: 5, seed: 1 }
    sink: { name: out, plugin: null }
"""}, engine=engine)


def get_api(e):
    status, body = ct.http_get(e.url + "/api/v1/pipelines")
    ct.check(status == 200, "/api/v1/pipelines answered %d: %s" % (status, body[:300]))
    try:
        return json.loads(body)
    except ValueError as err:
        raise ct.TestFailure("/api/v1/pipelines is not JSON (%s): %r" % (err, body[:300]))


def _finite_done(e):
    """Every record has passed every stage: the source made N, each stage took in
    what the one before let out (no batch still queued between them), and the
    sink settled all it took in."""
    doc = get_api(e)
    st = [p for p in doc["pipelines"] if p["name"] == "finite"][0]["stages"]
    if st[0]["records_out_total"] != N:
        return False
    for prev, cur in zip(st, st[1:]):
        if cur["records_in_total"] != prev["records_out_total"]:
            return False
    sink = st[-1]
    return sink["records_out_total"] + sink["records_dropped_total"] == sink["records_in_total"]


def test_topology_and_numbers_match_metrics():
    ec.require_plugins()
    e = ct.Engine(_spec()).wait_ready()
    ct.wait_until(lambda: _finite_done(e), timeout=120, what="the finite pipeline to finish")
    doc = get_api(e)
    m = e.metrics()
    rc, out, _ = ec.conveyor(["version"])
    ct.check(doc["version"] in out, "version %r not in `conveyor version`: %r" %
             (doc["version"], out))
    ct.check(isinstance(doc["uptime_seconds"], float) and doc["uptime_seconds"] > 0,
             "uptime_seconds: %r" % doc.get("uptime_seconds"))
    ct.check(doc["tap"] is False, "tap allowed without engine.http.tap")
    names = [p["name"] for p in doc["pipelines"]]
    ct.check(names == ["finite", "endless"], "pipelines in spec order: %r" % names)
    fin = doc["pipelines"][0]
    topo = [(s["name"], s["plugin"], s["kind"]) for s in fin["stages"]]
    ct.check(topo == [("sim_speed", "sim_speed", "source"), ("anomaly", "anomaly", "transform"),
                      ("only_anomalies", "anomaly", "transform"), ("null", "null", "sink")],
             "stages in order: %r" % topo)
    ct.check([s["name"] for s in doc["pipelines"][1]["stages"]] == ["sim_speed", "out"],
             "endless stages: %r" % doc["pipelines"][1]["stages"])
    fields = {"records_in_total": "conveyor_stage_records_in_total",
              "records_out_total": "conveyor_stage_records_out_total",
              "records_dropped_total": "conveyor_stage_records_dropped_total",
              "errors_total": "conveyor_stage_errors_total",
              "batches_total": "conveyor_stage_batches_total",
              "queue_records": "conveyor_stage_queue_records"}
    for s in fin["stages"]:
        labels = dict(pipeline="finite", stage=s["name"], plugin=s["plugin"], kind=s["kind"])
        for key, metric in fields.items():
            want = ec.one(m, metric, **labels)
            ct.check(s[key] == want, "%s %s: API %r, /metrics %r" % (s["name"], key, s[key], want))
        d = s["duration_seconds"]
        ct.check(d["count"] == ec.one(m, "conveyor_stage_duration_seconds_count", **labels),
                 "%s duration count differs from /metrics" % s["name"])
        ct.check(len(d["counts"]) == len(d["le"]) + 1 and d["counts"][-1] == d["count"],
                 "%s duration buckets malformed: %r" % (s["name"], d))
        ct.check(s["started"] is True and s["healthy"] is True, "%s not started/healthy" %
                 s["name"])
    ct.check(fin["stages"][0]["records_out_total"] == N, "source out %r" %
             fin["stages"][0]["records_out_total"])
    # The anomaly transform's own counter, as /metrics has it.
    for s in fin["stages"][1:3]:
        labels = dict(pipeline="finite", stage=s["name"], plugin="anomaly", kind="transform")
        want = ec.one(m, "conveyor_anomalies_total", **labels)
        got = s["plugin_metrics"].get("conveyor_anomalies_total")
        ct.check(got == want, "%s conveyor_anomalies_total: API %r, /metrics %r" %
                 (s["name"], got, want))
    ct.check(fin["stages"][1]["plugin_metrics"]["conveyor_anomalies_total"] > 0,
             "no anomalies flagged: the comparison shows nothing")
    # The pipeline's latency histogram, bucket by bucket.
    lat = fin["latency_seconds"]
    buckets = ec.series(m, "conveyor_pipeline_latency_seconds_bucket", pipeline="finite")
    by_le = {float(d["le"]): v for d, v in buckets}
    for le, c in zip(lat["le"] + [float("inf")], lat["counts"]):
        ct.check(by_le.get(float(le)) == c, "latency bucket le=%s: API %r, /metrics %r" %
                 (le, c, by_le.get(float(le))))
    ct.check(lat["count"] == ec.one(m, "conveyor_pipeline_latency_seconds_count",
                                    pipeline="finite"), "latency count differs")
    ct.check(lat["count"] > 0 and lat["p50"] is not None and lat["p99"] >= lat["p50"] > 0,
             "latency quantiles: %r %r" % (lat["p50"], lat["p99"]))
    ct.check(fin["max_records"] > 0, "max_records %r" % fin["max_records"])
    # Uptime grows.
    ct.wait_until(lambda: get_api(e)["uptime_seconds"] > doc["uptime_seconds"], timeout=10,
                  what="uptime to grow")
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_without_instrumentation():
    """metrics.enabled: false: the host's own totals, null for the rest."""
    ec.require_plugins()
    e = ct.Engine(_spec(metrics=False)).wait_ready()
    ct.wait_until(lambda: get_api(e)["pipelines"][0]["stages"][0]["records_out_total"] == N,
                  timeout=120, what="the finite source to emit every record")
    fin = get_api(e)["pipelines"][0]
    src = fin["stages"][0]
    ct.check(src["records_in_total"] is None and src["duration_seconds"] is None and
             fin["latency_seconds"] is None, "histograms without instrumentation: %r" % fin)
    ct.wait_until(lambda: get_api(e)["pipelines"][0]["stages"][-1]["records_out_total"] > 0,
                  timeout=60, what="sink deliveries counted")
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_head_and_content_type():
    ec.require_plugins()
    e = ct.Engine(_spec()).wait_ready()
    import urllib.request
    with urllib.request.urlopen(e.url + "/api/v1/pipelines", timeout=5) as r:
        ct.check(r.headers.get("Content-Type") == "application/json",
                 "Content-Type %r" % r.headers.get("Content-Type"))
        ct.check(r.headers.get("Cache-Control") == "no-store",
                 "Cache-Control %r" % r.headers.get("Cache-Control"))
    status, _ = ct.http_get(e.url + "/api/v1/pipeline")
    ct.check(status == 404, "/api/v1/pipeline answered %d" % status)
    ct.check(e.stop() == 0, "engine did not stop cleanly")


if __name__ == "__main__":
    ct.main([test_topology_and_numbers_match_metrics, test_without_instrumentation,
             test_head_and_content_type])
