"""Promtail's pipeline_stages (from the rendered promtail-config ConfigMap)
applied to real engine log lines as the two kinds of node write them:
CRI lines (containerd, CRI-O: `<time> <stream> <P|F> <line>`) and Docker's
json-file lines (Docker Desktop, cri-dockerd: {"log":...,"stream":...,
"time":...}). For both, the entry must reach Loki as the engine's own JSON
line, with labels level, pipeline (and stage where the line has one) and
stream, and the engine's own timestamp; a non-engine container's line is
unwrapped and gets no level label.

No promtail binary is to be had here (Debian has none; Loki's source is
AGPL and out of bounds), so the stages run in a small interpreter written
from Promtail's documented semantics: match (LogQL stream selector and line
filters), cri, docker, json, labels, timestamp, output. A stage it does not
know fails the test, so a config change cannot slip past it. It is shown to
fail on the former CRI-only pipeline with Docker lines.
"""

import copy
import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402

# Promtail's cri stage regex (its (?s) flag passed to Python as re.S).
CRI_RE = re.compile(r"^(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$", re.S)


def parse_rfc3339(text):
    """RFC3339Nano -> ns since the epoch (None when it does not parse)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", str(text))
    if not m:
        return None
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        base -= sign * datetime.timedelta(hours=int(m.group(3)[1:3]), minutes=int(m.group(3)[4:6]))
    secs = int(base.replace(tzinfo=datetime.timezone.utc).timestamp())
    return secs * 10 ** 9 + int((m.group(2) or "0").ljust(9, "0"))


_STR = r'"(?:[^"\\]|\\.)*"|`[^`]*`'


def _unquote(s):
    return s[1:-1] if s.startswith("`") else json.loads(s)


def parse_selector(sel):
    """LogQL `{matchers} filters...` -> ([(name, op, value)], [(op, value)])."""
    m = re.fullmatch(r"\s*\{(.*?)\}\s*(.*)", sel, re.S)
    ct.check(m, "unparsable selector %r" % sel)
    matchers = [(n, op, _unquote(v)) for n, op, v in
                re.findall(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*(%s)\s*,?' % _STR, m.group(1))]
    ct.check(matchers, "selector without label matchers: %r" % sel)
    rest = m.group(2)
    filters = []
    while rest.strip():
        f = re.match(r"\s*(\|=|!=|\|~|!~)\s*(%s)" % _STR, rest)
        ct.check(f, "unsupported part of selector %r: %r" % (sel, rest))
        filters.append((f.group(1), _unquote(f.group(2))))
        rest = rest[f.end():]
    return matchers, filters


def selector_matches(sel, labels, line):
    matchers, filters = parse_selector(sel)
    for name, op, value in matchers:
        have = labels.get(name, "")
        if op == "=" and have != value or op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have) or op == "!~" and re.fullmatch(value, have):
            return False
    for op, value in filters:
        if op == "|=" and value not in line or op == "!=" and value in line:
            return False
        if op == "|~" and not re.search(value, line) or op == "!~" and re.search(value, line):
            return False
    return True


class Entry:
    def __init__(self, labels, line, ts):
        self.labels = dict(labels)
        self.line = line
        self.ts = ts
        self.extracted = dict(labels)


def json_extract(e, expressions, source=None):
    text = e.extracted.get(source) if source else e.line
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return  # Promtail logs the failure and goes on
    if not isinstance(doc, dict):
        return
    for name, expr in expressions.items():
        key = expr or name
        ct.check(re.fullmatch(r"\w+", key), "json expression %r: only plain keys are interpreted" % key)
        if key in doc:
            e.extracted[name] = doc[key]


def set_labels(e, names):
    for name, src in names.items():
        v = e.extracted.get(src or name)
        if v is not None and str(v) != "":
            e.labels[name] = str(v)


def set_timestamp(e, cfg):
    ct.check(cfg.get("format") == "RFC3339Nano", "timestamp format %r not interpreted" % cfg.get("format"))
    v = e.extracted.get(cfg["source"])
    if v is None:
        return
    ts = parse_rfc3339(v)
    if ts is not None:
        e.ts = ts
    elif cfg.get("action_on_failure", "fudge") not in ("skip", "fudge"):
        ct.check(False, "timestamp action_on_failure %r" % cfg.get("action_on_failure"))


def set_output(e, source):
    if source in e.extracted:
        e.line = str(e.extracted[source])


def run_stages(stages, e):
    """Runs Promtail stages on one entry; returns the entry (None: dropped
    or held back as a partial line)."""
    for stage in stages:
        ct.check(len(stage) == 1, "a stage must have one key: %r" % stage)
        (kind, cfg), = stage.items()
        cfg = cfg or {}
        if kind == "match":
            if cfg.get("action", "keep") != "keep":
                ct.check(False, "match action %r not interpreted" % cfg.get("action"))
            if selector_matches(cfg["selector"], e.labels, e.line):
                e = run_stages(cfg.get("stages", []), e)
                if e is None:
                    return None
        elif kind == "cri":
            m = CRI_RE.match(e.line)
            if not m:
                continue
            e.extracted.update(m.groupdict())
            set_labels(e, {"stream": None})
            set_timestamp(e, {"source": "time", "format": "RFC3339Nano"})
            set_output(e, "content")
            if m.group("flags") == "P":
                return None  # held until its F line: not used by the samples
        elif kind == "docker":
            json_extract(e, {"output": "log", "stream": "stream", "timestamp": "time"})
            set_labels(e, {"stream": None})
            set_timestamp(e, {"source": "timestamp", "format": "RFC3339Nano"})
            set_output(e, "output")
        elif kind == "json":
            json_extract(e, cfg["expressions"], cfg.get("source"))
        elif kind == "labels":
            set_labels(e, cfg)
        elif kind == "timestamp":
            set_timestamp(e, cfg)
        elif kind == "output":
            set_output(e, cfg["source"])
        else:
            ct.check(False, "stage %r is not interpreted by this test: extend it" % kind)
    return e


def promtail_config():
    data = k.configmap_data(k.objects(), "promtail-config")
    return k.yaml_text(data["promtail-config.yaml"], "promtail-config.yaml")[0]


def engine_lines():
    """JSON log lines of a real engine run, one of them from a stage."""
    spec = """version: 1
engine:
  log: { level: info, format: json }
pipelines:
  belts:
    source: { plugin: sim_speed, lines: 2, rate: 1000, count: 200 }
    sink: { plugin: "null" }
"""
    e = ct.Engine(spec, workdir=k.workdir("promtail-engine"))
    rc = e.wait_exit(60)
    ct.check(rc == 0, "engine exited %d: %s" % (rc, e.stderr_text()[-2000:]))
    lines = [l for l in e.stderr_text().splitlines() if l.startswith("{")]
    ct.check(any('"pipeline"' in l for l in lines), "no engine line with a pipeline: %s" % lines)
    # A stage's line, in the engine's shape (the run above logs none).
    stage_line = json.dumps({"time": "2026-01-02T03:04:05.678Z", "level": "warn",
                             "message": "write failed, retrying in 1s: HTTP 503",
                             "pipeline": "processor", "stage": "influxdb"}, separators=(",", ":"))
    return lines + [stage_line]


def cri(line, t="2026-01-02T03:04:06.123456789Z"):
    return "%s stderr F %s" % (t, line)


def docker(line, t="2026-01-02T03:04:06.123456789Z"):
    # Docker's json-file driver: the line with its newline, then stream, time.
    return json.dumps({"log": line + "\n", "stream": "stderr", "time": t}, separators=(",", ":"))


def targets(config):
    jobs = [j for j in config["scrape_configs"] if j.get("pipeline_stages")]
    ct.check(len(jobs) == 1, "expected one scrape job with pipeline stages")
    return jobs[0]["pipeline_stages"]


POD = {"namespace": k.NAMESPACE, "pod": "processor-5d8f7c9b4-k9m4d", "container": "engine",
       "app": "processor", "node": "laptop"}


def check_engine_entries(stages, wrap, what):
    problems = []
    for raw in engine_lines():
        want = json.loads(raw)
        e = run_stages(copy.deepcopy(stages), Entry(POD, wrap(raw), ts=0))
        ct.check(e is not None, "%s: entry dropped" % what)
        if e.line.rstrip("\n") != raw:
            problems.append("%s: line %r, expected the engine's %r" % (what, e.line, raw))
        for label in ("level", "pipeline", "stage"):
            if label in want and e.labels.get(label) != want[label]:
                problems.append("%s: label %s=%r, expected %r (%s)" % (what, label, e.labels.get(label),
                                                                        want[label], raw))
        if e.labels.get("stream") != "stderr":
            problems.append("%s: no stream label" % what)
        if e.ts != parse_rfc3339(want["time"]):
            problems.append("%s: timestamp %s is not the engine's %s" % (what, e.ts, want["time"]))
    return problems


def test_both_log_formats():
    stages = targets(promtail_config())
    problems = check_engine_entries(stages, cri, "CRI") + check_engine_entries(stages, docker, "Docker")
    ct.check(not problems, "engine log entries:\n  " + "\n  ".join(problems))
    # Another container's line (Grafana, logfmt) is unwrapped, no level label.
    other = dict(POD, app="grafana", pod="grafana-6c7d-xx", container="grafana")
    text = 'logger=server t=2026-01-02T03:04:05Z level=info msg="HTTP Server Listen"'
    for what, wrap in (("CRI", cri), ("Docker", docker)):
        e = run_stages(copy.deepcopy(stages), Entry(other, wrap(text), ts=0))
        ct.check(e.line.rstrip("\n") == text and "level" not in e.labels and
                 e.ts == parse_rfc3339("2026-01-02T03:04:06.123456789Z"),
                 "%s: Grafana's line came out as %r %r %s" % (what, e.line, e.labels, e.ts))


def test_fails_on_cri_only_pipeline():
    """The check can fail: the former pipeline (cri only) loses the level
    of Docker lines."""
    stages = targets(promtail_config())
    old = [{"cri": {}}] + [s for s in stages if "match" not in s or
                           "cri" not in json.dumps(s) and "docker" not in json.dumps(s)]
    ct.check(not check_engine_entries(old, cri, "CRI"), "the CRI-only pipeline handled CRI")
    problems = check_engine_entries(old, docker, "Docker")
    ct.check(any("label level" in p for p in problems),
             "the CRI-only pipeline passed Docker lines: %s" % problems)


def test_interpreter():
    ct.check(parse_rfc3339("2026-01-02T03:04:05.5Z") == 1767323045500000000, "RFC3339 parse")
    ct.check(parse_rfc3339("2026-01-02T04:04:05+01:00") == 1767323045000000000, "RFC3339 offset")
    ct.check(selector_matches('{a=~"x.*"} |~ `^\\{`', {"a": "xy"}, "{z"), "selector match")
    ct.check(not selector_matches('{a=~"x.*"} |~ `^\\{`', {"a": "y"}, "{z"), "label mismatch")
    ct.check(not selector_matches('{a="x"} != "z"', {"a": "x"}, "z"), "line filter")


def test_daemonset_reads_both_locations():
    ds = k.one(k.objects(), "DaemonSet", "promtail")
    _, spec = k.pod_template(ds)
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    for path in ("/var/log/pods", "/var/lib/docker/containers"):
        ct.check(path in mounts and mounts[path].get("readOnly"), "%s not mounted read-only" % path)
        ct.check(vols[mounts[path]["name"]].get("hostPath", {}).get("path") == path,
                 "%s is not the node's %s" % (mounts[path]["name"], path))


if __name__ == "__main__":
    ct.main([test_interpreter, test_daemonset_reads_both_locations, test_both_log_formats,
             test_fails_on_cri_only_pipeline])
