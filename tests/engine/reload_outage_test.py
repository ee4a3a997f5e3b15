"""Reload under stress: while InfluxDB (a real influxd) is down, and racing
SIGTERM. Nothing hangs, nothing crashes (the sanitizer build runs this too),
nothing acknowledged is lost."""

import os
import shutil
import signal
import sys
import threading
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "influxdb"))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402


def post_reload(url):
    req = urllib.request.Request(url + "/-/reload", data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # the engine stopped listening first
        return None, str(e)


def reload_lines(e):
    return [r["message"] for r in e.log_records()
            if r.get("message", "").startswith("reloaded ")]


def test_reload_while_influxdb_down():
    """influxd stops; two reloads (a transform swap, then a removed
    pipeline) apply at once while the sink retries; influxd comes back and
    every point arrives."""
    ec.require_plugins()
    if not shutil.which("influxd") or not os.path.exists(
            os.path.join(ct.PLUGIN_DIR, "influxdb.so")):
        print("  NOTE: influxd or the influxdb plugin missing: not run")
        return
    import influx_env as ie
    n, lines = (3000, 3) if ct.SANITIZE else (6000, 3)
    pki = ie.Pki(ct.tmpdir("conveyor-pki-"))
    db = ie.Influxd(pki)
    work = ct.tmpdir()
    pw = ct.write_file(os.path.join(work, "password"), ie.WRITER_PASSWORD + "\n")

    def spec(threshold, side=True):
        body = {"p": """
    source: { plugin: sim_speed, lines: %d, count: %d, rate: %d, seed: 5 }
    transforms:
      - { plugin: anomaly, threshold: %s }
    sink:
      plugin: influxdb
      url: "%s"
      database: %s
      username: %s
      password_file: "%s"
      tls: { ca_file: "%s" }
      batch: { max_delay: 50ms }
      retry: { initial: 20ms, max: 200ms }
      timeout: 2s
""" % (lines, n, n // 10, threshold, db.url, ie.DATABASE, ie.WRITER_USER, pw, pki.ca_cert)}
        if side:
            body["side"] = "    source: { plugin: sim_speed, rate: 200 }\n    sink: { plugin: null }\n"
        return ec.spec(body, "  shutdown_timeout: 10s\n  http: { lifecycle: true }\n")

    def stored():
        rows = db.rows('SELECT count("seq") FROM conveyor_speed')
        return rows[0]["count"] if rows else 0

    e = ct.Engine(spec(3.0), workdir=work)
    e.wait_ready()
    ct.wait_until(lambda: stored() > 0, 60, what="first points in influxd")
    db.stop()
    ct.wait_until(lambda: ct.http_get(e.url + "/readyz", 1)[0] == 503, 30,
                  what="/readyz 503 with influxd down")
    ct.write_file(e.spec_path, spec(2.5))
    status, text = post_reload(e.url)
    ct.check(status == 200 and "swapped: p" in text, "reload 1: %s %s" % (status, text))
    ct.write_file(e.spec_path, spec(2.5, side=False))
    e.proc.send_signal(signal.SIGHUP)
    ct.wait_until(lambda: len(reload_lines(e)) == 2, 30, what="reload 2")
    ct.check("removed: side" in reload_lines(e)[1], "reload 2: %s" % reload_lines(e)[1])
    ct.check(e.alive(), "the engine died while influxd was down")
    db.start()
    rc = e.wait_exit(120)
    ct.check(rc == 0, "exit %s:\n%s" % (rc, e.stderr_text()[-3000:]))
    rows = db.rows('SELECT count("seq"), min("seq"), max("seq") FROM conveyor_speed '
                   'GROUP BY line_id')
    ct.check(len(rows) == lines, "expected %d lines in influxd, got %s" % (lines, rows))
    for r in rows:
        ct.check(r["count"] == n // lines and r["min"] == 1 and r["max"] == n // lines,
                 "line %s: count %s, seq %s..%s, expected 1..%d" %
                 (r.get("line_id"), r["count"], r["min"], r["max"], n // lines))
    db.stop()
    print("  %d points, all there after two reloads during the outage" % n)


def _race(kind, work, rounds):
    """Runs `rounds` engines, each reloaded and stopped in the same breath
    (`kind` says how); every one exits 0 in time and its files hold complete
    sequences."""
    for i in range(rounds):
        out_a = os.path.join(work, "%s-%d-a.jsonl" % (kind, i))
        out_b = os.path.join(work, "%s-%d-b.jsonl" % (kind, i))

        def body(out, rate, threshold=3.0):
            return """
    source: { plugin: sim_speed, lines: 2, rate: %d, seed: 3 }
    transforms:
      - { plugin: anomaly, threshold: %s }
    sink: { plugin: file, path: "%s", format: json }
""" % (rate, threshold, out)
        engine = "  shutdown_timeout: 10s\n  http: { lifecycle: true }\n"
        e = ct.Engine(ec.spec({"a": body(out_a, 2000)}, engine),
                      workdir=ct.tmpdir("conveyor-race-"))
        e.wait_ready()
        # a: source changed (restart, its successor waits for the drain),
        # b: added.
        ct.write_file(e.spec_path, ec.spec({"a": body(out_a, 2500, 2.0),
                                            "b": body(out_b, 1000)}, engine))
        answers = []
        if kind == "hup-term":
            e.proc.send_signal(signal.SIGHUP)
            e.proc.send_signal(signal.SIGTERM)
        elif kind == "term-hup":
            e.proc.send_signal(signal.SIGTERM)
            e.proc.send_signal(signal.SIGHUP)
        elif kind == "post-term":
            t = threading.Thread(target=lambda: answers.append(post_reload(e.url)))
            t.start()
            e.proc.send_signal(signal.SIGTERM)
            t.join(90)
            ct.check(not t.is_alive(), "POST /-/reload never answered")
            ct.check(answers and answers[0][0] in (200, 503, None),
                     "POST /-/reload racing SIGTERM: %s" % answers)
        elif kind == "reload-then-term":
            e.proc.send_signal(signal.SIGHUP)
            ct.wait_until(lambda: reload_lines(e), 30, what="the reload")
            e.proc.send_signal(signal.SIGTERM)
        rc = e.wait_exit(60)
        ct.check(rc == 0, "%s round %d: exit %s:\n%s" % (kind, i, rc, e.stderr_text()[-3000:]))
        for out in (out_a, out_b):
            if os.path.exists(out):
                # The successor of a starts its own run of seq at 1: check
                # each run (a run starts where seq goes back to 1).
                runs, cur = [], []
                for r in ec.read_jsonl(out):
                    if r["fields"]["seq"] == 1 and any(
                            x["tags"]["line_id"] == r["tags"]["line_id"] for x in cur):
                        runs.append(cur)
                        cur = []
                    cur.append(r)
                runs.append(cur)
                for run in runs:
                    ec.check_sequences(run)


def test_reload_racing_sigterm():
    """SIGHUP and SIGTERM back to back (either order), POST /-/reload
    racing SIGTERM, SIGTERM right after a reload restarted a pipeline."""
    ec.require_plugins()
    work = ct.tmpdir()
    rounds = 2 if ct.SANITIZE else 3
    for kind in ("hup-term", "term-hup", "post-term", "reload-then-term"):
        _race(kind, work, rounds)
    print("  %d rounds of 4 races: every engine exited 0 with complete outputs" % rounds)


if __name__ == "__main__":
    ct.main([test_reload_while_influxdb_down, test_reload_racing_sigterm])
