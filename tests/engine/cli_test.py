"""The command line: version, plugins [NAME], exit codes for usage errors,
a short `run --duration`."""

import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402


def test_version():
    rc, out, err = ec.conveyor(["version"])
    ct.check(rc == 0, "version: exit %d: %s" % (rc, err))
    ct.check(re.match(r"^conveyor \d+\.\d+\.\d+\S* \(plugin ABI \d+\.\d+\)\n$", out),
             "version output: %r" % out)


def _plugin_rows(out):
    """{name: (kind, version, abi)} from `conveyor plugins`."""
    rows = {}
    lines = out.splitlines()
    ct.check(lines and lines[0].split()[:4] == ["NAME", "KIND", "VERSION", "ABI"],
             "plugins header: %r" % (lines[:1],))
    for line in lines[1:]:
        cols = line.split()
        if len(cols) >= 4:
            rows[cols[0]] = (cols[1], cols[2], cols[3])
    return rows


def test_plugins_lists_core_plugins():
    ec.require_plugins()
    rc, ver, _ = ec.conveyor(["version"])
    abi = re.search(r"ABI (\d+)\.\d+", ver).group(1)
    rc, out, err = ec.conveyor(["plugins"])
    ct.check(rc == 0, "plugins: exit %d: %s" % (rc, err))
    rows = _plugin_rows(out)
    for name, kind in ec.CORE_PLUGINS.items():
        ct.check(name in rows, "plugin %s not listed:\n%s" % (name, out))
        k, v, a = rows[name]
        ct.check(k == kind, "%s listed as %s, expected %s" % (name, k, kind))
        ct.check(re.match(r"^\d+\.\d+(\.\d+)?", v), "%s version %r" % (name, v))
        ct.check(re.match(r"^%s\.\d+$" % abi, a), "%s ABI %r, host ABI major %s" % (name, a, abi))
        ct.check(line_has_description(out, name), "%s has no description" % name)
    # Without CONVEYOR_PLUGIN_PATH the plugins beside the binary are found.
    rc, out2, err = ct.run(["env", "-u", "CONVEYOR_PLUGIN_PATH", ct.BIN, "plugins"])
    ct.check(rc == 0, "plugins without CONVEYOR_PLUGIN_PATH: exit %d: %s" % (rc, err))
    ct.check(set(ec.CORE_PLUGINS) <= set(_plugin_rows(out2)),
             "plugins without CONVEYOR_PLUGIN_PATH:\n%s" % out2)


def line_has_description(out, name):
    for line in out.splitlines():
        cols = line.split(None, 4)
        if cols and cols[0] == name:
            return len(cols) == 5 and len(cols[4]) > 5
    return False


def _option_table(out):
    """{option: {TYPE, DEFAULT, FLAGS, VALUES, DESCRIPTION}} from the
    fixed-width table of `conveyor plugins NAME`."""
    lines = out.splitlines()
    hdr = [i for i, l in enumerate(lines) if l.startswith("OPTION") and "TYPE" in l]
    ct.check(hdr, "no OPTION/TYPE header in:\n%s" % out)
    head = lines[hdr[0]]
    names = ["OPTION", "TYPE", "DEFAULT", "FLAGS", "VALUES", "DESCRIPTION"]
    for n in names:
        ct.check(n in head, "column %s missing in header %r" % (n, head))
    starts = [head.index(n) for n in names]
    table = {}
    for line in lines[hdr[0] + 1:]:
        if not line.strip():
            break
        cells = [line[starts[i]:(starts[i + 1] if i + 1 < len(starts) else None)].strip()
                 for i in range(len(starts))]
        table[cells[0]] = dict(zip(names[1:], cells[1:]))
    return table


def test_plugins_anomaly_options():
    ec.require_plugins()
    rc, out, err = ec.conveyor(["plugins", "anomaly"])
    ct.check(rc == 0, "plugins anomaly: exit %d: %s" % (rc, err))
    ct.check("transform" in out.splitlines()[0], "first line lacks the kind: %r" % out[:200])
    t = _option_table(out)
    want = {"field": "field", "key": "field", "window": "int", "threshold": "double",
            "mode": "enum"}
    for opt, typ in want.items():
        ct.check(opt in t, "option %s not printed:\n%s" % (opt, out))
        ct.check(t[opt]["TYPE"] == typ, "%s type %r, expected %s" % (opt, t[opt]["TYPE"], typ))
        ct.check(len(t[opt]["DESCRIPTION"]) > 5, "%s has no description" % opt)
    ct.check(re.match(r"^\d+$", t["window"]["DEFAULT"]), "window default %r" % t["window"])
    float(t["threshold"]["DEFAULT"])
    ct.check(t["mode"]["DEFAULT"] in ("mark", "drop_normal"), "mode default %r" % t["mode"])
    ct.check(set(t["mode"]["VALUES"].split("|")) == {"mark", "drop_normal"},
             "mode values %r" % t["mode"]["VALUES"])
    # Every core plugin documents its options the same way.
    for name in ec.CORE_PLUGINS:
        rc, out, err = ec.conveyor(["plugins", name])
        ct.check(rc == 0, "plugins %s: exit %d" % (name, rc))
        if "(no options)" not in out:
            for opt, row in _option_table(out).items():
                ct.check(row["TYPE"] and row["DESCRIPTION"], "%s.%s: %s" % (name, opt, row))


def test_plugins_unknown_name():
    rc, out, err = ec.conveyor(["plugins", "no_such_plugin"])
    ct.check(rc == 2, "plugins no_such_plugin: exit %d" % rc)
    ct.check("no_such_plugin" in err, "stderr: %r" % err)


def test_usage_errors_exit_2():
    spec = os.path.join(ec.SPECS, "ok_small.yaml")
    cases = [
        [],
        ["frobnicate"],
        ["--frobnicate"],
        ["run", "--frobnicate"],
        ["run", spec, "--bogus-flag"],
        ["run", spec, "--duration"],
        ["run", spec, "--duration", "soon"],
        ["run", spec, "--duration", "-3"],
        ["run", spec, "--listen"],
        ["run", spec, "--listen", "127.0.0.1:99999"],
        ["run", spec, "--listen", "[::1"],
        ["run", spec, spec],
        ["validate"],
    ]
    for args in cases:
        rc, out, err = ec.conveyor(args, timeout=20)
        ct.check(rc == 2, "conveyor %s: exit %d, expected 2\nstderr: %s" %
                 (" ".join(args), rc, err[-1000:]))
        ct.check(err.strip(), "conveyor %s: nothing on stderr" % " ".join(args))
    rc, out, err = ec.conveyor(["help"])
    ct.check(rc == 0 and "usage" in out.lower(), "help: exit %d %r" % (rc, out[:200]))


def test_run_duration_exits_0():
    ec.require_plugins()
    d = ct.tmpdir()
    t0 = time.monotonic()
    e = ct.Engine(os.path.join(ec.SPECS, "ok_small.yaml"), args=["--duration", "2"], workdir=d)
    e.wait_ready()
    m = e.metrics()
    rc = e.wait_exit(30)
    took = time.monotonic() - t0
    ct.check(rc == 0, "run --duration 2: exit %d\n%s" % (rc, e.stderr_text()[-3000:]))
    ct.check(took >= 1.9, "run --duration 2 ended after %.2fs" % took)
    ct.check(ct.metric_sum(m, "conveyor_stage_records_out_total", pipeline="small",
                           stage="sim_speed") is not None, "no source metric while running")


def test_run_listen_in_use_exits_1():
    ec.require_plugins()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        e = ct.Engine(os.path.join(ec.SPECS, "ok_small.yaml"), listen="127.0.0.1:%d" % port,
                      args=["--duration", "5"])
        rc = e.wait_exit(30)
    ct.check(rc == 1, "run on a port in use: exit %d, expected 1 (runtime failure)\n%s" %
             (rc, e.stderr_text()[-2000:]))


def test_listen_off():
    """`engine.http.listen: off` and `--listen off` start no HTTP server: a
    run whose spec names a port already in use still succeeds with
    --listen off (without it, it exits 1: see above)."""
    ec.require_plugins()
    d = ct.tmpdir()
    body = """
    source: { plugin: sim_speed, lines: 2, rate: 0, count: 100, seed: 3 }
    sink: { plugin: file, path: "%s" }
""" % os.path.join(d, "out.jsonl")
    off = ct.write_file(os.path.join(d, "off.yaml"),
                        ec.spec({"p": body}, engine="  http: { listen: off }"))
    rc, out, err = ec.conveyor(["run", off], timeout=60)
    ct.check(rc == 0, "listen: off: exit %d\n%s" % (rc, err[-3000:]))
    ct.check("serving /metrics" not in err, "listen: off still serves HTTP:\n%s" % err[-2000:])
    ct.check(len(ec.read_jsonl(os.path.join(d, "out.jsonl"))) == 100, "records missing")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = ct.write_file(os.path.join(d, "busy.yaml"), ec.spec(
            {"p": body}, engine='  http: { listen: "127.0.0.1:%d" }' % s.getsockname()[1]))
        rc, out, err = ec.conveyor(["run", busy, "--listen", "off"], timeout=60)
    ct.check(rc == 0, "--listen off on a spec whose port is in use: exit %d\n%s" %
             (rc, err[-3000:]))
    ct.check("serving /metrics" not in err, "--listen off still serves HTTP")


if __name__ == "__main__":
    ct.main([
        test_version,
        test_plugins_lists_core_plugins,
        test_plugins_anomaly_options,
        test_plugins_unknown_name,
        test_usage_errors_exit_2,
        test_run_duration_exits_0,
        test_run_listen_in_use_exits_1,
        test_listen_off,
    ])
