"""Number text: the shortest double formatter and the float parser of
plugins/common (record_format.c, record_decode.c) against libc, in ns per
double over several distributions, with every result checked
(tests/bench/numbers_bench, built at -O2 in any tree)."""

import os
import subprocess

TITLE = "double formatting and parsing, ns per double, against %.17g and strtod"

# What each of our implementations is compared with.
BASELINES = {"format": ["%.17g", "shortest_loop"], "parse": ["strtod"]}


def run(ctx):
    exe = os.path.join(ctx.build_dir, "tests", "bench", "numbers_bench")
    if not os.path.exists(exe):
        raise RuntimeError("no %s: build the tree with CONVEYOR_TESTS=ON" % exe)
    ctx.progress("numbers: %s" % exe)
    out = subprocess.run([exe] + (["--quick"] if ctx.quick else []), check=True,
                         stdout=subprocess.PIPE, text=True, timeout=600).stdout
    ns, wrong = {}, {}
    order = []
    for line in out.splitlines():
        op, dist, impl, value, bad = line.split("\t")
        ns[op, dist, impl] = float(value)
        wrong[op, dist, impl] = int(bad)
        if (op, dist) not in order:
            order.append((op, dist))
    rows = []
    for op, dist in order:
        bench = "numbers %s (%s)" % (op, dist)
        ours = ns[op, dist, "ours"]
        for base in BASELINES[op]:
            b = ns[op, dist, base]
            rows.append({"benchmark": bench, "metric": "ns per double vs " + base,
                         "value": ours, "unit": "ns", "baseline": b, "ratio": ours / b,
                         "target": None, "ok": None})
        bad = wrong[op, dist, "ours"]
        rows.append({"benchmark": bench, "metric": "wrong results",
                     "value": bad, "unit": "count", "baseline": None, "ratio": None,
                     "target": "0", "ok": bad == 0,
                     "baseline_wrong": {b: wrong[op, dist, b] for b in BASELINES[op]}})
    return rows
