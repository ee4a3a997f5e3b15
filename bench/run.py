#!/usr/bin/env python3
"""Conveyor's benchmark harness: one command, a table against baselines.

    bench/run.py                 # every suite, full size
    bench/run.py --quick         # a short smoke run of every suite
    bench/run.py --suite core    # one suite (bench/suite_<name>.py)

It builds a Release tree in build-bench (unless --build-dir names one),
checks its environment (build type, CPUs, load, sanitizers) and prints it,
shows progress while it runs, prints a table, and writes the results as JSON
to bench/results/latest.json (and a timestamped copy), with PNG charts next
to it (latest-latency.png: latency against offered rate; latest-batch.png:
throughput against batch size; bench/charts.py, python3-matplotlib).
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import charts  # noqa: E402


class Context:
    def __init__(self, build_dir, quick, workdir):
        self.build_dir = build_dir
        self.conveyor = os.path.join(build_dir, "conveyor")
        self.plugin_dir = os.path.join(build_dir, "plugins")
        self.source_dir = SOURCE_DIR
        self.workdir = workdir
        self.quick = quick
        self._t0 = time.monotonic()

    def progress(self, msg):
        print("[%6.1fs] %s" % (time.monotonic() - self._t0, msg), file=sys.stderr, flush=True)

    def run_engine(self, spec_path, env=None):
        """Runs `conveyor run SPEC` to its end; returns wall seconds, the
        process's CPU seconds and its stderr. Raises on a non-zero exit."""
        full_env = dict(os.environ, CONVEYOR_PLUGIN_PATH=self.plugin_dir)
        if env:
            full_env.update(env)
        start = time.monotonic()
        p = subprocess.Popen([self.conveyor, "run", spec_path], env=full_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # stderr is read after exit: the runs log little (level warn or info).
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            raise
        wall = time.monotonic() - start
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            raise RuntimeError("conveyor exited %d: %s" % (rc, err[-500:]))
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "stderr": err}


def cmake_cache(build_dir, key):
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def build(build_dir, ctx):
    ctx.progress("building a Release tree in %s" % build_dir)
    subprocess.run(["cmake", "-S", SOURCE_DIR, "-B", build_dir, "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release", "-DCONVEYOR_TESTS=ON"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir], check=True, stdout=subprocess.DEVNULL)


def environment(build_dir):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env = {
        "host": platform.node(),
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "kernel": platform.release(),
        "build_dir": build_dir,
        "build_type": cmake_cache(build_dir, "CMAKE_BUILD_TYPE"),
        "compiler": cmake_cache(build_dir, "CMAKE_C_COMPILER"),
        "sanitize": cmake_cache(build_dir, "CONVEYOR_SANITIZE"),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    warnings = []
    if env["build_type"] not in ("Release", "RelWithDebInfo"):
        warnings.append("build type is %s, not Release: figures are not representative"
                        % env["build_type"])
    if env["sanitize"] in ("ON", "1", "TRUE"):
        warnings.append("sanitizer build: figures are not representative")
    if env["load_avg_1m"] > 0.5 * (env["cpus"] or 1):
        warnings.append("machine is busy (load %.2f on %s CPUs): figures will be low"
                        % (env["load_avg_1m"], env["cpus"]))
    env["warnings"] = warnings
    return env


def load_suites(names):
    suites = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("suite_") and fn.endswith(".py")):
            continue
        name = fn[len("suite_"):-3]
        if names and name not in names:
            continue
        spec = importlib.util.spec_from_file_location("suite_" + name, os.path.join(HERE, fn))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        suites.append((name, mod))
    return suites


def fmt_num(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if abs(v) >= 1e6:
        return "%.2fM" % (v / 1e6)
    if abs(v) >= 1e4:
        return "%.1fk" % (v / 1e3)
    if abs(v) >= 100:
        return "%.0f" % v
    return "%.3g" % v


def print_table(rows):
    cols = [("benchmark", "benchmark"), ("metric", "metric"), ("value", "value"),
            ("unit", "unit"), ("baseline", "baseline"), ("ratio", "ratio"),
            ("target", "target"), ("ok", "ok")]
    table = [[c[1] for c in cols]]
    for r in rows:
        table.append([r.get("benchmark", ""), r.get("metric", ""), fmt_num(r.get("value")),
                      r.get("unit", ""), fmt_num(r.get("baseline")),
                      "-" if r.get("ratio") is None else "%.3f" % r["ratio"],
                      r.get("target") or "-",
                      "-" if r.get("ok") is None else ("yes" if r["ok"] else "NO")])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(cols))]
    for i, row in enumerate(table):
        print("  ".join(str(c).ljust(widths[j]) for j, c in enumerate(row)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short smoke run of every suite")
    ap.add_argument("--suite", action="append", default=[], help="run only this suite (repeatable)")
    ap.add_argument("--build-dir", help="use this build tree instead of building build-bench")
    ap.add_argument("--output", help="JSON output path (default bench/results/latest.json)")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="conveyor-bench-")
    build_dir = os.path.abspath(args.build_dir or os.path.join(SOURCE_DIR, "build-bench"))
    ctx = Context(build_dir, args.quick, workdir)
    try:
        if not args.build_dir:
            build(build_dir, ctx)
        if not os.path.exists(ctx.conveyor):
            print("bench: no conveyor binary in %s" % build_dir, file=sys.stderr)
            return 2
        env = environment(build_dir)
        print("environment: %s, %s CPUs (%s), load %.2f, build %s, compiler %s%s" % (
            env["host"], env["cpus"], env["cpu_model"], env["load_avg_1m"], env["build_type"],
            env["compiler"], ", QUICK run" if args.quick else ""))
        for w in env["warnings"]:
            print("warning: " + w)
        rows = []
        failed_suites = []
        for name, mod in load_suites(args.suite):
            ctx.progress("suite %s: %s" % (name, getattr(mod, "TITLE", "")))
            try:
                rows.extend(mod.run(ctx))
            except Exception as e:  # one broken suite does not hide the others
                failed_suites.append(name)
                rows.append({"benchmark": name, "metric": "suite failed", "value": None,
                             "unit": "", "baseline": None, "ratio": None,
                             "target": None, "ok": False, "error": str(e)})
                ctx.progress("suite %s failed: %s" % (name, e))
        print()
        print_table(rows)
        result = {"environment": env, "quick": args.quick, "rows": rows}
        out = args.output or os.path.join(HERE, "results", "latest.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump(result, f, indent=2)
        if not args.output:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            shutil.copy(out, os.path.join(HERE, "results", "bench-%s.json" % stamp))
        print("\nresults written to %s" % out)
        try:
            for png in charts.draw(result, out):
                print("chart written to %s" % png)
        except ImportError:
            print("no charts: python3-matplotlib is not installed", file=sys.stderr)
        return 1 if failed_suites else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
