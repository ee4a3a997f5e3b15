"""`conveyor top`: the plain table (--once) and the live view in a real
terminal (tmux): read the screen, press keys, resize the window."""

import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

MANY = 24  # transforms of the "wide" pipeline: more rows than 24 lines hold

SPEC = ec.spec({"belts": """
    source: { plugin: sim_speed, lines: 3, rate: 300, seed: 1 }
    transforms:
      - { plugin: anomaly, field: speed_ms, key: line_id, window: 30, threshold: 3.0 }
    sink: { plugin: null }
""", "quiet": """
    source: { plugin: sim_speed, lines: 1, rate: 20, seed: 2 }
    sink: { name: discard, plugin: null }
"""})

WIDE_SPEC = ec.spec({"wide": """
    source: { plugin: sim_speed, lines: 2, rate: 100, seed: 3 }
    transforms:
%s
    sink: { plugin: null }
""" % "\n".join("      - { name: step%02d, plugin: anomaly }" % i for i in range(MANY))})

COLUMNS = ["PIPELINE", "STAGE", "PLUGIN", "KIND", "IN/s", "OUT/s", "DROP/s", "ERR/s", "QUEUE",
           "P99CALL", "P99E2E"]


def top(args, timeout=60):
    # stdin is a pipe, not a terminal.
    return ec.conveyor(["top"] + list(args), timeout=timeout, input="")


def test_once_plain_table():
    """--once: one plain table (no escape codes), a row per stage in
    pipeline order, rates measured over the interval, exit 0."""
    ec.require_plugins()
    e = ct.Engine(SPEC).wait_ready()
    rc, out, err = top(["--url", e.url, "--once", "--interval", "500ms"])
    ct.check(rc == 0, "top --once exited %d: %s" % (rc, err))
    ct.check("\x1b" not in out, "escape codes in --once output: %r" % out[:200])
    lines = out.splitlines()
    ct.check(len(lines) == 2 + 5, "expected a title, a header and 5 rows:\n%s" % out)
    ct.check(e.url in lines[0], "the title names the URL: %r" % lines[0])
    ct.check(lines[1].split() == COLUMNS, "header: %r" % lines[1])
    rows = [l.split() for l in lines[2:]]
    # The pipeline is named on its first row only.
    ct.check(rows[0][:4] == ["belts", "sim_speed", "sim_speed", "source"], "row 1: %r" % rows[0])
    ct.check(rows[1][:3] == ["anomaly", "anomaly", "transform"], "row 2: %r" % rows[1])
    ct.check(rows[2][:3] == ["null", "null", "sink"], "row 3: %r" % rows[2])
    ct.check(rows[3][:4] == ["quiet", "sim_speed", "sim_speed", "source"], "row 4: %r" % rows[3])
    ct.check(rows[4][:3] == ["discard", "null", "sink"], "row 5: %r" % rows[4])
    # belts' source emits about 300/s: OUT/s is a real, non-zero rate.
    src_out = float(rows[0][5].rstrip("k")) * (1000 if rows[0][5].endswith("k") else 1)
    ct.check(src_out > 0, "source OUT/s is %r" % rows[0][5])
    ct.check(rows[0][4] == "-", "a source has no IN/s: %r" % rows[0][4])
    ct.check(re.match(r"^[0-9.]+(us|ms|s)$", rows[0][-1]), "P99E2E of belts: %r" % rows[0][-1])
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_unreachable_engine():
    """No engine at the URL: exit 1 naming the URL tried, in both modes."""
    url = "http://127.0.0.1:%d" % ct.free_port()
    rc, out, err = top(["--url", url, "--once"])
    ct.check(rc == 1, "--once against nothing exited %d" % rc)
    ct.check(url in err, "the message names the URL %s: %r" % (url, err))
    # The live view checks the engine before it takes the terminal.
    rc, out, err = top(["--url", url])
    ct.check(rc == 1 and url in err, "live view against nothing: rc %d, %r" % (rc, err))
    rc, out, err = top(["--url", "ftp://x", "--once"])
    ct.check(rc == 2 and "http://" in err, "bad URL: rc %d, %r" % (rc, err))
    rc, out, err = top(["--interval", "soon", "--once"])
    ct.check(rc == 2 and "--interval" in err, "bad interval: rc %d, %r" % (rc, err))


def test_live_view_needs_a_terminal():
    ec.require_plugins()
    e = ct.Engine(SPEC).wait_ready()
    rc, out, err = top(["--url", e.url])
    ct.check(rc == 2 and "--once" in err, "without a terminal: rc %d, %r" % (rc, err))
    ct.check(e.stop() == 0, "engine did not stop cleanly")


class Tmux:
    """A private tmux server running one command in a window of a set size."""

    def __init__(self, command, width, height):
        self.tmux = ec.which("tmux")
        ct.check(self.tmux, "tmux is not installed (scripts/install-deps.sh test)")
        self.dir = ct.tmpdir("conveyor-tmux-")
        self.sock = os.path.join(self.dir, "sock")
        self._run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                  command)
        self._run("set-option", "-t", "t", "remain-on-exit", "on")

    def _run(self, *args):
        r = subprocess.run([self.tmux, "-S", self.sock, "-f", "/dev/null"] + list(args),
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise ct.TestFailure("tmux %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def screen(self):
        return self._run("capture-pane", "-p", "-t", "t")

    def keys(self, *keys):
        self._run("send-keys", "-t", "t", *keys)

    def resize(self, width, height):
        self._run("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def wait_screen(self, pred, what, timeout=30):
        last = [""]

        def check():
            last[0] = self.screen()
            return pred(last[0])
        try:
            ct.wait_until(check, timeout=timeout, what=what)
            return last[0]
        except ct.TestFailure as err:
            raise ct.TestFailure("%s; the screen:\n%s" % (err, last[0]))

    def close(self):
        subprocess.run([self.tmux, "-S", self.sock, "kill-server"], capture_output=True,
                       timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


def _rate_of(screen, stage):
    for line in screen.splitlines():
        cols = line.split()
        if stage in cols:
            i = cols.index(stage)
            try:
                out = cols[i + 4]  # PLUGIN KIND IN/s OUT/s after STAGE
                return float(out.rstrip("kM"))
            except (IndexError, ValueError):
                return None
    return None


def test_live_view_in_tmux():
    """The live view at 80x24: stage rows with live rates; p pauses, s
    sorts, a resize redraws at the new size, q quits and restores the
    terminal."""
    ec.require_plugins()
    e = ct.Engine(SPEC).wait_ready()
    status = os.path.join(e.workdir, "top-exit")
    cmd = "env CONVEYOR_PLUGIN_PATH=%s %s top --url %s --interval 300ms; echo $? > %s" % (
        ct.PLUGIN_DIR, ct.BIN, e.url, status)
    t = Tmux(cmd, 80, 24)
    try:
        s = t.wait_screen(lambda s: "anomaly" in s and (_rate_of(s, "anomaly") or 0) > 0,
                          "the table with a non-zero rate for anomaly")
        lines = s.splitlines()
        ct.check(lines[0].startswith("conveyor top"), "title line: %r" % lines[0])
        ct.check(lines[1].split() == COLUMNS, "column header at 80 columns: %r" % lines[1])
        for name in ("belts", "quiet", "sim_speed", "anomaly", "discard"):
            ct.check(name in s, "%s missing from the screen:\n%s" % (name, s))
        ct.check(all(len(l) <= 80 for l in lines), "a line is wider than 80 columns:\n%s" % s)
        ct.check("q quit" in lines[-1], "the key help on the last line: %r" % lines[-1])

        t.keys("p")
        s = t.wait_screen(lambda s: "PAUSED" in s.splitlines()[0], "PAUSED after p")
        frozen = s
        # Paused: the numbers stay as they are while the engine runs on.
        time.sleep(1.0)  # several refresh intervals, to see that none happens
        ct.check(t.screen() == frozen, "the screen changed while paused")
        t.keys("Space")
        t.wait_screen(lambda s: "PAUSED" not in s.splitlines()[0], "running again after space")

        t.keys("s")
        s = t.wait_screen(lambda s: "sort: in/s" in s, "sort by in/s after s")
        rows = [l.split() for l in s.splitlines()[2:] if l.strip() and "q quit" not in l]
        # Sorted by a number: every row names its pipeline, belts (300/s) first.
        ct.check(rows[0][0] == "belts" and rows[0][1] == "anomaly",
                 "first row sorted by in/s: %r" % rows[0])

        t.resize(120, 30)
        s = t.wait_screen(lambda s: "transform" in s,  # full kind names from 100 columns
                          "the wide layout after a resize to 120 columns")
        ct.check(all(len(l) <= 120 for l in s.splitlines()), "a line is wider than 120")
        t.resize(60, 12)
        s = t.wait_screen(lambda s: all(len(l) <= 60 for l in s.splitlines()) and "STAGE" in s,
                          "the narrow layout after a resize to 60 columns")

        t.keys("q")
        ct.wait_until(lambda: os.path.exists(status) and open(status).read().strip() != "",
                      timeout=20, what="top to exit after q")
        ct.check(open(status).read().strip() == "0", "top exited %s" % open(status).read())
        # The alternate screen is gone: the shell's screen, not the table.
        s = t.screen()
        ct.check("PIPELINE" not in s, "the table is still on the screen after q:\n%s" % s)
    finally:
        t.close()
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_live_view_more_stages_than_lines():
    """More stages than the window has lines: the last line says how many
    are hidden; a taller window shows them all."""
    ec.require_plugins()
    e = ct.Engine(WIDE_SPEC).wait_ready()
    cmd = "env %s top --url %s --interval 300ms" % (ct.BIN, e.url)
    t = Tmux(cmd, 80, 24)
    try:
        s = t.wait_screen(lambda s: "more stages" in s, "the hidden-rows line at 24 lines")
        ct.check(len(s.splitlines()) <= 24, "more than 24 lines")
        t.resize(100, 40)
        s = t.wait_screen(lambda s: "more stages" not in s and "step%02d" % (MANY - 1) in s,
                          "every stage at 40 lines")
        t.keys("q")
    finally:
        t.close()
    ct.check(e.stop() == 0, "engine did not stop cleanly")


if __name__ == "__main__":
    ct.main([test_once_plain_table, test_unreachable_engine, test_live_view_needs_a_terminal,
             test_live_view_in_tmux, test_live_view_more_stages_than_lines])
