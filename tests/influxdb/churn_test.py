"""Consumer-group churn into a real influxd: processors (pipelines/
processor.yaml: kafka_in -> anomaly -> influxdb over HTTPS with auth) join and
leave one consumer group, by SIGTERM and by kill -9, while 300k records flow
through the mock Kafka cluster (its own process). At the end influxd holds
every (line_id, seq) exactly once (a record delivered twice overwrites its
own point), and the group has committed every partition to its end (lag 0).

Skips (exit 77) when the Kafka plugins or tools are not built.
Run: CONVEYOR_BIN=build/conveyor CONVEYOR_PLUGIN_DIR=build/plugins python3 tests/influxdb/churn_test.py
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
sys.path.insert(0, HERE)
import conveyor_test as ct  # noqa: E402
import flow_env as fe  # noqa: E402
import group_env as ge  # noqa: E402
import influx_env as ie  # noqa: E402
import kafka_env as ke  # noqa: E402

# The sanitizer build runs several times slower: fewer records, same shape.
TOTAL = 60000 if ct.SANITIZE else 300000
# About 60 s of flow: the four changes (each waiting for its rebalance, a
# kill -9 for the 3 s session timeout too) happen while records flow, also
# on a loaded machine.
RATE = TOTAL // 60


def test_churn_exact_count_no_partition_left():
    mc = ke.MockCluster({fe.TOPIC: fe.PARTITIONS})
    pki = ie.Pki(ct.tmpdir("conveyor-pki-"))
    db = ie.Influxd(pki)
    work = ct.tmpdir("conveyor-churn-")
    env = fe.processor_env(mc, db, pki, work)
    members = []  # every processor started, in order

    def start(name):
        e = ct.Engine(fe.PROCESSOR, env=env, workdir=ct.tmpdir("conveyor-%s-" % name))
        e.name = name
        members.append(e)
        return e

    def stored():
        return fe.stored(db)

    alive = [start("p1"), start("p2"), start("p3")]
    for e in alive:
        ke.wait_assigned(e, timeout=60)
    producer = fe.start_producer(mc, TOTAL, RATE)

    # Each step waits for a share of the points to be stored, then the
    # oldest member leaves (SIGTERM: a clean leave; kill -9: its session
    # expires) and a new one joins.
    steps = [(0.10, "term"), (0.30, "kill"), (0.50, "term"), (0.70, "kill")]
    events = []
    sigterm_exits = []
    for i, (share, how) in enumerate(steps):
        ct.wait_until(lambda: stored() >= share * TOTAL, 120,
                      what="%d%% of the points in influxd" % (share * 100))
        leaving = alive.pop(0)
        at = stored()
        if how == "kill":
            leaving.kill9()
        else:
            sigterm_exits.append((leaving.name, leaving.stop(timeout=30)))
        joining = start("p%d" % (4 + i))
        alive.append(joining)
        events.append("%s %s at %d" % (how, leaving.name, at))
        # The next change waits for this one's rebalance to hand the
        # newcomer its partitions.
        ke.wait_assigned(joining, timeout=60)
    ct.check(stored() < TOTAL, "everything was stored before the churn ended: no churn under "
             "flow (%s)" % "; ".join(events))
    fe.wait_produced(producer, mc, TOTAL)

    ct.wait_until(lambda: stored() >= TOTAL, 180,
                  what="%d points in influxd (have %d)" % (TOTAL, stored()))
    ct.wait_until(lambda: ge.lag(fe.offsets(mc)) == 0, 60,
                  what="every partition committed to its end (lag 0)")
    offsets = fe.offsets(mc)
    ge.check_nothing_pruned(offsets)
    for e in alive:
        sigterm_exits.append((e.name, e.stop(timeout=30)))
    for name, code in sigterm_exits:
        ct.check(code == 0, "processor %s exited %s after SIGTERM" % (name, code))

    fe.check_exact(db, TOTAL)
    fe.check_no_dead_letters(work)
    for e in members:
        ct.check(ie.WRITER_PASSWORD not in e.stderr_text(), "the password was logged")
    print("  %d members, %s; influxd holds exactly %d, %d partitions committed to the end" %
          (len(members), "; ".join(events), stored(), len(offsets)))
    mc.stop()


if __name__ == "__main__":
    gone = fe.missing()
    if gone:
        print("SKIP: the churn test needs %s (not built)" %
              ", ".join(os.path.relpath(p, ct.BUILD_DIR) for p in gone))
        sys.exit(77)
    ct.main([test_churn_exact_count_no_partition_left])
