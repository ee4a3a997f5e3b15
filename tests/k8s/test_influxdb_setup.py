"""The InfluxDB part of k8s/ run for real on 127.0.0.1: influxd with the
manifests' influxdb.conf (paths and ports moved to a temp dir), the
certificate from k8s/tls/generate-influxdb-certs.sh, the users from
k8s/scripts/make-secrets.sh, set up by the influxdb-init Job's script.
Then: TLS verifies with the CA, anonymous access is refused, the writer may
write but not read, the reader may read but not write, and a re-run of the
setup is harmless and applies a rotated password. Also runs the resilience
test's seq-continuity query on known data."""

import json
import os
import re
import shutil
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import base64
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402


class Influx:
    def __init__(self):
        self.wd = k.workdir("influxdb")
        tls = os.path.join(self.wd, "tls")
        rc, out, err = k.run([os.path.join(k.K8S, "scripts", "make-secrets.sh"), "--out",
                              os.path.join(self.wd, "secrets.yaml"), "--tls-dir", tls])
        ct.check(rc == 0, "make-secrets.sh: %s%s" % (out, err))
        self.secrets = {d["metadata"]["name"]: d["stringData"]
                        for d in k.yaml_docs(os.path.join(self.wd, "secrets.yaml"))}
        # The Secrets as the pods see them (one file per key).
        self.auth_dir = os.path.join(self.wd, "influxdb-auth")
        os.makedirs(self.auth_dir)
        for key, value in self.secrets["influxdb-auth"].items():
            ct.write_file(os.path.join(self.auth_dir, key), value)
        self.ca = ct.write_file(os.path.join(self.wd, "ca.pem"),
                                self.secrets["influxdb-tls"]["ca.crt"])
        crt = ct.write_file(os.path.join(self.wd, "tls.crt"), self.secrets["influxdb-tls"]["tls.crt"])
        key = ct.write_file(os.path.join(self.wd, "tls.key"), self.secrets["influxdb-tls"]["tls.key"])
        self.port = ct.free_port()
        rpc = ct.free_port()
        with open(os.path.join(k.K8S, "base", "influxdb", "influxdb.conf")) as f:
            conf = f.read()
        data = os.path.join(self.wd, "data")
        subst = {"/var/lib/influxdb": data, "/etc/influxdb/tls/tls.crt": crt,
                 "/etc/influxdb/tls/tls.key": key, '":8086"': '"127.0.0.1:%d"' % self.port,
                 '"127.0.0.1:8088"': '"127.0.0.1:%d"' % rpc}
        for a, b in subst.items():
            ct.check(a in conf, "influxdb.conf no longer contains %s" % a)
            conf = conf.replace(a, b)
        self.conf = ct.write_file(os.path.join(self.wd, "influxdb.conf"), conf)
        influxd = shutil.which("influxd")
        ct.check(influxd, "influxd not found (Debian package influxdb)")
        self.log = open(os.path.join(self.wd, "influxd.log"), "wb")
        self.proc = ct.start_process([influxd, "-config", self.conf], stdout=self.log,
                                     stderr=self.log)
        self.url = "https://localhost:%d" % self.port
        self.ctx = ssl.create_default_context(cafile=self.ca)
        ct.wait_until(lambda: self.request("GET", "/ping")[0] == 204, timeout=30,
                      what="influxd /ping over verified TLS")

    def request(self, method, path, params=None, body=None, user=None):
        """(status, body) of an HTTPS request verified with the CA."""
        if self.proc.poll() is not None:
            raise ct.TestFailure("influxd exited %s" % self.proc.returncode)
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        req = urllib.request.Request(url, method=method, data=body)
        if user:
            who = self.secrets["influxdb-auth"]
            token = "%s:%s" % (who[user + "-username"], who[user + "-password"])
            req.add_header("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def init(self, extra_env=None):
        env = {"INFLUXDB_URL": self.url, "INFLUXDB_CA_FILE": self.ca, "INFLUXDB_DATABASE": "conveyor",
               "INFLUXDB_RETENTION": "30d", "SECRETS_DIR": self.auth_dir,
               "INFLUXDB_WAIT_SECONDS": "30", "TMPDIR": self.wd}
        env.update(extra_env or {})
        return k.run(["sh", os.path.join(k.K8S, "base", "influxdb", "init-influxdb.sh")], env=env,
                     timeout=120)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


def _query(db, q, user):
    return db.request("POST", "/query", {"db": "conveyor", "q": q}, user=user)


def test_influxdb_setup():
    db = Influx()
    try:
        rc, out, err = db.init()
        ct.check(rc == 0, "init-influxdb.sh failed (%d):\n%s%s" % (rc, out, err))
        ct.check("ready" in out, "init did not finish: %s" % out)
        for secret in db.secrets["influxdb-auth"].values():
            if "password" in secret or len(secret) == 32:
                ct.check(secret not in out + err, "a password appears in the setup's output")
        # Anonymous: refused.
        status, _ = db.request("POST", "/write", {"db": "conveyor"}, b"m f=1")
        ct.check(status == 401, "anonymous write answered %d" % status)
        # The writer writes (what the processor does) but cannot read.
        line = b"conveyor_speed,line_id=line-1 speed_ms=1.5,seq=0i,anomaly=false,zscore=0.1"
        status, body = db.request("POST", "/write", {"db": "conveyor", "precision": "ns"}, line,
                                  user="writer")
        ct.check(status == 204, "writer write: %d %s" % (status, body))
        status, body = _query(db, 'SELECT * FROM "conveyor_speed"', "writer")
        ct.check(status != 200 or '"error"' in body, "writer could read: %s" % body)
        # The reader (Grafana) reads but cannot write.
        status, body = _query(db, 'SELECT count("speed_ms") FROM "conveyor_speed"', "reader")
        ct.check(status == 200 and '"error"' not in body and "[0," not in body and
                 json.loads(body)["results"][0]["series"][0]["values"][0][1] == 1,
                 "reader query: %d %s" % (status, body))
        status, _ = db.request("POST", "/write", {"db": "conveyor"}, line, user="reader")
        ct.check(status == 403, "reader write answered %d" % status)
        status, body = _query(db, "SHOW RETENTION POLICIES", "reader")
        ct.check('"main","720h0m0s"' in body.replace(" ", "") and "true" in body,
                 "retention policy main (30d, default) missing: %s" % body)
        # Re-run: idempotent, and a rotated writer password takes effect.
        new_password = "Rotated0123456789abcdefABCDEF012"
        ct.write_file(os.path.join(db.auth_dir, "writer-password"), new_password)
        rc, out, err = db.init()
        ct.check(rc == 0, "second init failed (%d):\n%s%s" % (rc, out, err))
        status, _ = db.request("POST", "/write", {"db": "conveyor"}, line, user="writer")
        ct.check(status == 401, "the old writer password still works (%d)" % status)
        db.secrets["influxdb-auth"]["writer-password"] = new_password
        status, _ = db.request("POST", "/write", {"db": "conveyor"}, line, user="writer")
        ct.check(status == 204, "the rotated writer password does not work (%d)" % status)
        # A wrong CA: the setup refuses to talk (verified TLS, no fallback).
        other = os.path.join(db.wd, "other-ca")
        rc, _, _ = k.run([os.path.join(k.K8S, "tls", "generate-influxdb-certs.sh"), other])
        ct.check(rc == 0, "second CA generation failed")
        rc, out, err = db.init({"INFLUXDB_CA_FILE": os.path.join(other, "ca.pem"),
                                "INFLUXDB_WAIT_SECONDS": "3"})
        ct.check(rc != 0, "init succeeded against a certificate from another CA")
        _check_seq_query(db)
    finally:
        db.stop()


def _check_seq_query(db):
    """The resilience test's InfluxQL finds a gap and a duplicate-free series."""
    script = open(os.path.join(k.K8S, "scripts", "resilience-test.sh")).read()
    q = re.search(r'report=\$\(influx_query "(SELECT .*?GROUP BY \*)"', script)
    ct.check(q, "resilience-test.sh: seq query not found")
    query = q.group(1).replace('\\"', '"').replace("$start_ns", "0").replace("$end_ns", str(time.time_ns()))
    lines = []
    t = time.time_ns() - 3600 * 10**9  # inside the 30-day retention
    for seq in list(range(0, 50)) + list(range(51, 60)):  # line-2 lost seq 50
        lines.append("conveyor_speed,line_id=line-2 speed_ms=1.0,seq=%di %d" % (seq, t + seq * 1000))
    for seq in range(0, 40):
        lines.append("conveyor_speed,line_id=line-3 speed_ms=1.0,seq=%di %d" % (seq, t + seq * 1000))
    status, body = db.request("POST", "/write", {"db": "conveyor", "precision": "ns"},
                              "\n".join(lines).encode(), user="writer")
    ct.check(status == 204, "seq data write: %d %s" % (status, body))
    status, body = _query(db, query, "reader")
    ct.check(status == 200 and '"error"' not in body and "series" in body, "seq query failed: %s\n%s" % (query, body))
    got = {}
    for s in json.loads(body)["results"][0]["series"]:
        v = dict(zip(s["columns"], s["values"][0]))
        got[s["tags"]["line_id"]] = (v["n"], v["d"], v["lo"], v["hi"])
    ct.check(got.get("line-2") == (59, 59, 0, 59), "line-2 (one lost): %r" % (got.get("line-2"),))
    ct.check(got.get("line-3") == (40, 40, 0, 39), "line-3 (complete): %r" % (got.get("line-3"),))


if __name__ == "__main__":
    ct.main([test_influxdb_setup])
