"""Slow clients must not starve the probes (issue 11, item 1).

A few hundred connections from one address each send a request line and
then one header line per second, never finishing their request (a slowloris
attack, or a broken client). Meanwhile /healthz, /readyz and /metrics must
keep answering, and the engine must close each slow connection once its
whole-request deadline passed, however steadily it trickles bytes."""

import errno
import os
import resource
import select
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402

SLOW = 300          # slow connections, all from 127.0.0.1
OVER = 1200         # more than the engine's 1024 slots
PROBES = 5          # probe rounds while they hang
PROBE_TIMEOUT = 5.0  # a probe that gets no answer in this long failed

SPEC = ec.spec({"p": """
    source: { plugin: sim_speed, lines: 2, rate: 200, seed: 1 }
    sink: { plugin: null }
"""})


class Trickler:
    """n sockets from one thread: each sends a request line once connected,
    then one header line a second, until stop(). Connections are made
    without waiting, as an attacker would: a server that stops accepting
    leaves them pending (counted, not fatal)."""

    def __init__(self, port, n):
        self.socks = []
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            self.socks.append(s)
        self.started = set()  # indexes that sent their request line
        self.closed = set()   # indexes the server closed after they started
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.sent_lines = 0
        self._round(0)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self, i, data):
        s = self.socks[i]
        try:
            s.send(data)
            return True
        except (BlockingIOError, InterruptedError):
            return False  # not connected yet, or the buffer is full
        except OSError as e:
            if i in self.started:  # reset or broken pipe after it began
                with self.lock:
                    self.closed.add(i)
            elif e.errno not in (errno.ENOTCONN, errno.EAGAIN):
                with self.lock:
                    self.closed.add(i)
            return False

    def _round(self, n):
        for i in range(len(self.socks)):
            if i in self.closed:
                continue
            if i not in self.started:
                if self._send(i, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
                    with self.lock:
                        self.started.add(i)
            elif self._send(i, b"X-Slow-%d: %s\r\n" % (n, b"a" * 8)):
                self.sent_lines += 1
        self._note_closed()

    def _note_closed(self):
        # A started socket the server closed reads EOF (or a reset).
        live = [s for i, s in enumerate(self.socks) if i in self.started and i not in self.closed]
        if not live:
            return
        poller = select.poll()  # select() stops at descriptor 1023
        by_fd = {}
        for s in live:
            poller.register(s, select.POLLIN)
            by_fd[s.fileno()] = s
        for fd, _ in poller.poll(0):
            s = by_fd[fd]
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:  # reset
                data = b""
            if data == b"":
                with self.lock:
                    self.closed.add(self.socks.index(s))

    def _run(self):
        n = 0
        while not self._stop.wait(1.0):  # the attack's pace: a header line a second
            n += 1
            self._round(n)

    def started_count(self):
        with self.lock:
            return len(self.started)

    def closed_count(self):
        with self.lock:
            return len(self.closed)

    def hanging_count(self):
        with self.lock:
            return len(self.started - self.closed)

    def stop(self):
        self._stop.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


def probe(url):
    """GET url with a bounded wait: (status, seconds) or raises."""
    t0 = time.monotonic()
    status, _ = ct.http_get(url, timeout=PROBE_TIMEOUT)
    return status, time.monotonic() - t0


def _probe_while_hanging(e, t, n, min_hanging):
    worst = 0.0
    for round_ in range(PROBES):
        for path in ("/healthz", "/readyz", "/metrics"):
            try:
                status, secs = probe(e.url + path)
            except OSError as err:
                raise ct.TestFailure("round %d: %s got no answer with %d slow connections "
                                     "open: %r" % (round_ + 1, path, n, err))
            ct.check(status == 200, "round %d: %s answered %d" % (round_ + 1, path, status))
            worst = max(worst, secs)
        # The probe rounds are spread over the time the slow clients hang.
        time.sleep(0.5)  # pacing between probe rounds, not synchronisation
    hanging = t.hanging_count()
    print("probes answered in at most %.3fs with %d slow connections hanging (%d of %d "
          "connected)" % (worst, hanging, t.started_count(), n))
    ct.check(hanging >= min_hanging,
             "only %d slow connections were hanging at the end of the probes: the test "
             "did not test anything" % hanging)


def test_probes_answer_under_slow_clients():
    """/healthz, /readyz and /metrics answer while SLOW connections from one
    address trickle header lines and never finish."""
    ec.require_plugins()
    e = ct.Engine(SPEC).wait_ready()
    t = Trickler(e.port, SLOW)
    try:
        # More than the 64 slots the engine once had: the probes come next.
        ct.wait_until(lambda: t.started_count() >= 100, timeout=30,
                      what="100 slow connections to connect")
        _probe_while_hanging(e, t, SLOW, SLOW // 2)
    finally:
        t.stop()
    ct.check(e.alive(), "engine died; stderr:\n%s" % e.stderr_text()[-3000:])
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_probes_answer_past_the_connection_limit():
    """More slow connections than the engine has slots: the newest take the
    slots of the oldest unfinished requests, so the probes still get in."""
    ec.require_plugins()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < OVER + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, OVER + 256), hard))
    e = ct.Engine(SPEC).wait_ready()
    t = Trickler(e.port, OVER)
    try:
        ct.wait_until(lambda: t.started_count() >= 100, timeout=30,
                      what="100 slow connections to connect")
        _probe_while_hanging(e, t, OVER, 500)
    finally:
        t.stop()
    ct.check(e.alive(), "engine died; stderr:\n%s" % e.stderr_text()[-3000:])
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_whole_request_deadline():
    """A connection that trickles a byte more often than any idle timeout
    is closed anyway once its request has taken longer than the deadline."""
    ec.require_plugins()
    e = ct.Engine(SPEC).wait_ready()
    t = Trickler(e.port, 20)
    try:
        ct.wait_until(lambda: t.started_count() == 20, timeout=30,
                      what="20 slow connections to connect")
        ct.wait_until(lambda: t.closed_count() == 20, timeout=60,
                      what="the engine to close 20 slow connections that never finish")
        ct.check(t.sent_lines >= 20, "the slow clients sent only %d header lines" % t.sent_lines)
        status, _ = probe(e.url + "/healthz")
        ct.check(status == 200, "/healthz answered %d after the slow clients" % status)
    finally:
        t.stop()
    ct.check(e.stop() == 0, "engine did not stop cleanly")


def test_keepalive_requests_still_served():
    """The deadline is per request: a keep-alive client sending requests
    back to back is not cut off, and each answer arrives."""
    ec.require_plugins()
    e = ct.Engine(SPEC).wait_ready()
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", e.port, timeout=PROBE_TIMEOUT)
    try:
        for i in range(20):
            c.request("GET", "/healthz")
            r = c.getresponse()
            ct.check(r.status == 200, "keep-alive request %d answered %d" % (i, r.status))
            r.read()
    finally:
        c.close()
    ct.check(e.stop() == 0, "engine did not stop cleanly")


if __name__ == "__main__":
    ct.main([test_probes_answer_under_slow_clients, test_probes_answer_past_the_connection_limit,
             test_whole_request_deadline,
             test_keepalive_requests_still_served])
