"""How a run ends: the stop summary (one line per pipeline: in, delivered,
rejected, dead_lettered, failed, dropped), exit code 1 when any record ended
failed, warnings with a running count for rejections that have no
dead-letter file, and the pipeline's dead-letter file as valid JSON lines
that keep the input's bytes."""

import base64
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

JSONL_SO = os.path.join(ct.BUILD_DIR, "tests", "influxdb", "test_jsonl.so")
SUMMARY_KEYS = ("in", "delivered", "rejected", "dead_lettered", "failed", "dropped")
TEXT_SUMMARY = re.compile(r"summary: in=(\d+) delivered=(\d+) rejected=(\d+) "
                          r"dead_lettered=(\d+) failed=(\d+) dropped=(\d+)")


def json_lines(stderr, what):
    """Every stderr line parsed as JSON (fails on one that is not)."""
    out = []
    for line in stderr.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise ct.TestFailure("%s: log line is not JSON: %r" % (what, line))
    return out


def summary_of(records, pipeline):
    """The one stop summary of `pipeline` in JSON log records, as a dict."""
    found = [r for r in records
             if r.get("pipeline") == pipeline and str(r.get("message")).startswith("summary:")]
    ct.check(len(found) == 1, "expected one stop summary for %s, got %d:\n%s" %
             (pipeline, len(found), "\n".join(json.dumps(r) for r in records[-10:])))
    r = found[0]
    counts = {k: r.get(k) for k in SUMMARY_KEYS}
    ct.check(all(isinstance(v, int) for v in counts.values()),
             "summary lacks numeric members: %s" % json.dumps(r))
    m = TEXT_SUMMARY.search(r["message"])
    ct.check(m and dict(zip(SUMMARY_KEYS, map(int, m.groups()))) == counts,
             "summary message and members disagree: %s" % json.dumps(r))
    return counts, r


def run_to_end(spec, what, log_format="json", timeout=90):
    e = ct.Engine(spec, log_format=log_format)
    rc = e.wait_exit(timeout)
    return rc, e.stderr_text()


def test_failed_records_exit_1():
    """A finite run whose every record fails (file sink on /dev/full) exits
    1 and says so: failed=N in the summary."""
    ec.require_plugins()
    n = 3000
    spec = ec.spec({"full": """
    source: { plugin: sim_speed, lines: 2, rate: 0, count: %d }
    sink: { plugin: file, path: /dev/full }
""" % n}, engine="  shutdown_timeout: 5s")
    rc, err = run_to_end(spec, "/dev/full")
    ct.check(rc == 1, "exit code %d with every record failed, expected 1\n%s" % (rc, err[-2000:]))
    counts, line = summary_of(json_lines(err, "/dev/full"), "full")
    ct.check(counts == {"in": n, "delivered": 0, "rejected": 0, "dead_lettered": 0,
                        "failed": n, "dropped": 0}, "summary %s" % counts)
    ct.check(line["level"] == "error", "a summary with failed records logged at %s" %
             line["level"])
    print("  /dev/full: exit 1, %s" % line["message"])

    # The same in text logs.
    rc, err = run_to_end(spec, "/dev/full, text", log_format="text")
    ct.check(rc == 1, "text logs: exit code %d, expected 1" % rc)
    m = [l for l in err.splitlines() if "[full]" in l and TEXT_SUMMARY.search(l)]
    ct.check(len(m) == 1 and "failed=%d" % n in m[0],
             "text logs: no summary line with failed=%d:\n%s" % (n, err[-2000:]))


def test_good_run_exit_0():
    """A finite run that delivers everything exits 0 with delivered=N; what
    a transform filters out is counted as dropped, and the counts add up."""
    ec.require_plugins()
    d = ct.tmpdir()
    n = 4000
    out = os.path.join(d, "out.jsonl")
    marked = os.path.join(d, "marked.jsonl")
    rc, err = run_to_end(ec.spec({
        "good": """
    source: { plugin: sim_speed, lines: 4, rate: 0, count: %d, seed: 3 }
    sink: { plugin: file, path: "%s" }
""" % (n, out),
        "filtered": """
    source: { plugin: sim_speed, lines: 4, rate: 0, count: %d, seed: 3, anomaly_rate: 0.05 }
    transforms:
      - { plugin: anomaly, field: speed_ms, key: line_id, window: 20, mode: drop_normal }
    sink: { plugin: file, path: "%s" }
""" % (n, marked)}), "good run")
    ct.check(rc == 0, "exit code %d, expected 0\n%s" % (rc, err[-2000:]))
    logs = json_lines(err, "good run")
    good, _ = summary_of(logs, "good")
    ct.check(good == {"in": n, "delivered": n, "rejected": 0, "dead_lettered": 0, "failed": 0,
                      "dropped": 0}, "summary %s" % good)
    ct.check(len(ec.read_jsonl(out)) == n, "the file does not hold %d records" % n)
    filt, line = summary_of(logs, "filtered")
    kept = len(ec.read_jsonl(marked))
    ct.check(filt["in"] == n and filt["delivered"] == kept and filt["dropped"] == n - kept and
             filt["failed"] == 0 and 0 < kept < n, "summary %s, file holds %d" % (filt, kept))
    print("  %s" % line["message"])


def _rejecting_input(path, n):
    """n JSON lines: even ones fine, odd ones with a tag "time" (line
    protocol cannot carry it: the file sink in influx format rejects them),
    then one line that is not UTF-8 and one that is not JSON (the source
    dead-letters both). Returns the two undecodable lines, as bytes."""
    bad = [b'{"measurement":"m","fields":{"v":"\xff\xfe"}}', b"not json \x00 at all"]
    with open(path, "wb") as f:
        for i in range(n):
            tags = {"time": "x"} if i % 2 else {"k": "v"}
            f.write(json.dumps({"measurement": "m", "timestamp": i + 1, "tags": tags,
                                "fields": {"seq": i}}).encode() + b"\n")
        for b in bad:
            f.write(b + b"\n")
    return bad


def test_rejections_without_dead_letter_warned_with_count():
    """Rejections with no dead-letter file: warned with the pipeline's
    running count, and the last count is the total the summary gives."""
    ec.require_plugins()
    ct.check(os.path.exists(JSONL_SO), "test source not built: %s" % JSONL_SO)
    d = ct.tmpdir()
    n = 2000
    src = os.path.join(d, "in.jsonl")
    _rejecting_input(src, n)
    rc, err = run_to_end(ec.spec({"rej": """
    source: { plugin: "%s", path: "%s" }
    sink: { plugin: file, path: "%s/out.lp", format: influx }
    queue: { batch_records: 64 }
""" % (JSONL_SO, src, d)}), "rejections")
    ct.check(rc == 0, "rejected records are not failed ones: exit %d\n%s" % (rc, err[-2000:]))
    logs = json_lines(err, "rejections")
    counts, _ = summary_of(logs, "rej")
    ct.check(counts["in"] == n and counts["delivered"] == n // 2 and
             counts["rejected"] == n // 2 and counts["dead_lettered"] == 0 and
             counts["failed"] == 0, "summary %s" % counts)
    warnings = [r["message"] for r in logs if r["level"] == "warn" and r.get("pipeline") == "rej"]
    running = [int(m.group(1)) for m in
               (re.search(r"(\d+) such records in this pipeline", w) for w in warnings) if m]
    ct.check(running, "no warning carries a running count:\n%s" % "\n".join(warnings))
    ct.check(running == sorted(running), "running counts go down: %s" % running)
    # Every record that went nowhere: the rejected ones and the two inputs
    # the source could not decode.
    ct.check(running[-1] == n // 2 + 2,
             "last running count %d, expected %d (rejected + undecodable)\n%s" %
             (running[-1], n // 2 + 2, "\n".join(warnings)))
    print("  warnings: %s" % "; ".join(warnings))


def test_dead_letter_file_is_json_and_keeps_bytes():
    """With a dead-letter file: every rejected record and undecodable input
    is there, one valid JSON object per line (parsed from bytes, strictly),
    the input bytes come back exactly (raw or raw_base64), and the summary
    counts them as dead_lettered."""
    ec.require_plugins()
    ct.check(os.path.exists(JSONL_SO), "test source not built: %s" % JSONL_SO)
    d = ct.tmpdir()
    n = 400
    src = os.path.join(d, "in.jsonl")
    dl = os.path.join(d, "dead.jsonl")
    bad = _rejecting_input(src, n)
    rc, err = run_to_end(ec.spec({"dl": """
    source: { plugin: "%s", path: "%s" }
    sink: { plugin: file, path: "%s/out.lp", format: influx }
    dead_letter: { path: "%s" }
""" % (JSONL_SO, src, d, dl)}), "dead letters")
    ct.check(rc == 0, "exit %d\n%s" % (rc, err[-2000:]))
    counts, _ = summary_of(json_lines(err, "dead letters"), "dl")
    ct.check(counts["rejected"] == n // 2 and counts["dead_lettered"] == n // 2 + 2,
             "summary %s" % counts)
    entries = []
    with open(dl, "rb") as f:
        for no, line in enumerate(f, 1):
            try:
                text = line.decode("utf-8")  # strict: a line is UTF-8 text
                entries.append(json.loads(text))
            except ValueError as e:
                raise ct.TestFailure("%s:%d: not a JSON line (%s): %r" % (dl, no, e, line[:200]))
    ct.check(len(entries) == n // 2 + 2, "dead-letter file has %d lines" % len(entries))
    for e in entries:
        ct.check(isinstance(e.get("time_ns"), int) and e.get("pipeline") == "dl" and
                 e.get("stage") and e.get("reason"), "incomplete entry %s" % e)
    records = [e for e in entries if "record" in e]
    ct.check(len(records) == n // 2 and all(e["record"]["tags"] == {"time": "x"} and
                                            e["stage"] == "file" for e in records),
             "rejected records not all there: %s" % records[:3])
    seqs = sorted(e["record"]["fields"]["seq"] for e in records)
    ct.check(seqs == list(range(1, n, 2)), "rejected seqs differ")
    inputs = []
    for e in entries:
        if "raw" in e:
            inputs.append(e["raw"].encode("utf-8"))
        elif "raw_base64" in e:
            inputs.append(base64.b64decode(e["raw_base64"], validate=True))
    ct.check(sorted(inputs) == sorted(bad),
             "undecodable inputs do not come back exactly: %r, expected %r" % (inputs, bad))


if __name__ == "__main__":
    ct.main([
        test_failed_records_exit_1,
        test_good_run_exit_0,
        test_rejections_without_dead_letter_warned_with_count,
        test_dead_letter_file_is_json_and_keeps_bytes,
    ])
