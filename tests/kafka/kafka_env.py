"""Kafka test environment: librdkafka's mock cluster in its own process
(tests/kafka/mock_cluster), kcat around it, and checks on the processor's
output. Standard library only; every process is stopped at exit.

Used by the Kafka integration tests and by bench/suite_kafka.py.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import conveyor_test as ct  # noqa: E402

MOCK_BIN = os.path.join(ct.BUILD_DIR, "tests", "kafka", "mock_cluster")
PIPELINES = os.path.join(ct.SOURCE_DIR, "pipelines")

# With 8 partitions librdkafka's default partitioner (CRC32 of the key, modulo
# the partition count) puts line-1..line-5 in 5 different partitions, so no
# partition holds two belts (the mock prunes a partition past ~5 MiB).
PARTITIONS = 8

# Consumer settings for tests: a member that rejoins waits
# session.timeout.ms - 1 s in the mock (44 s by default).
FAST_GROUP_ENV = {"KAFKA_SESSION_TIMEOUT_MS": "3000", "KAFKA_HEARTBEAT_INTERVAL_MS": "300"}


class MockCluster:
    """A mock Kafka cluster process. `topics` maps names to partition
    counts. Commands: down(n), up(n), create_topic(name, partitions)."""

    def __init__(self, topics, brokers=3, workdir=None):
        self.workdir = workdir or ct.tmpdir("conveyor-kafka-")
        self.brokers = brokers
        path = os.path.join(self.workdir, "bootstrap.txt")
        args = [MOCK_BIN, path, str(brokers)] + ["%s:%d" % (t, n) for t, n in topics.items()]
        self._err = open(os.path.join(self.workdir, "mock_cluster.stderr"), "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, bufsize=1)
        ct._processes.append(self.proc)

        def bootstrap():
            if self.proc.poll() is not None:
                raise ct.TestFailure("mock_cluster exited with %s" % self.proc.returncode)
            with open(path) as f:
                line = f.read().strip()
            return line or None
        self.bootstraps = ct.wait_until(bootstrap, 15, what="mock cluster bootstrap file")

    def command(self, line, timeout=10.0):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        # One answer line per command; the process answers at once.
        deadline = time.monotonic() + timeout
        answer = self.proc.stdout.readline().strip()
        ct.check(time.monotonic() <= deadline, "mock_cluster slow to answer %r" % line)
        ct.check(answer == "ok", "mock_cluster answered %r to %r" % (answer, line))

    def down(self, broker):
        self.command("down %d" % broker)

    def up(self, broker):
        self.command("up %d" % broker)

    def create_topic(self, name, partitions):
        self.command("topic %s %d" % (name, partitions))

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.command("quit")
            except Exception:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def kcat_produce(bootstraps, topic, lines, key_sep=None, timeout=60):
    """Produces `lines` (strings, one message each) with kcat; with key_sep,
    each line is KEY<sep>VALUE."""
    args = ["kcat", "-b", bootstraps, "-t", topic, "-P", "-q"]
    if key_sep:
        args += ["-K", key_sep]
    rc, out, err = ct.run(args, input="".join(l + "\n" for l in lines), timeout=timeout)
    ct.check(rc == 0, "kcat -P failed (%d): %s" % (rc, err))


def kcat_count(bootstraps, topic, timeout=120):
    """Messages currently in `topic` (all partitions, from the beginning)."""
    rc, out, err = ct.run(["kcat", "-b", bootstraps, "-t", topic, "-C", "-e", "-q",
                           "-o", "beginning", "-f", "x\n"], timeout=timeout)
    ct.check(rc == 0, "kcat -C failed (%d): %s" % (rc, err))
    return out.count("\n")


def producer_env(mc, topic, count, rate, lines=5, seed=1, extra=None):
    env = {"KAFKA_BROKERS": mc.bootstraps, "KAFKA_TOPIC": topic, "SIM_COUNT": str(count),
           "SIM_RATE": str(rate), "SIM_LINES": str(lines), "SIM_SEED": str(seed),
           "SIM_ANOMALY_RATE": "0.01"}
    env.update(extra or {})
    return env


def processor_env(mc, topic, group, output, extra=None):
    env = {"KAFKA_BROKERS": mc.bootstraps, "KAFKA_TOPIC": topic, "KAFKA_GROUP": group,
           "PROCESSOR_OUTPUT": output,
           "PROCESSOR_DEAD_LETTER": output + ".dead-letter"}
    env.update(FAST_GROUP_ENV)
    env.update(extra or {})
    return env


def start_producer(mc, topic, count, rate, workdir=None, **kw):
    return ct.Engine(os.path.join(PIPELINES, "producer.yaml"),
                     env=producer_env(mc, topic, count, rate, **kw), workdir=workdir)


def start_processor(mc, topic, group, output, workdir=None, extra=None):
    return ct.Engine(os.path.join(PIPELINES, "processor-file.yaml"),
                     env=processor_env(mc, topic, group, output, extra), workdir=workdir)


def wait_assigned(engine, timeout=30):
    """Waits for the consumer's first partition assignment (log line)."""
    def assigned():
        if not engine.alive():
            raise ct.TestFailure("processor exited early; stderr:\n" +
                                 engine.stderr_text()[-3000:])
        return any("assigned" in r.get("message", "") for r in engine.log_records())
    ct.wait_until(assigned, timeout, interval=0.1, what="partition assignment")


class Output:
    """Reads a file sink's JSON lines incrementally: (line_id, seq) pairs."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.partial = b""
        self.keys = []
        self.count_pos = 0
        self.count = 0

    def _read_from(self, pos):
        """The file's bytes from pos on (none while it does not exist)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(pos)
                return f.read()
        except FileNotFoundError:
            return b""

    def poll(self):
        data = self._read_from(self.pos)
        self.pos += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if not line:
                continue
            rec = json.loads(line)
            self.keys.append((rec["tags"]["line_id"], rec["fields"]["seq"]))
        return self.keys

    def written(self):
        """Lines in the file so far, duplicates included, counted without
        parsing them: cheap enough to poll for a threshold while records
        stream in on a loaded machine (poll() parses every line)."""
        data = self._read_from(self.count_pos)
        self.count_pos += len(data)
        self.count += data.count(b"\n")
        return self.count

    def distinct(self):
        return len(set(self.poll()))


def check_complete(keys, expected_total, lines=5):
    """Every (line_id, seq) from 1 to its line's last seq is there, and
    there are expected_total distinct ones. Returns the duplicate count."""
    seen = set(keys)
    per_line = {}
    for line, seq in seen:
        per_line.setdefault(line, []).append(seq)
    ct.check(len(per_line) == lines, "expected %d lines, got %s" % (lines, sorted(per_line)))
    missing = []
    for line, seqs in sorted(per_line.items()):
        top = max(seqs)
        if len(seqs) != top or min(seqs) != 1:
            have = set(seqs)
            gaps = [s for s in range(1, top + 1) if s not in have]
            missing.append((line, len(gaps), gaps[:5]))
    ct.check(not missing, "missing records (line, count, first seqs): %r" % missing)
    ct.check(len(seen) == expected_total,
             "expected %d distinct records, got %d" % (expected_total, len(seen)))
    return len(keys) - len(seen)


def wait_output(out, expected, engines=(), timeout=120):
    """Polls the output until it has `expected` distinct records."""
    def done():
        for e in engines:
            if not e.alive():
                raise ct.TestFailure("an engine exited early (%s); stderr:\n%s" %
                                     (e.proc.returncode, e.stderr_text()[-3000:]))
        return out.distinct() >= expected
    try:
        ct.wait_until(done, timeout, interval=0.2,
                      what="%d distinct records in %s" % (expected, out.path))
    except ct.TestFailure as e:
        raise ct.TestFailure("%s; have %d" % (e, out.distinct()))


def record_count(default, sanitize_default):
    """Fewer records under the sanitizers (slower), same checks."""
    return sanitize_default if ct.SANITIZE else default
