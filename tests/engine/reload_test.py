"""Hot reload on the core plugins: SIGHUP, POST /-/reload and --watch.

A change confined to transforms swaps them without restarting the pipeline
and without losing or repeating a record; a broken spec is refused and the
running pipelines go on; pipelines are added, changed and removed, and the
series of what was removed leave /metrics; engine settings apply live or are
refused; SIGUSR1/SIGUSR2 and friends do not kill the engine; --watch follows
a Kubernetes-style symlink swap."""

import os
import re
import signal
import sys
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

ERROR_LINE = re.compile(r":\d+:\d+: error: ")


def post(url, timeout=60):
    """POSTs to url; returns (status, body text)."""
    req = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def messages(e, prefix="", pipeline=None):
    return [r["message"] for r in e.log_records()
            if r.get("message", "").startswith(prefix) and
            (pipeline is None or r.get("pipeline") == pipeline)]


def reloads(e):
    return messages(e, "reloaded ")


def wait_reloads(e, n, timeout=30):
    """Waits for the n-th "reloaded" log line; returns it."""
    def enough():
        if not e.alive():
            raise ct.TestFailure("engine exited (%s):\n%s" %
                                 (e.proc.returncode, e.stderr_text()[-3000:]))
        return len(reloads(e)) >= n
    ct.wait_until(enough, timeout, what="reload number %d" % n)
    return reloads(e)[n - 1]


def reload_metrics(e):
    m = e.metrics()
    return (ec.one(m, "conveyor_config_last_reload_successful"),
            ec.one(m, "conveyor_config_reloads_total", result="success"),
            ec.one(m, "conveyor_config_reloads_total", result="failure"),
            ec.one(m, "conveyor_config_last_reload_success_timestamp_seconds"))


def source_out(e, pipeline="p"):
    return e.metric("conveyor_stage_records_out_total", pipeline=pipeline, kind="source") or 0


def wait_flowing(e, pipeline="p", more=200):
    """Waits until the pipeline's source emitted `more` records beyond now."""
    start = source_out(e, pipeline)
    ct.wait_until(lambda: e.alive() and source_out(e, pipeline) >= start + more, 30,
                  what="pipeline %s delivering" % pipeline)


def check_counters_monotonic(before, after, removed_stages=()):
    """Every stage counter series in `before` is still there in `after`
    (but those of stages a reload removed), and none went down."""
    for key, v in before.items():
        name, labels = key
        if not name.startswith("conveyor_stage_") or not name.endswith("_total"):
            continue
        if dict(labels).get("stage") in removed_stages:
            continue
        ct.check(key in after, "series %s%s vanished" % (name, dict(labels)))
        ct.check(after[key] >= v, "counter %s%s went back from %s to %s" %
                 (name, dict(labels), v, after[key]))


def pipeline_body(out, threshold=3.0, transforms=None, rate=3000, lines=3, seed=7, count=0):
    if transforms is None:
        transforms = ("      - { plugin: anomaly, field: speed_ms, key: line_id, window: 60, "
                      "threshold: %s }\n" % threshold)
    return ("    source: { plugin: sim_speed, lines: %d, rate: %d, seed: %d, count: %d }\n"
            "    transforms:\n%s"
            "    sink: { plugin: file, path: \"%s\", format: json }\n"
            % (lines, rate, seed, count, transforms, out))


ENGINE = "  shutdown_timeout: 10s\n  http: { lifecycle: true }\n"


def test_transform_swap_keeps_everything_else():
    """Transform-only reloads: the source and sink run on (one start),
    every record arrives once and in order, counters never go back, a
    renamed transform's old series leave /metrics."""
    ec.require_plugins()
    work = ct.tmpdir()
    out = os.path.join(work, "out.jsonl")
    e = ct.Engine(ec.spec({"p": pipeline_body(out, 3.0)}, ENGINE), workdir=work)
    e.wait_ready()
    wait_flowing(e)
    variants = [
        (pipeline_body(out, 2.5), ()),
        (pipeline_body(out, 4.0), ()),
        # Two transforms, then a renamed one, then back to one.
        (pipeline_body(out, transforms=(
            "      - { plugin: anomaly, threshold: 3.5 }\n"
            "      - { name: second, plugin: anomaly, window: 30, threshold: 2.0 }\n")), ()),
        (pipeline_body(out, transforms="      - { name: scorer, plugin: anomaly, threshold: 3 }\n"),
         ("anomaly", "second")),
        # anomaly comes back: a new stage (the old one's series may be gone).
        (pipeline_body(out, 3.0), ("scorer", "anomaly", "second")),
    ]
    for i, (body, removed) in enumerate(variants, 1):
        before = e.metrics()
        ct.write_file(e.spec_path, ec.spec({"p": body}, ENGINE))
        if i % 2:
            e.proc.send_signal(signal.SIGHUP)
        else:
            status, text = post(e.url + "/-/reload")
            ct.check(status == 200, "POST /-/reload answered %d: %s" % (status, text))
            ct.check("swapped: p" in text, "POST /-/reload said: %s" % text)
        line = wait_reloads(e, i)
        ct.check("swapped: p" in line and "restarted: -" in line,
                 "reload %d was not a swap: %s" % (i, line))
        wait_flowing(e)
        check_counters_monotonic(before, e.metrics(), removed)
    # The renamed ("scorer") and removed ("second") transforms' series go
    # once their last batch settled.
    def gone():
        m = e.metrics()
        return (not ec.series(m, "conveyor_stage_records_in_total", stage="scorer") and
                not ec.series(m, "conveyor_stage_records_in_total", stage="second"))
    ct.wait_until(gone, 30, what="the replaced transforms' series to leave /metrics")
    ct.check(len(messages(e, "pipeline started", "p")) == 1,
             "the pipeline restarted: %s" % messages(e, "pipeline started", "p"))
    ct.check(e.stop() == 0, "exit code:\n" + e.stderr_text()[-2000:])
    counts = ec.check_sequences(ec.read_jsonl(out), lines=3)
    print("  5 swaps, %d records, each once and in order" % sum(counts.values()))


def test_broken_spec_refused():
    """Each broken spec is refused with FILE:LINE:COLUMN: error: the gauge
    reads 0, the failure counter counts, the pipeline goes on untouched;
    the next good reload sets the gauge back to 1."""
    ec.require_plugins()
    work = ct.tmpdir()
    out = os.path.join(work, "out.jsonl")
    good = ec.spec({"p": pipeline_body(out)}, ENGINE)
    e = ct.Engine(good, workdir=work)
    e.wait_ready()
    ok, successes, failures, when = reload_metrics(e)
    ct.check((ok, successes, failures) == (1, 0, 0),
             "reload metrics at start: %s" % ((ok, successes, failures),))
    ct.check(when > 1e9, "success timestamp at start: %s" % when)
    broken = {
        "yaml syntax": good + "  q: { source: [\n",
        "unknown plugin": good.replace("plugin: file", "plugin: no_such_plugin"),
        "out of range": good.replace("window: 60", "window: -5"),
        "unknown option": good.replace("window: 60", "windw: 60"),
        "stage init fails": good.replace(out, os.path.join(work, "no", "such", "dir.jsonl")),
        "metrics.enabled": good.replace("shutdown_timeout: 10s",
                                        "shutdown_timeout: 10s\n  metrics: { enabled: false }"),
    }
    nfail = 0
    for what, text in broken.items():
        ct.write_file(e.spec_path, text)
        errors_before = len([l for l in e.stderr_text().splitlines() if ERROR_LINE.search(l)])
        status, body = post(e.url + "/-/reload")
        nfail += 1
        ct.check(status == 500, "%s: POST /-/reload answered %d: %s" % (what, status, body))
        ct.check(ERROR_LINE.search(body), "%s: no FILE:LINE:COLUMN error in %r" % (what, body))
        errs = [r["message"] for r in e.log_records() if ERROR_LINE.search(r["message"])]
        ct.check(len(errs) > errors_before,
                 "%s: no FILE:LINE:COLUMN: error: line logged" % what)
        ct.check(all(m.startswith(e.spec_path + ":") for m in errs),
                 "%s: error lines do not start with the file: %s" % (what, errs[-3:]))
        ok, successes, failures, _ = reload_metrics(e)
        ct.check((ok, failures, successes) == (0, nfail, 0),
                 "%s: gauge %s, failures %s, successes %s" % (what, ok, failures, successes))
        wait_flowing(e)
    ct.check("restart is needed" in e.stderr_text(), "metrics.enabled change not refused")
    ct.check(not reloads(e), "a broken spec was applied: %s" % reloads(e))
    ct.check(len(messages(e, "pipeline started", "p")) == 1, "the pipeline restarted")
    ct.write_file(e.spec_path, good.replace("threshold: 3.0", "threshold: 3.2"))
    e.proc.send_signal(signal.SIGHUP)
    wait_reloads(e, 1)
    ok, successes, failures, when2 = reload_metrics(e)
    ct.check((ok, successes, failures) == (1, 1, nfail),
             "after a good reload: gauge %s, successes %s, failures %s" %
             (ok, successes, failures))
    ct.check(when2 >= when, "success timestamp went back: %s < %s" % (when2, when))
    ct.check(e.stop() == 0, "exit code")
    ec.check_sequences(ec.read_jsonl(out), lines=3)


def test_listen_change_needs_restart():
    """engine.http.listen cannot move while running: refused, nothing
    changes, and the message says a restart is needed."""
    ec.require_plugins()
    work = ct.tmpdir()
    port = ct.free_port()
    body = {"p": "    source: { plugin: sim_speed, rate: 500 }\n    sink: { plugin: null }\n"}
    spec_path = ct.write_file(os.path.join(work, "spec.yaml"), ec.spec(
        body, '  http: { listen: "127.0.0.1:%d" }' % port))
    err_path = os.path.join(work, "stderr.txt")
    with open(err_path, "wb") as err:
        proc = ct.start_process([ct.BIN, "run", spec_path], env=ec.plugin_env(),
                                stderr=err, stdout=err)
    url = "http://127.0.0.1:%d" % port
    ct.wait_until(lambda: ct.http_get(url + "/readyz", 1)[0] == 200, 30, what="/readyz")
    ct.write_file(spec_path, ec.spec(body, '  http: { listen: "127.0.0.1:%d" }' %
                                     ct.free_port()))
    proc.send_signal(signal.SIGHUP)

    def refused():
        m = ct.parse_metrics(ct.http_get(url + "/metrics")[1])
        return ct.metric_sum(m, "conveyor_config_reloads_total", result="failure") == 1
    ct.wait_until(refused, 30, what="the reload to fail")
    with open(err_path) as f:
        text = f.read()
    ct.check(re.search(r"spec\.yaml:\d+:\d+: error: engine\.http\.listen changed: a restart "
                       r"is needed", text), "no restart-needed error:\n" + text[-2000:])
    ct.check(ct.http_get(url + "/healthz")[0] == 200, "the old listener stopped serving")
    proc.send_signal(signal.SIGTERM)
    ct.check(proc.wait(timeout=30) == 0, "exit code")


def test_add_change_remove_pipelines():
    """Added pipelines start; a changed one drains before its successor
    starts and its counters continue; a removed one drains (its output is
    complete) and its series leave /metrics."""
    ec.require_plugins()
    work = ct.tmpdir()
    out_a, out_b = os.path.join(work, "a.jsonl"), os.path.join(work, "b.jsonl")
    a = pipeline_body(out_a, seed=1)
    e = ct.Engine(ec.spec({"a": a}, ENGINE), workdir=work)
    e.wait_ready()
    b = pipeline_body(out_b, seed=2, rate=2000)
    ct.write_file(e.spec_path, ec.spec({"a": a, "b": b}, ENGINE))
    e.proc.send_signal(signal.SIGHUP)
    line = wait_reloads(e, 1)
    ct.check("kept: a" in line and "added: b" in line, "reload 1: %s" % line)
    wait_flowing(e, "b")
    ct.check(ec.series(e.metrics(), "conveyor_pipeline_latency_seconds_count", pipeline="b"),
             "no latency series for the added pipeline")

    # Change a's source: a drains, its successor starts, counters go on.
    before = e.metrics()
    a2 = pipeline_body(out_a, seed=1, rate=2500)
    ct.write_file(e.spec_path, ec.spec({"a": a2, "b": b}, ENGINE))
    e.proc.send_signal(signal.SIGHUP)
    line = wait_reloads(e, 2)
    ct.check("restarted: a" in line and "kept: b" in line, "reload 2: %s" % line)
    ct.wait_until(lambda: len(messages(e, "pipeline started", "a")) == 2, 30,
                  what="a's successor to start")
    ct.check(messages(e, "the replaced pipeline drained", "a"),
             "no log line for a's predecessor draining")
    wait_flowing(e, "a")
    check_counters_monotonic(before, e.metrics())

    # Remove b: it drains, its series go, its output is complete.
    ct.write_file(e.spec_path, ec.spec({"a": a2}, ENGINE))
    status, text = post(e.url + "/-/reload")
    ct.check(status == 200 and "removed: b" in text, "reload 3: %d %s" % (status, text))
    ct.wait_until(lambda: messages(e, "the removed pipeline drained", "b"), 30,
                  what="b to drain")
    m = e.metrics()
    left = [k for k in m if dict(k[1]).get("pipeline") == "b"]
    ct.check(not left, "series of the removed pipeline remain: %s" % left[:5])
    size = os.path.getsize(out_b)
    wait_flowing(e, "a")
    ct.check(os.path.getsize(out_b) == size, "the removed pipeline still writes")
    counts = ec.check_sequences(ec.read_jsonl(out_b), lines=3)
    ct.check(sum(counts.values()) > 0, "b wrote nothing")
    ct.check(e.stop() == 0, "exit code:\n" + e.stderr_text()[-2000:])


def test_settings_apply_live():
    """summary_interval and the log level apply on reload."""
    ec.require_plugins()
    work = ct.tmpdir()
    body = {"p": "    source: { plugin: sim_speed, rate: 500 }\n    sink: { plugin: null }\n"}
    e = ct.Engine(ec.spec(body, "  log: { level: info }\n"), workdir=work)
    e.wait_ready()
    ct.check(not messages(e, "rate: "), "a summary without summary_interval")
    ct.write_file(e.spec_path, ec.spec(body, "  log: { level: info }\n  summary_interval: 100ms\n"))
    e.proc.send_signal(signal.SIGHUP)
    wait_reloads(e, 1)
    ct.wait_until(lambda: len(messages(e, "rate: ")) >= 2, 30, what="summary lines")

    # Level warn: the reload still says so, then info lines stop.
    ct.write_file(e.spec_path, ec.spec(body, "  log: { level: warn, format: json }\n"
                                       "  http: { lifecycle: true }\n"))
    e.proc.send_signal(signal.SIGHUP)
    wait_reloads(e, 2)
    e.proc.send_signal(signal.SIGUSR1)  # logged at info: not shown now
    ct.write_file(e.spec_path, ec.spec(body, "  log: { level: info }\n"
                                       "  http: { lifecycle: true }\n"))
    status, text = post(e.url + "/-/reload")
    ct.check(status == 200, "POST /-/reload: %d %s" % (status, text))
    ct.check(not messages(e, "SIGUSR1"), "an info line was logged at level warn")
    e.proc.send_signal(signal.SIGUSR2)
    ct.wait_until(lambda: messages(e, "SIGUSR2 received: ignored"), 30,
                  what="info lines again after the reload to info")
    ct.check(e.stop() == 0, "exit code")


def test_http_reload_endpoint():
    """POST /-/reload is off by default (403), other methods get 405."""
    ec.require_plugins()
    body = {"p": "    source: { plugin: sim_speed, rate: 500 }\n    sink: { plugin: null }\n"}
    e = ct.Engine(ec.spec(body))
    e.wait_ready()
    status, text = post(e.url + "/-/reload")
    ct.check(status == 403 and "lifecycle" in text, "lifecycle off: %d %s" % (status, text))
    status, _ = ct.http_get(e.url + "/-/reload")
    ct.check(status == 405, "GET /-/reload answered %d" % status)
    ct.write_file(e.spec_path, ec.spec(body, "  http: { lifecycle: true }\n"))
    e.proc.send_signal(signal.SIGHUP)
    wait_reloads(e, 1)
    status, text = post(e.url + "/-/reload")
    ct.check(status == 200 and text.startswith("reloaded: kept: p"),
             "lifecycle on: %d %s" % (status, text))
    ct.check(e.stop() == 0, "exit code")


def test_other_signals_do_not_kill():
    """SIGUSR1, SIGUSR2, SIGALRM, SIGIO and SIGPWR are logged and ignored;
    a second SIGTERM while draining still exits at once."""
    ec.require_plugins()
    body = {"p": "    source: { plugin: sim_speed, rate: 1000 }\n    sink: { plugin: null }\n"}
    e = ct.Engine(ec.spec(body))
    e.wait_ready()
    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGIO, signal.SIGPWR):
        e.proc.send_signal(sig)
        name = signal.Signals(sig).name
        ct.wait_until(lambda: messages(e, name + " received: ignored"), 30,
                      what="the engine to log %s" % name)
        ct.check(e.alive(), "%s killed the engine" % name)
    wait_flowing(e)
    ct.check(e.stop() == 0, "exit code:\n" + e.stderr_text()[-2000:])


def test_builtin_demo_ignores_reload():
    """The demo has no spec file: SIGHUP is logged and ignored, and
    --watch is refused."""
    ec.require_plugins()
    rc, _, err = ec.conveyor(["run", "--watch"])
    ct.check(rc == 2 and "needs a spec file" in err, "run --watch without a spec: %d %s" %
             (rc, err))
    if not all(os.path.exists(os.path.join(ct.PLUGIN_DIR, p + ".so"))
               for p in ("kafka_in", "kafka_out")):
        print("  NOTE: Kafka plugins not built: the demo is not run")
        return
    work = ct.tmpdir()
    port = ct.free_port()
    err_path = os.path.join(work, "stderr.txt")
    with open(err_path, "wb") as err:
        proc = ct.start_process([ct.BIN, "run", "--listen", "127.0.0.1:%d" % port],
                                env=ec.plugin_env({"CONVEYOR_LOG_FORMAT": "json"}),
                                stderr=err, stdout=open(os.devnull, "wb"))

    def log():
        with open(err_path) as f:
            return f.read()
    ct.wait_until(lambda: ct.http_get("http://127.0.0.1:%d/readyz" % port, 1)[0] == 200, 60,
                  what="the demo ready")
    proc.send_signal(signal.SIGHUP)
    ct.wait_until(lambda: "reload ignored: the built-in demo" in log(), 30,
                  what="the demo to ignore SIGHUP")
    ct.check(proc.poll() is None, "SIGHUP ended the demo")
    proc.send_signal(signal.SIGTERM)
    ct.check(proc.wait(timeout=60) == 0, "demo exit code:\n" + log()[-2000:])


def test_watch_follows_a_symlink_swap():
    """--watch on a path laid out as Kubernetes mounts a ConfigMap
    (spec.yaml -> ..data/spec.yaml, ..data -> ..TIMESTAMP/): an atomic swap
    of ..data reloads; touching the file without changing it does not."""
    ec.require_plugins()
    work = ct.tmpdir()
    mount = os.path.join(work, "mount")
    os.makedirs(mount)
    out = os.path.join(work, "out.jsonl")
    generation = [0]

    def publish(text):
        generation[0] += 1
        d = "..%d" % generation[0]
        os.makedirs(os.path.join(mount, d))
        ct.write_file(os.path.join(mount, d, "spec.yaml"), text)
        tmp = os.path.join(mount, "..data_tmp")
        os.symlink(d, tmp)
        os.rename(tmp, os.path.join(mount, "..data"))  # atomic, as the kubelet does

    publish(ec.spec({"p": pipeline_body(out, 3.0)}))
    spec_path = os.path.join(mount, "spec.yaml")
    os.symlink("..data/spec.yaml", spec_path)
    e = ct.Engine(spec_path, args=["--watch"], workdir=work)
    e.wait_ready()
    publish(ec.spec({"p": pipeline_body(out, 2.0)}))
    line = wait_reloads(e, 1)
    ct.check("the spec file changed" in line and "swapped: p" in line, "reload: %s" % line)
    # The same bytes in a new folder, then a real change: one more reload.
    publish(ec.spec({"p": pipeline_body(out, 2.0)}))
    publish(ec.spec({"p": pipeline_body(out, 2.0) + "    queue: { batch_records: 512 }\n"}))
    line = wait_reloads(e, 2)
    ct.check("restarted: p" in line, "reload 2: %s" % line)
    ct.wait_until(lambda: len(messages(e, "pipeline started", "p")) == 2, 30,
                  what="the successor to start")
    ct.check(len(reloads(e)) == 2, "an unchanged spec reloaded: %s" % reloads(e))
    ct.check(e.stop() == 0, "exit code")


if __name__ == "__main__":
    ct.main([test_transform_swap_keeps_everything_else, test_broken_spec_refused,
             test_listen_change_needs_restart, test_add_change_remove_pipelines,
             test_settings_apply_live, test_http_reload_endpoint,
             test_other_signals_do_not_kill, test_builtin_demo_ignores_reload,
             test_watch_follows_a_symlink_swap])
