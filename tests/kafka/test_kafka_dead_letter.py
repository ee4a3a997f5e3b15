"""Dead letters from Kafka keep every byte: messages that are not UTF-8,
not JSON, or binary (produced with kcat) land in kafka_in's dead-letter file
and in the pipeline's, each line one valid JSON object whose raw or
raw_base64 member gives the message back exactly (and key or key_base64 its
key), while a good record still flows."""

import base64
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import conveyor_test as ct  # noqa: E402
import kafka_env as ke  # noqa: E402

# (key, value) pairs kafka_in cannot decode. No newline inside: kcat splits
# its input on newlines.
BAD = [
    (b"k1", b"\xff"),                                                  # one byte, not UTF-8
    (b"k2", b'{"measurement":"m","fields":{"v":"\xc3\x28"}}'),         # bad UTF-8 in JSON
    (b"k\xfe", b"plain garbage"),                                      # a key not UTF-8
    (b"k4", b'{"measurement":"m","fields":{"v":1},}'),                 # a trailing comma
    (b"k5", b"\x00\x01\x02 binary \x80\x81 \xed\xa0\x80"),             # controls, a surrogate
    (b"k6", b'{"measurement":"caf\xc3\xa9","fields":{"v":"\\u00ff"}'),  # unterminated
]
GOOD = (b"line-1", b'{"measurement":"conveyor_speed","timestamp":1,"tags":{"line_id":"line-1"},'
        b'"fields":{"speed_ms":1.5,"seq":1}}')


def kcat_produce_bytes(bootstraps, topic, pairs):
    data = b"".join(k + b"|" + v + b"\n" for k, v in pairs)
    r = subprocess.run(["kcat", "-b", bootstraps, "-t", topic, "-P", "-q", "-K", "|"],
                       input=data, capture_output=True, timeout=60)
    ct.check(r.returncode == 0, "kcat -P failed (%d): %s" % (r.returncode, r.stderr[-500:]))


def read_entries(path):
    """Each line of a dead-letter file, strictly: UTF-8 text, one JSON object."""
    out = []
    with open(path, "rb") as f:
        for no, line in enumerate(f, 1):
            ct.check(line.endswith(b"\n"), "%s:%d: no newline at the end" % (path, no))
            try:
                entry = json.loads(line.decode("utf-8"))
            except ValueError as e:
                raise ct.TestFailure("%s:%d: not a JSON line (%s): %r" % (path, no, e, line))
            ct.check(isinstance(entry, dict), "%s:%d: not an object" % (path, no))
            out.append(entry)
    return out


def member_bytes(entry, name):
    """The bytes of a byte member: `name` (UTF-8 text) or `name`_base64;
    exactly one of them. None when neither."""
    text, b64 = entry.get(name), entry.get(name + "_base64")
    ct.check(text is None or b64 is None, "both %s and %s_base64 in %s" % (name, name, entry))
    if text is not None:
        return text.encode("utf-8")
    if b64 is not None:
        return base64.b64decode(b64, validate=True)
    return None


def test_dead_letters_keep_bytes():
    mc = ke.MockCluster({"speed": 2})
    work = ct.tmpdir()
    out_path = os.path.join(work, "out.jsonl")
    dl_path = os.path.join(work, "kafka-dead.jsonl")
    proc = ke.start_processor(mc, "speed", "g-bytes", out_path,
                              extra={"KAFKA_DEAD_LETTER": "file:" + dl_path})
    proc.wait_ready()
    ke.wait_assigned(proc)
    kcat_produce_bytes(mc.bootstraps, "speed", BAD + [GOOD])
    ct.wait_until(lambda: proc.metric("conveyor_kafka_dead_letters_total") == len(BAD), 60,
                  what="%d dead letters counted" % len(BAD))
    out = ke.Output(out_path)
    ct.wait_until(lambda: out.poll() == [("line-1", 1)], 60, what="the good record delivered")

    # kafka_in's own file: where each message came from, and its bytes.
    letters = read_entries(dl_path)
    ct.check(len(letters) == len(BAD), "kafka_in's file has %d lines" % len(letters))
    got = []
    for e in letters:
        ct.check(e.get("topic") == "speed" and isinstance(e.get("partition"), int) and
                 isinstance(e.get("offset"), int) and e.get("reason") and
                 e.get("stage") == "kafka_in" and e.get("pipeline") == "processor" and
                 isinstance(e.get("time_ns"), int), "incomplete dead letter: %s" % e)
        got.append((member_bytes(e, "key"), member_bytes(e, "raw")))
    ct.check(sorted(got) == sorted(BAD),
             "kafka_in's dead letters do not give the messages back:\n%r\nexpected\n%r" %
             (sorted(got), sorted(BAD)))
    offsets = sorted((e["partition"], e["offset"]) for e in letters)
    ct.check(len(set(offsets)) == len(BAD), "partition/offset not unique: %s" % offsets)

    # The pipeline's file: the same bytes.
    host_dl = out_path + ".dead-letter"
    host = read_entries(host_dl)
    ct.check(len(host) == len(BAD), "the pipeline's file has %d lines" % len(host))
    raws = sorted(member_bytes(e, "raw") for e in host)
    ct.check(raws == sorted(v for _, v in BAD),
             "the pipeline's dead letters do not give the messages back: %r" % raws)

    rc = proc.stop(timeout=20)
    ct.check(rc == 0, "processor exit code %d" % rc)
    summary = [r for r in proc.log_records() if str(r.get("message")).startswith("summary:")]
    ct.check(summary and summary[-1].get("dead_lettered") == len(BAD) and
             summary[-1].get("delivered") == 1, "stop summary: %s" % summary)
    mc.stop()


if __name__ == "__main__":
    ct.main([test_dead_letters_keep_bytes])
