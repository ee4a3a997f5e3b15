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

import json
import os
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


def secrets_file():
    path = os.path.join(k.workdir("stub-secrets"), "secrets.yaml")
    rc, out, err = k.run([os.path.join(SCRIPTS, "make-secrets.sh"), "--out", path, "--tls-dir",
                          os.path.join(os.path.dirname(path), "tls")], timeout=60)
    ct.check(rc == 0, "make-secrets.sh: %s%s" % (out, err))
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
    stub = Stub("missing", {"metrics": False})
    rc, out, err = deploy(stub, "--overlay", "laptop", "--image", "registry.example/team/conveyor:9.9")
    ct.check(rc == 0, "deploy.sh failed (%d):\n%s%s" % (rc, out, err))
    text = rendered(stub)
    ct.check(text.count("image: registry.example/team/conveyor:9.9") == 2,
             "--image did not replace both engine images")
    ct.check("image: conveyor:" not in text, "an engine image conveyor:... is left")
    docs = k.yaml_text(text, "deployed.yaml")
    kafka = k.one(docs, "StatefulSet", "kafka")
    ct.check(kafka["spec"]["replicas"] == 1, "deploy.sh --overlay laptop applied %d Kafka nodes" %
             kafka["spec"]["replicas"])
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


if __name__ == "__main__":
    ct.main([test_deploy_laptop_image_and_metrics_server, test_deploy_base_keeps_existing_metrics_server,
             test_deploy_metrics_server_choices, test_load_test_checks_metrics_first])
