"""The console at GET /, in a real browser: headless Chromium (Debian's
`chromium`) loads it against a running engine, driven over the DevTools
protocol on a pipe (--remote-debugging-pipe: no extra Python package).
The test reads the rendered page (stage names, non-zero rates, belt speeds
and anomalies from a tap), requires no error in the JavaScript console, and
keeps a screenshot in the build tree (test-artifacts/console*.png)."""

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

ARTIFACTS = os.path.join(ct.BUILD_DIR, "test-artifacts")

BELTS = 4
PIPELINES = {"producer": """
    source: { plugin: sim_speed, lines: %d, rate: 800, seed: 42, anomaly_rate: 0.02 }
    sink: { name: out, plugin: null }
""" % BELTS, "processor": """
    source: { plugin: sim_speed, lines: %d, rate: 800, seed: 43, anomaly_rate: 0.02 }
    transforms:
      - { plugin: anomaly, field: speed_ms, key: line_id, window: 60, threshold: 4.0 }
    sink: { plugin: null }
""" % BELTS}
SPEC = ec.spec(PIPELINES, engine="  http: { tap: true }\n")


def chromium_binary():
    # The real binary: Debian's launcher script only adds flags we set anyway.
    for path in ("/usr/lib/chromium/chromium", ec.which("chromium")):
        if path and os.path.exists(path):
            return path
    raise ct.TestFailure("chromium is not installed (scripts/install-deps.sh test)")


class Chrome:
    """Headless Chromium driven over the DevTools protocol on fds 3 and 4."""

    def __init__(self, width=1400, height=1000):
        self.profile = ct.tmpdir("conveyor-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds():
            # Into 3 (commands) and 4 (answers), by way of high numbers so
            # that neither overwrites the other.
            a = os.dup2(to_chrome_r, 100)
            b = os.dup2(from_chrome_w, 101)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
                "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height),
                "--remote-debugging-pipe", "about:blank"]
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, pass_fds=(3, 4),
                                     preexec_fn=fds)
        # Killed at exit with the test's other processes (start_process has
        # no hook for the descriptors).
        ct._processes.append(self.proc)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._id = 0
        self._lock = threading.Lock()
        self._answers = {}
        self._cv = threading.Condition()
        self.events = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = None
        self.width, self.height = width, height

    def _read(self):
        buf = b""
        while True:
            try:
                data = os.read(self._r, 1 << 20)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cv:
                    if "id" in msg:
                        self._answers[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def call(self, method, params=None, session=True, timeout=60):
        with self._lock:
            self._id += 1
            mid = self._id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cv:
            while mid not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise ct.TestFailure("chromium did not answer %s (exit %s)" %
                                         (method, self.proc.poll()))
                self._cv.wait(min(left, 1.0))
            ans = self._answers.pop(mid)
        if "error" in ans:
            raise ct.TestFailure("chromium: %s: %s" % (method, ans["error"]))
        return ans.get("result", {})

    def open(self, url):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for m in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(m)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1,
                   "mobile": False})
        self.call("Page.navigate", {"url": url})

    def eval(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise ct.TestFailure("evaluating %r: %s" % (expression[:80], r["exceptionDetails"]))
        return r["result"].get("value")

    def errors(self):
        """Errors the page's JavaScript console saw: exceptions, console.error
        calls, and the browser's own error entries (failed requests...)."""
        out = []
        with self._cv:
            events = list(self.events)
        for e in events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append("exception: %s" % json.dumps(p.get("exceptionDetails"))[:500])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.%s: %s" % (p["type"], json.dumps(p.get("args"))[:500]))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: %s %s" % (p["entry"].get("text"), p["entry"].get("url", "")))
        return out

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        self._reader.join(5)
        os.close(self._r)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


STAGES_JS = """JSON.stringify([...document.querySelectorAll('g.stage')].map(g => ({
  pipeline: g.dataset.pipeline, stage: g.dataset.stage,
  out: g.dataset.out === '' ? null : Number(g.dataset.out),
  text: g.textContent})))"""

BELTS_JS = """JSON.stringify({
  belts: [...document.querySelectorAll('[data-belt]')].map(e => e.dataset.belt),
  anomalies: document.querySelectorAll('tr.anomaly').length,
  hidden: document.getElementById('belts').hidden,
  text: document.getElementById('belts').textContent})"""

# Pixels of a chart line's colour on the first throughput canvas.
CHART_JS = """(() => {
  const cv = document.querySelector('[data-pipeline="%s"] canvas');
  const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i] - 0x3f) < 40 && Math.abs(d[i+1] - 0xcf) < 40 && Math.abs(d[i+2] - 0x8e) < 40 && d[i+3] > 200) n++;
  return n; })()"""


def api(e):
    return json.loads(ct.http_get(e.url + "/api/v1/pipelines")[1])


def test_console_renders_pipelines_rates_and_anomalies():
    ec.require_plugins()
    e = ct.Engine(SPEC).wait_ready()
    chrome = Chrome()
    shot = os.path.join(ARTIFACTS, "console.png")
    try:
        chrome.open(e.url + "/")
        stages = []

        def live():
            stages[:] = json.loads(chrome.eval(STAGES_JS) or "[]")
            srcs = [s for s in stages if s["stage"] == "sim_speed"]
            return len(srcs) == 2 and all((s["out"] or 0) > 0 for s in srcs)
        ct.wait_until(live, timeout=60, interval=0.25,
                      what="the console to show both sources with a non-zero rate")
        want = [(p["name"], s["name"]) for p in api(e)["pipelines"] for s in p["stages"]]
        got = [(s["pipeline"], s["stage"]) for s in stages]
        ct.check(got == want, "the graphs show %r, the engine has %r" % (got, want))
        for s in stages:
            ct.check(s["stage"] in s["text"], "stage %s not written in its node: %r" %
                     (s["stage"], s["text"]))
        anomaly = [s for s in stages if s["stage"] == "anomaly"][0]
        ct.check("tapped" in anomaly["text"], "the tapped stage is not marked: %r" %
                 anomaly["text"])

        belts = {}

        def belts_and_anomalies():
            belts.update(json.loads(chrome.eval(BELTS_JS)))
            return len(belts["belts"]) == BELTS and belts["anomalies"] > 0
        ct.wait_until(belts_and_anomalies, timeout=90, interval=0.5,
                      what="%d belt speeds and an anomaly from the tap" % BELTS)
        ct.check(belts["belts"] == ["line-%d" % i for i in range(1, BELTS + 1)],
                 "belts: %r" % belts["belts"])
        ct.check("processor/anomaly" in belts["text"], "the belts panel names its tap: %r" %
                 belts["text"][:200])
        # The throughput chart has drawn its delivered line.
        ct.wait_until(lambda: chrome.eval(CHART_JS % "processor") > 20, timeout=30,
                      what="the processor's throughput chart to draw a line")
        chrome.screenshot(shot)
        errors = chrome.errors()
        ct.check(not errors, "JavaScript console errors:\n%s" % "\n".join(errors))
        print("screenshot: %s" % shot)
    finally:
        chrome.close()
    # The page's tap went with the browser.
    ct.wait_until(lambda: all(s["taps"] == 0 for p in api(e)["pipelines"]
                              for s in p["stages"]),
                  timeout=20, what="the console's tap to close with the page")
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_console_without_taps_says_how():
    """Taps off: the console draws the pipelines and says what to set for
    belt speeds, without trying a tap (no failed request, no error)."""
    ec.require_plugins()
    e = ct.Engine(ec.spec(PIPELINES)).wait_ready()
    chrome = Chrome()
    try:
        chrome.open(e.url + "/")
        info = {}

        def note():
            info.update(json.loads(chrome.eval(BELTS_JS)))
            return not info["hidden"] and "engine.http.tap: true" in info["text"]
        ct.wait_until(note, timeout=60, interval=0.25,
                      what="the belts panel to say how to allow taps")
        ct.check(json.loads(chrome.eval(STAGES_JS)), "no stages drawn")
        chrome.screenshot(os.path.join(ARTIFACTS, "console-no-tap.png"))
        errors = chrome.errors()
        ct.check(not errors, "JavaScript console errors:\n%s" % "\n".join(errors))
    finally:
        chrome.close()
    ct.check(all(s["taps"] == 0 for p in api(e)["pipelines"] for s in p["stages"]),
             "a tap was opened although taps are off")
    ct.check(e.stop() == 0, "engine did not stop cleanly")


if __name__ == "__main__":
    ct.main([test_console_renders_pipelines_rates_and_anomalies,
             test_console_without_taps_says_how])
