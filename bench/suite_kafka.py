"""Kafka throughput against kcat on the same mock cluster (librdkafka's, in
its own process, as in tests/kafka):

- produce: sim_speed -> kafka_out (JSON, keyed by line_id), whole run from
  start to exit, against kcat producing the very same keys and bytes (the
  same sim_speed run written by the file sink) with the same producer
  settings. The pipeline runs with a 64k-record queue: an asynchronous sink's
  throughput is its in-flight window over the delivery-report latency.
- consume: kafka_in (consumer group) -> null, against kcat consuming the same
  topic (-C -e) with the same fetch and prefetch settings; both measured over
  their steady state, from the first message to the last (conveyor's from the
  null sink's count on /metrics, kcat's from its stdout as it comes; the
  group join, ~3 s in the mock, is left out; kcat's simple consumer has none).

Both ratios are conveyor / kcat in messages per second; target >= 0.95.
"""

import os
import resource
import signal
import socket
import subprocess
import time
import urllib.request
from statistics import median_high  # sorted(xs)[len(xs) // 2]

TITLE = "kafka_out vs kcat -P, kafka_in vs kcat -C (mock cluster)"

TARGET = 0.95
PRODUCE_PARTITIONS = 16
# Spread evenly (no key, no sticky partitioning): 64 x 5 MiB keeps 1M
# messages of ~145 B unpruned.
CONSUME_PARTITIONS = 64
QUEUE_RECORDS = 65536

# kafka_out's and kafka_in's defaults (plugins/kafka_out/kafka_out.c,
# plugins/kafka_in/kafka_in.c), given to kcat so both sides run the same
# librdkafka configuration and the ratio measures the pipeline.
PRODUCER_PROPS = {
    "enable.idempotence": "true", "acks": "all", "linger.ms": "5",
    "batch.num.messages": "10000", "batch.size": "1000000",
    "queue.buffering.max.messages": "200000", "queue.buffering.max.kbytes": "262144",
}
CONSUMER_PROPS = {"fetch.wait.max.ms": "10", "fetch.message.max.bytes": "4194304",
                  "queued.min.messages": "1000000"}
# Both consumers forward every partition to one queue, whose prefetch
# librdkafka bounds (queued.max.messages.kbytes, default 64 MiB). The topic
# holds ~150 MB: with the default bound, fetching pauses and resumes on a
# broker-thread wakeup and both sides measure that wait, not their
# per-message cost. The same larger bound is given to both.
BENCH_CONSUMER_PROPS = {"queued.max.messages.kbytes": "262144"}


def _xargs(props):
    out = []
    for k, v in props.items():
        out += ["-X", "%s=%s" % (k, v)]
    return out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Mock:
    def __init__(self, ctx, topics):
        binary = os.path.join(ctx.build_dir, "tests", "kafka", "mock_cluster")
        if not os.path.exists(binary):
            raise RuntimeError("no %s (build the tests/kafka targets)" % binary)
        path = os.path.join(ctx.workdir, "kafka-bootstrap.txt")
        self.proc = subprocess.Popen(
            [binary, path, "3"] + ["%s:%d" % t for t in topics.items()],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        self.bootstraps = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with open(path) as f:
                    self.bootstraps = f.read().strip() or None
            except FileNotFoundError:
                pass
            if self.bootstraps:
                break
            time.sleep(0.05)
        if not self.bootstraps:
            self.stop()
            raise RuntimeError("mock cluster did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # EOF: it exits
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _env(ctx):
    return dict(os.environ, CONVEYOR_PLUGIN_PATH=ctx.plugin_dir, CONVEYOR_LOG_FORMAT="json")


def _run(args, timeout, **kw):
    if "stdout" not in kw:
        kw["stdout"] = subprocess.PIPE
    p = subprocess.run(args, timeout=timeout, stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (args[0], p.returncode,
                                                 p.stderr.decode(errors="replace")[-500:]))
    return p


def _children_cpu():
    """CPU seconds of the children waited for so far (user + system)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _conveyor_produce(ctx, mc, topic, count):
    """(messages per second, CPU seconds) of one producer run."""
    spec = os.path.join(ctx.workdir, "kafka-produce-%s.yaml" % topic)
    with open(spec, "w") as f:
        f.write("""version: 1
engine:
  http: { listen: "" }
pipelines:
  produce:
    source: { plugin: sim_speed, lines: 5, rate: 0, count: %d, seed: 7 }
    sink: { plugin: kafka_out, brokers: "%s", topic: %s }
    queue: { max_records: %d }
""" % (count, mc.bootstraps, topic, QUEUE_RECORDS))
    cpu0, t0 = _children_cpu(), time.monotonic()
    _run([ctx.conveyor, "run", spec], timeout=600, env=_env(ctx))
    return count / (time.monotonic() - t0), _children_cpu() - cpu0


def _messages(ctx, count, keyed_path, plain_path):
    """The messages sim_speed -> kafka_out sends (same seed and count),
    through the file sink's identical JSON encoder, as kcat input:
    KEY\tVALUE lines and VALUE lines."""
    out = os.path.join(ctx.workdir, "kafka-messages.jsonl")
    spec = os.path.join(ctx.workdir, "kafka-messages.yaml")
    with open(spec, "w") as f:
        f.write("""version: 1
engine:
  http: { listen: "" }
pipelines:
  dump:
    source: { plugin: sim_speed, lines: 5, rate: 0, count: %d, seed: 7 }
    sink: { plugin: file, path: "%s", format: json }
""" % (count, out))
    _run([ctx.conveyor, "run", spec], timeout=600, env=_env(ctx))
    n = 0
    with open(out, "rb") as f, open(keyed_path, "wb") as k, open(plain_path, "wb") as p:
        for line in f:
            i = line.index(b'"line_id":"') + 11
            k.write(line[i:line.index(b'"', i)] + b"\t" + line)
            p.write(line)
            n += 1
    return n


def _kcat_produce(mc, topic, path, keyed, props):
    """(wall seconds, CPU seconds) of one kcat -P run."""
    args = ["kcat", "-b", mc.bootstraps, "-t", topic, "-P", "-q"] + _xargs(props)
    if not keyed:
        args += ["-X", "sticky.partitioning.linger.ms=0"]
    if keyed:
        args += ["-K", "\t"]
    with open(path, "rb") as f:
        cpu0, t0 = _children_cpu(), time.monotonic()
        p = subprocess.run(args, stdin=f, stderr=subprocess.PIPE, timeout=600)
        wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    if p.returncode != 0:
        raise RuntimeError("kcat -P failed: %s" % p.stderr.decode(errors="replace")[-300:])
    return wall, cpu


def _kcat_consume(mc, topic, expected):
    """kcat's steady-state rate, measured as conveyor's is: from the first
    message it writes (its stdout read as it comes) to the last."""
    args = ["kcat", "-b", mc.bootstraps, "-t", topic, "-C", "-e", "-q", "-o", "beginning",
            "-f", "%s\n"] + _xargs(CONSUMER_PROPS) + _xargs(BENCH_CONSUMER_PROPS)
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        fd = p.stdout.fileno()
        deadline = time.monotonic() + 600
        n = first_n = 0
        first_t = last_t = None
        while n < expected and time.monotonic() < deadline:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            now = time.monotonic()
            n += chunk.count(b"\n")
            if first_t is None:
                first_t, first_n = now, n
            last_t = now
        p.wait(timeout=60)
        if p.returncode != 0:
            raise RuntimeError("kcat -C failed: %s" % p.stderr.read().decode(errors="replace")[-300:])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if n < expected:
        raise RuntimeError("kcat consumed %d of %d messages" % (n, expected))
    if last_t <= first_t:
        raise RuntimeError("kcat consumed too fast to measure")
    return (n - first_n) / (last_t - first_t)


def _metric(port, name, kind):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
        body = r.read().decode()
    for line in body.splitlines():
        if line.startswith(name + "{") and 'kind="%s"' % kind in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _conveyor_consume(ctx, mc, topic, expected, group):
    """kafka_in -> null's steady-state rate, from the null sink's delivered
    count polled on /metrics."""
    port = _free_port()
    spec = os.path.join(ctx.workdir, "kafka-consume-%s.yaml" % group)
    with open(spec, "w") as f:
        f.write("""version: 1
engine:
  http: { listen: "127.0.0.1:%d" }
pipelines:
  consume:
    source: { plugin: kafka_in, brokers: "%s", topic: %s, group: %s,
              properties: { session.timeout.ms: "6000", heartbeat.interval.ms: "500", %s } }
    sink: { plugin: null }
""" % (port, mc.bootstraps, topic, group,
       ", ".join('%s: "%s"' % kv for kv in BENCH_CONSUMER_PROPS.items())))
    p = subprocess.Popen([ctx.conveyor, "run", spec], env=_env(ctx), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        first_t = first_n = None
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError("conveyor exited %s while consuming" % p.returncode)
            try:
                n = _metric(port, "conveyor_stage_records_out_total", "sink")
            except OSError:
                n = 0.0
            now = time.monotonic()
            if n > 0 and first_t is None:
                first_t, first_n = now, n
            if n >= expected:
                if now <= first_t:
                    raise RuntimeError("consumed too fast to measure")
                return (n - first_n) / (now - first_t)
            time.sleep(0.02)  # sampling interval, not synchronisation
        raise RuntimeError("conveyor consumed too slowly (timeout)")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _row(name, values, baselines, note):
    value, baseline = median_high(values), median_high(baselines)
    ratio = value / baseline if baseline else None
    return {"benchmark": name, "metric": "throughput (%s)" % note, "value": value,
            "unit": "msgs/s", "baseline": baseline, "ratio": ratio,
            "target": ">= %.2f x kcat" % TARGET,
            "ok": None if ratio is None else ratio >= TARGET,
            "rounds": values, "baseline_rounds": baselines}


def _in_turn(i, a, b):
    """Runs a then b in even rounds, b then a in odd ones."""
    for step in ((a, b) if i % 2 == 0 else (b, a)):
        step()


def run(ctx):
    count = 100000 if ctx.quick else 1000000
    rounds = 1 if ctx.quick else 5
    topics = {"src": CONSUME_PARTITIONS}
    for i in range(rounds):
        topics["conv%d" % i] = PRODUCE_PARTITIONS
        topics["kcat%d" % i] = PRODUCE_PARTITIONS
    keyed = os.path.join(ctx.workdir, "kafka-keyed.txt")
    plain = os.path.join(ctx.workdir, "kafka-values.txt")
    ctx.progress("kafka: writing %d messages for kcat" % count)
    n = _messages(ctx, count, keyed, plain)
    if n != count:
        raise RuntimeError("the file sink wrote %d of %d messages" % (n, count))
    mc = _Mock(ctx, topics)
    try:
        # Five rounds, medians, and the order alternating between rounds:
        # on a shared 2-core VM one run of either side varies by +-10%.
        conv_p, kcat_p, conv_cpu, kcat_cpu = [], [], [], []
        for i in range(rounds):
            def produce_conveyor():
                ctx.progress("kafka: conveyor produces %d messages (round %d)" % (count, i + 1))
                rate, cpu = _conveyor_produce(ctx, mc, "conv%d" % i, count)
                conv_p.append(rate)
                conv_cpu.append(cpu * 1e6 / count)

            def produce_kcat():
                ctx.progress("kafka: kcat produces the same %d messages (round %d)" % (count, i + 1))
                wall, cpu = _kcat_produce(mc, "kcat%d" % i, keyed, True, PRODUCER_PROPS)
                kcat_p.append(count / wall)
                kcat_cpu.append(cpu * 1e6 / count)
            _in_turn(i, produce_conveyor, produce_kcat)
            ctx.progress("kafka: produce: conveyor %.0f/s, kcat %.0f/s" % (conv_p[-1],
                                                                           kcat_p[-1]))

        ctx.progress("kafka: filling the consumer topic (%d partitions)" % CONSUME_PARTITIONS)
        _kcat_produce(mc, "src", plain, False, PRODUCER_PROPS)  # (wall, cpu) unused
        conv_c, kcat_c = [], []
        for i in range(rounds):
            def consume_kcat():
                ctx.progress("kafka: kcat consumes (round %d)" % (i + 1))
                kcat_c.append(_kcat_consume(mc, "src", count))

            def consume_conveyor():
                ctx.progress("kafka: conveyor kafka_in -> null consumes (round %d)" % (i + 1))
                conv_c.append(_conveyor_consume(ctx, mc, "src", count, "bench%d" % i))
            _in_turn(i, consume_kcat, consume_conveyor)
            ctx.progress("kafka: consume: conveyor %.0f/s, kcat %.0f/s" % (conv_c[-1],
                                                                           kcat_c[-1]))
    finally:
        mc.stop()
    cpu_value, cpu_baseline = median_high(conv_cpu), median_high(kcat_cpu)
    return [
        _row("kafka_out produce (sim_speed -> kafka_out, JSON)", conv_p, kcat_p,
             "start to exit, %d msgs" % count),
        # Steadier than throughput on a shared VM, where both sides are
        # CPU-bound with the mock broker: conveyor's whole process
        # (generating, encoding, librdkafka) against kcat's.
        {"benchmark": "kafka_out produce (sim_speed -> kafka_out, JSON)",
         "metric": "CPU per million messages (vs kcat)", "value": cpu_value,
         "unit": "CPU-s/M", "baseline": cpu_baseline,
         "ratio": cpu_value / cpu_baseline if cpu_baseline else None,
         "target": None, "ok": None, "rounds": conv_cpu, "baseline_rounds": kcat_cpu},
        _row("kafka_in consume (kafka_in -> null, JSON decode)", conv_c, kcat_c,
             "steady state, %d msgs" % count),
    ]
