"""Process lifecycle: /healthz and /readyz, SIGTERM/SIGINT drain without
loss, the built-in demo (no spec), JSON and text logs."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
LEVELS = {"debug", "info", "warn", "error"}


def check_json_log(stderr, what):
    """Every non-empty stderr line is a JSON object with time, level,
    message; a stage field comes with its pipeline. Returns the records."""
    recs = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError:
            raise ct.TestFailure("%s: stderr line is not JSON: %r" % (what, line))
        ct.check(isinstance(r, dict), "%s: log line is not an object: %r" % (what, line))
        ct.check(isinstance(r.get("time"), str) and TIME_RE.match(r["time"]),
                 "%s: bad time in %r" % (what, line))
        ct.check(r.get("level") in LEVELS, "%s: bad level in %r" % (what, line))
        ct.check(isinstance(r.get("message"), str) and r["message"],
                 "%s: no message in %r" % (what, line))
        if "stage" in r:
            ct.check(isinstance(r.get("pipeline"), str) and r["pipeline"],
                     "%s: stage log without pipeline: %r" % (what, line))
        recs.append(r)
    return recs


def test_healthz_readyz():
    ec.require_plugins()
    e = ct.Engine(ec.spec({"p": """
    source: { plugin: sim_speed, rate: 500 }
    sink: { plugin: null }
"""}))
    e.wait_ready()
    for path in ("/healthz", "/readyz"):
        status, body = ct.http_get(e.url + path)
        ct.check(status == 200, "%s answered %d: %s" % (path, status, body))
    status, _ = ct.http_get(e.url + "/no-such-page")
    ct.check(status == 404, "/no-such-page answered %d" % status)
    ct.check(e.stop() == 0, "exit code")


def test_readyz_503_while_sink_fails():
    """A sink that cannot deliver makes /readyz 503; /healthz stays 200."""
    ec.require_plugins()
    if not os.path.exists(os.path.join(ct.PLUGIN_DIR, "influxdb.so")):
        print("  NOTE: influxdb plugin not built: failing-sink readiness not checked")
        return
    e = ct.Engine(ec.spec({"p": """
    source: { plugin: sim_speed, lines: 1, rate: 200 }
    sink:
      plugin: influxdb
      url: "http://127.0.0.1:%d"
      database: conveyor
      batch: { max_delay: 10ms }
      retry: { initial: 10ms, max: 100ms }
      timeout: 1s
""" % ct.free_port()}, engine="  shutdown_timeout: 1s"))
    ct.wait_until(lambda: ct.http_get(e.url + "/readyz", 1)[0] == 503, 20,
                  what="/readyz 503 with the sink failing")
    ct.check(ct.http_get(e.url + "/healthz")[0] == 200, "/healthz not 200 with a failing sink")
    e.stop(timeout=30)  # undeliverable records: exit code 1 is allowed here


def _drain_test(sig):
    ec.require_plugins()
    d = ct.tmpdir()
    out = os.path.join(d, "out.jsonl")
    timeout_s = 5
    e = ct.Engine(ec.spec({"drain": """
    source: { plugin: sim_speed, lines: 5, rate: 5000, seed: 5 }
    transforms:
      - { plugin: anomaly, window: 20 }
    sink: { plugin: file, path: "%s" }
""" % out}, engine="  shutdown_timeout: %ds\n  summary_interval: 60s" % timeout_s), workdir=d)
    e.wait_ready()
    ct.wait_until(lambda: (ec.one(e.metrics(), "conveyor_stage_records_out_total",
                                  pipeline="drain", stage="file") or 0) >= 2000, 20,
                  what="2000 records delivered")
    t0 = time.monotonic()
    e.proc.send_signal(sig)
    rc = e.wait_exit(timeout_s + 10)
    took = time.monotonic() - t0
    ct.check(rc == 0, "%s: exit code %d\n%s" % (sig.name, rc, e.stderr_text()[-3000:]))
    print("  %s: exited 0 after %.2fs (shutdown_timeout %ds)" % (sig.name, took, timeout_s))
    recs = ec.read_jsonl(out)
    ec.check_sequences(recs, lines=5)
    summ = ec.summaries(check_json_log(e.stderr_text(), sig.name), "drain")
    ct.check(summ, "no final rate summary (summary_interval is set) on stderr:\n%s" %
             e.stderr_text()[-2000:])
    final = summ[-1]
    ct.check(final["in"] == final["delivered"] == len(recs),
             "%s: the source emitted %d, the sink delivered %d, the file holds %d" %
             (sig.name, final["in"], final["delivered"], len(recs)))
    ct.check(final["dropped"] == 0 and final["errors"] == 0, "final summary %s" % final)


def test_sigterm_drains_without_loss():
    _drain_test(signal.SIGTERM)


def test_sigint_drains_without_loss():
    _drain_test(signal.SIGINT)


def test_shutdown_timeout_bounds_a_stuck_sink():
    """A sink blocked for good (writing into a FIFO nobody reads): SIGTERM
    still ends the process within engine.shutdown_timeout, with exit code 1
    (records left undelivered)."""
    ec.require_plugins()
    d = ct.tmpdir()
    fifo = os.path.join(d, "stuck.fifo")
    os.mkfifo(fifo)
    opened = []
    t = threading.Thread(target=lambda: opened.append(os.open(fifo, os.O_RDONLY)), daemon=True)
    t.start()  # opens, never reads: the sink's writes block once the pipe is full
    timeout_s = 2
    e = ct.Engine(ec.spec({"stuck": """
    source: { plugin: sim_speed, lines: 2, rate: 0 }
    sink: { plugin: file, path: "%s" }
    queue: { batch_records: 256, max_records: 1024 }
""" % fifo}, engine="  shutdown_timeout: %ds" % timeout_s), workdir=d)
    try:
        e.wait_ready()

        def stuck():
            m = e.metrics()
            src = ec.one(m, "conveyor_stage_records_out_total", pipeline="stuck",
                         stage="sim_speed")
            return src >= 1024 and ec.one(m, "conveyor_stage_queue_records", pipeline="stuck",
                                          stage="file") >= 512
        ct.wait_until(stuck, 20, 0.1, what="the queue to fill in front of the blocked sink")
        t0 = time.monotonic()
        e.proc.send_signal(signal.SIGTERM)
        try:
            rc = e.proc.wait(timeout_s + 8)
        except subprocess.TimeoutExpired:
            e.proc.send_signal(signal.SIGTERM)
            try:
                e.proc.wait(5)
                second = "a second SIGTERM ended it"
            except subprocess.TimeoutExpired:
                second = "a second SIGTERM did not end it either"
            raise ct.TestFailure("SIGTERM with a sink blocked in write(): still running %ds "
                                 "after the signal (shutdown_timeout %ds); %s\n%s" %
                                 (timeout_s + 8, timeout_s, second, e.stderr_text()[-2000:]))
        print("  stuck sink: exit %d %.1fs after SIGTERM" % (rc, time.monotonic() - t0))
        ct.check(rc == 1, "exit code %d with undelivered records, expected 1" % rc)
    finally:
        e.kill9()
        for fd in opened:
            os.close(fd)
        if not opened:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        t.join(5)


def test_builtin_demo():
    """`conveyor run` without a spec: serves /metrics, prints anomalies,
    logs a rate summary, stays small, exits 0 on SIGINT. No plugin path in
    the environment: it finds its plugins beside the binary."""
    ec.require_plugins()
    d = ct.tmpdir()
    port = ct.free_port()
    outp, errp = os.path.join(d, "stdout.txt"), os.path.join(d, "stderr.txt")
    with open(outp, "wb") as o, open(errp, "wb") as er:
        p = ct.start_process(["env", "-u", "CONVEYOR_PLUGIN_PATH", "-u", "CONVEYOR_LOG_LEVEL",
                              ct.BIN, "run", "--listen", "127.0.0.1:%d" % port],
                             env={"CONVEYOR_LOG_FORMAT": "json"}, stdout=o, stderr=er)
    url = "http://127.0.0.1:%d" % port
    err = lambda: open(errp, errors="replace").read()  # noqa: E731
    try:
        def metrics_up():
            ct.check(p.poll() is None, "demo exited %s:\n%s" % (p.returncode, err()[-3000:]))
            status, body = ct.http_get(url + "/metrics", 1)
            m = ct.parse_metrics(body) if status == 200 else {}
            # The demo's processor pipeline delivering means the whole chain
            # works: sim_speed -> kafka_out -> embedded broker -> kafka_in ->
            # anomaly -> console.
            return (ct.metric_sum(m, "conveyor_stage_records_out_total", pipeline="processor",
                                  kind="sink") or 0) > 0
        t0 = time.monotonic()
        ct.wait_until(metrics_up, 15, 0.2, what="the demo's /metrics")
        ct.wait_until(lambda: os.path.getsize(outp) > 0, 15, 0.2,
                      what="the demo to print an anomaly on stdout")

        def summary():
            return [r for r in check_json_log(err(), "demo")
                    if str(r["message"]).startswith("rate:")]
        ct.wait_until(summary, 15, 0.2, what="a log line starting with \"rate:\"")
        if time.monotonic() - t0 < 5:
            time.sleep(5 - (time.monotonic() - t0))
        rss = ec.rss_kib(p.pid)
        print("  demo RSS after ~5s: %d KiB (%.1f MiB)" % (rss, rss / 1024.0))
        first = open(outp, errors="replace").read().splitlines()[0]
        print("  demo's first anomaly line: %s" % first[:160])
        if ct.SANITIZE:
            print("  (RSS bound not checked under the sanitizers)")
        else:
            ct.check(rss < 16 * 1024, "demo RSS %d KiB >= 16 MiB" % rss)
        p.send_signal(signal.SIGINT)
        try:
            rc = p.wait(20)
        except subprocess.TimeoutExpired:
            raise ct.TestFailure("demo still running 20s after SIGINT")
        ct.check(rc == 0, "demo exit code after SIGINT: %d\n%s" % (rc, err()[-3000:]))
        check_json_log(err(), "demo")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_json_logs():
    ec.require_plugins()
    d = ct.tmpdir()
    e = ct.Engine(ec.spec({"p": """
    source: { plugin: sim_speed, rate: 500 }
    transforms: [ { plugin: anomaly } ]
    sink: { plugin: file, path: "%s/out.jsonl" }
""" % d}, engine="  log: { level: debug, format: text }"), workdir=d,
        args=["--duration", "1"], log_format="json")
    ct.check(e.wait_exit(30) == 0, "exit code")
    recs = check_json_log(e.stderr_text(), "run")
    ct.check(len(recs) >= 2, "expected a few log lines, got:\n%s" % e.stderr_text())
    ct.check(any(r.get("pipeline") == "p" for r in recs), "no log line carries pipeline p")
    # A stage that fails: its log line names the pipeline and the stage.
    bad = ct.Engine(ec.spec({"p": """
    source: { plugin: sim_speed, rate: 500 }
    sink: { name: out, plugin: file, path: "%s/no/such/dir/out.jsonl" }
""" % d}), log_format="json")
    rc = bad.wait_exit(30)
    ct.check(rc == 1, "a sink that cannot open its file: exit %d, expected 1\n%s" %
             (rc, bad.stderr_text()))
    recs = check_json_log(bad.stderr_text(), "failing run")
    ct.check(any(r["level"] == "error" and r.get("pipeline") == "p" and r.get("stage") == "out"
                 for r in recs),
             "no error log with pipeline p and stage out:\n%s" % bad.stderr_text())


def test_text_logs():
    ec.require_plugins()
    d = ct.tmpdir()
    bad = ct.Engine(ec.spec({"p": """
    source: { plugin: sim_speed, rate: 500 }
    sink: { name: out, plugin: file, path: "%s/no/such/dir/out.jsonl" }
""" % d}, engine="  log: { format: json }"), log_format="text")
    ct.check(bad.wait_exit(30) == 1, "exit code")
    lines = [l for l in bad.stderr_text().splitlines() if l.strip()]
    ct.check(lines, "no log lines")
    for l in lines:
        ct.check(not l.lstrip().startswith("{"), "text format wrote JSON: %r" % l)
        ct.check(re.match(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d", l),
                 "text line does not start with a time: %r" % l)
        ct.check(re.search(r"\b(DEBUG|INFO|WARN|WARNING|ERROR)\b", l, re.I),
                 "text line names no level: %r" % l)
    ct.check(any(re.search(r"\berror\b", l, re.I) and re.search(r"\bp\b", l) and
                 re.search(r"\bout\b", l) for l in lines),
             "no error line naming the stage:\n%s" % "\n".join(lines))


def test_log_level_env():
    ec.require_plugins()
    e = ct.Engine(ec.spec({"p": """
    source: { plugin: sim_speed, rate: 500 }
    sink: { plugin: null }
"""}), env={"CONVEYOR_LOG_LEVEL": "error"}, args=["--duration", "1"])
    ct.check(e.wait_exit(30) == 0, "exit code")
    recs = check_json_log(e.stderr_text(), "level error")
    ct.check(all(r["level"] == "error" for r in recs),
             "CONVEYOR_LOG_LEVEL=error still logged: %s" % [r for r in recs if r["level"] != "error"])


if __name__ == "__main__":
    ct.main([
        test_healthz_readyz,
        test_readyz_503_while_sink_fails,
        test_sigterm_drains_without_loss,
        test_sigint_drains_without_loss,
        test_shutdown_timeout_bounds_a_stuck_sink,
        test_builtin_demo,
        test_json_logs,
        test_text_logs,
        test_log_level_env,
    ])
