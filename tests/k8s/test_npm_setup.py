"""The k8s checks install their Node packages from the npm registry once
(k8slib.ensure_node_modules). Where the registry cannot be used, they must
fail in seconds with a message that says what is missing and how to provide
it, not after npm's minute of retries with npm's own words. Checked against
local registries on 127.0.0.1: one whose certificate nobody trusts (a proxy
that intercepts TLS looks like this to npm), then the same trusted through
the CA file the message names, and a port where nothing listens. Also: the
package.json and lock ask for the Node.js that install-deps.sh installs."""

import http.server
import json
import os
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402


class _Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"{}"
        self.send_response(200 if self.path.startswith("/-/ping") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _tls_registry(wd):
    """A registry answering /-/ping over TLS with a self-signed certificate
    for 127.0.0.1: (url, cert file, server)."""
    cert, key = os.path.join(wd, "cert.pem"), os.path.join(wd, "key.pem")
    rc, out, err = k.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                          "-days", "2", "-subj", "/CN=conveyor-test-registry",
                          "-addext", "subjectAltName=IP:127.0.0.1"])
    ct.check(rc == 0, "openssl req failed: %s%s" % (out, err))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return "https://127.0.0.1:%d/" % server.server_address[1], cert, server


def _opts(registry):
    # Straight to 127.0.0.1, whatever proxy the environment names.
    return ["--registry=" + registry, "--noproxy=127.0.0.1", "--proxy=", "--https-proxy="]


def test_untrusted_registry_says_how_to_trust_it():
    wd = k.workdir("npm-untrusted")
    url, cert, server = _tls_registry(wd)
    try:
        problem = k.npm_registry_problem(_opts(url))
        ct.check(problem is not None, "npm ping trusted a self-signed registry")
        for words in ("does not trust the certificate", url, "NODE_EXTRA_CA_CERTS",
                      "npm config set cafile"):
            ct.check(words in problem, "message lacks %r:\n%s" % (words, problem))
        # The advice works: with the CA file, the same registry is fine.
        problem = k.npm_registry_problem(_opts(url) + ["--cafile=" + cert])
        ct.check(problem is None, "npm ping with --cafile still fails:\n%s" % problem)
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_registry_says_what_is_needed():
    port = ct.free_port()  # nothing listens there
    url = "https://127.0.0.1:%d/" % port
    problem = k.npm_registry_problem(_opts(url))
    ct.check(problem is not None, "npm ping succeeded against a closed port")
    for words in ("cannot reach", url, "ECONNREFUSED", "npm config set registry", "HTTPS_PROXY"):
        ct.check(words in problem, "message lacks %r:\n%s" % (words, problem))


def test_packages_support_debians_node():
    """package.json, its lock and every locked package accept Node.js
    k8slib.NODE_MIN_MAJOR (Debian 12's nodejs), so npm ci warns of no
    EBADENGINE there."""
    with open(os.path.join(k.HERE, "package.json")) as f:
        pkg = json.load(f)
    with open(os.path.join(k.HERE, "package-lock.json")) as f:
        lock = json.load(f)
    ct.check(pkg.get("engines", {}).get("node") == ">=%d" % k.NODE_MIN_MAJOR,
             "package.json engines.node is %r, not >=%d" % (pkg.get("engines"), k.NODE_MIN_MAJOR))
    ct.check(lock["packages"][""].get("engines") == pkg.get("engines"),
             "package-lock.json is stale (engines differ): npm install --package-lock-only")
    ct.check(lock["packages"][""]["dependencies"] == pkg["dependencies"],
             "package-lock.json is stale (dependencies differ): npm install --package-lock-only")
    bad = []
    for name, entry in lock["packages"].items():
        req = (entry.get("engines") or {}).get("node")
        if req and not _accepts(req, k.NODE_MIN_MAJOR):
            bad.append("%s %s (node %s)" % (name, entry.get("version"), req))
    ct.check(not bad, "locked packages need a newer Node than %d: %s" % (k.NODE_MIN_MAJOR, bad))


def _accepts(req, major):
    """Whether a node engines range admits major.x (the forms npm packages
    use: >=N, >= N.M, ^N, N.x, ranges joined with ||)."""
    for alt in req.split("||"):
        ok = True
        for term in alt.replace(">= ", ">=").replace("> ", ">").split():
            num = term.lstrip(">=<^~v").split(".")[0]
            if not num.isdigit():
                continue
            n = int(num)
            if term.startswith(">="):
                ok &= major >= n
            elif term.startswith(">"):
                ok &= major >= n  # > N.M admits later N.x
            elif term.startswith("<="):
                ok &= major <= n
            elif term.startswith("<"):
                rest = [x for x in term[1:].split(".")[1:] if x.isdigit()]
                ok &= major < n or (major == n and any(int(x) > 0 for x in rest))
            else:
                ok &= major == n
        if ok:
            return True
    return False


if __name__ == "__main__":
    ct.main([test_untrusted_registry_says_how_to_trust_it,
             test_unreachable_registry_says_what_is_needed,
             test_packages_support_debians_node])
