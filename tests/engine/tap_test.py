"""`conveyor tap` and GET /api/v1/tap: live records leaving a stage, refused
unless the spec allows it, never holding the pipeline back (misses are
counted and told), and ending when the client goes or the engine stops."""

import json
import os
import re
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

ENGINE_TAP = "  http: { tap: true }\n"

BELTS = """
    source: { plugin: sim_speed, lines: 3, rate: 600, seed: 4, anomaly_rate: 0.05 }
    transforms:
      - { plugin: anomaly, field: speed_ms, key: line_id, window: 30, threshold: 3.0 }
      - { name: flagged, plugin: anomaly, field: speed_ms, key: line_id, window: 30,
          threshold: 3.0, mode: drop_normal }
    sink: { name: out, plugin: null }
"""


def tap(args, timeout=60):
    return ec.conveyor(["tap"] + list(args), timeout=timeout)


def stage_of(e, pipeline, stage):
    status, body = ct.http_get(e.url + "/api/v1/pipelines")
    ct.check(status == 200, "/api/v1/pipelines answered %d" % status)
    doc = json.loads(body)
    for p in doc["pipelines"]:
        if p["name"] == pipeline:
            for s in p["stages"]:
                if s["name"] == stage:
                    return s
    raise ct.TestFailure("no stage %s/%s in the API" % (pipeline, stage))


def test_refused_unless_allowed():
    """Without engine.http.tap: true the API says 403 and why, and the
    command exits 1 repeating it; the JSON API says tap: false."""
    ec.require_plugins()
    e = ct.Engine(ec.spec({"belts": BELTS})).wait_ready()
    status, body = ct.http_get(e.url + "/api/v1/tap?pipeline=belts")
    ct.check(status == 403, "tap without the option answered %d" % status)
    ct.check("engine.http.tap: true" in body, "the refusal says how to allow it: %r" % body)
    rc, out, err = tap(["--url", e.url, "belts", "--limit", "1"])
    ct.check(rc == 1, "refused tap exited %d" % rc)
    ct.check("engine.http.tap: true" in err and "403" in err, "stderr: %r" % err)
    ct.check(out == "", "records printed although refused: %r" % out[:200])
    ct.check(json.loads(ct.http_get(e.url + "/api/v1/pipelines")[1])["tap"] is False,
             "the API says tap allowed")
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_spec_option_is_checked():
    rc, out, err = ec.conveyor(["validate", ct.write_file(
        os.path.join(ct.tmpdir(), "bad.yaml"),
        ec.spec({"belts": BELTS}, engine="  http: { tap: maybe }\n"))])
    ct.check(rc == 2 and re.search(r"bad\.yaml:\d+:\d+: error: .*tap", err),
             "engine.http.tap: maybe: rc %d, %r" % (rc, err))


def test_tap_sink_stage_and_formats():
    """The default is what reaches the sink; a named stage gives what leaves
    it; --limit ends the tap; --format influx gives line protocol."""
    ec.require_plugins()
    e = ct.Engine(ec.spec({"belts": BELTS}, engine=ENGINE_TAP)).wait_ready()
    ct.check(json.loads(ct.http_get(e.url + "/api/v1/pipelines")[1])["tap"] is True,
             "the API says tap not allowed")

    # Default: records reaching the sink, here only those flagged.
    rc, out, err = tap(["--url", e.url, "belts", "--limit", "5"])
    ct.check(rc == 0, "tap exited %d: %s" % (rc, err))
    recs = [json.loads(l) for l in out.splitlines()]
    ct.check(len(recs) == 5, "--limit 5 printed %d records" % len(recs))
    for r in recs:
        ct.check(r["measurement"] == "conveyor_speed" and r["fields"]["anomaly"] is True,
                 "the sink only gets flagged records: %r" % r)
    ct.check("5 records from belts" in err and "limit reached" in err, "stderr: %r" % err)

    # The source's records: not yet through the anomaly transform.
    rc, out, err = tap(["--url", e.url, "belts", "sim_speed", "--limit", "20"])
    ct.check(rc == 0, "tap sim_speed exited %d: %s" % (rc, err))
    recs = [json.loads(l) for l in out.splitlines()]
    ct.check(len(recs) == 20 and all("zscore" not in r["fields"] for r in recs),
             "source records carry no anomaly fields: %r" % recs[:2])
    seqs = {}
    for r in recs:
        seqs.setdefault(r["tags"]["line_id"], []).append(r["fields"]["seq"])
    for line, s in seqs.items():
        ct.check(s == list(range(s[0], s[0] + len(s))), "%s: seq not consecutive: %r" % (line, s))

    # A transform in mark mode: every record, with its fields added.
    rc, out, err = tap(["--url", e.url, "belts", "anomaly", "--limit", "20", "--format",
                        "influx"])
    ct.check(rc == 0, "tap anomaly exited %d: %s" % (rc, err))
    lines = out.splitlines()
    ct.check(len(lines) == 20, "20 lines of line protocol, got %d" % len(lines))
    lp = re.compile(r"^conveyor_speed,line_id=line-\d+ speed_ms=[-0-9.e+]+,seq=\d+i,"
                    r"mean=[-0-9.e+]+,stddev=[-0-9.e+]+,zscore=[-0-9.e+]+,anomaly=[tf] \d+$")
    for l in lines:
        ct.check(lp.match(l), "not line protocol of an anomaly record: %r" % l)
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_unknown_pipeline_or_stage():
    ec.require_plugins()
    e = ct.Engine(ec.spec({"belts": BELTS}, engine=ENGINE_TAP)).wait_ready()
    rc, out, err = tap(["--url", e.url, "nope"])
    ct.check(rc == 2 and "no pipeline" in err and "belts" in err, "rc %d, %r" % (rc, err))
    rc, out, err = tap(["--url", e.url, "belts", "nope"])
    ct.check(rc == 2 and "no stage" in err and "flagged" in err, "rc %d, %r" % (rc, err))
    status, body = ct.http_get(e.url + "/api/v1/tap")
    ct.check(status == 400 and "pipeline" in body, "no pipeline: %d %r" % (status, body))
    status, body = ct.http_get(e.url + "/api/v1/tap?pipeline=belts&format=xml")
    ct.check(status == 400, "format=xml answered %d" % status)
    status, body = ct.http_get(e.url + "/api/v1/tap?pipeline=belts&limit=-3")
    ct.check(status == 400, "limit=-3 answered %d" % status)
    rc, out, err = tap(["--url", "http://127.0.0.1:%d" % ct.free_port(), "belts"])
    ct.check(rc == 1 and "127.0.0.1" in err, "unreachable: rc %d, %r" % (rc, err))
    ct.check(e.stop() == 0, "engine did not stop cleanly")


class SlowReader:
    """A raw GET of the tap that reads its answer slowly for a while, then
    at full speed, in a thread."""

    def __init__(self, port, query, chunk=4096, pause=0.05, slow_for=2.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(("GET /api/v1/tap?%s HTTP/1.1\r\nHost: x\r\n"
                           "Connection: close\r\n\r\n" % query).encode())
        self.data = bytearray()
        self.chunk, self.pause = chunk, pause
        self.slow_until = time.monotonic() + slow_for
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                b = self.sock.recv(self.chunk)
                if not b:
                    break
                self.data += b
                if time.monotonic() < self.slow_until:
                    time.sleep(self.pause)  # the reader's own pace: a slow client
        except OSError:
            pass
        finally:
            self.done.set()

    def lines(self):
        """The body's lines (chunked framing removed)."""
        raw = bytes(self.data)
        head, _, body = raw.partition(b"\r\n\r\n")
        out = bytearray()
        while body:
            size_line, _, rest = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out += rest[:size]
            body = rest[size + 2:]
        return head.decode(), out.decode().splitlines()


def test_slow_tap_misses_and_never_blocks():
    """A fast finite pipeline with a tap whose reader is slow: the
    pipeline still delivers every record and ends by itself; the tap's
    last line counts what it missed, and `records` lines came before it."""
    ec.require_plugins()
    n = 600000
    # 200k records/s for 3 s: ten times the tap's rate cap, far more than
    # the reader takes.
    e = ct.Engine(ec.spec({"fast": """
    source: { plugin: sim_speed, lines: 4, rate: 200000, count: %d, seed: 9 }
    transforms:
      - { plugin: anomaly, field: speed_ms, key: line_id, window: 30, threshold: 3.0 }
    sink: { plugin: null }
""" % n}, engine=ENGINE_TAP + "  summary_interval: 1h\n"), args=["--duration", "600"])
    # The engine may finish fast: attach as soon as it listens.
    ct.wait_until(lambda: ct.http_get(e.url + "/healthz", timeout=1)[0] == 200, timeout=30,
                  what="the engine to listen")
    r = SlowReader(e.port, "pipeline=fast&stage=anomaly")
    rc = e.wait_exit(300)
    ct.check(rc == 0, "the pipeline did not end cleanly with a slow tap: %d\n%s" %
             (rc, e.stderr_text()[-2000:]))
    ct.check(r.done.wait(60), "the tap's answer did not end with the engine")
    head, lines = r.lines()
    ct.check(" 200 " in head.splitlines()[0], "tap answer: %r" % head)
    status = [json.loads(l) for l in lines if l.startswith('{"tap":')]
    records = [l for l in lines if not l.startswith('{"tap":')]
    ct.check(status, "no status line in the tap's answer")
    last = status[-1]["tap"]
    ct.check(last.get("end") in ("engine stopping", "pipeline stopped"),
             "the last status line says how the tap ended: %r" % last)
    ct.check(last["records"] == len(records), "status says %d records, %d came" %
             (last["records"], len(records)))
    ct.check(last["missed"] > 0, "a slow reader of a flat-out pipeline missed nothing: %r" %
             last)
    ct.check(last["records"] + last["missed"] <= n, "more records than the source made: %r" %
             last)
    for l in records[:50]:
        ct.check(json.loads(l)["measurement"] == "conveyor_speed", "bad record line %r" % l)
    print("slow tap: %d records, %d missed of %d" % (last["records"], last["missed"], n))


def test_client_gone_stops_sampling():
    """A tap whose client disconnects is detached (the API's `taps` goes
    back to 0), also while the stage sees no records."""
    ec.require_plugins()
    e = ct.Engine(ec.spec({"belts": BELTS, "idle": """
    source: { plugin: sim_speed, lines: 1, rate: 1, seed: 1 }
    transforms:
      - { name: never, plugin: anomaly, field: speed_ms, key: line_id, mode: drop_normal,
          threshold: 1000 }
    sink: { name: out, plugin: null }
"""}, engine=ENGINE_TAP)).wait_ready()
    for pipeline, stage in (("belts", "anomaly"), ("idle", "out")):
        s = socket.create_connection(("127.0.0.1", e.port), timeout=10)
        s.sendall(("GET /api/v1/tap?pipeline=%s&stage=%s HTTP/1.1\r\nHost: x\r\n\r\n" %
                   (pipeline, stage)).encode())
        ct.check(s.recv(100).startswith(b"HTTP/1.1 200"), "tap %s/%s not 200" %
                 (pipeline, stage))
        ct.wait_until(lambda: stage_of(e, pipeline, stage)["taps"] == 1, timeout=10,
                      what="the API to count the tap on %s/%s" % (pipeline, stage))
        s.close()
        ct.wait_until(lambda: stage_of(e, pipeline, stage)["taps"] == 0, timeout=20,
                      what="the tap on %s/%s to go with its client" % (pipeline, stage))
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def _tap_running(e, stage):
    """A `conveyor tap` process on belts/stage, once it printed records:
    (process, stdout path, stderr path)."""
    d = ct.tmpdir()
    out_path, err_path = os.path.join(d, "out"), os.path.join(d, "err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = ct.start_process([ct.BIN, "tap", "--url", e.url, "belts", stage], stdout=out,
                             stderr=err)
    ct.wait_until(lambda: os.path.getsize(out_path) > 1000, timeout=20,
                  what="the tap to print records")
    return p, out_path, err_path


def test_engine_stop_ends_the_tap():
    """SIGTERM: the tap's client gets the last line, says so, exits 0."""
    ec.require_plugins()
    e = ct.Engine(ec.spec({"belts": BELTS}, engine=ENGINE_TAP)).wait_ready()
    p, _, err_path = _tap_running(e, "anomaly")
    ct.check(e.stop() == 0, "engine did not stop cleanly")
    rc = p.wait(timeout=30)
    text = open(err_path).read()
    ct.check(rc == 0, "tap exited %d when the engine stopped: %s" % (rc, text))
    ct.check("engine stopping" in text, "the client says the engine stopped: %r" % text)


def test_interrupt_prints_a_summary():
    ec.require_plugins()
    e = ct.Engine(ec.spec({"belts": BELTS}, engine=ENGINE_TAP)).wait_ready()
    p, out_path, err_path = _tap_running(e, "sim_speed")
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    text = open(err_path).read()
    n = len(open(out_path).read().splitlines())
    ct.check(rc == 0, "tap exited %d on Ctrl-C: %s" % (rc, text))
    ct.check(re.search(r"%d records from belts/sim_speed \(interrupted\)" % n, text),
             "summary on stderr (%d records printed): %r" % (n, text))
    ct.wait_until(lambda: stage_of(e, "belts", "sim_speed")["taps"] == 0, timeout=20,
                  what="the tap to be detached after Ctrl-C")
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_too_many_taps():
    """Taps are bounded: past 16 open at once, 503 with the reason."""
    ec.require_plugins()
    e = ct.Engine(ec.spec({"belts": BELTS}, engine=ENGINE_TAP)).wait_ready()
    socks = []
    try:
        for i in range(16):
            s = socket.create_connection(("127.0.0.1", e.port), timeout=10)
            s.sendall(b"GET /api/v1/tap?pipeline=belts&stage=flagged HTTP/1.1\r\nHost: x\r\n\r\n")
            ct.check(s.recv(100).startswith(b"HTTP/1.1 200"), "tap %d not 200" % i)
            socks.append(s)
        rc, out, err = tap(["--url", e.url, "belts", "--limit", "1"])
        ct.check(rc == 1 and "503" in err and "too many taps" in err, "17th tap: rc %d %r" %
                 (rc, err))
        status, _ = ct.http_get(e.url + "/healthz")
        ct.check(status == 200, "/healthz with 16 taps open: %d" % status)
    finally:
        for s in socks:
            s.close()
    ct.check(e.stop() == 0, "engine did not stop cleanly")


if __name__ == "__main__":
    ct.main([test_refused_unless_allowed, test_spec_option_is_checked,
             test_tap_sink_stage_and_formats, test_unknown_pipeline_or_stage,
             test_slow_tap_misses_and_never_blocks, test_client_gone_stops_sampling,
             test_engine_stop_ends_the_tap, test_interrupt_prints_a_summary,
             test_too_many_taps])
