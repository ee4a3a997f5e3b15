"""Shared helpers of the engine's integration tests (tests/engine/*_test.py).

Standard library only; builds on tests/lib/conveyor_test.py."""

import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import conveyor_test as ct  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.join(HERE, "specs")
CORE_PLUGINS = {
    "sim_speed": "source",
    "anomaly": "transform",
    "console": "sink",
    "file": "sink",
    "null": "sink",
}
STAGE_COUNTERS = [
    "conveyor_stage_records_in_total",
    "conveyor_stage_records_out_total",
    "conveyor_stage_records_dropped_total",
    "conveyor_stage_errors_total",
    "conveyor_stage_batches_total",
]
STAGE_LABELS = ("pipeline", "stage", "plugin", "kind")


def plugin_env(extra=None):
    """Environment for a `conveyor` command that finds the built plugins."""
    env = {"CONVEYOR_PLUGIN_PATH": ct.PLUGIN_DIR}
    if extra:
        env.update(extra)
    return env


def conveyor(args, env=None, timeout=60, input=None):
    """Runs `conveyor ARGS` to completion: (returncode, stdout, stderr)."""
    return ct.run([ct.BIN] + list(args), env=plugin_env(env), timeout=timeout, input=input)


def require_plugins():
    """Fails with a clear message when a core plugin is not built."""
    missing = [p for p in CORE_PLUGINS
               if not os.path.exists(os.path.join(ct.PLUGIN_DIR, p + ".so"))]
    ct.check(not missing, "core plugins not built in %s: %s" % (ct.PLUGIN_DIR, missing))


def spec(pipelines, engine=None):
    """A spec as YAML text. `pipelines` maps a name to its YAML body (text,
    indented by the caller at 4 spaces); `engine` is YAML text at 2 spaces."""
    out = ["version: 1"]
    if engine:
        out.append("engine:")
        out.append(engine.rstrip("\n"))
    out.append("pipelines:")
    for name, body in pipelines.items():
        out.append("  %s:" % name)
        out.append(body.rstrip("\n"))
    return "\n".join(out) + "\n"


def read_jsonl(path):
    """The records of a JSON-lines file, parsed; fails on a bad line."""
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                out.append(json.loads(raw))
            except ValueError as e:
                raise ct.TestFailure("%s:%d: not a JSON record (%s): %r" % (path, n, e, raw[:200]))
    return out


def check_sequences(records, lines=None, first_seq=1):
    """Checks the sim_speed contract on a list of records in file order:
    every (line_id, seq) once, seq consecutive per line from first_seq.
    Returns {line_id: count}."""
    per_line = {}
    for i, r in enumerate(records):
        ct.check(r.get("measurement") == "conveyor_speed", "record %d: measurement %r" %
                 (i, r.get("measurement")))
        line = r.get("tags", {}).get("line_id")
        seq = r.get("fields", {}).get("seq")
        ct.check(line is not None and isinstance(seq, int),
                 "record %d lacks tag line_id or integer field seq: %r" % (i, r))
        expect = per_line.get(line, first_seq - 1) + 1
        ct.check(seq == expect, "record %d: line %s seq %d, expected %d (lost, duplicated or "
                 "reordered records)" % (i, line, seq, expect))
        per_line[line] = seq
    if lines is not None:
        ct.check(len(per_line) == lines, "expected %d lines (belts), got %d: %s" %
                 (lines, len(per_line), sorted(per_line)))
    return {k: v - first_seq + 1 for k, v in per_line.items()}


def rss_kib(pid):
    """VmRSS of a process in KiB, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def summaries(log_records, pipeline):
    """The rate summary log records of a pipeline: a list of dicts with
    in, delivered, dropped, errors (the totals of each line)."""
    pat = re.compile(r"totals: (\d+) in, (\d+) delivered, (\d+) dropped, (\d+) errors")
    out = []
    for r in log_records:
        if r.get("pipeline") != pipeline or not str(r.get("message", "")).startswith("rate:"):
            continue
        m = pat.search(r["message"])
        if m:
            out.append(dict(zip(("in", "delivered", "dropped", "errors"),
                                map(int, m.groups()))))
    return out


def series(metrics, name, **labels):
    """Every (labels dict, value) of metric `name` whose labels include `labels`."""
    out = []
    for (n, ls), v in metrics.items():
        if n != name:
            continue
        d = dict(ls)
        if all(d.get(k) == str(x) for k, x in labels.items()):
            out.append((d, v))
    return out


def one(metrics, name, **labels):
    """The value of the single series of `name` matching labels; fails unless
    exactly one matches."""
    found = series(metrics, name, **labels)
    ct.check(len(found) == 1, "expected one series %s%s, found %d: %s" %
             (name, labels, len(found), found[:5]))
    return found[0][1]


def which(tool):
    path = shutil.which(tool)
    for d in ("/usr/bin", "/usr/local/bin", "/usr/sbin"):
        if not path and os.path.exists(os.path.join(d, tool)):
            path = os.path.join(d, tool)
    return path
