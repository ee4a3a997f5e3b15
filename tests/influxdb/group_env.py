"""What a Kafka consumer group committed, read without joining the group
(tests/influxdb/group_offsets, built with librdkafka)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import conveyor_test as ct  # noqa: E402

GROUP_OFFSETS = os.path.join(ct.BUILD_DIR, "tests", "influxdb", "group_offsets")


def offsets(bootstraps, group, topic, partitions):
    """{partition: (committed or -1, low, high)} of `group` on `topic`."""
    rc, out, err = ct.run([GROUP_OFFSETS, bootstraps, group, topic], timeout=30)
    ct.check(rc == 0, "group_offsets failed (%d): %s" % (rc, err))
    rows = {}
    for line in out.splitlines():
        if line.strip():
            p, committed, low, high = (int(x) for x in line.split())
            rows[p] = (committed, low, high)
    ct.check(len(rows) == partitions, "offsets of %d partitions: %r" % (partitions, rows))
    return rows


def committed(rows):
    return sum(max(c, 0) for c, _, _ in rows.values())


def lag(rows):
    """Records not committed yet, over every partition."""
    return sum(h - max(c, 0) for c, _, h in rows.values())


def check_nothing_pruned(rows):
    """The mock cluster drops the oldest records of a partition past ~5 MiB:
    a test whose topic lost records cannot count them."""
    pruned = {p: low for p, (_, low, _) in rows.items() if low > 0}
    ct.check(not pruned, "the mock cluster pruned partitions (first offsets %r): the test "
             "needs more partitions" % pruned)
