"""valgrind memcheck finds no error and no definite or indirect leak in a
short finite run and in a short run of the built-in demo. Skipped in the
sanitizer build (CONVEYOR_SANITIZE=1)."""

import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

VALGRIND = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--track-origins=no", "--num-callers=30"]


def _valgrind(args, workdir, what, env=None, timeout=240):
    ct.check(ec.which("valgrind"), "valgrind not installed")
    log = os.path.join(workdir, "valgrind-%s.log" % what)
    full = dict(os.environ)
    full.update(ec.plugin_env(env))
    full["CONVEYOR_LOG_FORMAT"] = "json"
    try:
        r = subprocess.run(VALGRIND + ["--log-file=" + log, ct.BIN] + args, env=full,
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ct.TestFailure("%s under valgrind: still running after %ds" % (what, timeout))
    report = open(log, errors="replace").read()
    ct.check(r.returncode == 0, "%s under valgrind: exit %d (99: memcheck errors or leaks)\n"
             "valgrind:\n%s\nstderr:\n%s" % (what, r.returncode, report[-6000:],
                                              r.stderr.decode(errors="replace")[-2000:]))
    ct.check("ERROR SUMMARY: 0 errors" in report, "%s: %s" % (what, report[-3000:]))
    return r


def test_finite_run_under_valgrind():
    if ct.SANITIZE:
        print("  skipped: sanitizer build")
        return
    ec.require_plugins()
    d = ct.tmpdir()
    out = os.path.join(d, "out.jsonl")
    path = ct.write_file(os.path.join(d, "spec.yaml"), ec.spec({"vg": """
    source: { plugin: sim_speed, lines: 4, rate: 0, count: 2000 }
    transforms:
      - { plugin: anomaly, window: 20 }
    sink: { plugin: file, path: "%s" }
""" % out}, engine="  shutdown_timeout: 60s"))
    _valgrind(["run", path, "--listen", "127.0.0.1:%d" % ct.free_port()], d, "finite")
    recs = ec.read_jsonl(out)
    ct.check(len(recs) == 2000, "file has %d records under valgrind" % len(recs))
    ec.check_sequences(recs, lines=4)


def test_demo_under_valgrind():
    if ct.SANITIZE:
        print("  skipped: sanitizer build")
        return
    ec.require_plugins()
    d = ct.tmpdir()
    r = _valgrind(["run", "--listen", "127.0.0.1:%d" % ct.free_port(), "--duration", "2"], d,
                  "demo")
    ct.check(b"rate:" in r.stderr, "the demo logged no rate summary at exit:\n%s" %
             r.stderr.decode(errors="replace")[-2000:])


def test_spec_errors_under_valgrind():
    """The error paths free what they allocated too."""
    if ct.SANITIZE:
        print("  skipped: sanitizer build")
        return
    ec.require_plugins()
    d = ct.tmpdir()
    files = [os.path.join(ec.SPECS, n) for n in ("err_unknown_option.yaml", "err_wrong_type.yaml",
                                                  "err_duplicate_stage.yaml",
                                                  "err_yaml_syntax.yaml", "ok_small.yaml")]
    log = os.path.join(d, "valgrind-validate.log")
    full = dict(os.environ)
    full.update(ec.plugin_env())
    r = subprocess.run(VALGRIND + ["--log-file=" + log, ct.BIN, "validate"] + files, env=full,
                       capture_output=True, timeout=240)
    report = open(log, errors="replace").read()
    ct.check(r.returncode == 2, "validate under valgrind: exit %d (99: memcheck errors or leaks)"
             "\n%s" % (r.returncode, report[-6000:]))
    ct.check("ERROR SUMMARY: 0 errors" in report, report[-3000:])


if __name__ == "__main__":
    ct.main([test_finite_run_under_valgrind, test_demo_under_valgrind,
             test_spec_errors_under_valgrind])
