"""Test fixtures for the influxdb sink: a private CA and certificates made with
the openssl CLI, a real influxd 1.6.7 with HTTPS and auth in a temporary
folder, and a small HTTPS server that speaks InfluxDB's v2 write API.

Standard library only. Every process is started through conveyor_test's
start_process(), so it is killed at exit even when a test fails.
"""

import base64
import gzip
import http.server
import json
import os
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import conveyor_test as ct  # noqa: E402

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-pw-!@#"
WRITER_USER = "writer"
WRITER_PASSWORD = "wr1ter s3cret:pass"  # a space and a colon: exercises basic auth
DATABASE = "conveyor"


def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise ct.TestFailure("openssl %s failed: %s" % (" ".join(args[:2]), r.stderr[-2000:]))


class Pki:
    """A CA and certificates it signs, all PEM files in `dir`."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.ca_cert = os.path.join(dir, "ca.pem")
        self.ca_key = os.path.join(dir, "ca.key")
        _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "30",
                  "-subj", "/CN=conveyor test CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir)

    def issue(self, name, san="IP:127.0.0.1,DNS:localhost", days=30, client=False):
        """Signs a new key's certificate; returns (cert path, key path).
        days=-1 makes a certificate that has already expired."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if client:
                f.write("extendedKeyUsage=clientAuth\n")
            else:
                f.write("extendedKeyUsage=serverAuth\n")
                f.write("subjectAltName=%s\n" % san)
        _openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + name], self.dir)
        _openssl(["x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                  "-CAcreateserial", "-out", cert, "-days", str(days), "-extfile", ext],
                 self.dir)
        return cert, key


class Influxd:
    """influxd 1.6.7 on 127.0.0.1 with HTTPS and auth, state in a temp dir.

    Creates the admin user, the database and a writer user with WRITE (and
    READ, for the checks) on it. start()/stop() may be called again to
    simulate an outage; the data survives."""

    def __init__(self, pki, workdir=None, https=True, auth=True):
        self.dir = workdir or ct.tmpdir("conveyor-influxd-")
        os.makedirs(self.dir, exist_ok=True)
        self.pki = pki
        self.https = https
        self.auth = auth
        self.port = ct.free_port()
        self.rpc_port = ct.free_port()
        self.cert, self.key = pki.issue("influxd") if https else (None, None)
        self.conf = os.path.join(self.dir, "influxdb.conf")
        self.proc = None
        self.log_path = os.path.join(self.dir, "influxd.log")
        self._write_config()
        self.start()
        self._setup_users()

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.https else "http", self.port)

    def _write_config(self):
        d = self.dir
        text = """reporting-disabled = true
bind-address = "127.0.0.1:%(rpc)d"
[meta]
  dir = "%(d)s/meta"
[data]
  dir = "%(d)s/data"
  wal-dir = "%(d)s/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:%(port)d"
  auth-enabled = %(auth)s
  log-enabled = false
  https-enabled = %(https)s
  https-certificate = "%(cert)s"
  https-private-key = "%(key)s"
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
""" % {"rpc": self.rpc_port, "d": d, "port": self.port,
            "auth": "true" if self.auth else "false",
            "https": "true" if self.https else "false",
            "cert": self.cert or "", "key": self.key or ""}
        ct.write_file(self.conf, text)

    def _ssl_context(self):
        if not self.https:
            return None
        return ssl.create_default_context(cafile=self.pki.ca_cert)

    def request(self, method, path, params=None, body=None, user=ADMIN_USER,
                password=ADMIN_PASSWORD, timeout=30):
        """Returns (status, body text)."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, data=body, method=method)
        if user is not None and self.auth:
            cred = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            req.add_header("Authorization", "Basic " + cred)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl_context()) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def ping(self):
        try:
            return self.request("GET", "/ping", user=None, timeout=2)[0] == 204
        except OSError:
            return False

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = ct.start_process(["influxd", "-config", self.conf], stdout=log, stderr=log)
        log.close()

        def up():
            if self.proc.poll() is not None:
                with open(self.log_path, "rb") as f:
                    tail = f.read()[-3000:].decode("utf-8", "replace")
                raise ct.TestFailure("influxd exited with %s:\n%s" % (self.proc.returncode, tail))
            return self.ping()
        ct.wait_until(up, 60, what="influxd /ping")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def query(self, q, db=DATABASE, epoch="ns"):
        """Runs InfluxQL as admin; returns the decoded JSON (fails on errors)."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        status, body = self.request("POST", "/query", params=params)
        ct.check(status == 200, "query %r answered %d: %s" % (q, status, body[:500]))
        data = json.loads(body)
        for res in data.get("results", []):
            ct.check("error" not in res, "query %r failed: %s" % (q, res.get("error")))
        return data

    def rows(self, q, db=DATABASE):
        """Rows of the first series as dicts (column name to value), or []."""
        out = []
        data = self.query(q, db)
        for res in data.get("results", []):
            for s in res.get("series", []):
                cols = s["columns"]
                for v in s["values"]:
                    row = dict(zip(cols, v))
                    row.update(s.get("tags", {}) or {})
                    out.append(row)
        return out

    def http_stats(self):
        """influxd's HTTP counters (/debug/vars "httpd": writeReq,
        clientError for 4xx answers, pointsWrittenOK, ...)."""
        status, body = self.request("GET", "/debug/vars", user=None)
        ct.check(status == 200, "/debug/vars answered %d" % status)
        for k, v in json.loads(body).items():
            if k.startswith("httpd"):
                return v["values"]
        raise ct.TestFailure("no httpd statistics in /debug/vars")

    def count(self, measurement, field, db=DATABASE):
        rows = self.rows('SELECT count("%s") FROM "%s"' % (field, measurement), db)
        return rows[0]["count"] if rows else 0

    def _setup_users(self):
        if not self.auth:
            self.query("CREATE DATABASE %s" % DATABASE, db=None)
            return
        # The first user may be created without credentials while none exists.
        status, body = self.request(
            "POST", "/query", user=None,
            params={"q": "CREATE USER %s WITH PASSWORD '%s' WITH ALL PRIVILEGES" %
                    (ADMIN_USER, ADMIN_PASSWORD)})
        ct.check(status == 200 and "error" not in body, "create admin: %d %s" % (status, body))
        self.query("CREATE DATABASE %s" % DATABASE, db=None)
        self.query("CREATE USER %s WITH PASSWORD '%s'" % (WRITER_USER, WRITER_PASSWORD), db=None)
        self.query("GRANT ALL ON %s TO %s" % (DATABASE, WRITER_USER), db=None)

    def reset_database(self, db=DATABASE):
        self.query('DROP DATABASE "%s"' % db, db=None)
        self.query('CREATE DATABASE "%s"' % db, db=None)
        if self.auth:
            self.query('GRANT ALL ON "%s" TO %s' % (db, WRITER_USER), db=None)


class V2Server:
    """A small HTTPS server for InfluxDB's v2 write API.

    It checks each request (method POST, path /api/v2/write, query org, bucket
    and precision=ns, header `Authorization: Token <token>`, a body of line
    protocol, gzip when Content-Encoding says so) and records what it got.
    `script` is a list of statuses (plus optional Retry-After) to answer the
    next requests with before answering 204; a malformed request gets 400 and
    is counted in `errors`."""

    def __init__(self, pki, org="acme", bucket="speeds", token="t0ken/with+chars==",
                 client_ca=None, cert=None):
        self.org, self.bucket, self.token = org, bucket, token
        self.lock = threading.Lock()
        self.lines = []          # every line of every accepted body
        self.requests = []       # (status, headers dict, body bytes, monotonic time)
        self.errors = []         # why a request was malformed
        self.script = []         # [(status, retry_after or None)], consumed first
        self.release = threading.Event()  # cleared: requests wait (at most 60 s)
        self.release.set()
        self.held = 0            # requests waiting for `release` now
        cert_path, key_path = cert or pki.issue("v2server")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, body=b"", retry_after=None):
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Length", str(len(body)))
                if body:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if not outer.release.is_set():
                    with outer.lock:
                        outer.held += 1
                    outer.release.wait(60)
                    with outer.lock:
                        outer.held -= 1
                problem = outer._check(self.command, self.path, self.headers)
                if not problem and self.headers.get("Content-Encoding") == "gzip":
                    try:
                        body = gzip.decompress(body)
                    except OSError:
                        problem = "body is not gzip"
                if not problem and (not body or not body.endswith(b"\n")):
                    problem = "body is not newline-terminated line protocol"
                with outer.lock:
                    if problem:
                        outer.errors.append(problem)
                        status, ra = 400, None
                    elif outer.script:
                        status, ra = outer.script.pop(0)
                    else:
                        status, ra = 204, None
                    outer.requests.append((status, dict(self.headers), body, time.monotonic()))
                    if status == 204:
                        outer.lines.extend(body.decode("utf-8").splitlines())
                if status == 204:
                    self._answer(204)
                else:
                    msg = json.dumps({"code": "x", "message": problem or "scripted %d" % status})
                    self._answer(status, msg.encode(), ra)

            def do_GET(self):
                self._answer(204 if self.path == "/ping" else 404)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                sock, addr = super().get_request()
                return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

            def handle_error(self, request, client_address):
                pass  # TLS handshakes the client refuses are expected in tests

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _check(self, method, path, headers):
        u = urllib.parse.urlsplit(path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        if method != "POST":
            return "method %s" % method
        if u.path != "/api/v2/write":
            return "path %s" % u.path
        want = {"org": [self.org], "bucket": [self.bucket], "precision": ["ns"]}
        if q != want:
            return "query %r" % q
        if headers.get("Authorization") != "Token " + self.token:
            return "bad Authorization header"
        return None

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
