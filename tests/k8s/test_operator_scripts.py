"""The operator scripts' logic without a cluster: deploy.sh, load-test.sh and
validate.sh run against a recording stand-in for kubectl (no Kubernetes API
server runs here). The stand-in passes `kubectl kustomize` to the real
kubectl, answers the few reads the scripts make from a scenario, records
every call, and keeps every manifest the scripts apply. Checked:

- deploy.sh --overlay laptop applies the laptop rendering; --image replaces
  both engine images (with BSD-compatible sed: no `sed -i`); a missing
  metrics API makes it install metrics-server (pinned release manifest, or
  METRICS_SERVER_MANIFEST) with --kubelet-insecure-tls, a present one does
  not, --metrics-server no only warns;
- load-test.sh stops at once, before loading anything, when the cluster has
  no metrics API, and says how to install it;
- validate.sh holds the checks a live run needs (HPA reading CPU,
  NetworkPolicies present and enforced, TLS on InfluxDB, engine logs in
  Loki) and they fail where they must.
"""

import base64
import json
import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402

SCRIPTS = os.path.join(k.K8S, "scripts")

# The stand-in kubectl. Scenario (JSON in $STUB_SCENARIO): {"metrics": bool,
# "answers": {"ARGS JOINED BY SPACES (prefix)": [rc, stdout]}}.
STUB = r'''#!/usr/bin/env python3
import json, os, subprocess, sys
args = sys.argv[1:]
scenario = json.load(open(os.environ["STUB_SCENARIO"]))
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
# Drop the namespace flags the scripts put first.
while len(args) >= 2 and args[0] in ("--namespace", "-n"):
    args = args[2:]
line = " ".join(args)
if args and args[0] == "port-forward":
    svc = args[1].split("/", 1)[1]
    print("Forwarding from 127.0.0.1:%d -> %s" % (scenario["pf"][svc], args[2].lstrip(":")), flush=True)
    import time
    time.sleep(120)  # killed by the script at its exit
    sys.exit(0)
if args and args[0] == "kustomize":
    os.execv(os.environ["REAL_KUBECTL"], [os.environ["REAL_KUBECTL"]] + args)
if args[:1] == ["apply"] and "-f" in args:
    src = args[args.index("-f") + 1]
    n = len(os.listdir(os.environ["STUB_APPLIED"]))
    with open(os.path.join(os.environ["STUB_APPLIED"], "%03d.txt" % n), "w") as out:
        out.write(src + "\n")
        if os.path.exists(src):
            out.write(open(src).read())
    sys.exit(0)
for prefix, (rc, text) in sorted(scenario.get("answers", {}).items(), key=lambda kv: -len(kv[0])):
    if line.startswith(prefix):
        sys.stdout.write(text)
        sys.exit(rc)
if line.startswith("get apiservice v1beta1.metrics.k8s.io") or \
        line.startswith("get --raw /apis/metrics.k8s.io/"):
    sys.exit(0 if scenario.get("metrics") else 1)
if line.startswith("wait --for=condition=Available apiservice"):
    sys.exit(0 if scenario.get("metrics") else 1)
sys.exit(0)
'''


class Stub:
    def __init__(self, name, scenario):
        self.dir = k.workdir("stub-" + name)
        self.path = ct.write_file(os.path.join(self.dir, "kubectl"), STUB)
        os.chmod(self.path, os.stat(self.path).st_mode | stat.S_IXUSR)
        self.log = os.path.join(self.dir, "calls.jsonl")
        self.applied = os.path.join(self.dir, "applied")
        os.makedirs(self.applied)
        self.scenario = ct.write_file(os.path.join(self.dir, "scenario.json"), json.dumps(scenario))

    def env(self):
        return {"KUBECTL": self.path, "REAL_KUBECTL": k.kubectl(), "STUB_SCENARIO": self.scenario,
                "STUB_LOG": self.log, "STUB_APPLIED": self.applied}

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def applies(self):
        """[(source, content)] of every `apply -f`, in order."""
        out = []
        for name in sorted(os.listdir(self.applied)):
            with open(os.path.join(self.applied, name)) as f:
                src, _, body = f.read().partition("\n")
            out.append((src, body))
        return out


_secrets = []


def secrets_file():
    """One made-up secrets.yaml for every deploy.sh run (make-secrets.sh)."""
    if _secrets:
        return _secrets[0]
    path = os.path.join(k.workdir("stub-secrets"), "secrets.yaml")
    rc, out, err = k.run([os.path.join(SCRIPTS, "make-secrets.sh"), "--out", path, "--tls-dir",
                          os.path.join(os.path.dirname(path), "tls")], timeout=60)
    ct.check(rc == 0, "make-secrets.sh: %s%s" % (out, err))
    _secrets.append(path)
    return path


def deploy(stub, *args, env=None):
    full = stub.env()
    full.update(env or {})
    return k.run(["bash", os.path.join(SCRIPTS, "deploy.sh"), "--no-wait", "--secrets", secrets_file()] +
                 list(args), env=full, timeout=180)


def rendered(stub):
    """The system manifest deploy.sh applied (the one holding Deployments)."""
    docs = [body for _, body in stub.applies() if "kind: Deployment" in body]
    ct.check(len(docs) == 1, "expected one applied rendering, got %d" % len(docs))
    return docs[0]


def _metrics_server_calls(stub):
    return [c for c in stub.calls() if "metrics-server" in " ".join(c) or
            any("components.yaml" in a for a in c)]


def test_deploy_laptop_image_and_metrics_server():
    short = k.kustomize_short_of_v4()
    laptop = short is None
    overlay = ["--overlay", "laptop"] if laptop else []
    if not laptop:
        # Debian 12's kubectl (1.20, kustomize v2) cannot render the laptop
        # overlay (test_laptop_overlay skips for the same reason).
        print("note: %s has %s; the laptop overlay needs v4+ (kubectl 1.21+): "
              "deploying the base, the laptop check skipped" % (k.kubectl(), short), flush=True)
    stub = Stub("missing", {"metrics": False})
    rc, out, err = deploy(stub, *overlay, "--image", "registry.example/team/conveyor:9.9")
    ct.check(rc == 0, "deploy.sh failed (%d):\n%s%s" % (rc, out, err))
    text = rendered(stub)
    ct.check(text.count("image: registry.example/team/conveyor:9.9") == 2,
             "--image did not replace both engine images")
    ct.check("image: conveyor:" not in text, "an engine image conveyor:... is left")
    docs = k.yaml_text(text, "deployed.yaml")
    kafka = k.one(docs, "StatefulSet", "kafka")
    ct.check(not laptop or kafka["spec"]["replicas"] == 1,
             "deploy.sh --overlay laptop applied %d Kafka nodes" % kafka["spec"]["replicas"])
    srcs = [s for s, _ in stub.applies()]
    ms = [s for s in srcs if s.endswith("/components.yaml")]
    ct.check(ms == ["https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.7.2/components.yaml"],
             "metrics-server not installed from its pinned release: %s" % srcs)
    patch = [c for c in stub.calls() if "patch" in c and "metrics-server" in c]
    ct.check(patch and "--kubelet-insecure-tls" in " ".join(patch[0]),
             "metrics-server not given --kubelet-insecure-tls: %s" % patch)
    # Secrets before the system; metrics-server before the HPA's workload.
    ct.check(srcs.index(ms[0]) < len(srcs) - 1 and srcs[-1] != ms[0], "apply order: %s" % srcs)


def test_deploy_base_keeps_existing_metrics_server():
    stub = Stub("present", {"metrics": True})
    rc, out, err = deploy(stub)
    ct.check(rc == 0, "deploy.sh failed (%d):\n%s%s" % (rc, out, err))
    ct.check(not _metrics_server_calls(stub), "metrics-server touched although present: %s" %
             _metrics_server_calls(stub))
    docs = k.yaml_text(rendered(stub), "base.yaml")
    ct.check(k.one(docs, "StatefulSet", "kafka")["spec"]["replicas"] == 3, "base not applied")
    ct.check("image: conveyor:%s" % k.project_version() in rendered(stub), "engine image changed")


def test_deploy_metrics_server_choices():
    stub = Stub("no", {"metrics": False})
    rc, out, err = deploy(stub, "--metrics-server", "no")
    ct.check(rc == 0, "deploy.sh --metrics-server no failed: %s" % err)
    ct.check(not _metrics_server_calls(stub), "--metrics-server no installed it")
    ct.check("HPA" in err and "metrics" in err, "no warning about the missing metrics API: %s" % err)
    stub = Stub("mirror", {"metrics": False})
    mirror = ct.write_file(os.path.join(stub.dir, "metrics-server.yaml"), "# a mirror\n")
    rc, out, err = deploy(stub, env={"METRICS_SERVER_MANIFEST": mirror})
    ct.check(rc == 0 and [s for s, _ in stub.applies()][0] == mirror,
             "METRICS_SERVER_MANIFEST not used: %s %s" % (stub.applies()[:1], err))
    stub = Stub("bad", {"metrics": False})
    rc, out, err = deploy(stub, "--metrics-server", "maybe")
    ct.check(rc != 0 and "auto or no" in err, "a bad --metrics-server value passed")
    rc, out, err = deploy(stub, "--overlay", "nowhere")
    ct.check(rc != 0 and "no overlay" in err, "an unknown overlay passed: %s" % err)


def test_load_test_checks_metrics_first():
    stub = Stub("load", {"metrics": False, "answers": {
        "get hpa producer -o jsonpath={.spec.minReplicas}": [0, "1"],
        "get hpa producer -o jsonpath={.spec.maxReplicas}": [0, "5"]}})
    env = stub.env()
    rc, out, err = k.run(["bash", os.path.join(SCRIPTS, "load-test.sh")], env=env, timeout=60)
    ct.check(rc != 0, "load-test.sh went on without a metrics API")
    ct.check("metrics API" in err and "metrics-server" in err and "kubelet-insecure-tls" in err,
             "load-test.sh does not say how to install metrics-server:\n%s" % err)
    ct.check(not [c for c in stub.calls() if "set" in c], "load-test.sh changed the producer first")
    ct.check(not [c for c in stub.calls() if c[:2] == ["get", "hpa"] or "hpa" in c],
             "load-test.sh read the HPA before checking the metrics API")


def validate(stub, *args):
    return k.run(["bash", os.path.join(SCRIPTS, "validate.sh"), "--timeout", "6"] + list(args),
                 env=stub.env(), timeout=120)


POLICIES = None


def policy_names():
    global POLICIES
    if POLICIES is None:
        POLICIES = sorted(o["metadata"]["name"] for o in k.objects() if o["kind"] == "NetworkPolicy")
        ct.check(len(POLICIES) >= 5, "too few NetworkPolicies rendered: %s" % POLICIES)
    return POLICIES


def netpol_scenario(rc, policies=None):
    names = policy_names() if policies is None else policies
    return {"answers": {
        "get networkpolicy": [0, "".join(n + "\n" for n in names)],
        "get pod netpol-probe-": [0, "Succeeded"],
        "logs netpol-probe-": [0, "probe-rc=%s\n" % rc if rc is not None else ""]}}


def test_validate_netpol_enforced():
    stub = Stub("netpol-ok", netpol_scenario(28))
    rc, out, err = validate(stub, "--only", "netpol")
    ct.check(rc == 0 and "enforced" in err, "validate --only netpol (probe timed out): %d %s" % (rc, err))
    runs = [c for c in stub.calls() if "run" in c]
    ct.check(runs and any("app.kubernetes.io/name=netpol-probe" in a for a in runs[0]),
             "no probe pod outside the allowed set: %s" % runs)
    ct.check(any(c[2:4] == ["delete", "pod"] and c[4].startswith("netpol-probe-") for c in stub.calls()),
             "the probe pod is not deleted at exit")


def test_validate_netpol_failures():
    stub = Stub("netpol-open", netpol_scenario(60))
    rc, out, err = validate(stub, "--only", "netpol")
    ct.check(rc != 0 and "NOT enforced" in err, "an InfluxDB reachable from anywhere passed: %s" % err)
    stub = Stub("netpol-warn", netpol_scenario(0))
    rc, out, err = validate(stub, "--only", "netpol", "--allow-unenforced-netpol")
    ct.check(rc == 0 and "WARNING" in err and "NOT enforced" in err, "--allow-unenforced-netpol: %s" % err)
    stub = Stub("netpol-dns", netpol_scenario(6))
    rc, out, err = validate(stub, "--only", "netpol")
    ct.check(rc != 0 and "DNS" in err, "a probe without DNS passed: %s" % err)
    stub = Stub("netpol-missing", netpol_scenario(28, policy_names()[1:]))
    rc, out, err = validate(stub, "--only", "netpol")
    ct.check(rc != 0 and "missing: %s" % policy_names()[0] in err, "a missing policy passed: %s" % err)
    stub = Stub("netpol-silent", netpol_scenario(None))
    rc, out, err = validate(stub, "--only", "netpol")
    ct.check(rc != 0 and "no answer" in err, "a probe without output passed: %s" % err)


def test_validate_hpa():
    stub = Stub("hpa-nometrics", {"metrics": False})
    rc, out, err = validate(stub, "--only", "hpa")
    ct.check(rc != 0 and "metrics API" in err and "metrics-server" in err, "no metrics API passed: %s" % err)
    stub = Stub("hpa-unknown", {"metrics": True, "answers": {"get hpa producer": [0, ""]}})
    rc, out, err = validate(stub, "--only", "hpa")
    ct.check(rc != 0 and "HPA to read CPU" in err, "an HPA without CPU passed: %s" % err)
    stub = Stub("hpa-ok", {"metrics": True, "answers": {"get hpa producer": [0, "37"]}})
    rc, out, err = validate(stub, "--only", "hpa")
    ct.check(rc == 0 and "reads CPU: 37%" in err, "an HPA reading CPU failed: %s" % err)


def test_validate_tls_against_real_influxd():
    """validate.sh --only tls through a port-forward stand-in to a real
    influxd run with the manifests' config, certificate and users."""
    from test_influxdb_setup import Influx
    db = Influx()
    try:
        rc, out, err = db.init()
        ct.check(rc == 0, "init-influxdb.sh: %s%s" % (out, err))

        def scenario(ca_pem):
            b64 = lambda v: [0, base64.b64encode(v.encode()).decode()]
            auth = db.secrets["influxdb-auth"]
            return {"pf": {"influxdb": db.port}, "answers": {
                "get secret influxdb-tls -o jsonpath={.data.ca\\.crt}": b64(ca_pem),
                "get secret influxdb-auth -o jsonpath={.data.reader-username}": b64(auth["reader-username"]),
                "get secret influxdb-auth -o jsonpath={.data.reader-password}": b64(auth["reader-password"])}}
        with open(db.ca) as f:
            ca = f.read()
        stub = Stub("tls-ok", scenario(ca))
        rc, out, err = validate(stub, "--only", "tls")
        ct.check(rc == 0 and "only HTTPS" in err, "validate --only tls against influxd: %d\n%s" % (rc, err))
        # Another CA: the certificate must not verify.
        other = os.path.join(db.wd, "other-ca")
        rc, _, _ = k.run([os.path.join(k.K8S, "tls", "generate-influxdb-certs.sh"), other])
        with open(os.path.join(other, "ca.pem")) as f:
            stub = Stub("tls-badca", scenario(f.read()))
        rc, out, err = validate(stub, "--only", "tls")
        ct.check(rc != 0 and "does not verify" in err, "a foreign CA passed: %s" % err)
    finally:
        db.stop()


def test_validate_loki_step_covers_both_engines():
    """No Loki runs here: the step's query is checked as text."""
    with open(os.path.join(SCRIPTS, "validate.sh")) as f:
        text = f.read()
    ct.check('app=\\"$1\\", level=~\\".+\\"' in text and "query_range" in text,
             "the Loki step does not query recent lines with a level per app")
    ct.check(re.search(r"for app in producer processor; do\s+wait_for [^\n]*logs_of", text),
             "the Loki step does not check both engines")


if __name__ == "__main__":
    ct.main([test_deploy_laptop_image_and_metrics_server, test_deploy_base_keeps_existing_metrics_server,
             test_deploy_metrics_server_choices, test_load_test_checks_metrics_first,
             test_validate_netpol_enforced, test_validate_netpol_failures, test_validate_hpa,
             test_validate_tls_against_real_influxd, test_validate_loki_step_covers_both_engines])
