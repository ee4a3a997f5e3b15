"""Exact counts end to end and the host-injected instrumentation:
a finite run ends by itself with every record in the sink once; the
metrics of DESIGN.md's table exist for every stage with exact values; the
exposition passes `promtool check metrics`; memory stays bounded with a
source flat out and with a slow sink."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

N_FILE = 20000 if ct.SANITIZE else 50000
N_METRICS = 20000


def test_finite_run_exact_file():
    """sim_speed count N flat out -> anomaly -> file: exits 0 by itself and
    the file holds every (line_id, seq) exactly once, consecutive per belt."""
    ec.require_plugins()
    d = ct.tmpdir()
    out = os.path.join(d, "out.jsonl")
    e = ct.Engine(ec.spec({"exact": """
    source: { plugin: sim_speed, lines: 5, rate: 0, count: %d, seed: 3, anomaly_rate: 0.01 }
    transforms:
      - { plugin: anomaly, field: speed_ms, key: line_id, window: 60, threshold: 3.0 }
    sink: { plugin: file, path: "%s", format: json }
""" % (N_FILE, out)}), workdir=d)
    rc = e.wait_exit(120)
    ct.check(rc == 0, "finite run exited %d; stderr:\n%s" % (rc, e.stderr_text()[-3000:]))
    recs = ec.read_jsonl(out)
    ct.check(len(recs) == N_FILE, "file has %d records, expected %d" % (len(recs), N_FILE))
    per_line = ec.check_sequences(recs, lines=5)
    ct.check(set(per_line.values()) == {N_FILE // 5}, "records per belt: %s" % per_line)
    for r in recs[:100]:
        f = r["fields"]
        ct.check(all(k in f for k in ("speed_ms", "seq", "mean", "stddev", "zscore", "anomaly")),
                 "anomaly (mark) did not add its fields: %r" % r)
    last = {}
    for r in recs:
        k = r["tags"]["line_id"]
        ct.check(r["timestamp"] > last.get(k, 0), "timestamps of %s do not increase" % k)
        last[k] = r["timestamp"]


def _check_stage_families(m, pipeline, stages, live=False):
    """live: the pipeline still runs, so one call per stage may sit between
    its batches_total and its duration observation when scraped."""
    for stage, plugin, kind in stages:
        labels = dict(pipeline=pipeline, stage=stage, plugin=plugin, kind=kind)
        for name in ec.STAGE_COUNTERS + ["conveyor_stage_queue_records"]:
            v = ec.one(m, name, **labels)
            ct.check(v >= 0, "%s%s is negative" % (name, labels))
        for suffix in ("_count", "_sum"):
            ec.one(m, "conveyor_stage_duration_seconds" + suffix, **labels)
        buckets = ec.series(m, "conveyor_stage_duration_seconds_bucket", **labels)
        ct.check(len(buckets) >= 5 and any(b[0].get("le") == "+Inf" for b in buckets),
                 "duration histogram buckets of %s: %s" % (stage, buckets))
        for name in ec.STAGE_COUNTERS:
            for d, _ in ec.series(m, name, pipeline=pipeline, stage=stage):
                ct.check(set(d) == set(ec.STAGE_LABELS),
                         "%s has labels %s, expected exactly %s" % (name, sorted(d),
                                                                    ec.STAGE_LABELS))
        calls = ec.one(m, "conveyor_stage_batches_total", **labels)
        dur = ec.one(m, "conveyor_stage_duration_seconds_count", **labels)
        ct.check(dur == calls or (live and abs(dur - calls) <= 1),
                 "%s: duration_seconds_count %g != batches_total %g (one "
                 "observation per call)" % (stage, dur, calls))


def _histogram(m, name, **labels):
    """[(le, cumulative count)] sorted by le, and _count, _sum."""
    b = sorted(((float(d["le"]), v) for d, v in ec.series(m, name + "_bucket", **labels)),
               key=lambda x: x[0])
    return b, ec.one(m, name + "_count", **labels), ec.one(m, name + "_sum", **labels)


def test_exact_metrics():
    """A finite pipeline beside an endless one (which keeps /metrics up):
    exact records_in/out/dropped per stage once the finite one settled."""
    ec.require_plugins()
    d = ct.tmpdir()
    e = ct.Engine(ec.spec({
        "finite": """
    source: { plugin: sim_speed, lines: 5, rate: 10000, count: %d, seed: 11, anomaly_rate: 0.05 }
    transforms:
      - { plugin: anomaly, window: 30, threshold: 3.0, mode: drop_normal }
    sink: { plugin: null }
    queue: { batch_records: 256, max_records: 2048 }
""" % N_METRICS,
        "endless": """
    source: { name: ticker, plugin: sim_speed, lines: 1, rate: 20 }
    sink: { plugin: file, path: "%s/endless.jsonl" }
""" % d}, engine="  shutdown_timeout: 5s"), workdir=d)
    e.wait_ready()

    def settled():
        m = e.metrics()
        src = ec.one(m, "conveyor_stage_records_out_total", pipeline="finite", stage="sim_speed")
        dropped = ec.one(m, "conveyor_stage_records_dropped_total", pipeline="finite",
                         stage="anomaly")
        out = ec.one(m, "conveyor_stage_records_out_total", pipeline="finite", stage="null")
        return m if (src == N_METRICS and out + dropped == N_METRICS) else None

    m = ct.wait_until(settled, 60, 0.2, what="the finite pipelines to settle")
    time.sleep(0.3)  # nothing may change after settling: read again
    m2 = e.metrics()
    stages = [("sim_speed", "sim_speed", "source"), ("anomaly", "anomaly", "transform"),
              ("null", "null", "sink")]
    _check_stage_families(m2, "finite", stages)
    _check_stage_families(m2, "endless", [("ticker", "sim_speed", "source"),
                                          ("file", "file", "sink")], live=True)

    def v(name, stage, pipeline="finite"):
        return ec.one(m2, name, pipeline=pipeline, stage=stage)

    IN, OUT, DROP, ERR = ("conveyor_stage_records_in_total", "conveyor_stage_records_out_total",
                          "conveyor_stage_records_dropped_total", "conveyor_stage_errors_total")
    ct.check(v(OUT, "sim_speed") == N_METRICS, "source out %g != %d" % (v(OUT, "sim_speed"),
                                                                        N_METRICS))
    ct.check(v(IN, "anomaly") == N_METRICS, "anomaly in %g != %d" % (v(IN, "anomaly"), N_METRICS))
    a_out, a_drop = v(OUT, "anomaly"), v(DROP, "anomaly")
    ct.check(a_drop == N_METRICS - a_out, "anomaly dropped %g != in - out = %g" %
             (a_drop, N_METRICS - a_out))
    ct.check(0 < a_out < N_METRICS / 2, "drop_normal passed %g of %d records" % (a_out, N_METRICS))
    ct.check(v(IN, "null") == a_out, "sink in %g != anomaly out %g" % (v(IN, "null"), a_out))
    ct.check(v(OUT, "null") == a_out, "sink delivered %g != sink in %g" % (v(OUT, "null"), a_out))
    for st in ("sim_speed", "anomaly", "null"):
        ct.check(v(ERR, st) == 0, "errors on %s: %g" % (st, v(ERR, st)))
    ct.check(v(DROP, "null") == 0 and v(DROP, "sim_speed") == 0, "dropped at source or sink")
    ct.check(v("conveyor_stage_queue_records", "anomaly") == 0, "queue not empty after settling")
    ct.check(v("conveyor_stage_batches_total", "sim_speed") >= N_METRICS / 256,
             "source batches %g < %d records / 256" % (v("conveyor_stage_batches_total",
                                                          "sim_speed"), N_METRICS))
    # The plugin's own counter, with the stage labels added by the host.
    anomalies = ec.one(m2, "conveyor_anomalies_total", pipeline="finite", stage="anomaly",
                       plugin="anomaly", kind="transform")
    ct.check(anomalies == a_out, "conveyor_anomalies_total %g != records passed by drop_normal"
             " %g" % (anomalies, a_out))
    # Latency: one observation per delivered record, buckets us .. s.
    b, count, total = _histogram(m2, "conveyor_pipeline_latency_seconds", pipeline="finite")
    ct.check(count == a_out, "latency _count %g != delivered %g" % (count, a_out))
    ct.check(b and math.isinf(b[-1][0]) and b[-1][1] == count, "latency +Inf bucket != _count")
    ct.check(all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)),
             "latency buckets not cumulative: %s" % b)
    ct.check(b[0][0] <= 1e-5 and max(x[0] for x in b if not math.isinf(x[0])) >= 1.0,
             "latency buckets should span microseconds to seconds: %s" % [x[0] for x in b])
    ct.check(total >= 0, "latency sum negative")
    for d_, _ in ec.series(m2, "conveyor_pipeline_latency_seconds_count"):
        ct.check(set(d_) == {"pipeline"}, "latency labels %s" % d_)
    # Build info and process metrics.
    rc, ver, _ = ec.conveyor(["version"])
    bi = ec.series(m2, "conveyor_build_info")
    ct.check(len(bi) == 1 and bi[0][1] == 1, "conveyor_build_info: %s" % bi)
    ct.check(bi[0][0].get("version") and bi[0][0]["version"] in ver and
             bi[0][0].get("abi") and bi[0][0]["abi"] in ver,
             "build_info labels %s do not match `conveyor version`: %r" % (bi[0][0], ver))
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_start_time_seconds"):
        ct.check(ec.series(m2, name), "%s missing" % name)
    ct.check(ec.one(m2, "process_resident_memory_bytes") > 1 << 20, "RSS below 1 MiB?")
    start = ec.one(m2, "process_start_time_seconds")
    ct.check(abs(start - time.time()) < 600, "process_start_time_seconds %g is not now" % start)
    # The endless pipeline still runs; SIGTERM ends the process cleanly.
    rc = e.stop(signal.SIGTERM, 30)
    ct.check(rc == 0, "SIGTERM: exit %d\n%s" % (rc, e.stderr_text()[-3000:]))


def test_dead_letters_counted_once():
    """A transform that dead-letters every record: each is written once to
    the dead_letter file and counted once as dropped."""
    ec.require_plugins()
    d = ct.tmpdir()
    dead = os.path.join(d, "dead.jsonl")
    e = ct.Engine(ec.spec({
        "deadletters": """
    source: { plugin: sim_speed, lines: 2, rate: 0, count: 1000 }
    transforms:
      - { name: no_field, plugin: anomaly, field: no_such_field }
    sink: { name: discard, plugin: null }
    dead_letter: { path: "%s" }
""" % dead,
        "endless": """
    source: { name: ticker, plugin: sim_speed, lines: 1, rate: 20 }
    sink: { plugin: null }
"""}), workdir=d)
    e.wait_ready()
    IN, OUT, DROP = ("conveyor_stage_records_in_total", "conveyor_stage_records_out_total",
                     "conveyor_stage_records_dropped_total")
    ct.wait_until(lambda: ec.one(e.metrics(), IN, pipeline="deadletters",
                                 stage="no_field") == 1000, 30, 0.1,
                  what="1000 records into the transform")
    ct.wait_until(lambda: os.path.exists(dead) and
                  sum(1 for _ in open(dead, "rb")) == 1000, 10,
                  what="1000 lines in the dead-letter file")
    m = e.metrics()
    _check_stage_families(m, "deadletters", [("sim_speed", "sim_speed", "source"),
                                             ("no_field", "anomaly", "transform"),
                                             ("discard", "null", "sink")])

    def v(name, stage):
        return ec.one(m, name, pipeline="deadletters", stage=stage)
    ct.check(v(OUT, "no_field") == 0 and v(IN, "discard") == 0,
             "records passed a transform that dead-letters all: out %g, sink in %g" %
             (v(OUT, "no_field"), v(IN, "discard")))
    ct.check(v(DROP, "no_field") == 1000,
             "1000 dead-lettered records counted as %g dropped" % v(DROP, "no_field"))
    for line in open(dead, "rb"):
        json.loads(line)
    ct.check(e.stop() == 0, "exit code")


def _check_promtool(text, workdir, what):
    promtool = ec.which("promtool")
    ct.check(promtool, "promtool not installed (Debian package prometheus)")
    path = ct.write_file(os.path.join(workdir, "metrics-%s.txt" % what), text)
    with open(path, "rb") as f:
        r = subprocess.run([promtool, "check", "metrics"], stdin=f, capture_output=True,
                           timeout=60)
    ct.check(r.returncode == 0, "promtool check metrics (%s) exit %d:\n%s%s" %
             (what, r.returncode, r.stdout.decode(), r.stderr.decode()))


def test_promtool_check_metrics():
    ec.require_plugins()
    d = ct.tmpdir()
    e = ct.Engine(ec.spec({"lint": """
    source: { plugin: sim_speed, lines: 3, rate: 2000, anomaly_rate: 0.05 }
    transforms:
      - { plugin: anomaly, window: 20 }
    sink: { plugin: file, path: "%s/out.jsonl" }
""" % d, "other": """
    source: { plugin: sim_speed, lines: 1, rate: 100 }
    sink: { plugin: console, only_anomalies: true }
"""}), workdir=d)
    e.wait_ready()
    ct.wait_until(lambda: (ec.one(e.metrics(), "conveyor_stage_records_out_total",
                                  pipeline="lint", stage="file") or 0) > 0,
                  20, what="records delivered")
    text = e.metrics_text()
    ct.check("conveyor_anomalies_total" in text and "conveyor_stage_duration_seconds_bucket" in
             text, "exposition lacks plugin or histogram metrics")
    _check_promtool(text, d, "running")
    ct.check(e.stop() == 0, "exit code")


def test_metrics_disabled():
    """engine.metrics.enabled: false switches the stage instrumentation off;
    the run works the same."""
    ec.require_plugins()
    d = ct.tmpdir()
    out = os.path.join(d, "out.jsonl")
    e = ct.Engine(ec.spec({"p": """
    source: { plugin: sim_speed, lines: 2, rate: 1000 }
    sink: { plugin: file, path: "%s" }
""" % out}, engine="  metrics: { enabled: false }"), workdir=d)
    e.wait_ready()
    ct.wait_until(lambda: os.path.exists(out) and os.path.getsize(out) > 0, 20,
                  what="records in the file")
    m = e.metrics()
    stage = [n for (n, _) in m if n.startswith("conveyor_stage_") or
             n.startswith("conveyor_pipeline_")]
    ct.check(not stage, "stage metrics present with metrics disabled: %s" % sorted(set(stage)))
    ct.check(e.stop() == 0, "exit code")
    ec.check_sequences(ec.read_jsonl(out), lines=2)


def test_flat_out_memory_and_queue_bounded():
    """sim_speed flat out -> anomaly -> null for ~3 s: RSS stays small and
    the queue gauge never exceeds queue.max_records."""
    ec.require_plugins()
    max_records = 4096
    e = ct.Engine(ec.spec({"flat": """
    source: { plugin: sim_speed, lines: 50, rate: 0 }
    transforms:
      - { plugin: anomaly }
    sink: { plugin: null }
    queue: { batch_records: 512, max_records: %d, max_bytes: 8MiB }
""" % max_records}))
    e.wait_ready()
    rss, queue = [], []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        m = e.metrics()
        queue.append(ec.one(m, "conveyor_stage_queue_records", pipeline="flat", stage="anomaly"))
        r = ec.rss_kib(e.proc.pid)
        if r:
            rss.append(r)
        time.sleep(0.1)
    out = ec.one(e.metrics(), "conveyor_stage_records_out_total", pipeline="flat",
                 stage="sim_speed")
    ct.check(e.stop() == 0, "exit code")
    print("  flat out: %d records in ~3s, peak RSS %d KiB, max queue %d" %
          (out, max(rss), max(queue)))
    ct.check(out > 0, "nothing flowed")
    ct.check(max(queue) <= max_records, "queue gauge %d > max_records %d" %
             (max(queue), max_records))
    if ct.SANITIZE:
        print("  (RSS bound not checked under the sanitizers)")
    else:
        ct.check(max(rss) < 64 * 1024, "RSS %d KiB >= 64 MiB with a bounded queue" % max(rss))


def test_slow_sink_slows_the_source():
    """The file sink writes into a FIFO this test reads slowly: the source
    may run ahead of the sink by at most the queue's capacity, memory stays
    bounded, and after SIGTERM every delivered record reaches the reader."""
    ec.require_plugins()
    d = ct.tmpdir()
    fifo = os.path.join(d, "slow.fifo")
    os.mkfifo(fifo)
    got = bytearray()
    slow = threading.Event()
    slow.set()
    done = threading.Event()

    def reader():
        # Blocks until the sink opens the FIFO for writing (and the sink's
        # open blocks until this reader is there).
        fd = os.open(fifo, os.O_RDONLY)
        try:
            while True:
                chunk = os.read(fd, 4096 if slow.is_set() else 1 << 20)
                if not chunk:
                    break
                got.extend(chunk)
                if slow.is_set():
                    time.sleep(0.02)  # about 200 KiB/s: far slower than the source
        finally:
            os.close(fd)
            done.set()

    max_records = 2048
    e = ct.Engine(ec.spec({"slow": """
    source: { plugin: sim_speed, lines: 4, rate: 0 }
    sink: { plugin: file, path: "%s" }
    queue: { batch_records: 256, max_records: %d }
""" % (fifo, max_records)}, engine="  shutdown_timeout: 20s\n  summary_interval: 60s"),
                  workdir=d)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        e.wait_ready()
        gaps, rss = [], []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            m = e.metrics()
            src = ec.one(m, "conveyor_stage_records_out_total", pipeline="slow", stage="sim_speed")
            snk = ec.one(m, "conveyor_stage_records_out_total", pipeline="slow", stage="file")
            gaps.append(src - snk)
            r = ec.rss_kib(e.proc.pid)
            if r:
                rss.append(r)
            time.sleep(0.1)
        m = e.metrics()
        src = ec.one(m, "conveyor_stage_records_out_total", pipeline="slow", stage="sim_speed")
        print("  slow sink: source emitted %d in 2.5s, max gap source-sink %d, peak RSS %d KiB"
              % (src, max(gaps), max(rss)))
        ct.check(max(gaps) <= max_records, "source ran %d records ahead of the sink (queue "
                 "holds %d)" % (max(gaps), max_records))
        ct.check(src < 100000, "source emitted %d records in 2.5 s into a ~200 KiB/s sink: "
                 "no backpressure" % src)
        if not ct.SANITIZE:
            ct.check(max(rss) < 64 * 1024, "RSS %d KiB" % max(rss))
        e.proc.send_signal(signal.SIGTERM)
        slow.clear()
        rc = e.wait_exit(30)
        ct.check(rc == 0, "SIGTERM with a slow sink: exit %d\n%s" % (rc, e.stderr_text()[-3000:]))
        ct.check(done.wait(10), "the FIFO was not closed after exit")
    finally:
        e.kill9()
        slow.clear()
        if not done.is_set():
            try:  # a reader still blocked in open(): let it through to EOF
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        t.join(5)
    recs = [l for l in bytes(got).split(b"\n") if l]
    summ = ec.summaries(e.log_records(), "slow")
    ec.check_sequences([json.loads(l) for l in recs], lines=4)
    ct.check(summ, "no final rate summary (summary_interval is set) in the log")
    if summ:
        ct.check(summ[-1]["in"] == summ[-1]["delivered"] == len(recs),
                 "final summary %s but %d records read" % (summ[-1], len(recs)))


if __name__ == "__main__":
    ct.main([
        test_finite_run_exact_file,
        test_exact_metrics,
        test_dead_letters_counted_once,
        test_promtool_check_metrics,
        test_metrics_disabled,
        test_flat_out_memory_and_queue_bounded,
        test_slow_sink_slows_the_source,
    ])
