"""Offline checks of the k8s/ kustomize tree: it renders, every object
validates against the Kubernetes schemas (kubernetes-models) with no unknown
field, every workload meets the production invariants, the NetworkPolicies
allow exactly the flows the system needs, Prometheus scrapes the port the
engines listen on, and the pipelines, secrets and certificates fit together.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402

EXPECTED_KINDS = {
    ("Namespace", "conveyor-pipeline"),
    ("StatefulSet", "kafka"), ("Job", "kafka-create-topics"),
    ("StatefulSet", "influxdb"), ("Job", "influxdb-init"),
    ("Deployment", "producer"), ("HorizontalPodAutoscaler", "producer"),
    ("Deployment", "processor"),
    ("StatefulSet", "prometheus"), ("Role", "prometheus"), ("RoleBinding", "prometheus"),
    ("Deployment", "grafana"), ("StatefulSet", "loki"), ("DaemonSet", "promtail"),
    ("NetworkPolicy", "default-deny-all"),
}

# Who talks to whom (source app, destination app, port): everything else
# inside the namespace must be denied.
EXPECTED_FLOWS = {
    ("producer", "kafka", 9092), ("processor", "kafka", 9092),
    ("kafka-create-topics", "kafka", 9092), ("kafka", "kafka", 9092), ("kafka", "kafka", 9093),
    ("processor", "influxdb", 8086), ("grafana", "influxdb", 8086),
    ("influxdb-init", "influxdb", 8086),
    ("prometheus", "producer", 8000), ("prometheus", "processor", 8000),
    ("grafana", "prometheus", 9090), ("grafana", "loki", 3100), ("promtail", "loki", 3100),
}
# Pods that talk to the API server (service discovery).
API_CLIENTS = {"prometheus", "promtail"}
# Pods that may mount a hostPath (read only): the node's pod logs.
HOSTPATH_OK = {"promtail"}


def app_of(workload):
    meta, _ = k.pod_template(workload)
    return meta.get("labels", {}).get("app.kubernetes.io/name")


def test_renders():
    objs = k.objects()
    have = {(o["kind"], o["metadata"]["name"]) for o in objs}
    missing = EXPECTED_KINDS - have
    ct.check(not missing, "not rendered: %s" % sorted(missing))
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for o in objs:
        if o["kind"] not in cluster_scoped:
            ct.check(o["metadata"].get("namespace") == k.NAMESPACE,
                     "%s is not in namespace %s" % (k.name_of(o), k.NAMESPACE))
    ct.check(not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")],
             "cluster-wide RBAC: discovery needs only namespaced Roles")
    # The same tree must render with every kubectl given in KUBECTL_COMPAT
    # (e.g. Debian's 1.20 kubectl with kustomize v2) into the same objects
    # (generated ConfigMap hashes aside: each kustomize hashes its own way).
    def normal(docs):
        text = json.dumps(sorted(docs, key=lambda o: (o["kind"], o["metadata"]["name"])),
                          sort_keys=True)
        return re.sub(r'"((?:%s)-)[a-z0-9]{10}"' % "|".join(GENERATED), r'"\1HASH"', text)
    for other in filter(None, os.environ.get("KUBECTL_COMPAT", "").split(":")):
        path = os.path.join(k.workdir("compat"), "rendered.yaml")
        with open(path, "w") as f:
            f.write(k.render(other))
        ct.check(normal(k.yaml_docs(path)) == normal(objs),
                 "%s renders other objects than %s" % (other, k.kubectl()))


# Generated ConfigMaps named with a content hash (a change rolls the pods
# that mount them). Not conveyor-pipelines: see test_pipelines_hot_reload.
GENERATED = ("kafka-config", "influxdb-config", "prometheus-config",
             "grafana-config", "grafana-dashboards", "loki-config", "promtail-config")
PIPELINES_CONFIGMAP = "conveyor-pipelines"


def test_schema_validates():
    path = os.path.join(k.workdir("schema"), "objects.json")
    with open(path, "w") as f:
        json.dump([{"doc": o} for o in k.objects()], f)
    rc, out, err = k.node_tool("validate", path)
    ct.check(rc == 0, "kubernetes-models validation failed:\n%s" % err)
    ct.check("validated %d objects" % len(k.objects()) in out, "validated too few: %s" % out)
    # The validator must be able to fail: a wrong type is reported.
    bad = copy.deepcopy(k.one(k.objects(), "Deployment", "processor"))
    bad["spec"]["replicas"] = "two"
    with open(path, "w") as f:
        json.dump([{"doc": bad}], f)
    rc, _, err = k.node_tool("validate", path)
    ct.check(rc != 0 and "replicas" in err, "a string replicas passed validation: %s" % err)


def _typecheck(objs, name):
    out = k.workdir(name)
    with open(os.path.join(out, "objects.json"), "w") as f:
        json.dump([{"doc": o} for o in objs], f)
    rc, _, err = k.node_tool("k8s-ts", os.path.join(out, "objects.json"),
                             os.path.join(out, "objects.ts"))
    ct.check(rc == 0, "k8s-ts failed: %s" % err)
    return k.tsc(out, ["objects.ts"])


def test_no_unknown_fields():
    rc, out = _typecheck(k.objects(), "fields")
    ct.check(rc == 0, "objects carry fields their Kubernetes types do not have:\n%s" % out[-6000:])
    # Negative control: a misspelt field deep in a pod spec is caught.
    bad = copy.deepcopy(k.one(k.objects(), "Deployment", "producer"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    rc, out = _typecheck([bad], "fields-bad")
    ct.check(rc != 0 and "readinesProbe" in out, "an unknown field went unnoticed: %s" % out)


def _image_pinned(image):
    if "@sha256:" in image:
        return True
    name_tag = image.rsplit("/", 1)[-1]
    return ":" in name_tag and name_tag.split(":")[1] not in ("", "latest")


def _probe_path(probe):
    return (probe or {}).get("httpGet", {}).get("path")


def test_workload_invariants():
    objs = k.objects()
    problems = []
    version = k.project_version()
    for w in k.workloads(objs):
        wname = k.name_of(w)
        meta, spec = k.pod_template(w)
        app = app_of(w)
        if not app:
            problems.append("%s: pod template has no app.kubernetes.io/name" % wname)
        psc = spec.get("securityContext", {})
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append("%s: uses host namespaces" % wname)
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append("%s: pod seccompProfile is not RuntimeDefault" % wname)
        sa_token = spec.get("automountServiceAccountToken")
        if app in API_CLIENTS:
            if not spec.get("serviceAccountName"):
                problems.append("%s: API client without its own ServiceAccount" % wname)
        elif sa_token is not False:
            problems.append("%s: automountServiceAccountToken should be false" % wname)
        for v in spec.get("volumes", []):
            if "hostPath" in v and app not in HOSTPATH_OK:
                problems.append("%s: hostPath volume %s" % (wname, v["name"]))
        long_running = w["kind"] not in ("Job", "CronJob")
        for c in k.containers(spec):
            cname = "%s[%s]" % (wname, c["name"])
            csc = c.get("securityContext", {})
            image = c.get("image", "")
            if not _image_pinned(image):
                problems.append("%s: image %r is not pinned to a tag" % (cname, image))
            if k.is_engine(c) and image != "conveyor:%s" % version:
                problems.append("%s: engine image %s is not conveyor:%s" % (cname, image, version))
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        problems.append("%s: no %s.%s" % (cname, kind, r))
            if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append("%s: runAsNonRoot is not set" % cname)
            if csc.get("runAsUser", psc.get("runAsUser")) in (0, None):
                problems.append("%s: no numeric non-root runAsUser" % cname)
            if csc.get("readOnlyRootFilesystem") is not True:
                problems.append("%s: root filesystem is writable" % cname)
            if csc.get("allowPrivilegeEscalation") is not False:
                problems.append("%s: allowPrivilegeEscalation is not false" % cname)
            if csc.get("privileged"):
                problems.append("%s: privileged" % cname)
            caps = csc.get("capabilities", {})
            if "ALL" not in (caps.get("drop") or []) or caps.get("add"):
                problems.append("%s: capabilities not dropped (drop ALL, add none)" % cname)
            seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                problems.append("%s: seccomp is not RuntimeDefault" % cname)
            for m in c.get("volumeMounts", []):
                vol = [v for v in spec.get("volumes", []) if v["name"] == m["name"]]
                if vol and "hostPath" in vol[0] and not m.get("readOnly"):
                    problems.append("%s: hostPath %s mounted writable" % (cname, m["name"]))
            if long_running:
                if not c.get("livenessProbe") or not c.get("readinessProbe"):
                    problems.append("%s: needs liveness and readiness probes" % cname)
            if k.is_engine(c):
                if _probe_path(c.get("livenessProbe")) != "/healthz":
                    problems.append("%s: liveness is not GET /healthz" % cname)
                if _probe_path(c.get("readinessProbe")) != "/readyz":
                    problems.append("%s: readiness is not GET /readyz" % cname)
                _, text = k.engine_pipeline(objs, w, c)
                env = {n: v for n, v in k.env_of(c).items() if isinstance(v, str)}
                timeout = re.search(r"^\s*shutdown_timeout:\s*(\S+)", k.expand(text, env), re.M)
                limit = k.duration_seconds(timeout.group(1)) if timeout else 10.0
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if not grace > limit:
                    problems.append("%s: terminationGracePeriodSeconds %s <= shutdown_timeout %ss"
                                    % (wname, grace, limit))
        if w["kind"] == "Job":
            for f in ("backoffLimit", "activeDeadlineSeconds"):
                if f not in w["spec"]:
                    problems.append("%s: no %s (bounded retries and time)" % (wname, f))
        # Every Deployment and StatefulSet has exactly one PDB.
        if w["kind"] in ("Deployment", "StatefulSet"):
            labels = meta.get("labels", {})
            pdbs = [p for p in k.find(objs, "PodDisruptionBudget")
                    if k.selector_matches(p["spec"].get("selector"), labels)]
            if len(pdbs) != 1:
                problems.append("%s: %d PodDisruptionBudgets select it" % (wname, len(pdbs)))
            if not k.selector_matches(w["spec"]["selector"], labels):
                problems.append("%s: selector does not match its template" % wname)
    ct.check(not problems, "workload invariants:\n  " + "\n  ".join(problems))


def test_hpa_and_references():
    objs = k.objects()
    hpa = k.one(objs, "HorizontalPodAutoscaler", "producer")
    spec = hpa["spec"]
    ct.check(spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "producer"}, "HPA target: %r" % spec["scaleTargetRef"])
    ct.check((spec.get("minReplicas"), spec["maxReplicas"]) == (1, 5), "HPA is not 1-5")
    ct.check([m["resource"]["name"] for m in spec["metrics"] if m["type"] == "Resource"] == ["cpu"],
             "HPA does not scale on CPU")
    producer = k.one(objs, "Deployment", "producer")
    ct.check("replicas" not in producer["spec"], "producer sets replicas: it fights the HPA")
    # Everything a pod references exists: ConfigMaps rendered, Services
    # selecting pods with the ports they target, Secrets in the template.
    configmaps = {o["metadata"]["name"] for o in k.find(objs, "ConfigMap")}
    secrets = _template_secrets()
    problems = []
    for w in k.workloads(objs):
        meta, pspec = k.pod_template(w)
        for v in pspec.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                problems.append("%s: ConfigMap %s missing" % (k.name_of(w), v["configMap"]["name"]))
            if "secret" in v:
                name = v["secret"]["secretName"]
                for item in v["secret"].get("items", []):
                    if item["key"] not in secrets.get(name, {}):
                        problems.append("%s: Secret %s has no key %s in secrets.yaml.template"
                                        % (k.name_of(w), name, item["key"]))
        for c in k.containers(pspec):
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["key"] not in secrets.get(ref["name"], {}):
                    problems.append("%s: Secret %s has no key %s in secrets.yaml.template"
                                    % (k.name_of(w), ref["name"], ref["key"]))
    for svc in k.find(objs, "Service"):
        pods = [w for w in k.workloads(objs)
                if all(k.pod_template(w)[0].get("labels", {}).get(a) == b
                       for a, b in svc["spec"]["selector"].items())]
        if not pods:
            problems.append("Service %s selects no pod" % svc["metadata"]["name"])
            continue
        ports = {p.get("name") for w in pods for c in k.containers(k.pod_template(w)[1])
                 for p in c.get("ports", [])}
        ports |= {p["containerPort"] for w in pods for c in k.containers(k.pod_template(w)[1])
                  for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            if p.get("targetPort", p["port"]) not in ports:
                problems.append("Service %s: targetPort %s is no container port"
                                % (svc["metadata"]["name"], p.get("targetPort")))
    for sts in k.find(objs, "StatefulSet"):
        if not k.find(objs, "Service", sts["spec"]["serviceName"]):
            problems.append("StatefulSet %s: service %s missing" % (sts["metadata"]["name"],
                                                                    sts["spec"]["serviceName"]))
    ct.check(not problems, "dangling references:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- network

def _ports_match(rule_ports, port, proto, named):
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != proto:
            continue
        want = p.get("port")
        if want is None or want == port or (isinstance(want, str) and named.get(want) == port):
            return True
        if isinstance(want, int) and p.get("endPort") and want <= port <= p["endPort"]:
            return True
    return False


def _peer_matches(peer, pod):
    """pod: {"labels": {...}, "namespace_labels": {...}} or None for an
    address outside the cluster."""
    if "ipBlock" in peer:
        return True  # an address range: assume it may cover anything
    if pod is None:
        return False
    ns_sel = peer.get("namespaceSelector")
    if ns_sel is not None:
        if not k.selector_matches(ns_sel, pod["namespace_labels"]) and ns_sel != {}:
            return False
    elif pod["namespace_labels"].get("kubernetes.io/metadata.name") != k.NAMESPACE:
        return False
    pod_sel = peer.get("podSelector")
    return pod_sel is None or pod_sel == {} or k.selector_matches(pod_sel, pod["labels"])


def _allowed(policies, direction, subject, peer, port, proto, named):
    """Whether `direction` traffic of `subject` (a pod in the namespace) with
    `peer` on port/proto is allowed by the policies selecting subject."""
    kind = "Egress" if direction == "egress" else "Ingress"
    peers_key = "to" if direction == "egress" else "from"
    selecting = [p for p in policies
                 if (p["spec"]["podSelector"] == {} or
                     k.selector_matches(p["spec"]["podSelector"], subject["labels"]))
                 and kind in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True
    for p in selecting:
        for rule in p["spec"].get(direction, []) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(x, peer) for x in peers):
                continue
            if _ports_match(rule.get("ports"), port, proto, named):
                return True
    return False


def test_network_policies():
    objs = k.objects()
    policies = k.find(objs, "NetworkPolicy")
    ns_labels = {"kubernetes.io/metadata.name": k.NAMESPACE}
    pods = {}
    for w in k.workloads(objs):
        meta, spec = k.pod_template(w)
        named = {p["name"]: p["containerPort"] for c in k.containers(spec)
                 for p in c.get("ports", []) if "name" in p}
        ports = sorted({p["containerPort"] for c in k.containers(spec) for p in c.get("ports", [])})
        pods[app_of(w)] = {"labels": meta.get("labels", {}), "namespace_labels": ns_labels,
                           "ports": ports, "named": named}
    problems = []
    # Every pod is selected by a policy of its own (beyond the default deny).
    for app, pod in pods.items():
        own = [p for p in policies if p["spec"]["podSelector"] != {}
               and k.selector_matches(p["spec"]["podSelector"], pod["labels"])]
        if not own:
            problems.append("no NetworkPolicy selects %s pods" % app)
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {}
                    and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
                    and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    if not default_deny:
        problems.append("no default-deny policy (ingress and egress) for the namespace")
    # The flow matrix inside the namespace.
    for src_app, src in pods.items():
        for dst_app, dst in pods.items():
            for port in dst["ports"]:
                ok = (_allowed(policies, "egress", src, dst, port, "TCP", dst["named"]) and
                      _allowed(policies, "ingress", dst, src, port, "TCP", dst["named"]))
                want = (src_app, dst_app, port) in EXPECTED_FLOWS
                if ok != want:
                    problems.append("%s -> %s:%d is %s" % (src_app, dst_app, port,
                                                          "allowed" if ok else "denied"))
    missing = {f for f in EXPECTED_FLOWS if f[2] not in pods.get(f[1], {}).get("ports", [])}
    if missing:
        problems.append("expected flows to ports no pod opens: %s" % sorted(missing))
    # DNS for everyone; the API server (outside) only for discovery; nothing
    # else leaves the namespace.
    dns = {"labels": {"k8s-app": "kube-dns"},
           "namespace_labels": {"kubernetes.io/metadata.name": "kube-system"}}
    for app, pod in pods.items():
        if not _allowed(policies, "egress", pod, dns, 53, "UDP", {}):
            problems.append("%s cannot resolve names (DNS egress denied)" % app)
        api = _allowed(policies, "egress", pod, None, 443, "TCP", {})
        if api != (app in API_CLIENTS):
            problems.append("%s: egress to the API server is %s" % (app, "allowed" if api else "denied"))
        for port in (80, 8080, 9092):
            if _allowed(policies, "egress", pod, None, port, "TCP", {}):
                problems.append("%s may reach outside addresses on %d" % (app, port))
        outsider = {"labels": {"app": "anything"},
                    "namespace_labels": {"kubernetes.io/metadata.name": "default"}}
        for port in pod["ports"]:
            if _allowed(policies, "ingress", pod, outsider, port, "TCP", pod["named"]):
                problems.append("%s:%d is open to other namespaces" % (app, port))
    ct.check(not problems, "network policies:\n  " + "\n  ".join(problems))


# ------------------------------------------------------------ prometheus

def test_prometheus_scrapes_engine_port():
    objs = k.objects()
    data = k.configmap_data(objs, "prometheus-config")
    config = k.yaml_text(data["prometheus.yml"], "prometheus.yml")[0]
    jobs = [j for j in config["scrape_configs"] if j.get("kubernetes_sd_configs")]
    ct.check(len(jobs) == 1, "one pod-discovery job expected, got %d" % len(jobs))
    job = jobs[0]
    sd = job["kubernetes_sd_configs"][0]
    ct.check(sd["role"] == "pod", "discovery role is %s, not pod" % sd["role"])
    ct.check(sd.get("namespaces", {}).get("names") == [k.NAMESPACE],
             "discovery is not limited to the namespace (the Role only covers it)")
    relabel = job["relabel_configs"]
    keep = [r for r in relabel if r.get("action") == "keep" and
            r["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]]
    ct.check(keep and keep[0]["regex"] == "true", "annotated pods are not selected")
    addr = [r for r in relabel if r.get("target_label") == "__address__"]
    ct.check(addr and "__meta_kubernetes_pod_annotation_prometheus_io_port" in addr[0]["source_labels"],
             "the target port is not taken from prometheus.io/port")
    # Apply the address rewrite as Prometheus would, then compare with the
    # port each engine listens on (its pipeline's engine.http.listen).
    regex = re.compile("^(?:%s)$" % addr[0]["regex"])
    replacement = re.sub(r"\$(\d+)", r"\\\1", addr[0]["replacement"])
    engines = 0
    for w in k.workloads(objs):
        meta, spec = k.pod_template(w)
        for c in k.containers(spec):
            if not k.is_engine(c):
                continue
            engines += 1
            ann = meta.get("annotations", {})
            ct.check(ann.get("prometheus.io/scrape") == "true", "%s not annotated for scraping" %
                     k.name_of(w))
            _, text = k.engine_pipeline(objs, w, c)
            env = {n: v for n, v in k.env_of(c).items() if isinstance(v, str)}
            listen = re.search(r"listen:\s*\"?([^\"}\s]+)", k.expand(text, env))
            ct.check(listen, "%s: pipeline has no engine.http.listen" % k.name_of(w))
            port = int(listen.group(1).rsplit(":", 1)[1])
            container_ports = [p["containerPort"] for p in c.get("ports", [])]
            ct.check(port in container_ports, "%s listens on %d, declares %s" %
                     (k.name_of(w), port, container_ports))
            joined = "%s;%s" % ("10.1.2.3:%d" % container_ports[0], ann.get("prometheus.io/port"))
            target = regex.sub(replacement, joined)
            ct.check(target == "10.1.2.3:%d" % port,
                     "%s: Prometheus would scrape %s, the engine listens on %d" %
                     (k.name_of(w), target, port))
            ct.check(ann.get("prometheus.io/path", "/metrics") == "/metrics",
                     "%s: metrics path" % k.name_of(w))
    ct.check(engines == 2, "expected the producer and processor engines, found %d" % engines)
    # promtool checks the rules and the config (Debian's Prometheus has no
    # Kubernetes discovery compiled in: the check runs on a copy whose
    # kubernetes_sd_configs become static targets; everything else as is).
    promtool = shutil.which("promtool")
    ct.check(promtool, "promtool not found (Debian package prometheus)")
    wd = k.workdir("promtool")
    with open(os.path.join(wd, "alerts.yml"), "w") as f:
        f.write(data["alerts.yml"])
    rc, out, err = k.run([promtool, "check", "rules", os.path.join(wd, "alerts.yml")])
    ct.check(rc == 0, "promtool check rules:\n%s%s" % (out, err))
    for j in config["scrape_configs"]:
        if j.pop("kubernetes_sd_configs", None) is not None:
            j["static_configs"] = [{"targets": ["127.0.0.1:8000"]}]
    config["rule_files"] = [os.path.join(wd, "alerts.yml")]
    with open(os.path.join(wd, "prometheus.yml"), "w") as f:
        json.dump(config, f)  # JSON is YAML
    rc, out, err = k.run([promtool, "check", "config", os.path.join(wd, "prometheus.yml")])
    ct.check(rc == 0, "promtool check config:\n%s%s" % (out, err))


# ------------------------------------------------------------- pipelines

def _configmap_file_data(path):
    docs = k.yaml_docs(path)
    ct.check(len(docs) == 1 and docs[0]["kind"] == "ConfigMap", "%s: not one ConfigMap" % path)
    return docs[0]["data"]


def test_pipelines_in_sync():
    """The ConfigMap conveyor-pipelines (k8s/base/conveyor/pipelines.yaml,
    written by k8s/scripts/sync-pipelines.sh) holds pipelines/producer.yaml
    and pipelines/processor.yaml byte for byte, rendered and as the script
    would write it; the script finds and repairs drift."""
    want = {}
    for name in ("producer.yaml", "processor.yaml"):
        with open(os.path.join(k.SOURCE_DIR, "pipelines", name)) as f:
            want[name] = f.read()
    rendered = k.one(k.objects(), "ConfigMap", PIPELINES_CONFIGMAP).get("data", {})
    ct.check(rendered == want, "ConfigMap %s differs from pipelines/{producer,processor}.yaml: "
             "run k8s/scripts/sync-pipelines.sh" % PIPELINES_CONFIGMAP)
    script = os.path.join(k.K8S, "scripts", "sync-pipelines.sh")
    rc, out, err = k.run([script, "--check"])
    ct.check(rc == 0, "sync-pipelines.sh --check: %s%s" % (out, err))

    # The script on a copy of the tree: drift is reported, then repaired.
    wd = k.workdir("sync-pipelines")
    os.makedirs(os.path.join(wd, "k8s", "scripts"))
    os.makedirs(os.path.join(wd, "k8s", "base", "conveyor"))
    shutil.copy(script, os.path.join(wd, "k8s", "scripts"))
    shutil.copytree(os.path.join(k.SOURCE_DIR, "pipelines"), os.path.join(wd, "pipelines"))
    out_file = os.path.join(wd, "k8s", "base", "conveyor", "pipelines.yaml")
    shutil.copy(os.path.join(k.K8S, "base", "conveyor", "pipelines.yaml"), out_file)
    copy_script = os.path.join(wd, "k8s", "scripts", "sync-pipelines.sh")
    changed = want["processor.yaml"] + "# a change\n\n#   indented: comment \t\n"
    ct.write_file(os.path.join(wd, "pipelines", "processor.yaml"), changed)
    rc, _, err = k.run([copy_script, "--check"])
    ct.check(rc == 1 and "differs" in err, "drift not reported: rc %d %s" % (rc, err))
    ct.check(_configmap_file_data(out_file)["processor.yaml"] == want["processor.yaml"],
             "--check wrote the ConfigMap")
    rc, out, err = k.run([copy_script])
    ct.check(rc == 0 and "updated" in out, "sync-pipelines.sh: rc %d %s%s" % (rc, out, err))
    ct.check(_configmap_file_data(out_file) == {"producer.yaml": want["producer.yaml"],
                                                "processor.yaml": changed},
             "the written ConfigMap does not hold the pipelines byte for byte")
    rc, out, err = k.run([copy_script, "--check"])
    ct.check(rc == 0, "drift left after a sync: %s%s" % (out, err))
    # What a literal block scalar cannot hold as it is is refused.
    for bad, what in ((want["processor.yaml"].rstrip("\n"), "end with a newline"),
                      (want["processor.yaml"] + "\n", "empty line"),
                      ("  indented: first\n", "indented"),
                      (want["processor.yaml"].replace("\n", "\r\n"), "carriage return")):
        ct.write_file(os.path.join(wd, "pipelines", "processor.yaml"), bad)
        rc, _, err = k.run([copy_script])
        ct.check(rc == 1 and what in err, "%r not refused: rc %d %s" % (what, rc, err))


def _hot_reload_problems(objs):
    """What keeps a pipeline change from reaching the running engines without
    a restart: conveyor-pipelines must keep its name (a content hash rolls the
    pods, and --watch never sees a change), every engine must run
    `conveyor run SPEC --watch` with SPEC on a directory mount of that
    ConfigMap (a subPath mount pins the file: the kubelet's ..data symlink
    swap never reaches it). The other generated ConfigMaps keep their hash."""
    problems = []
    names = {o["metadata"]["name"] for o in k.find(objs, "ConfigMap")}
    if PIPELINES_CONFIGMAP not in names:
        problems.append("no ConfigMap named %s (a content hash in its name rolls the engines on "
                        "every pipeline change): %s" % (PIPELINES_CONFIGMAP, sorted(names)))
    for base in GENERATED:
        if not any(re.fullmatch(re.escape(base) + r"-[a-z0-9]{10}", n) for n in names):
            problems.append("ConfigMap %s has lost its content hash: a change would not roll "
                            "the pods that read it at start" % base)
    engines = set()
    for w in k.workloads(objs):
        _, spec = k.pod_template(w)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in k.containers(spec):
            if not k.is_engine(c):
                continue
            engines.add(k.name_of(w))
            where = "%s container %s" % (k.name_of(w), c["name"])
            args = c.get("args", [])
            if len(args) < 2 or args[0] != "run" or "--watch" not in args[2:]:
                problems.append("%s: args %r, not ['run', SPEC, '--watch']" % (where, args))
                continue
            path = args[1]
            mounts = [m for m in c.get("volumeMounts", [])
                      if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
            if not mounts:
                problems.append("%s: %s is on no volume mount" % (where, path))
                continue
            m = max(mounts, key=lambda m: len(m["mountPath"]))
            if m.get("subPath") or m.get("subPathExpr") or path == m["mountPath"]:
                problems.append("%s: %s is mounted with subPath (a file mount never sees a "
                                "ConfigMap update); mount the directory" % (where, path))
                continue
            cm = volumes.get(m["name"], {}).get("configMap", {})
            if cm.get("name") != PIPELINES_CONFIGMAP:
                problems.append("%s: %s comes from volume %s, not from ConfigMap %s" %
                                (where, path, m["name"], PIPELINES_CONFIGMAP))
                continue
            key = path[len(m["mountPath"].rstrip("/")) + 1:]
            items = [i["path"] for i in cm.get("items", [])]
            data = k.find(objs, "ConfigMap", PIPELINES_CONFIGMAP)
            if (items and key not in items) or (not items and data and
                                                key not in data[0].get("data", {})):
                problems.append("%s: ConfigMap %s puts no file %s in %s" %
                                (where, PIPELINES_CONFIGMAP, key, m["mountPath"]))
    if not {"Deployment/producer", "Deployment/processor"} <= engines:
        problems.append("engine Deployments producer and processor not both found: %s" %
                        sorted(engines))
    return problems


def test_pipelines_hot_reload():
    objs = k.objects()
    problems = _hot_reload_problems(objs)
    ct.check(not problems, "pipeline changes would not reach the engines by --watch:\n  " +
             "\n  ".join(problems))

    # The check fails on each way to get it wrong.
    def broken(change):
        objs2 = copy.deepcopy(objs)
        change(objs2)
        return _hot_reload_problems(objs2)

    def engine(objs2, app):
        return k.one(objs2, "Deployment", app)["spec"]["template"]["spec"]["containers"][0]

    def no_watch(objs2):
        engine(objs2, "producer")["args"].remove("--watch")

    def sub_path(objs2):
        c = engine(objs2, "processor")
        m = [m for m in c["volumeMounts"] if m["name"] == "pipelines"][0]
        m["mountPath"], m["subPath"] = c["args"][1], os.path.basename(c["args"][1])

    def hashed(objs2):
        k.one(objs2, "ConfigMap", PIPELINES_CONFIGMAP)["metadata"]["name"] += "-h75c659bdh"
        for app in ("producer", "processor"):
            tpl = k.one(objs2, "Deployment", app)["spec"]["template"]["spec"]
            for v in tpl["volumes"]:
                if v.get("configMap", {}).get("name") == PIPELINES_CONFIGMAP:
                    v["configMap"]["name"] += "-h75c659bdh"

    def unhashed(objs2):
        for o in k.find(objs2, "ConfigMap"):
            o["metadata"]["name"] = re.sub(r"^(kafka-config)-[a-z0-9]{10}$", r"\1",
                                           o["metadata"]["name"])

    for change, what in ((no_watch, "--watch"), (sub_path, "subPath"),
                         (hashed, "no ConfigMap named"), (unhashed, "lost its content hash")):
        found = broken(change)
        ct.check(any(what in p for p in found),
                 "%s went unnoticed: %s" % (change.__name__, found))


def _mounted(spec, container, path):
    for m in container.get("volumeMounts", []):
        if path.startswith(m["mountPath"].rstrip("/") + "/"):
            return True
    return False


def test_pipeline_env_provided():
    """Every ${VAR} without a default in an engine's pipeline is set in its
    container, and every file the pipeline names is on a mounted volume."""
    objs = k.objects()
    problems = []
    for w in k.workloads(objs):
        _, spec = k.pod_template(w)
        for c in k.containers(spec):
            if not k.is_engine(c):
                continue
            key, text = k.engine_pipeline(objs, w, c)
            env = k.env_of(c)
            for var, default in k.spec_vars(text):
                if default is None and var not in env:
                    problems.append("%s: %s uses ${%s}, not set in the container" %
                                    (k.name_of(w), key, var))
            strenv = {n: v for n, v in env.items() if isinstance(v, str)}
            for m in re.finditer(r"(\w+_file|ca_file|path):\s*\"?([^\"\s,}]+)", k.expand(text, strenv)):
                if m.group(2).startswith("/") and not _mounted(spec, c, m.group(2)):
                    problems.append("%s: %s %s is on no mounted volume" %
                                    (k.name_of(w), m.group(1), m.group(2)))
            if re.search(r"insecure_skip_verify:\s*(true|yes|on)", text):
                problems.append("%s: %s skips TLS verification" % (k.name_of(w), key))
    ct.check(not problems, "pipeline environment:\n  " + "\n  ".join(problems))


def test_engine_validates_pipelines():
    """`conveyor validate` accepts the pipelines with the containers' env
    (plugin names, options, types and ranges against the real plugins)."""
    ct.check(os.path.exists(ct.BIN), "conveyor binary %s not built" % ct.BIN)
    objs = k.objects()
    wd = k.workdir("validate")
    for w in k.workloads(objs):
        _, spec = k.pod_template(w)
        for c in k.containers(spec):
            if not k.is_engine(c):
                continue
            key, text = k.engine_pipeline(objs, w, c)
            env = {"CONVEYOR_PLUGIN_PATH": ct.PLUGIN_DIR}
            for n, v in k.env_of(c).items():
                env[n] = v if isinstance(v, str) else "from-secret"
            # Files from Secrets do not exist here: point at stand-ins.
            for n, v in list(env.items()):
                if n.endswith("_FILE") or n.endswith("_CA_FILE"):
                    env[n] = ct.write_file(os.path.join(wd, n.lower()), "stand-in\n")
            path = ct.write_file(os.path.join(wd, key), text)
            rc, out, err = k.run([ct.BIN, "validate", path], env=env, timeout=60)
            ct.check(rc == 0, "conveyor validate %s (%s) failed (%d):\n%s%s" %
                     (key, k.name_of(w), rc, out, err))


# --------------------------------------------------------- secrets, TLS

def _template_secrets():
    docs = k.yaml_docs(os.path.join(k.K8S, "secrets.yaml.template"))
    return {d["metadata"]["name"]: d.get("stringData", {}) | d.get("data", {}) for d in docs}


def _influxdb_hosts(objs):
    """Every host name the manifests use to reach InfluxDB."""
    hosts = set()
    text = k.render()
    for m in re.finditer(r"https?://([a-z0-9.-]*influxdb[a-z0-9.-]*):8086", text):
        hosts.add(m.group(1))
    return hosts


# What make-secrets.sh and generate-influxdb-certs.sh write into the tree.
PRIVATE_FILES = ("k8s/secrets.yaml", "k8s/tls/ca.pem", "k8s/tls/ca.key", "k8s/tls/influxdb.pem",
                 "k8s/tls/influxdb.key")


def _check_private_files_ignored():
    """Secrets and keys written into the tree are git-ignored. Read from the
    .gitignore files, so that this holds in a release tarball too (no .git,
    maybe no git); in a checkout with git, git check-ignore must agree."""
    ct.check(os.path.exists(os.path.join(k.SOURCE_DIR, ".gitignore")),
             "no .gitignore in %s: secrets written there would be committable" % k.SOURCE_DIR)
    for rel in PRIVATE_FILES:
        ct.check(k.gitignored(rel)[0], "%s is not git-ignored (.gitignore)" % rel)
    for rel in ("k8s/secrets.yaml.template", "k8s/tls/generate-influxdb-certs.sh"):
        ct.check(not k.gitignored(rel)[0], "%s is git-ignored, but it belongs in the tree" % rel)
    git = shutil.which("git")
    if not git or not os.path.exists(os.path.join(k.SOURCE_DIR, ".git")):
        print("note: no git checkout here (%s): checked the .gitignore patterns only" %
              ("no .git" if git else "no git"), flush=True)
        return
    for rel in PRIVATE_FILES + ("k8s/secrets.yaml.template",):
        r = subprocess.run([git, "-C", k.SOURCE_DIR, "check-ignore", "-q", "--no-index", rel])
        ct.check(r.returncode in (0, 1), "git check-ignore %s failed (%d)" % (rel, r.returncode))
        ct.check((r.returncode == 0) == k.gitignored(rel)[0],
                 "git and the .gitignore reading disagree on %s" % rel)


def test_secrets_and_certificates():
    template = k.yaml_docs(os.path.join(k.K8S, "secrets.yaml.template"))
    wd = k.workdir("secrets")
    with open(os.path.join(wd, "template.json"), "w") as f:
        json.dump([{"doc": d} for d in template], f)
    rc, _, err = k.node_tool("validate", os.path.join(wd, "template.json"))
    ct.check(rc == 0, "secrets.yaml.template does not validate:\n%s" % err)
    _check_private_files_ignored()
    # make-secrets.sh writes the same Secrets, keys and types, no placeholder.
    tls = os.path.join(wd, "tls")
    out = os.path.join(wd, "secrets.yaml")
    rc, so, se = k.run([os.path.join(k.K8S, "scripts", "make-secrets.sh"), "--out", out,
                        "--tls-dir", tls], timeout=60)
    ct.check(rc == 0, "make-secrets.sh failed:\n%s%s" % (so, se))
    ct.check(oct(os.stat(out).st_mode & 0o777) == "0o600", "secrets.yaml is not private (0600)")
    made = k.yaml_docs(out)
    shape = lambda docs: sorted((d["metadata"]["name"], d.get("type"), sorted(d["stringData"]))
                                for d in docs)
    ct.check(shape(made) == shape(template), "make-secrets.sh output %s != template %s" %
             (shape(made), shape(template)))
    with open(out) as f:
        body = f.read()
    ct.check("CHANGE_ME" not in body and "REPLACE" not in body, "placeholders left in secrets")
    rc, _, _ = k.run([os.path.join(k.K8S, "scripts", "make-secrets.sh"), "--out", out,
                      "--tls-dir", tls], timeout=60)
    ct.check(rc != 0, "make-secrets.sh overwrote existing secrets without --force")
    # The certificate names every host the manifests reach InfluxDB by, and
    # verifies against the CA (as libcurl in the processor and Grafana will).
    hosts = _influxdb_hosts(k.objects())
    ct.check(hosts, "no InfluxDB URL found in the manifests")
    for host in sorted(hosts) + ["localhost"]:
        rc, so, se = k.run(["openssl", "verify", "-CAfile", os.path.join(tls, "ca.pem"),
                            "-verify_hostname", host, os.path.join(tls, "influxdb.pem")])
        ct.check(rc == 0, "certificate does not verify for %s: %s%s" % (host, so, se))
    rc, so, se = k.run(["openssl", "verify", "-CAfile", os.path.join(tls, "ca.pem"),
                        "-verify_hostname", "kafka.conveyor-pipeline.svc",
                        os.path.join(tls, "influxdb.pem")])
    ct.check(rc != 0, "certificate verifies for a name it must not hold")
    # Re-running renews the server certificate under the same CA.
    with open(os.path.join(tls, "ca.pem")) as f:
        ca = f.read()
    rc, so, se = k.run([os.path.join(k.K8S, "tls", "generate-influxdb-certs.sh"), tls])
    ct.check(rc == 0, "generate-influxdb-certs.sh re-run failed: %s" % se)
    with open(os.path.join(tls, "ca.pem")) as f:
        ct.check(f.read() == ca, "a re-run replaced the CA (clients would stop trusting it)")


if __name__ == "__main__":
    ct.main([test_renders, test_schema_validates, test_no_unknown_fields,
             test_workload_invariants, test_hpa_and_references, test_network_policies,
             test_prometheus_scrapes_engine_port, test_pipelines_in_sync,
             test_pipelines_hot_reload,
             test_pipeline_env_provided, test_engine_validates_pipelines,
             test_secrets_and_certificates])
