"""Spec errors: every problem is `FILE:LINE:COLUMN: error: ...` with exit
code 2, for `validate` and `run` alike; hostile input (alias bombs, deep
nesting, binary garbage, empty files) is refused, never a crash; ${VAR}
interpolation; secrets never echoed.

Each tests/engine/specs/err_*.yaml fixture states where its error is:
    # expect: LINE:COLUMN
    # message: fragment | fragment ...   (all in that one error line)
"""

import glob
import os
import random
import re
import resource
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

DIAG = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|warning): "
                  r"(?P<msg>\S.*)$")
DIAG_NOPOS = re.compile(r"^(?P<file>.+?): (?P<kind>error|warning): (?P<msg>\S.*)$")
UNSET = "CONVEYOR_TEST_UNSET_VAR"


def _limit_memory():
    # A spec that makes the parser allocate without bound fails here
    # instead of swapping the machine (ASan needs its huge mappings).
    if not ct.SANITIZE:
        lim = 1 << 30
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))


def conveyor(args, env=None, timeout=30):
    """Runs conveyor with a memory limit; (rc, out, err, seconds)."""
    full = dict(os.environ)
    full.update(ec.plugin_env(env))
    full.pop(UNSET, None)
    t0 = time.monotonic()
    try:
        r = subprocess.run([ct.BIN] + list(args), env=full, capture_output=True,
                           timeout=timeout, preexec_fn=_limit_memory, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ct.TestFailure("conveyor %s: still running after %ds" % (" ".join(args), timeout))
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def diag_lines(stderr, path):
    """Parses stderr: every line must be a diagnostic about `path` (errors
    with a position). Returns [(line, col, kind, msg)]."""
    out = []
    for raw in stderr.splitlines():
        if not raw.strip():
            continue
        m = DIAG.match(raw)
        ct.check(m is not None, "stderr line is not FILE:LINE:COLUMN: error: ...: %r" % raw)
        ct.check(m.group("file") == path, "diagnostic names %r, not the spec %r: %r" %
                 (m.group("file"), path, raw))
        out.append((int(m.group("line")), int(m.group("col")), m.group("kind"),
                    m.group("msg")))
    ct.check(any(d[2] == "error" for d in out), "no error line on stderr:\n%s" % stderr)
    return out


def expect_spec_error(path, line, col, fragments, cmd="validate"):
    """Runs `conveyor CMD path`; requires exit 2 and an error at line:col
    whose message holds every fragment."""
    args = [cmd, path]
    if cmd == "run":
        # If the spec were (wrongly) accepted, the run must still end.
        args += ["--duration", "1", "--listen", "127.0.0.1:%d" % ct.free_port()]
    rc, out, err, _ = conveyor(args)
    ct.check(rc == 2, "%s %s: exit code %d, expected 2 (a negative code is a signal)\n"
             "stdout: %s\nstderr: %s" % (cmd, os.path.basename(path), rc, out, err))
    diags = diag_lines(err, path)
    at = [d for d in diags if d[2] == "error" and (d[0], d[1]) == (line, col)]
    ct.check(at, "%s %s: no error at %d:%d; got:\n%s" %
             (cmd, os.path.basename(path), line, col, err))
    for frag in fragments:
        ct.check(any(frag in d[3] for d in at), "%s %s: the error at %d:%d lacks %r:\n%s" %
                 (cmd, os.path.basename(path), line, col, frag, err))
    if cmd == "validate":
        ct.check("ok" not in out, "validate printed ok for a bad spec: %r" % out)
    return err


def parse_expectation(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^# expect: (\d+):(\d+)\s*$", text, re.M)
    ct.check(m is not None, "fixture %s has no '# expect: LINE:COLUMN'" % path)
    frags = []
    mm = re.search(r"^# message: (.*)$", text, re.M)
    if mm:
        frags = [f.strip() for f in mm.group(1).split("|") if f.strip()]
    return int(m.group(1)), int(m.group(2)), frags


def _fixture_test(path):
    def t():
        ec.require_plugins()
        line, col, frags = parse_expectation(path)
        expect_spec_error(path, line, col, frags, "validate")
        expect_spec_error(path, line, col, frags, "run")
    t.__name__ = "test_" + os.path.splitext(os.path.basename(path))[0]
    return t


FIXTURES = sorted(glob.glob(os.path.join(ec.SPECS, "err_*.yaml")))


def test_fixtures_present():
    names = {os.path.basename(p) for p in FIXTURES}
    for needed in ("err_yaml_syntax.yaml", "err_unknown_top_key.yaml",
                   "err_unknown_engine_key.yaml", "err_unknown_plugin.yaml",
                   "err_wrong_kind.yaml", "err_unknown_option.yaml",
                   "err_missing_required.yaml", "err_wrong_type.yaml",
                   "err_out_of_range.yaml", "err_bad_enum.yaml", "err_bad_duration.yaml",
                   "err_bad_size.yaml", "err_undefined_var.yaml",
                   "err_duplicate_stage.yaml", "err_http_port_range.yaml",
                   "err_http_listen_bracket.yaml", "err_influx_token_v1.yaml",
                   "err_influx_key_without_cert.yaml", "err_influx_retry_order.yaml",
                   "err_influx_url_credentials.yaml",
                   # checks the plugins' schemas and `check` callbacks make
                   "err_anomaly_empty_field.yaml", "err_anomaly_min_samples.yaml",
                   "err_file_empty_path.yaml", "err_kafka_in_empty_brokers.yaml",
                   "err_kafka_in_empty_group.yaml", "err_kafka_out_empty_topic.yaml",
                   "err_kafka_in_topic_list.yaml", "err_kafka_in_dead_letter_shape.yaml",
                   "err_kafka_in_dead_letter_self.yaml",
                   "err_kafka_in_managed_property.yaml",
                   "err_kafka_out_managed_property.yaml"):
        ct.check(needed in names, "fixture %s missing from %s" % (needed, ec.SPECS))


def test_validate_ok():
    ec.require_plugins()
    path = os.path.join(ec.SPECS, "ok_small.yaml")
    rc, out, err, _ = conveyor(["validate", path])
    ct.check(rc == 0, "validate ok_small.yaml: exit %d\n%s" % (rc, err))
    ct.check(out.startswith(path + ": ok"), "validate stdout: %r" % out)


def test_validate_several_files_reports_each():
    ec.require_plugins()
    good = os.path.join(ec.SPECS, "ok_small.yaml")
    bad = [os.path.join(ec.SPECS, n) for n in
           ("err_unknown_plugin.yaml", "err_wrong_type.yaml", "err_bad_duration.yaml")]
    rc, out, err, _ = conveyor(["validate", bad[0], good, bad[1], bad[2]])
    ct.check(rc == 2, "validate of several files with errors: exit %d, expected 2" % rc)
    ct.check(good + ": ok" in out, "the good spec is not reported ok: %r" % out)
    lines = [l for l in err.splitlines() if l.strip()]
    for path in bad:
        line, col, frags = parse_expectation(path)
        mine = [l for l in lines if l.startswith("%s:%d:%d: error: " % (path, line, col))]
        ct.check(mine, "no error for %s at %d:%d in:\n%s" % (path, line, col, err))
    ct.check(not any(l.startswith(good + ":") for l in lines),
             "an error was reported for the good spec:\n%s" % err)
    for l in lines:
        ct.check(DIAG.match(l), "stderr line not FILE:LINE:COLUMN: error: %r" % l)


def test_empty_file():
    d = ct.tmpdir()
    path = ct.write_file(os.path.join(d, "empty.yaml"), "")
    for cmd in ("validate", "run"):
        expect_spec_error(path, 1, 1, [], cmd)


def test_missing_file_and_directory():
    d = ct.tmpdir()
    for path in (os.path.join(d, "does-not-exist.yaml"), d):
        rc, out, err, _ = conveyor(["validate", path])
        ct.check(rc == 2, "validate %s: exit %d, expected 2" % (path, rc))
        first = err.splitlines()[0] if err.strip() else ""
        ct.check(DIAG_NOPOS.match(first) and first.startswith(path + ":"),
                 "validate %s: stderr %r" % (path, err))


def _random_blobs():
    rnd = random.Random(20240601)
    blobs = []
    for i in range(12):
        n = rnd.choice([1, 7, 64, 300, 4096])
        b = bytes(rnd.getrandbits(8) for _ in range(n))
        if i % 3 == 0:
            b = b.replace(b"\0", b"\1")  # no NUL: the UTF-8 check or the parser
        blobs.append(b)
    blobs.append(b"\0")
    blobs.append(b"version: 1\npipelines: {p: \0}\n")
    blobs.append(b"\xff\xfe\x00v\x00e\x00r")  # UTF-16 with a BOM
    blobs.append(b"\x7fELF\x02\x01\x01" + bytes(200))
    blobs.append(b"version: 1\n" + "pipelines: caf\u00e9".encode("latin-1"))
    return blobs


def test_binary_garbage_is_an_error_not_a_crash():
    d = ct.tmpdir()
    for i, blob in enumerate(_random_blobs()):
        path = os.path.join(d, "garbage%02d.yaml" % i)
        with open(path, "wb") as f:
            f.write(blob)
        rc, out, err, _ = conveyor(["validate", path])
        ct.check(rc == 2, "garbage %d (%r...): exit code %d, expected exactly 2 (negative: "
                 "killed by signal %d)\nstderr: %s" % (i, blob[:40], rc, -rc, err[-2000:]))
        first = err.splitlines()[0] if err.strip() else ""
        ct.check(first.startswith(path + ":") and ": error: " in first,
                 "garbage %d: first stderr line %r" % (i, first))


def test_mutated_specs_never_crash():
    """Truncations and byte flips of a valid spec: accepted (0) or refused
    (2), never a signal or another code."""
    ec.require_plugins()
    d = ct.tmpdir()
    base = open(os.path.join(ec.SPECS, "ok_small.yaml"), "rb").read()
    rnd = random.Random(7)
    inputs = [base[:n] for n in range(0, len(base), max(1, len(base) // 25))]
    for _ in range(30):
        b = bytearray(base)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.choice(b"{}[]:,&*!|>'\"#-? \t\n\\%@`\x00\xc3")
        inputs.append(bytes(b))
    for i, blob in enumerate(inputs):
        path = os.path.join(d, "mut%03d.yaml" % i)
        with open(path, "wb") as f:
            f.write(blob)
        rc, out, err, _ = conveyor(["validate", path])
        ct.check(rc in (0, 2), "mutated spec %s: exit code %d (negative: signal)\ninput: %r\n"
                 "stderr: %s" % (path, rc, blob, err[-2000:]))
        if rc == 2:
            diag_lines(err, path)


def _alias_bomb():
    lines = ["version: 1", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", '
             '"lol", "lol"]']
    for i in range(1, 10):
        lines.append("a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * 10)))
    lines.append("pipelines: *a9")
    return "\n".join(lines) + "\n"


def test_alias_bomb_refused():
    d = ct.tmpdir()
    path = ct.write_file(os.path.join(d, "bomb.yaml"), _alias_bomb())
    rc, out, err, secs = conveyor(["validate", path], timeout=20)
    print("  alias bomb refused in %.2fs" % secs)
    ct.check(rc == 2, "alias bomb: exit %d, expected 2\nstderr: %s" % (rc, err[-2000:]))
    diags = diag_lines(err, path)
    text = open(path).read().split("\n")
    hits = [(l, c) for l, c, k, m in diags if k == "error" and "alias" in m]
    ct.check(hits, "alias bomb: no error about an alias:\n%s" % err)
    l, c = hits[0]
    ct.check(text[l - 1][c - 1:c] == "*", "alias bomb: error at %d:%d is not at an alias: %r" %
             (l, c, text[l - 1][c - 1:c + 10]))


def test_deep_nesting_refused():
    d = ct.tmpdir()
    for name, doc in (("seq", "version: 1\npipelines: " + "[" * 20000 + "]" * 20000 + "\n"),
                      ("map", "version: 1\npipelines: " + "{a: " * 20000 + "1" + "}" * 20000 +
                       "\n")):
        path = ct.write_file(os.path.join(d, "deep-%s.yaml" % name), doc)
        rc, out, err, _ = conveyor(["validate", path], timeout=20)
        ct.check(rc == 2, "deep %s nesting: exit %d, expected 2\n%s" % (name, rc, err[-2000:]))
        diag_lines(err, path)


def test_var_default():
    ec.require_plugins()
    path = os.path.join(ec.SPECS, "ok_var_default.yaml")
    d = ct.tmpdir()
    for env, want in (({}, 300), ({"CONVEYOR_TEST_COUNT": "40"}, 40),
                      ({"CONVEYOR_TEST_COUNT": ""}, 300)):
        out = os.path.join(d, "out-%d-%d.jsonl" % (want, len(env)))
        env = dict(env, CONVEYOR_TEST_OUT=out)
        rc, _, err, _ = conveyor(["run", path], env=env, timeout=60)
        ct.check(rc == 0, "run with %s: exit %d\n%s" % (env, rc, err[-3000:]))
        recs = ec.read_jsonl(out)
        ct.check(len(recs) == want, "with %s the file has %d records, expected %d (${VAR:-default}"
                 " not applied)" % (env, len(recs), want))


def test_var_set_is_used():
    ec.require_plugins()
    d = ct.tmpdir()
    path = ct.write_file(os.path.join(d, "var.yaml"), ec.spec({"p": """
    source: { plugin: sim_speed, lines: "${CV_TEST_LINES}", rate: 0, count: 30 }
    sink: { plugin: file, path: "${CV_TEST_DIR}/out.jsonl" }
"""}, engine='  http: { listen: "" }'))
    rc, _, err, _ = conveyor(["run", path], env={"CV_TEST_LINES": "3", "CV_TEST_DIR": d})
    ct.check(rc == 0, "run: exit %d\n%s" % (rc, err[-3000:]))
    ec.check_sequences(ec.read_jsonl(os.path.join(d, "out.jsonl")), lines=3)


def _secret_option_plugin():
    """(plugin, option) of a built plugin with an option flagged secret."""
    rc, out, err = ec.conveyor(["plugins", "influxdb"])
    if rc != 0:
        return None
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 4 and "secret" in cols[3] and cols[1] == "string":
            return ("influxdb", cols[0])
    return None


def test_secret_never_echoed():
    ec.require_plugins()
    found = _secret_option_plugin()
    if not found:
        print("  NOTE: no built plugin has a secret option (influxdb missing): "
              "secret checks skipped")
        return
    plugin, opt = found
    secret = "Sx9-%08x-s3cr3t" % random.getrandbits(32)
    d = ct.tmpdir()
    secret_file = ct.write_file(os.path.join(d, "secret.txt"), secret + "\n")
    env = {"CV_TEST_SECRET": secret}
    # 1. Errors in the stage that holds the secret (an unknown option, the
    #    secret both inline and as a file), and the secret's text given to an
    #    integer option through the environment.
    bad = ct.write_file(os.path.join(d, "bad.yaml"), ec.spec({"p": """
    source: { plugin: sim_speed, lines: "${CV_TEST_SECRET}" }
    sink:
      plugin: %s
      url: "http://127.0.0.1:9"
      username: writer
      %s: "${CV_TEST_SECRET}"
      %s_file: "%s"
      databse: conveyor
""" % (plugin, opt, opt, secret_file)}))
    for cmd in ("validate", "run"):
        rc, out, err, _ = conveyor([cmd, bad, "--listen", "127.0.0.1:%d" % ct.free_port()]
                                   if cmd == "run" else [cmd, bad], env=env)
        ct.check(rc == 2, "%s bad.yaml: exit %d, expected 2\n%s" % (cmd, rc, err))
        ct.check(len(diag_lines(err, bad)) >= 3, "expected 3 errors:\n%s" % err)
        ct.check(secret not in out + err, "%s echoed the secret:\n%s" % (cmd, err))
    # 2. A run whose sink cannot reach its server: the logs never show it.
    port = ct.free_port()
    ok = ct.write_file(os.path.join(d, "run.yaml"), ec.spec({"p": """
    source: { plugin: sim_speed, lines: 2, rate: 200 }
    sink:
      plugin: %s
      url: "http://127.0.0.1:%d"
      database: conveyor
      username: writer
      %s: "${CV_TEST_SECRET}"
""" % (plugin, port, opt)}, engine="  shutdown_timeout: 2s\n  log: { level: debug }"))
    e = ct.Engine(ok, env=dict(env, CONVEYOR_LOG_LEVEL="debug"), args=["--duration", "2"])
    try:
        e.wait_exit(30)
    finally:
        e.kill9()
    ct.check(e.stderr_text().strip(), "the run logged nothing")
    ct.check(secret not in e.stderr_text() + e.stdout_text(),
             "the run logged the secret:\n%s" % e.stderr_text()[-3000:])


def test_validate_reads_no_files():
    """Specs are validated away from where they run: `validate` reads no
    file the spec names (secret files, TLS files); `run` does."""
    ec.require_plugins()
    if not os.path.exists(os.path.join(ct.PLUGIN_DIR, "influxdb.so")):
        print("  NOTE: influxdb not built: skipped")
        return
    d = ct.tmpdir()
    missing = os.path.join(d, "not-here")
    path = ct.write_file(os.path.join(d, "files.yaml"), ec.spec({"p": """
    source: { plugin: sim_speed, lines: 1, count: 1 }
    sink:
      plugin: influxdb
      url: "https://influxdb:8086"
      database: conveyor
      username: writer
      password_file: "%s/password"
      tls: { ca_file: "%s/ca.pem" }
""" % (missing, missing)}, engine="  http: { listen: off }"))
    rc, out, err, _ = conveyor(["validate", path])
    ct.check(rc == 0, "validate needs the files a spec names: exit %d\n%s" % (rc, err))
    rc, out, err, _ = conveyor(["run", path, "--duration", "1"])
    ct.check(rc == 2, "run without the password file: exit %d, expected 2\n%s" % (rc, err))
    ct.check("password_file" in err and "cannot read" in err, "run's error: %s" % err)


def test_check_errors_never_echo_url_credentials():
    ec.require_plugins()
    path = os.path.join(ec.SPECS, "err_influx_url_credentials.yaml")
    if not os.path.exists(os.path.join(ct.PLUGIN_DIR, "influxdb.so")):
        return
    for cmd in ("validate", "run"):
        rc, out, err, _ = conveyor([cmd, path, "--listen", "off"] if cmd == "run" else
                                   [cmd, path])
        ct.check(rc == 2, "%s: exit %d" % (cmd, rc))
        ct.check("hunter2" not in out + err, "%s echoed the url's password:\n%s" % (cmd, err))


TESTS = [test_fixtures_present] + [_fixture_test(p) for p in FIXTURES] + [
    test_validate_ok,
    test_validate_several_files_reports_each,
    test_empty_file,
    test_missing_file_and_directory,
    test_binary_garbage_is_an_error_not_a_crash,
    test_mutated_specs_never_crash,
    test_alias_bomb_refused,
    test_deep_nesting_refused,
    test_var_default,
    test_var_set_is_used,
    test_secret_never_echoed,
    test_validate_reads_no_files,
    test_check_errors_never_echo_url_credentials,
]

if __name__ == "__main__":
    ct.main(TESTS)
