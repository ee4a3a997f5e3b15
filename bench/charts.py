#!/usr/bin/env python3
"""Charts of bench results (Debian's python3-matplotlib, no display needed):

- latency: end-to-end p50 and p99 against the offered rate, with the
  targets (suite_latency rows with "chart": "latency");
- batch: flat-out throughput against queue.batch_records (rows with
  "chart": "batch").

bench/run.py calls draw() after writing its JSON, so the PNGs land next to
it. By hand, to compare runs (e.g. before and after a change):

    bench/charts.py --output docs/latency.png \\
        --label before old.json --label after bench/results/latest.json
"""

import argparse
import json
import os
import subprocess
import sys

TARGETS = [(1000, 25.0), (10000, 50.0)]  # (records/s, p99 ms), issue 16


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _latency(ax, runs):
    styles = ["-", "--", ":", "-."]
    for i, (label, rows) in enumerate(runs):
        for q, marker in (("p50", "o"), ("p99", "s")):
            pts = sorted((r["offered"], r["value"]) for r in rows
                         if r.get("chart") == "latency" and r.get("quantile") == q
                         and r.get("value") is not None)
            if not pts:
                continue
            name = q if not label else "%s %s" % (label, q)
            ax.plot([x for x, _ in pts], [y for _, y in pts], styles[i % len(styles)],
                    marker=marker, label=name)
    ax.plot([t[0] for t in TARGETS], [t[1] for t in TARGETS], "rv", markersize=9,
            linestyle="none", label="p99 target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (records/s)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("sim_speed -> kafka_out -> Kafka -> kafka_in -> anomaly -> null")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")


def _batch(ax, runs):
    styles = ["-", "--", ":", "-."]
    for i, (label, rows) in enumerate(runs):
        pts = sorted((r["batch_records"], r["value"]) for r in rows
                     if r.get("chart") == "batch" and r.get("value") is not None)
        if not pts:
            continue
        ax.plot([x for x, _ in pts], [y / 1e6 for _, y in pts], styles[i % len(styles)],
                marker="o", label=label or "throughput")
    ax.set_xscale("log", base=2)
    sizes = sorted({r["batch_records"] for _, rows in runs for r in rows
                    if r.get("chart") == "batch"})
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(x) for x in sizes])
    ax.minorticks_off()
    ax.set_xlabel("queue.batch_records")
    ax.set_ylabel("throughput (M records/s)")
    ax.set_title("sim_speed -> anomaly -> null, flat out")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")


def _has(runs, kind):
    return any(r.get("chart") == kind for _, rows in runs for r in rows)


def figure(runs, path, kinds=("latency", "batch")):
    """Draws the charts of `kinds` that the runs [(label, rows)] hold, side
    by side, into `path`. Returns the path, or None when there is nothing to
    draw."""
    kinds = [k for k in kinds if _has(runs, k)]
    if not kinds:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 4.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        (_latency if kind == "latency" else _batch)(ax, runs)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


DEBIAN_PYTHON = "/usr/bin/python3"


def draw(result, json_path):
    """One PNG per chart next to `json_path` (latest.json ->
    latest-latency.png, latest-batch.png), from the results already written
    there. Returns the paths written. Without matplotlib in this Python (a
    virtualenv, pyenv), Debian's python3 draws them; raises ImportError
    when neither has it."""
    stem = os.path.splitext(json_path)[0]
    out = []
    for kind in ("latency", "batch"):
        if not _has([("", result["rows"])], kind):
            continue
        path = "%s-%s.png" % (stem, kind)
        try:
            figure([("", result["rows"])], path, kinds=(kind,))
        except ImportError:
            if not os.path.exists(DEBIAN_PYTHON) or os.path.realpath(
                    sys.executable) == os.path.realpath(DEBIAN_PYTHON):
                raise
            p = subprocess.run([DEBIAN_PYTHON, os.path.abspath(__file__), "--output", path,
                                "--kind", kind, "--label", "", json_path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if p.returncode != 0:
                raise ImportError(p.stderr.decode(errors="replace").strip()[-300:])
        out.append(path)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", required=True, help="PNG to write")
    ap.add_argument("--label", nargs=2, action="append", metavar=("LABEL", "JSON"),
                    required=True, help="a results file and its label (repeatable)")
    ap.add_argument("--kind", action="append", choices=("latency", "batch"),
                    help="only this chart (repeatable; default both, side by side)")
    args = ap.parse_args()
    runs = []
    for label, path in args.label:
        with open(path) as f:
            runs.append((label, json.load(f)["rows"]))
    if not figure(runs, args.output, kinds=args.kind or ("latency", "batch")):
        print("charts: no latency or batch rows in the results", file=sys.stderr)
        return 1
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
