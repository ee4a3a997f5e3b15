"""Hot reload of the Kafka processor (pipelines/processor-file.yaml, a copy
the test edits) while the producer (another conveyor process) fills the
topic of a mock Kafka cluster:

- ten reloads that change only the anomaly transform's options: every
  (line_id, seq) arrives exactly once, the same process runs throughout,
  its consumer never rebalanced (conveyor_kafka_rebalances_total) nor
  restarted;
- a reload that changes the source (a consumer group setting): the old
  consumer drains and commits, the new one resumes from the committed
  offsets: nothing lost, nothing duplicated."""

import os
import signal
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import conveyor_test as ct  # noqa: E402
import kafka_env as ke  # noqa: E402

SHUTDOWN_TIMEOUT = 10.0  # processor-file.yaml's engine.shutdown_timeout


def processor_spec(path, threshold="4.0", session_timeout="${KAFKA_SESSION_TIMEOUT_MS:-45000}"):
    """Writes processor-file.yaml with the lifecycle API on, another
    anomaly threshold and session.timeout.ms."""
    with open(os.path.join(ke.PIPELINES, "processor-file.yaml")) as f:
        text = f.read()
    for old, new in [
            ('http: { listen: "${CONVEYOR_HTTP_LISTEN:-0.0.0.0:8000}" }',
             'http: { listen: "${CONVEYOR_HTTP_LISTEN:-0.0.0.0:8000}", lifecycle: true }'),
            ("threshold: 4.0", "threshold: %s" % threshold),
            ('session.timeout.ms: "${KAFKA_SESSION_TIMEOUT_MS:-45000}"',
             'session.timeout.ms: "%s"' % session_timeout)]:
        ct.check(old in text, "processor-file.yaml no longer has %r" % old)
        text = text.replace(old, new)
    return ct.write_file(path, text)


def post_reload(engine):
    req = urllib.request.Request(engine.url + "/-/reload", data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def reload_lines(engine):
    return [r["message"] for r in engine.log_records()
            if r.get("message", "").startswith("reloaded ")]


def wait_reload(engine, n, out):
    def done():
        if not engine.alive():
            raise ct.TestFailure("processor exited; stderr:\n" + engine.stderr_text()[-3000:])
        return len(reload_lines(engine)) >= n
    ct.wait_until(done, 60, interval=0.05, what="reload %d (output at %d)" % (n, out.distinct()))
    return reload_lines(engine)[n - 1]


def rebalances(engine):
    return engine.metric("conveyor_kafka_rebalances_total", pipeline="processor") or 0


def starts(engine):
    return [r for r in engine.log_records()
            if r.get("pipeline") == "processor" and r.get("message", "").startswith(
                "pipeline started")]


def test_transform_reloads_exactly_once():
    total = 150000  # about 40 s under the sanitizers too
    mc = ke.MockCluster({"speed": ke.PARTITIONS})
    work = ct.tmpdir()
    out_path = os.path.join(work, "out.jsonl")
    spec = processor_spec(os.path.join(work, "processor.yaml"))
    proc = ct.Engine(spec, env=ke.processor_env(mc, "speed", "g-swap", out_path), workdir=work)
    proc.wait_ready()
    ke.wait_assigned(proc)
    pid = proc.proc.pid
    before = rebalances(proc)
    ct.check(before >= 1, "no rebalance counted for the first assignment")
    # About 15 s of data, so the ten reloads land while it flows.
    prod = ke.start_producer(mc, "speed", total, total // 15)
    out = ke.Output(out_path)
    for i in range(1, 11):
        ct.wait_until(lambda: out.distinct() >= total * i // 12, 120, interval=0.05,
                      what="%d records before reload %d" % (total * i // 12, i))
        processor_spec(spec, threshold="%.1f" % (3.0 + 0.2 * i))
        if i % 2:
            proc.proc.send_signal(signal.SIGHUP)
        else:
            status, text = post_reload(proc)
            ct.check(status == 200, "POST /-/reload answered %d: %s" % (status, text))
        line = wait_reload(proc, i, out)
        ct.check("swapped: processor" in line, "reload %d was not a transform swap: %s" %
                 (i, line))
    ke.wait_output(out, total, engines=[proc], timeout=180)
    ct.check(prod.wait_exit(timeout=60) == 0, "producer failed:\n" + prod.stderr_text()[-3000:])
    ct.check(proc.alive() and proc.proc.pid == pid, "the processor is not the same process")
    after = rebalances(proc)
    ct.check(after == before, "transform-only reloads rebalanced the consumer: "
             "conveyor_kafka_rebalances_total %s -> %s" % (before, after))
    ct.check(len(starts(proc)) == 1, "the pipeline restarted: %d starts" % len(starts(proc)))
    ct.check(proc.stop(timeout=SHUTDOWN_TIMEOUT + 5) == 0, "processor did not exit 0")
    dups = ke.check_complete(out.poll(), total)
    ct.check(dups == 0, "%d records arrived twice" % dups)
    print("  %d records, 10 reloads, 0 duplicates, rebalances %d -> %d" %
          (total, before, after))
    mc.stop()


def test_source_change_loses_and_repeats_nothing():
    total = ke.record_count(40000, 15000)
    mc = ke.MockCluster({"speed": ke.PARTITIONS})
    work = ct.tmpdir()
    out_path = os.path.join(work, "out.jsonl")
    spec = processor_spec(os.path.join(work, "processor.yaml"))
    proc = ct.Engine(spec, env=ke.processor_env(mc, "speed", "g-restart", out_path),
                     workdir=work)
    proc.wait_ready()
    ke.wait_assigned(proc)
    before = rebalances(proc)
    prod = ke.start_producer(mc, "speed", total, total // 10)
    out = ke.Output(out_path)
    ct.wait_until(lambda: out.distinct() >= total // 3, 120, interval=0.05,
                  what="a third of the records")
    processor_spec(spec, session_timeout="4000")
    proc.proc.send_signal(signal.SIGHUP)
    line = wait_reload(proc, 1, out)
    ct.check("restarted: processor" in line, "the source change did not restart: %s" % line)
    ke.wait_output(out, total, engines=[proc], timeout=180)
    ct.check(prod.wait_exit(timeout=60) == 0, "producer failed:\n" + prod.stderr_text()[-3000:])
    ct.check(len(starts(proc)) == 2, "expected the successor's start: %d starts" %
             len(starts(proc)))
    after = rebalances(proc)
    ct.check(after > before, "the new consumer never joined the group (rebalances %s -> %s)" %
             (before, after))
    ct.check(proc.stop(timeout=SHUTDOWN_TIMEOUT + 5) == 0, "processor did not exit 0")
    dups = ke.check_complete(out.poll(), total)
    ct.check(dups == 0, "the restart re-delivered %d records" % dups)
    print("  %d records across a source restart, 0 lost, 0 duplicates" % total)
    mc.stop()


if __name__ == "__main__":
    ct.main([test_transform_reloads_exactly_once, test_source_change_loses_and_repeats_nothing])
