"""valgrind memcheck on the live-operations paths: an engine serving the
JSON API, the console and taps (one ended by its limit, one by its client
going, one by the engine stopping), and the `top` and `tap` clients
themselves. No error, no definite or indirect leak. Skipped in the
sanitizer build (CONVEYOR_SANITIZE=1)."""

import json
import os
import signal
import socket
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402
from valgrind_test import VALGRIND  # noqa: E402  (the same memcheck settings)


def _report(log, what, rc, want_rc=0):
    report = open(log, errors="replace").read()
    ct.check(rc == want_rc, "%s under valgrind: exit %d (99: memcheck errors or leaks)\n%s" %
             (what, rc, report[-6000:]))
    ct.check("ERROR SUMMARY: 0 errors" in report, "%s: %s" % (what, report[-3000:]))


def test_live_operations_under_valgrind():
    if ct.SANITIZE:
        print("  skipped: sanitizer build")
        return
    ct.check(ec.which("valgrind"), "valgrind not installed")
    ec.require_plugins()
    d = ct.tmpdir()
    port = ct.free_port()
    url = "http://127.0.0.1:%d" % port
    spec = ct.write_file(os.path.join(d, "spec.yaml"), ec.spec({"vg": """
    source: { plugin: sim_speed, lines: 2, rate: 200, seed: 1 }
    transforms:
      - { plugin: anomaly, window: 20 }
    sink: { plugin: null }
"""}, engine="  http: { tap: true }\n  shutdown_timeout: 60s\n"))
    env = dict(os.environ)
    env.update(ec.plugin_env())
    env["CONVEYOR_LOG_FORMAT"] = "json"
    engine_log = os.path.join(d, "valgrind-engine.log")
    err = open(os.path.join(d, "engine.err"), "wb")
    engine = ct.start_process(VALGRIND + ["--log-file=" + engine_log, ct.BIN, "run", spec,
                                          "--listen", "127.0.0.1:%d" % port],
                              env=env, stderr=err)
    ct.wait_until(lambda: ct.http_get(url + "/readyz", timeout=2)[0] == 200, timeout=180,
                  what="the engine under valgrind to be ready")
    ct.check(ct.http_get(url + "/", timeout=10)[0] == 200, "console")
    doc = json.loads(ct.http_get(url + "/api/v1/pipelines", timeout=10)[1])
    ct.check(doc["pipelines"][0]["name"] == "vg", "API: %r" % doc)

    # The clients under valgrind too.
    def client(args, what, want_rc=0, timeout=180):
        log = os.path.join(d, "valgrind-%s.log" % what)
        r = subprocess.run(VALGRIND + ["--log-file=" + log, ct.BIN] + args, env=env,
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        _report(log, what, r.returncode, want_rc)
        return r
    r = client(["top", "--url", url, "--once", "--interval", "500ms"], "top")
    ct.check(b"anomaly" in r.stdout, "top --once: %r" % r.stdout[:300])
    r = client(["tap", "--url", url, "vg", "anomaly", "--limit", "10"], "tap-limit")
    ct.check(len(r.stdout.splitlines()) == 10, "tap --limit 10 printed %r" % r.stdout[:300])
    client(["tap", "--url", url, "vg", "nope"], "tap-refused", want_rc=2)

    # A tap whose client goes, and one open when the engine stops.
    gone = socket.create_connection(("127.0.0.1", port), timeout=30)
    gone.sendall(b"GET /api/v1/tap?pipeline=vg HTTP/1.1\r\nHost: x\r\n\r\n")
    ct.check(gone.recv(100).startswith(b"HTTP/1.1 200"), "tap not answered")
    gone.close()
    held = socket.create_connection(("127.0.0.1", port), timeout=30)
    held.sendall(b"GET /api/v1/tap?pipeline=vg&stage=sim_speed HTTP/1.1\r\nHost: x\r\n\r\n")
    ct.check(held.recv(100).startswith(b"HTTP/1.1 200"), "tap not answered")
    engine.send_signal(signal.SIGTERM)
    rc = engine.wait(timeout=180)
    held.close()
    err.close()
    _report(engine_log, "engine", rc)


if __name__ == "__main__":
    ct.main([test_live_operations_under_valgrind])
