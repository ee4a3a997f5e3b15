"""Helpers for Conveyor's integration tests: start real processes, poll
conditions with deadlines, read metrics. Standard library only.

Every process started here is stopped at exit, also when a test fails.
"""

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("CONVEYOR_BIN", "build/conveyor")
PLUGIN_DIR = os.environ.get("CONVEYOR_PLUGIN_DIR", "build/plugins")
SOURCE_DIR = os.environ.get(
    "CONVEYOR_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_DIR = os.environ.get("CONVEYOR_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
SANITIZE = os.environ.get("CONVEYOR_SANITIZE", "0") in ("1", "ON", "TRUE", "true")

_processes = []


def _stop_all():
    for p in list(_processes):
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=10)
            except Exception:
                pass


atexit.register(_stop_all)


def _on_signal(signum, frame):
    _stop_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    """Fails the test with msg unless cond."""
    if not cond:
        raise TestFailure(msg)


def wait_until(fn, timeout=30.0, interval=0.05, what="condition"):
    """Polls fn() until it returns a truthy value, which is returned; fails
    after timeout seconds naming `what`."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # a server not up yet, a file not written yet
            last_exc = e
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s%s" %
                              (timeout, what, " (last error: %r)" % last_exc if last_exc else ""))
        time.sleep(interval)


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tmpdir(prefix="conveyor-test-"):
    return tempfile.mkdtemp(prefix=prefix)


def http_get(url, timeout=5.0):
    """Returns (status, body text). Never raises on HTTP error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Parses Prometheus exposition into {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise TestFailure("unparsable metrics line: %r" % line)
        labels = {}
        if m.group(3):
            for k, v in _LABEL.findall(m.group(3)):
                labels[k] = v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric_sum(metrics, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    total = 0.0
    found = False
    for (n, ls), v in metrics.items():
        if n != name:
            continue
        d = dict(ls)
        if all(d.get(k) == str(v2) for k, v2 in labels.items()):
            total += v
            found = True
    return total if found else None


def start_process(args, env=None, stdout=None, stderr=None, cwd=None):
    """Starts a process that is killed at exit if still running."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen(args, env=full_env, stdout=stdout, stderr=stderr, cwd=cwd,
                         stdin=subprocess.DEVNULL)
    _processes.append(p)
    return p


def run(args, env=None, timeout=60, input=None):
    """Runs a command to completion: (returncode, stdout, stderr) as text."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    r = subprocess.run(args, env=full_env, capture_output=True, timeout=timeout, input=input,
                       text=True)
    return r.returncode, r.stdout, r.stderr


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


class Engine:
    """A `conveyor run` process on a spec, serving HTTP on a free port.

    spec: a path, or YAML text (written to a temp file). Output goes to files
    in `workdir` (stdout.txt, stderr.txt)."""

    def __init__(self, spec, env=None, args=(), workdir=None, listen=None, log_format="json"):
        self.workdir = workdir or tmpdir()
        if "\n" in spec or not os.path.exists(spec):
            self.spec_path = write_file(os.path.join(self.workdir, "spec.yaml"), spec)
        else:
            self.spec_path = spec
        self.port = free_port() if listen is None else int(listen.rsplit(":", 1)[1])
        self.listen = listen or "127.0.0.1:%d" % self.port
        self.stdout_path = os.path.join(self.workdir, "stdout.txt")
        self.stderr_path = os.path.join(self.workdir, "stderr.txt")
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        full_env = {"CONVEYOR_PLUGIN_PATH": PLUGIN_DIR, "CONVEYOR_LOG_FORMAT": log_format}
        if env:
            full_env.update(env)
        self.proc = start_process([BIN, "run", self.spec_path, "--listen", self.listen] +
                                  list(args), env=full_env, stdout=self._out, stderr=self._err)

    @property
    def url(self):
        return "http://%s" % self.listen

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=30.0):
        """Polls /readyz until 200; fails early if the process exits."""
        def ready():
            if not self.alive():
                raise TestFailure("engine exited with %s before ready; stderr:\n%s" %
                                  (self.proc.returncode, self.stderr_text()[-4000:]))
            try:
                return http_get(self.url + "/readyz", timeout=1.0)[0] == 200
            except OSError:
                return False
        wait_until(ready, timeout, what="engine /readyz")
        return self

    def metrics_text(self):
        status, body = http_get(self.url + "/metrics")
        check(status == 200, "/metrics answered %d" % status)
        return body

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def metric(self, name, **labels):
        """Sum of the series of `name` matching labels; None if absent."""
        return metric_sum(self.metrics(), name, **labels)

    def wait_exit(self, timeout=60.0):
        """Waits for the process to end by itself; returns its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("engine still running after %.0fs; stderr:\n%s" %
                              (timeout, self.stderr_text()[-4000:]))

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Sends sig and waits; returns the exit code."""
        if self.alive():
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def kill9(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stderr_text(self):
        self._err.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout_text(self):
        self._out.flush()
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_records(self):
        """The JSON log lines on stderr, parsed (other lines skipped)."""
        out = []
        for line in self.stderr_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


def main(tests):
    """Runs test functions in order; prints 'N passed, N failed' and exits
    non-zero on any failure."""
    passed = failed = 0
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        start = time.monotonic()
        try:
            t()
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, time.monotonic() - start), flush=True)
        except Exception as e:
            failed += 1
            print("FAIL %s: %s" % (t.__name__, e), flush=True)
            import traceback
            traceback.print_exc()
        finally:
            _stop_all()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
