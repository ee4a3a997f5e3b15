"""What a hot reload costs in delivery, at 10k records/s.

The sink is the file plugin; a thread stats the output file every 0.5 ms
and notes each time it grew, so a gap in delivery is the time between two
growths. For each reload (SIGHUP), the longest gap overlapping the span in
which the reload can matter is measured; the same span with no reload gives
the baseline (the pipeline's own batching, and the machine's noise).

- transform swap: sim_speed (10k/s) -> anomaly -> file, the anomaly's
  threshold changed: the transforms are swapped between two batches, the
  source and sink never stop. Target: longest gap <= 50 ms.
- Kafka source change: a producer process (sim_speed 10k/s -> kafka_out)
  and a processor (kafka_in -> anomaly -> file) on the mock cluster; the
  consumer's session.timeout.ms changes, so the old consumer drains, commits
  and leaves, and the new one joins the group. Target: longest gap no longer
  than the group's join time, as a fresh consumer sees it (subscribe ->
  assignment, measured in the same run: the broker's initial rebalance
  delay, 3 s in the mock as in Kafka). Also reported: the successor's own
  join and what the reload adds to it (drain, commit, leave, first fetch).
"""

import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from statistics import median_high

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from suite_kafka import _Mock  # noqa: E402

TITLE = "longest delivery gap a reload causes at 10k records/s"

RATE = 10000
SWAP_TARGET_MS = 50.0
SWAP_WINDOW_S = 1.0     # a reload every second
SWAP_SETTLE_S = 0.005   # the worker's next turn after the reload applied
RESTART_WINDOW_S = 20.0  # drain + leave + join + first fetch
FAST_GROUP = {"session.timeout.ms": "3000", "heartbeat.interval.ms": "300"}


class _GrowthWatch(threading.Thread):
    """Notes the monotonic times at which a file grew."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.times = []
        self._halt = threading.Event()

    def run(self):
        last = -1
        while not self._halt.is_set():
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                size = -1
            if size != last and size > 0:
                self.times.append(time.monotonic())
            last = size
            time.sleep(0.0005)  # sampling interval, not synchronisation

    def stop(self):
        self._halt.set()
        self.join(5)

    def longest_gap(self, start, window):
        """The longest time without growth that overlaps [start,
        start+window] (the gap under way at `start` included)."""
        t = list(self.times)
        best = 0.0
        for a, b in zip(t, t[1:]):
            if b >= start and a <= start + window:
                best = max(best, b - a)
        return best


class _Engine:
    def __init__(self, ctx, name, spec_text, env=None):
        self.spec = os.path.join(ctx.workdir, "reload-%s.yaml" % name)
        self.log_path = os.path.join(ctx.workdir, "reload-%s.log" % name)
        with open(self.spec, "w") as f:
            f.write(spec_text)
        full_env = dict(os.environ, CONVEYOR_PLUGIN_PATH=ctx.plugin_dir,
                        CONVEYOR_LOG_FORMAT="json")
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([ctx.conveyor, "run", self.spec], env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=self._log)

    def records(self):
        out = []
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def messages(self, prefix):
        return [r for r in self.records() if r.get("message", "").startswith(prefix)]

    def wait(self, fn, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("conveyor exited %s waiting for %s" % (self.proc.returncode, what))
            v = fn()
            if v:
                return v
            time.sleep(0.02)  # polling interval
        raise RuntimeError("timed out waiting for %s" % what)

    def reload(self, text, n):
        """Writes the spec, sends SIGHUP; returns (the monotonic time of the
        signal, that of the engine's "reloaded" line, the line)."""
        with open(self.spec, "w") as f:
            f.write(text)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGHUP)
        self.wait(lambda: len(self.messages("reloaded ")) >= n, 60, "reload %d" % n)
        rec = self.messages("reloaded ")[n - 1]
        # The log says wall time (ms); the watch keeps monotonic time.
        applied = _log_time(rec) - (time.time() - time.monotonic())
        return t0, max(applied, t0), rec["message"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _log_time(rec):
    return datetime.datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


SWAP_SPEC = """version: 1
engine:
  http: {{ listen: "" }}
  shutdown_timeout: 10s
pipelines:
  p:
    source: {{ plugin: sim_speed, lines: 5, rate: {rate}, seed: 7 }}
    transforms:
      - {{ plugin: anomaly, field: speed_ms, key: line_id, window: 60, threshold: {threshold} }}
    sink: {{ plugin: file, path: "{out}", format: json }}
"""


def _swap(ctx):
    rounds = 2 if ctx.quick else 10
    out = os.path.join(ctx.workdir, "reload-swap.jsonl")
    e = _Engine(ctx, "swap", SWAP_SPEC.format(rate=RATE, threshold=3.0, out=out))
    watch = _GrowthWatch(out)
    watch.start()
    gaps, quiet = [], []
    try:
        e.wait(lambda: len(watch.times) > 20, 30, "delivery")
        for i in range(1, rounds + 1):
            t0, applied, line = e.reload(
                SWAP_SPEC.format(rate=RATE, threshold=3.0 + 0.1 * i, out=out), i)
            if "swapped: p" not in line:
                raise RuntimeError("reload %d was not a swap: %s" % (i, line))
            # The worker installs the new transforms at its next turn after
            # the reload is applied: the gaps from the signal to just after
            # that are the reload's. The same span with no reload, a
            # moment later, is the baseline.
            width = applied - t0 + SWAP_SETTLE_S
            time.sleep(SWAP_WINDOW_S)  # lets both windows pass
            gaps.append(watch.longest_gap(t0, width))
            q0 = t0 + SWAP_WINDOW_S / 2
            quiet.append(watch.longest_gap(q0, width))
    finally:
        e.stop()  # first: nothing below may leave the engine running
        if watch.is_alive():
            watch.stop()
    if e.proc.returncode != 0:
        raise RuntimeError("conveyor exited %d" % e.proc.returncode)
    worst, base = max(gaps) * 1e3, max(quiet) * 1e3
    return [
        {"benchmark": "reload: transform swap", "metric": "longest delivery gap",
         "value": worst, "unit": "ms", "baseline": base, "ratio": worst / base if base else None,
         "target": "<= %.0f ms" % SWAP_TARGET_MS, "ok": worst <= SWAP_TARGET_MS,
         "rounds": [g * 1e3 for g in gaps], "baseline_rounds": [g * 1e3 for g in quiet]},
        {"benchmark": "reload: transform swap", "metric": "median delivery gap",
         "value": median_high(gaps) * 1e3, "unit": "ms",
         "baseline": median_high(quiet) * 1e3, "ratio": None, "target": None, "ok": None},
    ]


PRODUCER_SPEC = """version: 1
engine:
  http: {{ listen: "" }}
pipelines:
  producer:
    source: {{ plugin: sim_speed, lines: 5, rate: {rate}, seed: 3 }}
    sink: {{ plugin: kafka_out, brokers: "{brokers}", topic: speed, key: line_id }}
"""

PROCESSOR_SPEC = """version: 1
engine:
  http: {{ listen: "" }}
  shutdown_timeout: 10s
pipelines:
  processor:
    source:
      plugin: kafka_in
      brokers: "{brokers}"
      topic: speed
      group: bench-reload
      properties: {{ session.timeout.ms: "{session}", heartbeat.interval.ms: "300" }}
    transforms:
      - {{ plugin: anomaly, field: speed_ms, key: line_id, window: 60, threshold: 3.0 }}
    sink: {{ plugin: file, path: "{out}", format: json }}
"""


def _joins(e):
    """(start time, assignment time) of each consumer the processor ran,
    from its log: "pipeline started", then kafka_in's first "assigned"."""
    recs = e.records()
    out = []
    for i, r in enumerate(recs):
        if r.get("message", "").startswith("pipeline started"):
            for r2 in recs[i + 1:]:
                if "assigned" in r2.get("message", ""):
                    out.append((_log_time(r), _log_time(r2)))
                    break
    return out


def _restart(ctx):
    rounds = 1 if ctx.quick else 3
    binary = os.path.join(ctx.build_dir, "tests", "kafka", "mock_cluster")
    if not os.path.exists(binary) or not os.path.exists(
            os.path.join(ctx.plugin_dir, "kafka_in.so")):
        return [{"benchmark": "reload: Kafka source change", "metric": "skipped (no Kafka)",
                 "value": None, "unit": "", "baseline": None, "ratio": None, "target": None,
                 "ok": None}]
    # A folder of its own: the Kafka suite leaves its mock's bootstrap file
    # in the shared one.
    own = types.SimpleNamespace(build_dir=ctx.build_dir,
                                workdir=tempfile.mkdtemp(dir=ctx.workdir, prefix="reload-"))
    mc = _Mock(own, {"speed": 8})
    out = os.path.join(ctx.workdir, "reload-restart.jsonl")
    proc = prod = None
    watch = _GrowthWatch(out)
    gaps, quiet = [], []
    try:
        session = [3000]

        def spec():
            return PROCESSOR_SPEC.format(brokers=mc.bootstraps, out=out, session=session[0])
        proc = _Engine(ctx, "processor", spec())
        proc.wait(lambda: _joins(proc), 60, "the first assignment")
        prod = _Engine(ctx, "producer", PRODUCER_SPEC.format(rate=RATE, brokers=mc.bootstraps))
        watch.start()
        proc.wait(lambda: len(watch.times) > 20, 60, "delivery")
        time.sleep(2)  # steady state
        for i in range(1, rounds + 1):
            q0 = time.monotonic()
            time.sleep(3)  # a quiet stretch: the baseline
            quiet.append(watch.longest_gap(q0, 3))
            # Another session timeout each time, back and forth, so every
            # round joins the same way.
            session[0] = 3500 if session[0] == 3000 else 3000
            t0, _, line = proc.reload(spec(), i)
            if "restarted: processor" not in line:
                raise RuntimeError("reload %d did not restart the processor: %s" % (i, line))
            proc.wait(lambda: len(_joins(proc)) > i, 60, "the new consumer's assignment")
            joined = time.monotonic()
            proc.wait(lambda: watch.times and watch.times[-1] > joined, 60, "delivery again")
            time.sleep(1)  # let the window close after delivery resumed
            gaps.append(watch.longest_gap(t0, min(RESTART_WINDOW_S, time.monotonic() - t0)))
        joins = _joins(proc)
    finally:
        for e in (prod, proc):  # first: nothing below may leave them running
            if e:
                e.stop()
        mc.stop()
        if watch.is_alive():
            watch.stop()
    first_join = joins[0][1] - joins[0][0]
    rejoins = [b - a for a, b in joins[1:]]
    # What the reload adds to the successor's own join: drain, commit,
    # leave, first fetch and write.
    extra = [g - r for g, r in zip(gaps, rejoins)]
    worst = max(gaps)
    name = "reload: Kafka source change"
    return [
        {"benchmark": name, "metric": "longest delivery gap",
         "value": worst * 1e3, "unit": "ms", "baseline": max(quiet) * 1e3, "ratio": None,
         "target": "<= group join", "ok": worst <= first_join,
         "rounds": [g * 1e3 for g in gaps], "baseline_rounds": [g * 1e3 for g in quiet]},
        {"benchmark": name, "metric": "group join (a fresh consumer)",
         "value": first_join * 1e3, "unit": "ms", "baseline": None, "ratio": None,
         "target": None, "ok": None},
        {"benchmark": name, "metric": "successor's join (start -> assigned)",
         "value": max(rejoins) * 1e3, "unit": "ms", "baseline": None, "ratio": None,
         "target": None, "ok": None, "rounds": [r * 1e3 for r in rejoins]},
        {"benchmark": name, "metric": "gap beyond the successor's join",
         "value": max(extra) * 1e3, "unit": "ms", "baseline": None, "ratio": None,
         "target": None, "ok": None, "rounds": [x * 1e3 for x in extra]},
    ]


def run(ctx):
    ctx.progress("reload: transform swaps at %d records/s" % RATE)
    rows = _swap(ctx)
    ctx.progress("reload: Kafka source changes at %d records/s" % RATE)
    rows += _restart(ctx)
    return rows
