"""The SDK end to end: install it into a temporary prefix (the header and
conveyor-sdk.pc alone), build the template plugin out of tree with pkg-config
(make and CMake), load it by path and by name, and check that a plugin built
for another ABI is refused naming both versions."""

import atexit
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))

from conveyor_test import (BIN, BUILD_DIR, PLUGIN_DIR, SANITIZE, SOURCE_DIR, check,  # noqa: E402
                           main, run, tmpdir, write_file)

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS = 1000
BUILD_TIMEOUT = 180

_sdk = {}


def workdir(prefix):
    """A temporary directory removed at exit (kept with KEEP_TEST_FILES=1)."""
    d = tmpdir(prefix)
    if os.environ.get("KEEP_TEST_FILES") != "1":
        atexit.register(shutil.rmtree, d, True)
    return d


def host_abi():
    """(major, minor) of the engine, from `conveyor version`."""
    rc, out, err = run([BIN, "version"])
    check(rc == 0, "conveyor version failed: %s" % err)
    m = re.search(r"plugin ABI (\d+)\.(\d+)", out)
    check(m, "no ABI in `conveyor version`: %r" % out)
    return int(m.group(1)), int(m.group(2))


def build_env(prefix):
    """The environment of an out-of-tree build: pkg-config sees the temporary
    prefix and nothing else; no include path leaks in from outside."""
    env = dict(os.environ)
    for var in ("PKG_CONFIG_PATH", "CPATH", "C_INCLUDE_PATH", "CFLAGS", "CPPFLAGS",
                "LDFLAGS", "MAKEFLAGS", "MFLAGS", "CMAKE_PREFIX_PATH"):
        env.pop(var, None)
    env["PKG_CONFIG_LIBDIR"] = os.path.join(prefix, "lib", "pkgconfig")
    return env


def sh(args, env, cwd, what):
    r = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
    check(r.returncode == 0, "%s failed (exit %d):\n%s\n%s" % (what, r.returncode, r.stdout,
                                                               r.stderr))
    return r.stdout + r.stderr


def sdk():
    """Installs the SDK and builds the template once; returns paths."""
    if _sdk:
        return _sdk
    work = workdir("conveyor-sdk-")
    prefix = os.path.join(work, "prefix")
    rc, out, err = run(["cmake", "--install", BUILD_DIR, "--prefix", prefix, "--component",
                        "sdk"], timeout=BUILD_TIMEOUT)
    check(rc == 0, "cmake --install --component sdk failed:\n%s%s" % (out, err))
    installed = sorted(os.path.relpath(os.path.join(d, f), prefix)
                       for d, _, fs in os.walk(prefix) for f in fs)
    env = build_env(prefix)

    # A copy outside the source tree: nothing relative can reach the repo.
    template = os.path.join(work, "scale")
    shutil.copytree(os.path.join(SOURCE_DIR, "sdk", "template"), template)
    for leftover in ("scale.so", "build"):
        p = os.path.join(template, leftover)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    log = sh(["make"], env, template, "make (template)")
    _sdk.update(work=work, prefix=prefix, installed=installed, env=env, template=template,
                make_log=log,
                plugin=os.path.join(template, "scale.so"))
    return _sdk


def test_install_is_header_and_pc_only():
    s = sdk()
    check(s["installed"] == ["include/conveyor/plugin.h", "lib/pkgconfig/conveyor-sdk.pc"],
          "the sdk component installs %s" % s["installed"])
    with open(os.path.join(SOURCE_DIR, "sdk", "include", "conveyor", "plugin.h")) as a, \
            open(os.path.join(s["prefix"], "include", "conveyor", "plugin.h")) as b:
        check(a.read() == b.read(), "installed plugin.h differs from sdk/include")
    rc, out, err = run(["pkg-config", "--cflags", "conveyor-sdk"], env=s["env"])
    check(rc == 0, "pkg-config --cflags conveyor-sdk: %s" % err)
    inc = re.search(r"-I(\S+)", out)
    check(inc, "no -I in %r" % out)
    check(os.path.samefile(inc.group(1), os.path.join(s["prefix"], "include")),
          "pkg-config points at %s, not into the prefix %s" % (inc.group(1), s["prefix"]))
    rc, out, err = run(["pkg-config", "--variable=plugindir", "conveyor-sdk"], env=s["env"])
    check(rc == 0 and os.path.normpath(out.strip()) ==
          os.path.join(s["prefix"], "lib", "conveyor", "plugins"),
          "plugindir is %r" % out)


def test_make_builds_against_installed_header():
    s = sdk()
    check(os.path.exists(s["plugin"]), "make produced no scale.so")
    log = s["make_log"]
    check(s["prefix"] in log, "the compile command does not use the prefix:\n%s" % log)
    check(os.path.realpath(SOURCE_DIR) not in log and SOURCE_DIR not in log,
          "the compile command reaches into the source tree:\n%s" % log)
    for flag in ("-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-fvisibility=hidden",
                 "-shared"):
        check(flag in log, "%s missing from the compile command:\n%s" % (flag, log))
    if shutil.which("nm"):
        out = sh(["nm", "-D", "--defined-only", s["plugin"]], s["env"], s["template"], "nm")
        syms = [line.split()[-1] for line in out.splitlines() if line.strip()]
        check(syms == ["cv_plugin_descriptor"], "exported symbols: %s" % syms)
    # make install: into the SDK's plugindir, where a conveyor of the same
    # prefix looks by default.
    sh(["make", "install"], s["env"], s["template"], "make install")
    check(os.path.exists(os.path.join(s["prefix"], "lib", "conveyor", "plugins", "scale.so")),
          "make install did not put scale.so into PREFIX/lib/conveyor/plugins")


def test_cmake_builds_against_installed_header():
    s = sdk()
    src = os.path.join(s["work"], "scale-cmake")
    shutil.copytree(os.path.join(SOURCE_DIR, "sdk", "template"), src,
                    ignore=shutil.ignore_patterns("*.so", "build*"))
    build = os.path.join(src, "build")
    sh(["cmake", "-S", src, "-B", build], s["env"], src, "cmake configure (template)")
    sh(["cmake", "--build", build], s["env"], src, "cmake --build (template)")
    cache = open(os.path.join(build, "CMakeCache.txt")).read()
    check(os.path.realpath(SOURCE_DIR) not in cache, "the CMake build refers to the source tree")
    inst = os.path.join(s["work"], "plugin-prefix")
    sh(["cmake", "--install", build, "--prefix", inst], s["env"], src, "cmake --install")
    so = os.path.join(inst, "lib", "conveyor", "plugins", "scale.so")
    check(os.path.exists(so), "cmake --install put no %s" % so)
    rc, out, err = run([BIN, "plugins", so])
    check(rc == 0 and "scale (transform)" in out, "conveyor plugins %s: %d\n%s%s" %
          (so, rc, out, err))


def spec_text(transforms, out_path, dead_letter=None):
    dl = "    dead_letter: { path: %s }\n" % json.dumps(dead_letter) if dead_letter else ""
    return (
        "version: 1\n"
        "engine:\n"
        "  http: { listen: \"\" }\n"
        "  log: { level: info, format: json }\n"
        "pipelines:\n"
        "  sdk:\n"
        "    source: { plugin: sim_speed, lines: 3, rate: 0, count: %d, seed: 7 }\n"
        "    transforms:\n%s"
        "    sink: { plugin: file, path: %s, format: json }\n"
        "%s" % (RECORDS, transforms, json.dumps(out_path), dl))


def conveyor(args, cwd, timeout=120):
    """Runs conveyor in `cwd` (plugins by relative path resolve there)."""
    env = dict(os.environ)
    env["CONVEYOR_PLUGIN_PATH"] = PLUGIN_DIR
    env["CONVEYOR_LOG_FORMAT"] = "json"
    r = subprocess.run([BIN] + args, env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_run_by_path():
    s = sdk()
    work = workdir("conveyor-sdk-run-")
    out = os.path.join(work, "out.jsonl")
    # Two instances of the plugin in one pipeline: by path from the working
    # directory, and by absolute path; the second rounds the first's output.
    transforms = (
        "      - { plugin: ./scale.so, name: kmh, field: speed_ms, factor: 3.6, offset: 0.5,\n"
        "          output_field: speed_kmh }\n"
        "      - { plugin: %s, name: kmh_rounded, field: speed_kmh, decimals: 1,\n"
        "          output_field: speed_kmh_1 }\n" % json.dumps(s["plugin"]))
    spec = write_file(os.path.join(work, "spec.yaml"), spec_text(transforms, out))

    rc, so, se = conveyor(["validate", spec], cwd=s["template"])
    check(rc == 0, "validate exited %d:\n%s%s" % (rc, so, se))
    check("ok" in so, "validate printed %r" % so)

    rc, so, se = conveyor(["run", spec], cwd=s["template"])
    check(rc == 0, "run exited %d:\n%s" % (rc, se[-4000:]))
    check("scaling speed_ms by 3.6" in se, "the plugin's init log line is missing:\n%s" %
          se[-2000:])

    recs = read_jsonl(out)
    check(len(recs) == RECORDS, "%d records in the output, expected %d" % (len(recs), RECORDS))
    seqs = {}
    for r in recs:
        f = r["fields"]
        check(isinstance(f.get("speed_ms"), float), "speed_ms missing or not float: %r" % r)
        want = f["speed_ms"] * 3.6 + 0.5
        check(abs(f.get("speed_kmh", float("nan")) - want) <= 1e-9 * max(1.0, abs(want)),
              "speed_kmh %r, expected %r: %r" % (f.get("speed_kmh"), want, r))
        check(abs(f.get("speed_kmh_1", float("nan")) - round(f["speed_kmh"], 1)) < 1e-9,
              "speed_kmh_1 %r is not speed_kmh rounded to 1 decimal: %r" %
              (f.get("speed_kmh_1"), r))
        seqs.setdefault(r["tags"]["line_id"], []).append(f["seq"])
    for line, got in seqs.items():
        got.sort()
        check(got == list(range(got[0], got[0] + len(got))),
              "seq of %s not consecutive or duplicated: %s..." % (line, got[:20]))


def test_dead_letters_records_without_the_field():
    s = sdk()
    work = workdir("conveyor-sdk-dl-")
    out = os.path.join(work, "out.jsonl")
    dead = os.path.join(work, "dead.jsonl")
    transforms = "      - { plugin: %s, field: no_such_field, factor: 2 }\n" % json.dumps(
        s["plugin"])
    spec = write_file(os.path.join(work, "spec.yaml"),
                      spec_text(transforms, out, dead_letter=dead))
    rc, so, se = conveyor(["run", spec], cwd=work)
    check(rc == 0, "run exited %d:\n%s" % (rc, se[-4000:]))
    check(read_jsonl(out) == [], "records without the field reached the sink")
    dl = read_jsonl(dead)
    check(len(dl) == RECORDS, "%d dead letters, expected %d" % (len(dl), RECORDS))
    for d in dl[:10]:
        check(d.get("stage") == "scale" and d.get("pipeline") == "sdk",
              "dead letter names %r" % d)
        check(d.get("reason") == 'scale: no field "no_such_field"', "reason %r" % d.get("reason"))
        check("speed_ms" in d.get("record", {}).get("fields", {}), "no record: %r" % d)
    warnings = [ln for ln in se.splitlines() if "no field" in ln and "logged once" in ln]
    check(len(warnings) == 1, "the plugin logged its warning %d times" % len(warnings))


def test_plugins_lists_template_on_path():
    s = sdk()
    env = {"CONVEYOR_PLUGIN_PATH": s["template"]}
    rc, out, err = run([BIN, "plugins"], env=env)
    check(rc == 0, "conveyor plugins exited %d: %s" % (rc, err))
    major, minor = host_abi()
    row = [ln for ln in out.splitlines() if ln.split()[:1] == ["scale"]]
    check(len(row) == 1, "scale not listed once:\n%s" % out)
    check(re.match(r"scale\s+transform\s+1\.1\.0\s+%d\.%d\s+multiplies" % (major, minor), row[0]),
          "scale row: %r" % row[0])

    rc, out, err = run([BIN, "plugins", "scale"], env=env)
    check(rc == 0, "conveyor plugins scale exited %d: %s" % (rc, err))
    check(os.path.realpath(s["plugin"]) in out, "not loaded from the template dir:\n%s" % out)
    for opt in ("field", "factor", "offset", "output_field", "decimals", "missing"):
        check(re.search(r"^%s\s" % opt, out, re.M), "option %s not shown:\n%s" % (opt, out))
    check(re.search(r"^field\s+field\s+-\s+required", out, re.M), "field not required:\n%s" % out)
    check("dead_letter|drop|keep" in out and "-1..15" in out, "enum or range missing:\n%s" % out)

    # By name from a spec, through CONVEYOR_PLUGIN_PATH; and a schema error.
    work = workdir("conveyor-sdk-name-")
    good = write_file(os.path.join(work, "good.yaml"), spec_text(
        "      - { plugin: scale, field: speed_ms, factor: 2 }\n",
        os.path.join(work, "o.jsonl")))
    rc, so, se = run([BIN, "validate", good],
                     env={"CONVEYOR_PLUGIN_PATH": s["template"] + ":" + PLUGIN_DIR})
    check(rc == 0, "validate by name exited %d: %s" % (rc, se))
    bad = write_file(os.path.join(work, "bad.yaml"), spec_text(
        "      - { plugin: scale, factor: 2, decimals: 99, missing: ignore }\n",
        os.path.join(work, "o.jsonl")))
    rc, so, se = run([BIN, "validate", bad],
                     env={"CONVEYOR_PLUGIN_PATH": s["template"] + ":" + PLUGIN_DIR})
    check(rc == 2, "validate of a bad scale stage exited %d" % rc)
    for needle in ('missing required option "field"', '"decimals"', "between -1 and 15", '"missing"',
                   "dead_letter"):
        check(needle in se, "%r not in:\n%s" % (needle, se))


def build_abi_plugin(s, name, defines):
    """Builds tests/sdk/abi_plugin.c out of tree like the template, into its
    own directory (so it is not on the template's plugin path)."""
    d = os.path.join(s["work"], name)
    os.makedirs(d, exist_ok=True)
    rc, cflags, err = run(["pkg-config", "--cflags", "conveyor-sdk"], env=s["env"])
    check(rc == 0, "pkg-config: %s" % err)
    so = os.path.join(d, "abi_test.so")
    cc = os.environ.get("CC", "cc")
    sh([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared"] + cflags.split() + defines +
       ["-o", so, os.path.join(HERE, "abi_plugin.c")], s["env"], d, "cc abi_plugin.c")
    return so


def check_refused(s, so, plugin_abi, host, why):
    work = workdir("conveyor-sdk-abi-")
    transforms = "      - { plugin: %s }\n" % json.dumps(so)
    spec = write_file(os.path.join(work, "spec.yaml"),
                      spec_text(transforms, os.path.join(work, "o.jsonl")))
    line = spec_text(transforms, "x").splitlines().index(transforms.rstrip("\n")) + 1
    host_text = "%d.%d" % host
    for cmd in (["validate", spec], ["run", spec]):
        rc, so_, se = conveyor(cmd, cwd=work)
        check(rc == 2, "conveyor %s exited %d (expected 2):\n%s" % (cmd[0], rc, se))
        m = re.search(r"spec\.yaml:(\d+):(\d+): error: .*\b%s\b.*\b%s\b" %
                      (re.escape(plugin_abi), re.escape(host_text)), se)
        check(m, "conveyor %s: no FILE:LINE:COLUMN error naming ABI %s and %s:\n%s" %
              (cmd[0], plugin_abi, host_text, se))
        check(int(m.group(1)) == line, "error on line %s, the stage is on line %d" %
              (m.group(1), line))
        check(why in se, "%r not in: %s" % (why, se))
    check(not os.path.exists(os.path.join(work, "o.jsonl")), "run started anyway")


def test_other_major_refused():
    s = sdk()
    host = host_abi()
    so = build_abi_plugin(s, "abi99", ["-DTEST_ABI_MAJOR=99"])
    check_refused(s, so, "99.%d" % host[1], host, "major versions differ")


def test_newer_minor_refused():
    s = sdk()
    host = host_abi()
    so = build_abi_plugin(s, "abi_minor", ["-DTEST_ABI_MINOR=%d" % (host[1] + 1)])
    check_refused(s, so, "%d.%d" % (host[0], host[1] + 1), host, "newer than the host")


def test_same_abi_accepted():
    """The ABI test plugin with the header's own version loads: the refusals
    above are about the version alone."""
    s = sdk()
    so = build_abi_plugin(s, "abi_same", [])
    rc, out, err = run([BIN, "plugins", so])
    check(rc == 0 and "abi_test (transform)" in out, "exit %d:\n%s%s" % (rc, out, err))


def cc_plugin(s, src, out_dir, include=None):
    """Compiles one plugin source out of tree: with pkg-config's flags from
    the installed SDK, or with -I`include` (the frozen ABI 1.0 header)."""
    os.makedirs(out_dir, exist_ok=True)
    if include:
        cflags = ["-I" + include, "-fPIC", "-fvisibility=hidden"]
    else:
        rc, out, err = run(["pkg-config", "--cflags", "conveyor-sdk"], env=s["env"])
        check(rc == 0, "pkg-config: %s" % err)
        cflags = out.split()
    so = os.path.join(out_dir, "convert.so")
    cc = os.environ.get("CC", "cc")
    sh([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared"] + cflags + ["-o", so, src],
       s["env"], out_dir, "cc " + os.path.basename(src))
    return so, " ".join(cflags)


def code_lines(path):
    """Lines that are neither blank nor comment: the measure of issue 15."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), open(path).read(),
                  flags=re.S)
    return sum(1 for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("//"))


CONVERT_RECORDS = 300


def run_convert(so, work):
    """Runs `so` (the convert transform) in two pipelines: one converting
    speed_ms, one naming a field no record has. Returns (rc, stderr, records
    out of each, dead letters of each)."""
    spec = ["version: 1", "engine: { http: { listen: off } }", "pipelines:"]
    for name, field in (("good", "speed_ms"), ("bad", "no_such_field")):
        spec += [
            "  %s:" % name,
            "    source: { plugin: sim_speed, lines: 3, rate: 0, count: %d, seed: 5 }" %
            CONVERT_RECORDS,
            "    transforms:",
            "      - { plugin: %s, field: %s, factor: 3.6, output_field: speed_kmh }" %
            (json.dumps(so), field),
            "    sink: { plugin: file, path: %s }" % json.dumps(os.path.join(work, name + ".jsonl")),
            "    dead_letter: { path: %s }" % json.dumps(os.path.join(work, name + ".dead.jsonl")),
        ]
    path = write_file(os.path.join(work, "convert.yaml"), "\n".join(spec) + "\n")
    rc, out, err = conveyor(["run", path], cwd=work)
    out = {n: read_jsonl(os.path.join(work, n + ".jsonl")) for n in ("good", "bad")}
    dead = {n: read_jsonl(os.path.join(work, n + ".dead.jsonl")) for n in ("good", "bad")}
    return rc, err, out, dead


def test_abi_1_0_plugin_runs_unchanged():
    """A plugin binary built against the ABI 1.0 header (a frozen copy in
    tests/sdk/abi_1_0) loads in this host and behaves as the same transform
    written for ABI 1.1 (sdk/examples/convert.c, built with pkg-config)."""
    s = sdk()
    work = workdir("conveyor-sdk-abi10-")
    v10, _ = cc_plugin(s, os.path.join(HERE, "abi_1_0", "convert.c"), os.path.join(work, "v10"),
                       include=os.path.join(HERE, "abi_1_0"))
    v11, cflags = cc_plugin(s, os.path.join(SOURCE_DIR, "sdk", "examples", "convert.c"),
                         os.path.join(work, "v11"))
    check(s["prefix"] in cflags, "the example is not built against the installed SDK: %s" % cflags)
    for so, abi in ((v10, "1.0"), (v11, "%d.%d" % host_abi())):
        rc, out, err = run([BIN, "plugins", so])
        check(rc == 0 and "convert (transform)" in out and "ABI %s" % abi in out,
              "conveyor plugins %s: exit %d\n%s%s" % (so, rc, out, err))
    results = {}
    for name, so in (("1.0", v10), ("1.1", v11)):
        d = os.path.join(work, "run-" + name)
        os.makedirs(d)
        rc, err, out, dead = run_convert(so, d)
        check(rc == 0, "ABI %s plugin: run exited %d\n%s" % (name, rc, err[-3000:]))
        check(len(out["good"]) == CONVERT_RECORDS and not dead["good"],
              "ABI %s: %d converted, %d dead letters" % (name, len(out["good"]),
                                                         len(dead["good"])))
        for r in out["good"]:
            f = r["fields"]
            check(abs(f["speed_kmh"] - f["speed_ms"] * 3.6) < 1e-9, "ABI %s: %r" % (name, r))
        check(out["bad"] == [], "ABI %s: records without the field reached the sink" % name)
        check(len(dead["bad"]) == CONVERT_RECORDS, "ABI %s: %d dead letters, expected %d" %
              (name, len(dead["bad"]), CONVERT_RECORDS))
        check(all("no numeric field" in d["reason"] and d["stage"] == "convert"
                  for d in dead["bad"]), "ABI %s: dead letter %r" % (name, dead["bad"][0]))
        # Everything but the wall-clock timestamps must be the same.
        results[name] = ([(r["tags"], r["fields"]) for r in out["good"]],
                         [(d["record"]["tags"], d["record"]["fields"]) for d in dead["bad"]])
    for part in (0, 1):
        a, b = results["1.0"][part], results["1.1"][part]
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        check(len(a) == len(b) and not diff,
              "the ABI 1.0 and 1.1 plugins differ in %s: %r" %
              (("output", "dead letters")[part], diff[:2]))

    # factor must be > 0: the 1.1 schema says so and validate reports the
    # line; the 1.0 plugin checks it in init, at run, as it always did.
    spec = write_file(os.path.join(work, "factor.yaml"), spec_text(
        "      - { plugin: %s, field: speed_ms, factor: 0, output_field: o }\n" % json.dumps(v11),
        os.path.join(work, "factor.jsonl")))
    rc, out, err = conveyor(["validate", spec], cwd=work)
    check(rc == 2 and re.search(r"factor\.yaml:9:\d+: error: option \"factor\": \"0\" is out "
                                r"of range: must be greater than 0", err),
          "validate of factor 0 (ABI 1.1): exit %d\n%s" % (rc, err))
    with open(spec) as f:
        text = f.read().replace(v11, v10)
    write_file(spec, text)
    rc, out, err = conveyor(["validate", spec], cwd=work)
    check(rc == 0, "validate of factor 0 (ABI 1.0): exit %d\n%s" % (rc, err))
    rc, out, err = conveyor(["run", spec], cwd=work)
    check(rc == 1 and "factor must be greater than 0" in err and "(CV_ECONFIG)" in err,
          "run of factor 0 (ABI 1.0): exit %d\n%s" % (rc, err[-2000:]))

    lines = {name: code_lines(p) for name, p in (
        ("author 1.0", os.path.join(HERE, "abi_1_0", "convert.c")),
        ("author 1.1", os.path.join(SOURCE_DIR, "sdk", "examples", "convert.c")),
        ("template", os.path.join(SOURCE_DIR, "sdk", "template", "scale.c")))}
    print("  code lines (no blanks, no comments): %s" % lines)
    check(lines["author 1.1"] <= 40, "the example transform takes %d lines" % lines["author 1.1"])


def build_compiler():
    """The C compiler of this build: the harness archive is its object code
    (and, in the sanitizer build, needs its runtime)."""
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        m = re.search(r"^CMAKE_C_COMPILER:\w+=(.+)$", f.read(), re.M)
    return m.group(1).strip() if m else "cc"


def test_harness_installed_and_template_unit_test_runs():
    """The test harness installs (component sdk-test: header, static library,
    conveyor-sdk-test.pc) and the template's unit test builds out of tree
    against it, with make and with CMake, and passes."""
    work = workdir("conveyor-sdk-harness-")
    prefix = os.path.join(work, "prefix")
    for component in ("sdk", "sdk-test"):
        rc, out, err = run(["cmake", "--install", BUILD_DIR, "--prefix", prefix, "--component",
                            component], timeout=BUILD_TIMEOUT)
        check(rc == 0, "cmake --install --component %s failed:\n%s%s" % (component, out, err))
    for f in ("include/conveyor/test_harness.h", "lib/libconveyor-sdk-test.a",
              "lib/pkgconfig/conveyor-sdk-test.pc"):
        check(os.path.exists(os.path.join(prefix, f)), "%s not installed" % f)
    env = dict(os.environ)
    for var in ("CPATH", "C_INCLUDE_PATH", "CFLAGS", "CPPFLAGS", "LDFLAGS", "MAKEFLAGS",
                "MFLAGS", "CMAKE_PREFIX_PATH", "PKG_CONFIG_LIBDIR"):
        env.pop(var, None)
    env["PKG_CONFIG_PATH"] = os.path.join(prefix, "lib", "pkgconfig")
    cc = build_compiler()
    cflags = "-O1 -g" + (" -fsanitize=address,undefined -fno-omit-frame-pointer"
                         if SANITIZE else "")

    src = os.path.join(work, "scale")
    shutil.copytree(os.path.join(SOURCE_DIR, "sdk", "template"), src,
                    ignore=shutil.ignore_patterns("*.so", "build*", "scale_test"))
    out = sh(["make", "test", "CC=" + cc, "CFLAGS=" + cflags], env, src, "make test (template)")
    check("scale_test: ok" in out, "make test did not run the unit test:\n%s" % out)
    check(os.path.join(prefix, "lib") in out and os.path.realpath(SOURCE_DIR) not in out,
          "the unit test is not linked against the installed harness alone:\n%s" % out)

    build = os.path.join(work, "scale-cmake")
    sh(["cmake", "-S", src, "-B", build, "-DCMAKE_C_COMPILER=" + cc,
        "-DCMAKE_C_FLAGS=" + cflags], env, src, "cmake configure (template test)")
    sh(["cmake", "--build", build], env, src, "cmake --build (template test)")
    out = sh(["ctest", "--test-dir", build, "--output-on-failure"], env, src, "ctest (template)")
    check("1 tests passed" in out or "100% tests passed" in out, "ctest:\n%s" % out)


if __name__ == "__main__":
    main([
        test_install_is_header_and_pc_only,
        test_make_builds_against_installed_header,
        test_cmake_builds_against_installed_header,
        test_run_by_path,
        test_dead_letters_records_without_the_field,
        test_plugins_lists_template_on_path,
        test_other_major_refused,
        test_newer_minor_refused,
        test_same_abi_accepted,
        test_abi_1_0_plugin_runs_unchanged,
        test_harness_installed_and_template_unit_test_runs,
    ])
