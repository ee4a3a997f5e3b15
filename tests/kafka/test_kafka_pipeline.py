"""Producer and processor pipelines (pipelines/producer.yaml and
processor-file.yaml) as two conveyor processes around a mock Kafka cluster:
every (line_id, seq) arrives; kill -9 and restart loses nothing and
duplicates only the uncommitted tail; a restart resumes from the committed
offsets; SIGTERM commits what was delivered and exits in time."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
import conveyor_test as ct  # noqa: E402
import kafka_env as ke  # noqa: E402

TOTAL = ke.record_count(200000, 20000)
SHUTDOWN_TIMEOUT = 10.0  # pipelines/processor-file.yaml's engine.shutdown_timeout


def produce_all(mc, topic, count, rate, seed=1):
    """Runs the producer pipeline to its end: every record acknowledged."""
    prod = ke.start_producer(mc, topic, count, rate, seed=seed)
    rc = prod.wait_exit(timeout=180)
    ct.check(rc == 0, "producer exited %s; stderr:\n%s" % (rc, prod.stderr_text()[-3000:]))
    return prod


def stall_report(mc, proc, prod):
    """What a stalled run needs to tell: did the producer deliver everything
    (then the topic holds TOTAL), and what did the consumer see (lag is only
    meaningful for partitions that consumed since their last assignment)."""
    lines = ["producer: %s" % ("running" if prod.alive() else "exited %s" %
                                prod.proc.returncode),
             "topic holds %d records" % ke.kcat_count(mc.bootstraps, "speed")]
    try:
        for name in ("conveyor_kafka_consumer_lag", "conveyor_kafka_rebalances_total"):
            lines.append("%s: %s" % (name, sorted(
                (dict(k[1]).get("partition", ""), v) for k, v in proc.metrics().items()
                if k[0] == name)))
    except Exception as e:  # the report must not hide the failure
        lines.append("metrics: %s" % e)
    lines += ["processor: " + r.get("message", "") for r in proc.log_records()
              if any(w in r.get("message", "") for w in
                     ("assigned", "revoked", "lost", "consumer:", "commit", "rebalance"))][-20:]
    return "\n".join(lines)


def test_all_records_arrive():
    """200k records over 5 belts from one conveyor process to another."""
    mc = ke.MockCluster({"speed": ke.PARTITIONS})
    work = ct.tmpdir()
    out_path = os.path.join(work, "out.jsonl")
    proc = ke.start_processor(mc, "speed", "g-all", out_path)
    proc.wait_ready()
    ke.wait_assigned(proc)
    prod = ke.start_producer(mc, "speed", TOTAL, 0)
    out = ke.Output(out_path)
    try:
        ke.wait_output(out, TOTAL, engines=[proc], timeout=180)
    except ct.TestFailure as e:
        raise ct.TestFailure("%s\n%s" % (e, stall_report(mc, proc, prod)))
    ct.check(prod.wait_exit(timeout=60) == 0, "producer failed:\n" + prod.stderr_text()[-3000:])
    ct.check(ke.kcat_count(mc.bootstraps, "speed") == TOTAL, "topic holds another count")
    ct.check(proc.stop(timeout=SHUTDOWN_TIMEOUT + 5) == 0, "processor did not exit 0")
    dups = ke.check_complete(out.poll(), TOTAL)
    ct.check(dups == 0, "a clean run duplicated %d records" % dups)
    print("  %d records, 0 duplicates" % TOTAL)
    mc.stop()


def dup_windows(keys):
    """Per line, the duplicated seqs; checks they form one contiguous run
    (the tail that was delivered but not yet committed at the kill)."""
    counts = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    per_line = {}
    for (line, seq), n in counts.items():
        if n > 1:
            ct.check(n == 2, "record %s/%d arrived %d times" % (line, seq, n))
            per_line.setdefault(line, []).append(seq)
    for line, seqs in per_line.items():
        seqs.sort()
        ct.check(seqs[-1] - seqs[0] + 1 == len(seqs),
                 "duplicates of %s are not one contiguous run: %d..%d, %d records" %
                 (line, seqs[0], seqs[-1], len(seqs)))
    return per_line


def test_kill9_and_restart():
    """The processor dies mid-stream and restarts: nothing is lost;
    duplicates are only the uncommitted tail of each partition."""
    mc = ke.MockCluster({"speed": ke.PARTITIONS})
    work = ct.tmpdir()
    out_path = os.path.join(work, "out.jsonl")
    proc = ke.start_processor(mc, "speed", "g-kill", out_path)
    ke.wait_assigned(proc)
    # Paced so the kill lands mid-stream: after a third of the records the
    # rest takes the producer about 5 s more. The threshold is polled by
    # counting lines, not parsing them: at load 21, parsing a third of the
    # records took this script 4 s (0.3 s of CPU), more than the 2.7 s the
    # rest of the stream took at the former pace, so the kill came too late.
    rate = TOTAL // 8
    prod = ke.start_producer(mc, "speed", TOTAL, rate)
    out = ke.Output(out_path)
    ct.wait_until(lambda: out.written() >= TOTAL // 3, 120, interval=0.05,
                  what="a third of the records")
    proc.kill9()
    before = len(out.poll())
    ct.check(before < TOTAL, "the processor finished before the kill")
    proc2 = ke.start_processor(mc, "speed", "g-kill", out_path)
    ke.wait_output(out, TOTAL, engines=[proc2], timeout=180)
    ct.check(prod.wait_exit(timeout=60) == 0, "producer failed")
    ct.check(proc2.stop(timeout=SHUTDOWN_TIMEOUT + 5) == 0, "processor did not exit 0")
    keys = out.poll()
    dups = ke.check_complete(keys, TOTAL)
    per_line = dup_windows(keys)
    ct.check(dups <= before, "more duplicates (%d) than records before the kill (%d)" %
             (dups, before))
    print("  killed after %d records; %d duplicates after restart (uncommitted tail: %s)" %
          (before, dups, ", ".join("%s %d..%d" % (l, s[0], s[-1])
                                   for l, s in sorted(per_line.items()))))
    mc.stop()


def test_restart_resumes_from_commits():
    """A processor stopped and started again reads only what is new."""
    mc = ke.MockCluster({"speed": ke.PARTITIONS})
    work = ct.tmpdir()
    first = os.path.join(work, "first.jsonl")
    n = TOTAL // 4
    produce_all(mc, "speed", n, 0, seed=1)
    proc = ke.start_processor(mc, "speed", "g-resume", first)
    out1 = ke.Output(first)
    ke.wait_output(out1, n, engines=[proc], timeout=120)
    ct.check(proc.stop(timeout=SHUTDOWN_TIMEOUT + 5) == 0, "processor did not exit 0")
    ke.check_complete(out1.poll(), n)

    # New records: another measurement so they cannot be mistaken for old.
    second = os.path.join(work, "second.jsonl")
    proc2 = ke.start_processor(mc, "speed", "g-resume", second)
    ke.wait_assigned(proc2)
    more = 1000
    extra = ct.Engine("""
version: 1
pipelines:
  more:
    source: { plugin: sim_speed, lines: 5, rate: 0, count: %d, measurement: more }
    sink: { plugin: kafka_out, brokers: "%s", topic: speed }
""" % (more, mc.bootstraps))
    ct.check(extra.wait_exit(60) == 0, "extra producer failed")
    out2 = ke.Output(second)
    ke.wait_output(out2, more, engines=[proc2], timeout=60)
    # A little longer: an unwanted re-read would show up now.
    lag = lambda: proc2.metric("conveyor_kafka_consumer_lag")  # noqa: E731
    ct.wait_until(lambda: lag() == 0, 30, what="consumer lag 0")
    ct.check(proc2.stop(timeout=SHUTDOWN_TIMEOUT + 5) == 0, "processor did not exit 0")
    got = len(out2.poll())
    ct.check(got == more, "after the restart the processor wrote %d records, expected only "
             "the %d new ones (a re-read from the start?)" % (got, more))
    mc.stop()


def test_sigterm_commits_and_exits():
    """SIGTERM mid-stream: exit 0 within shutdown_timeout, and what was
    delivered is committed (a successor in the group re-reads none of it)."""
    mc = ke.MockCluster({"speed": ke.PARTITIONS})
    work = ct.tmpdir()
    first = os.path.join(work, "first.jsonl")
    proc = ke.start_processor(mc, "speed", "g-term", first)
    ke.wait_assigned(proc)
    prod = ke.start_producer(mc, "speed", TOTAL // 2, TOTAL // 8)
    out1 = ke.Output(first)
    ct.wait_until(lambda: out1.distinct() >= TOTAL // 8, 120, interval=0.05,
                  what="records flowing")
    t0 = time.monotonic()
    rc = proc.stop(sig=signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT + 5)
    took = time.monotonic() - t0
    ct.check(rc == 0, "processor exited %s after SIGTERM" % rc)
    ct.check(took <= SHUTDOWN_TIMEOUT, "shutdown took %.1fs > %.0fs" % (took, SHUTDOWN_TIMEOUT))
    ct.check(prod.wait_exit(timeout=120) == 0, "producer failed")

    second = os.path.join(work, "second.jsonl")
    proc2 = ke.start_processor(mc, "speed", "g-term", second)
    out2 = ke.Output(second)
    rest = TOTAL // 2 - out1.distinct()
    ke.wait_output(out2, rest, engines=[proc2], timeout=120)
    ct.check(proc2.stop(timeout=SHUTDOWN_TIMEOUT + 5) == 0, "successor did not exit 0")
    a, b = out1.poll(), out2.poll()
    overlap = set(a) & set(b)
    ct.check(not overlap, "%d records delivered before SIGTERM were read again: not "
             "committed" % len(overlap))
    ke.check_complete(a + b, TOTAL // 2)
    print("  SIGTERM exit in %.2fs; %d + %d records, no overlap" % (took, len(a), len(b)))
    mc.stop()


if __name__ == "__main__":
    ct.main([test_all_records_arrive, test_kill9_and_restart, test_restart_resumes_from_commits,
             test_sigterm_commits_and_exits])
