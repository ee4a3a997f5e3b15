"""valgrind memcheck finds no error and no definite or indirect leak in an
engine that is reloaded every way (transforms swapped, a pipeline
restarted, added, removed, a broken spec refused) and then stopped.
Skipped in the sanitizer build (CONVEYOR_SANITIZE=1), which runs the
reload tests under ASan instead."""

import os
import signal
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402
from valgrind_test import VALGRIND  # noqa: E402


def test_reloads_under_valgrind():
    if ct.SANITIZE:
        print("  skipped: sanitizer build")
        return
    ec.require_plugins()
    ct.check(ec.which("valgrind"), "valgrind not installed")
    d = ct.tmpdir()
    out_a, out_b = os.path.join(d, "a.jsonl"), os.path.join(d, "b.jsonl")

    def body(out, threshold=3.0, rate=300):
        return """
    source: { plugin: sim_speed, lines: 2, rate: %d }
    transforms:
      - { plugin: anomaly, window: 20, threshold: %s }
    sink: { plugin: file, path: "%s" }
""" % (rate, threshold, out)
    engine = "  shutdown_timeout: 60s"
    steps = [
        ec.spec({"a": body(out_a, 2.5)}, engine),                      # swapped
        ec.spec({"a": body(out_a, 2.5), "b": body(out_b)}, engine),    # added
        ec.spec({"a": body(out_a, 2.5, rate=400), "b": body(out_b)}, engine),  # restarted
        ec.spec({"a": body(out_a, 2.5, rate=400)}, engine) + "  x: [\n",  # refused
        ec.spec({"a": body(out_a, 2.0, rate=400)}, engine),            # swapped, b removed
    ]
    spec_path = ct.write_file(os.path.join(d, "spec.yaml"), ec.spec({"a": body(out_a)}, engine))
    log = os.path.join(d, "valgrind.log")
    err_path = os.path.join(d, "stderr.txt")
    env = ec.plugin_env({"CONVEYOR_LOG_FORMAT": "json"})
    with open(err_path, "wb") as err:
        proc = ct.start_process(VALGRIND + ["--log-file=" + log, ct.BIN, "run", spec_path,
                                            "--listen", "127.0.0.1:%d" % ct.free_port()],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)

    def text():
        with open(err_path, errors="replace") as f:
            return f.read()

    def outcomes():
        t = text()
        return t.count('"message":"reloaded ') + t.count("failed; the running pipelines")

    ct.wait_until(lambda: proc.poll() is not None or text().count("pipeline started") >= 1,
                  120, what="the engine to start under valgrind")
    for i, step in enumerate(steps, 1):
        ct.check(proc.poll() is None, "the engine exited:\n" + text()[-3000:])
        ct.write_file(spec_path, step)
        proc.send_signal(signal.SIGHUP)
        ct.wait_until(lambda: proc.poll() is not None or outcomes() >= i, 120,
                      what="reload %d under valgrind" % i)
    ct.wait_until(lambda: "the removed pipeline drained" in text(), 120, what="b to drain")
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=180)
    report = open(log, errors="replace").read()
    ct.check(rc == 0, "exit %d (99: memcheck errors or leaks)\nvalgrind:\n%s\nstderr:\n%s" %
             (rc, report[-6000:], text()[-2000:]))
    ct.check("ERROR SUMMARY: 0 errors" in report, report[-3000:])
    ct.check(text().count('"message":"reloaded ') == 4, "expected 4 reloads applied:\n" +
             text()[-3000:])


if __name__ == "__main__":
    ct.main([test_reloads_under_valgrind])
