"""k8s/overlays/laptop: it renders with `kubectl kustomize`, holds the same
objects as the base (it only patches), validates against the Kubernetes
schemas, keeps the base's workload invariants and network matrix, and fits
a laptop: every pod together requests at most 2 CPUs and 4 GiB (at the
producer HPA's maximum, with the Jobs, one DaemonSet pod per node of a
one-node cluster, init containers counted the way the scheduler does). Kafka
runs one node with replication factor 1 and min.insync 1 wherever it is
configured, one processor runs, and no PodDisruptionBudget blocks a drain.

Needs kustomize v4 or later (kubectl 1.21+), like the overlay itself: with
an older kubectl (Debian's 1.20) the test skips (exit 77) and says so.
"""

import copy
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402

OVERLAY = os.path.join(k.K8S, "overlays", "laptop")
BASE = os.path.join(k.K8S, "base")
MAX_CPU_MILLI = 2000
MAX_MEMORY = 4 * 1024 ** 3
NODES = 1  # a laptop cluster: DaemonSets run one pod

_CPU = re.compile(r"^([0-9.]+)(m?)$")
_MEM = re.compile(r"^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")
_MEM_SCALE = {None: 1, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4,
              "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4, "m": 0.001}


def cpu_milli(q):
    m = _CPU.match(str(q))
    ct.check(m, "unparsable CPU quantity %r" % q)
    return float(m.group(1)) * (1 if m.group(2) else 1000)


def memory_bytes(q):
    m = _MEM.match(str(q))
    ct.check(m, "unparsable memory quantity %r" % q)
    return float(m.group(1)) * _MEM_SCALE[m.group(2)]


def pod_requests(spec):
    """(cpu millicores, memory bytes) the scheduler reserves for one pod:
    the larger of the app containers (plus restartable init containers,
    i.e. sidecars) and each init container with the sidecars started before
    it (Kubernetes' effective request)."""
    def req(c):
        r = (c.get("resources") or {}).get("requests") or {}
        return (cpu_milli(r.get("cpu", "0")), memory_bytes(r.get("memory", "0")))
    sidecars = [0.0, 0.0]
    init_peak = [0.0, 0.0]
    for c in spec.get("initContainers") or []:
        cpu, mem = req(c)
        if c.get("restartPolicy") == "Always":
            sidecars = [sidecars[0] + cpu, sidecars[1] + mem]
        else:
            init_peak = [max(init_peak[0], sidecars[0] + cpu), max(init_peak[1], sidecars[1] + mem)]
    app = [sidecars[0], sidecars[1]]
    for c in spec.get("containers") or []:
        cpu, mem = req(c)
        app = [app[0] + cpu, app[1] + mem]
    return max(app[0], init_peak[0]), max(app[1], init_peak[1])


def pod_count(objs, w):
    """Pods a workload runs at most (HPA maximum where an HPA scales it)."""
    kind = w["kind"]
    if kind == "DaemonSet":
        return NODES
    if kind == "Job":
        return w["spec"].get("parallelism", 1)
    if kind == "CronJob":
        return w["spec"]["jobTemplate"]["spec"].get("parallelism", 1)
    for hpa in k.find(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["kind"] == kind and ref["name"] == w["metadata"]["name"]:
            return hpa["spec"]["maxReplicas"]
    return w["spec"].get("replicas", 1)


def totals(objs):
    """(cpu millicores, memory bytes, [(workload, pods, cpu, mem)])."""
    rows = []
    for w in k.workloads(objs):
        _, spec = k.pod_template(w)
        cpu, mem = pod_requests(spec)
        n = pod_count(objs, w)
        rows.append((k.name_of(w), n, cpu * n, mem * n))
    return sum(r[2] for r in rows), sum(r[3] for r in rows), rows


_overlay = []


def overlay_objects():
    if not _overlay:
        rc, out, err = k.run([k.kubectl(), "kustomize", OVERLAY], timeout=120)
        ct.check(rc == 0, "kubectl kustomize %s failed:\n%s" % (OVERLAY, err))
        ct.check("deprecated" not in err, "the overlay uses deprecated kustomize fields:\n%s" % err)
        path = os.path.join(k.workdir("laptop"), "rendered.yaml")
        with open(path, "w") as f:
            f.write(out)
        _overlay.extend(k.yaml_docs(path))
    return _overlay


def base_objects():
    rc, out, err = k.run([k.kubectl(), "kustomize", BASE], timeout=120)
    ct.check(rc == 0, "kubectl kustomize %s failed:\n%s" % (BASE, err))
    path = os.path.join(k.workdir("laptop-base"), "rendered.yaml")
    with open(path, "w") as f:
        f.write(out)
    return k.yaml_docs(path)


def test_request_arithmetic():
    """The effective-request rule itself, on known pods."""
    c = lambda cpu, mem, **kw: dict({"resources": {"requests": {"cpu": cpu, "memory": mem}}}, **kw)
    ct.check(pod_requests({"containers": [c("100m", "64Mi"), c("0.5", "1Gi")]}) ==
             (600, 64 * 2 ** 20 + 2 ** 30), "two app containers add up")
    ct.check(pod_requests({"initContainers": [c("2", "10Mi")], "containers": [c("100m", "1Gi")]}) ==
             (2000, 2 ** 30), "an init container counts as the max, not the sum")
    ct.check(pod_requests({"initContainers": [c("100m", "8Mi", restartPolicy="Always"), c("1", "1Mi")],
                           "containers": [c("100m", "8Mi")]}) == (1100, 16 * 2 ** 20),
             "a sidecar adds to both the app and the later init containers")
    ct.check(memory_bytes("1G") == 1e9 and cpu_milli("1") == 1000 and cpu_milli("250m") == 250,
             "quantities")


def test_same_objects_as_base():
    have = sorted((o["kind"], o["metadata"]["name"]) for o in overlay_objects())
    want = sorted((o["kind"], o["metadata"]["name"]) for o in base_objects())
    strip = lambda names: [(kd, re.sub(r"-[a-z0-9]{10}$", "", n)) for kd, n in names]
    ct.check(strip(have) == strip(want), "the overlay adds or drops objects: %s" %
             sorted(set(strip(have)) ^ set(strip(want))))


def test_schema_and_invariants():
    objs = overlay_objects()
    path = os.path.join(k.workdir("laptop-schema"), "objects.json")
    with open(path, "w") as f:
        json.dump([{"doc": o} for o in objs], f)
    rc, out, err = k.node_tool("validate", path)
    ct.check(rc == 0, "kubernetes-models validation of the overlay failed:\n%s" % err)
    # The base's own checks (tests/k8s/test_manifests.py), run on the
    # overlay's objects: security, probes, PDBs, the network matrix, the
    # engines' pipelines and env.
    import test_manifests as tm
    saved = k._objects
    k._objects = objs
    try:
        tm.test_workload_invariants()
        tm.test_network_policies()
        tm.test_pipeline_env_provided()
        tm.test_prometheus_scrapes_engine_port()
        tm.test_pipelines_hot_reload()
    finally:
        k._objects = saved


def test_fits_a_laptop():
    cpu, mem, rows = totals(overlay_objects())
    for name, n, c, m in sorted(rows, key=lambda r: -r[3]):
        print("  %-36s %d pod(s) %5.0fm %7.0f Mi" % (name, n, c, m / 2 ** 20))
    print("laptop overlay requests: %.0fm CPU, %.0f Mi (limit %dm, %d Mi)" %
          (cpu, mem / 2 ** 20, MAX_CPU_MILLI, MAX_MEMORY // 2 ** 20))
    ct.check(cpu <= MAX_CPU_MILLI, "laptop overlay requests %.0fm CPU > %dm" % (cpu, MAX_CPU_MILLI))
    ct.check(mem <= MAX_MEMORY, "laptop overlay requests %.0f Mi > %d Mi" %
             (mem / 2 ** 20, MAX_MEMORY // 2 ** 20))
    bcpu, bmem, _ = totals(base_objects())
    print("base (production) requests: %.0fm CPU, %.0f Mi" % (bcpu, bmem / 2 ** 20))
    # The sum can fail: the production shape does not fit.
    ct.check(bcpu > MAX_CPU_MILLI or bmem > MAX_MEMORY, "the base fits a laptop too?")
    # Every volume claim is small.
    for sts in k.find(overlay_objects(), "StatefulSet"):
        for claim in sts["spec"].get("volumeClaimTemplates", []):
            size = memory_bytes(claim["spec"]["resources"]["requests"]["storage"])
            ct.check(size <= 2 * 1024 ** 3, "StatefulSet %s claims %s" %
                     (sts["metadata"]["name"], claim["spec"]["resources"]["requests"]["storage"]))


def _kafka_script_settings(replicas):
    """(replication factor, min.insync) that start-kafka.sh derives for a
    quorum of `replicas` nodes: its own arithmetic lines, run by bash."""
    with open(os.path.join(BASE, "kafka", "start-kafka.sh")) as f:
        lines = [l for l in f.read().splitlines() if re.match(r"^(rf|min_isr)=\$\(\(", l)]
    ct.check(len(lines) == 2, "start-kafka.sh: rf= and min_isr= lines not found")
    out = subprocess.run(["bash", "-c", "KAFKA_REPLICAS=%d; %s; echo $rf $min_isr" %
                          (replicas, "; ".join(lines))], capture_output=True, text=True, timeout=10)
    rf, isr = out.stdout.split()
    return int(rf), int(isr)


def test_replication_fits_one_broker():
    objs = overlay_objects()
    kafka = k.one(objs, "StatefulSet", "kafka")
    replicas = kafka["spec"]["replicas"]
    ct.check(replicas == 1, "laptop Kafka runs %d nodes" % replicas)
    env = k.env_of(kafka["spec"]["template"]["spec"]["containers"][0])
    ct.check(env.get("KAFKA_REPLICAS") == str(replicas),
             "KAFKA_REPLICAS %s != replicas %d (the controller quorum)" % (env.get("KAFKA_REPLICAS"), replicas))
    rf, isr = _kafka_script_settings(replicas)
    ct.check((rf, isr) == (1, 1), "start-kafka.sh derives rf %d, min.insync %d for one node" % (rf, isr))
    ct.check(_kafka_script_settings(3) == (3, 2), "start-kafka.sh for three nodes")
    heap = re.search(r"-Xmx(\d+)m", env.get("KAFKA_HEAP_OPTS", ""))
    limit = memory_bytes(kafka["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"])
    ct.check(heap and int(heap.group(1)) * 2 ** 20 < limit * 0.75,
             "Kafka heap %s leaves too little of its memory limit" % env.get("KAFKA_HEAP_OPTS"))
    job = k.one(objs, "Job", "kafka-create-topics")
    jenv = k.env_of(job["spec"]["template"]["spec"]["containers"][0])
    ct.check(int(jenv["REPLICATION_FACTOR"]) <= replicas and int(jenv["REPLICATION_FACTOR"]) == 1,
             "topic replication factor %s with %d broker(s)" % (jenv["REPLICATION_FACTOR"], replicas))
    ct.check(int(jenv["MIN_INSYNC_REPLICAS"]) <= int(jenv["REPLICATION_FACTOR"]),
             "min.insync.replicas %s > replication factor %s" % (jenv["MIN_INSYNC_REPLICAS"],
                                                                jenv["REPLICATION_FACTOR"]))
    processor = k.one(objs, "Deployment", "processor")
    ct.check(processor["spec"]["replicas"] == 1, "laptop processor replicas %s" % processor["spec"]["replicas"])
    hpa = k.one(objs, "HorizontalPodAutoscaler", "producer")
    ct.check(hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"] <= 3, "producer HPA %s-%s" %
             (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]))
    # No budget that forbids every eviction (a drain would hang).
    for pdb in k.find(objs, "PodDisruptionBudget"):
        for w in k.workloads(objs):
            if not k.selector_matches(pdb["spec"]["selector"], k.pod_template(w)[0].get("labels", {})):
                continue
            n = min_pods(objs, w)
            if "minAvailable" in pdb["spec"]:
                ct.check(pdb["spec"]["minAvailable"] < n, "PDB %s: minAvailable %s with %d pod(s) "
                         "blocks every drain" % (pdb["metadata"]["name"], pdb["spec"]["minAvailable"], n))
            else:
                ct.check(pdb["spec"].get("maxUnavailable", 0) >= 1, "PDB %s: maxUnavailable 0" %
                         pdb["metadata"]["name"])


def min_pods(objs, w):
    """Pods a workload runs at least (HPA minimum where an HPA scales it)."""
    for hpa in k.find(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["kind"] == w["kind"] and ref["name"] == w["metadata"]["name"]:
            return hpa["spec"].get("minReplicas", 1)
    return w["spec"].get("replicas", 1)

if __name__ == "__main__":
    k.skip_without_kustomize_v4("k8s/overlays/laptop")
    ct.main([test_request_arithmetic, test_same_objects_as_base, test_schema_and_invariants,
             test_fits_a_laptop, test_replication_fits_one_broker])
