"""k8s/overlays/prometheus-operator: renders (kustomize v4+), its PodMonitor
and PrometheusRule validate against the operator's CRD schemas (vendored,
trimmed, in schemas/: no CRD models on npm), everything else against
kubernetes-models, and both are equivalent to the base's Prometheus setup:

- the PodMonitor selects exactly the pods the base scrapes (annotation
  prometheus.io/scrape), on the port and path their annotations name, in the
  same namespace, at the same interval and timeout, and its relabelings give
  the same target labels (job conveyor-engines, namespace, pod, app, node);
  promtool accepts them as a scrape job;
- the PrometheusRule's groups are alerts.yml's groups, and promtool accepts
  them as a rule file;
- the added NetworkPolicy lets the operator's Prometheus (namespace
  monitoring) reach the engines' port 8000 and nothing else.
"""

import copy
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402

OVERLAY = os.path.join(k.K8S, "overlays", "prometheus-operator")
SCHEMAS = os.path.join(k.HERE, "schemas")
CRD_KINDS = {("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-v1.json",
             ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-v1.json"}


# ------------------------------------------------- structural schema check

def schema_errors(value, schema, path="$"):
    """Errors of `value` against a structural OpenAPI v3 schema (the subset
    CRDs use). Unknown fields are errors, as with kubectl's strict field
    validation."""
    errs = []
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            errs.append("%s: %r is neither integer nor string" % (path, value))
        return errs
    if "anyOf" in schema:
        if all(schema_errors(value, s, path) for s in schema["anyOf"]):
            errs.append("%s: %r matches none of anyOf" % (path, value))
        return errs
    t = schema.get("type")
    ok = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
          "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
          "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    if t and not ok[t](value):
        return ["%s: %r is not %s" % (path, value, t)]
    if "enum" in schema and value not in schema["enum"]:
        errs.append("%s: %r not in %s" % (path, value, schema["enum"]))
    if t == "string":
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append("%s: %r does not match %s" % (path, value, schema["pattern"]))
        if len(value) < schema.get("minLength", 0):
            errs.append("%s: %r shorter than %d" % (path, value, schema["minLength"]))
    if t in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"] or \
                "maximum" in schema and value > schema["maximum"]:
            errs.append("%s: %r out of range" % (path, value))
    if t == "array":
        for i, item in enumerate(value):
            errs += schema_errors(item, schema.get("items", {}), "%s[%d]" % (path, i))
        keys = schema.get("x-kubernetes-list-map-keys")
        if keys:
            seen = [tuple(item.get(key) for key in keys) for item in value]
            if len(seen) != len(set(seen)):
                errs.append("%s: duplicate list keys %s" % (path, keys))
    if t == "object":
        for req in schema.get("required", []):
            if req not in value:
                errs.append("%s: missing required %s" % (path, req))
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, v in value.items():
            if props is not None and key in props:
                errs += schema_errors(v, props[key], "%s.%s" % (path, key))
            elif isinstance(extra, dict):
                errs += schema_errors(v, extra, "%s.%s" % (path, key))
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errs.append("%s: unknown field %s" % (path, key))
    return errs


def crd_errors(obj):
    name = CRD_KINDS[(obj["apiVersion"], obj["kind"])]
    with open(os.path.join(SCHEMAS, name)) as f:
        return schema_errors(obj, json.load(f))


# ---------------------------------------------------------------- objects

_objs = []


def objects():
    if not _objs:
        rc, out, err = k.run([k.kubectl(), "kustomize", OVERLAY], timeout=120)
        ct.check(rc == 0, "kubectl kustomize %s failed:\n%s" % (OVERLAY, err))
        ct.check("deprecated" not in err, "deprecated kustomize fields:\n%s" % err)
        path = os.path.join(k.workdir("promop"), "rendered.yaml")
        with open(path, "w") as f:
            f.write(out)
        _objs.extend(k.yaml_docs(path))
    return _objs


def test_schema_checker():
    schema = {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "string", "pattern": "^x+$"}, "n": {"type": "integer", "minimum": 1},
        "m": {"type": "object", "additionalProperties": {"type": "string"}},
        "l": {"type": "array", "items": {"type": "string", "enum": ["p", "q"]}},
        "i": {"x-kubernetes-int-or-string": True}}}
    ct.check(not schema_errors({"a": "xx", "n": 2, "m": {"k": "v"}, "l": ["p"], "i": 3}, schema), "valid")
    for bad in ({"n": 1}, {"a": "y"}, {"a": "x", "n": 0}, {"a": "x", "m": {"k": 1}},
                {"a": "x", "l": ["r"]}, {"a": "x", "zz": 1}, {"a": "x", "i": 1.5}, {"a": "x", "n": True}):
        ct.check(schema_errors(bad, schema), "passed %r" % bad)


def test_crds_validate():
    objs = objects()
    crs = [o for o in objs if (o["apiVersion"], o["kind"]) in CRD_KINDS]
    ct.check(sorted(o["kind"] for o in crs) == ["PodMonitor", "PrometheusRule"], "CRs: %s" %
             [k.name_of(o) for o in crs])
    for o in crs:
        errs = crd_errors(o)
        ct.check(not errs, "%s against its CRD schema:\n  %s" % (k.name_of(o), "\n  ".join(errs)))
        ct.check(o["metadata"].get("namespace") == k.NAMESPACE, "%s not in %s" % (k.name_of(o), k.NAMESPACE))
    # The rest against kubernetes-models.
    rest = [o for o in objs if (o["apiVersion"], o["kind"]) not in CRD_KINDS]
    path = os.path.join(k.workdir("promop-schema"), "objects.json")
    with open(path, "w") as f:
        json.dump([{"doc": o} for o in rest], f)
    rc, out, err = k.node_tool("validate", path)
    ct.check(rc == 0, "kubernetes-models validation failed:\n%s" % err)
    # Negative controls: misspelt and wrong values fail.
    pm = copy.deepcopy(k.one(objs, "PodMonitor", "conveyor-engines"))
    pm["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    pm["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "replce"
    pm["spec"]["podMetricsEndpoints"][0]["scrapeTimeout"] = "10 seconds"
    errs = " ".join(crd_errors(pm))
    for word in ("intervall", "replce", "10 seconds"):
        ct.check(word in errs, "the schema check missed %s: %s" % (word, errs))
    pr = copy.deepcopy(k.one(objs, "PrometheusRule", "conveyor"))
    pr["spec"]["groups"][0]["rules"][0]["for"] = "two minutes"
    del pr["spec"]["groups"][0]["rules"][1]["expr"]
    errs = " ".join(crd_errors(pr))
    ct.check("two minutes" in errs and "missing required expr" in errs, "rule errors missed: %s" % errs)


def _base_scrape():
    data = k.configmap_data(objects(), "prometheus-config")
    config = k.yaml_text(data["prometheus.yml"], "prometheus.yml")[0]
    job = [j for j in config["scrape_configs"] if j.get("kubernetes_sd_configs")][0]
    return config, job, data["alerts.yml"]


def test_podmonitor_equals_base_job():
    objs = objects()
    config, job, _ = _base_scrape()
    pm = k.one(objs, "PodMonitor", "conveyor-engines")["spec"]
    ep = pm["podMetricsEndpoints"]
    ct.check(len(ep) == 1, "one endpoint expected")
    ep = ep[0]
    ct.check(pm["namespaceSelector"]["matchNames"] == job["kubernetes_sd_configs"][0]["namespaces"]["names"],
             "namespaces differ")
    ct.check(ep.get("interval", config["global"]["scrape_interval"]) == config["global"]["scrape_interval"] and
             ep.get("scrapeTimeout") == config["global"]["scrape_timeout"], "interval/timeout differ")
    annotated, selected = set(), set()
    for w in k.workloads(objs):
        meta, spec = k.pod_template(w)
        ann = meta.get("annotations", {})
        if ann.get("prometheus.io/scrape") == "true":
            annotated.add(k.name_of(w))
        if meta.get("namespace", k.NAMESPACE) in pm["namespaceSelector"]["matchNames"] and \
                k.selector_matches(pm["selector"], meta.get("labels", {})):
            selected.add(k.name_of(w))
            ports = {p.get("name"): p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}
            ct.check(str(ports.get(ep["port"])) == ann.get("prometheus.io/port"),
                     "%s: port %s is %s, annotation says %s" % (k.name_of(w), ep["port"], ports.get(ep["port"]),
                                                                ann.get("prometheus.io/port")))
            ct.check(ep.get("path", "/metrics") == ann.get("prometheus.io/path", "/metrics"), "path differs")
    ct.check(annotated and selected == annotated, "PodMonitor selects %s, the base scrapes %s" %
             (sorted(selected), sorted(annotated)))
    # Same target labels from the same sources.
    def pairs(rules, src_key, tgt_key):
        return {(tuple(r.get(src_key) or ()), r.get(tgt_key), r.get("replacement", "$1"))
                for r in rules if r.get("action", "replace").lower() == "replace"
                and r.get(tgt_key) and not r[tgt_key].startswith("__")}
    base = pairs(job["relabel_configs"], "source_labels", "target_label") | {((), "job", job["job_name"])}
    mine = pairs(ep["relabelings"], "sourceLabels", "targetLabel")
    ct.check(mine == base, "target labels differ:\n  PodMonitor %s\n  base       %s" % (sorted(mine), sorted(base)))
    # promtool accepts the relabelings as Prometheus would get them.
    snake = lambda r: {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key): v for key, v in r.items()}
    test_job = {"job_name": "podmonitor", "static_configs": [{"targets": ["127.0.0.1:8000"]}],
                "metrics_path": ep.get("path", "/metrics"), "scrape_interval": ep["interval"],
                "scrape_timeout": ep["scrapeTimeout"], "relabel_configs": [snake(r) for r in ep["relabelings"]]}
    path = ct.write_file(os.path.join(k.workdir("promop-promtool"), "prometheus.yml"),
                         json.dumps({"scrape_configs": [test_job]}))
    rc, out, err = k.run(["promtool", "check", "config", path])
    ct.check(rc == 0, "promtool check config on the PodMonitor's job:\n%s%s" % (out, err))


def test_rules_equal_alerts_yml():
    _, _, alerts = _base_scrape()
    base = k.yaml_text(alerts, "alerts.yml")[0]["groups"]
    rule = k.one(objects(), "PrometheusRule", "conveyor")["spec"]["groups"]
    ct.check(rule == base, "PrometheusRule groups differ from alerts.yml:\n%s\n%s" %
             (json.dumps(rule, indent=1)[:3000], json.dumps(base, indent=1)[:3000]))
    path = ct.write_file(os.path.join(k.workdir("promop-rules"), "rules.yml"), json.dumps({"groups": rule}))
    rc, out, err = k.run(["promtool", "check", "rules", path])
    ct.check(rc == 0 and "SUCCESS" in out, "promtool check rules on the PrometheusRule:\n%s%s" % (out, err))


def test_operator_prometheus_may_scrape_only_engines():
    import test_manifests as tm
    objs = objects()
    policies = k.find(objs, "NetworkPolicy")
    operator = {"labels": {"app.kubernetes.io/name": "prometheus"},
                "namespace_labels": {"kubernetes.io/metadata.name": "monitoring"}}
    stranger = {"labels": {"app.kubernetes.io/name": "prometheus"},
                "namespace_labels": {"kubernetes.io/metadata.name": "default"}}
    ns = {"kubernetes.io/metadata.name": k.NAMESPACE}
    for w in k.workloads(objs):
        meta, spec = k.pod_template(w)
        named = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", []) if "name" in p}
        pod = {"labels": meta.get("labels", {}), "namespace_labels": ns}
        for c in spec["containers"]:
            for p in c.get("ports", []):
                allowed = tm._allowed(policies, "ingress", pod, operator, p["containerPort"], "TCP", named)
                want = k.is_engine(c) and p["containerPort"] == 8000
                ct.check(allowed == want, "operator Prometheus -> %s:%d is %s" %
                         (k.name_of(w), p["containerPort"], "allowed" if allowed else "denied"))
                ct.check(not tm._allowed(policies, "ingress", pod, stranger, p["containerPort"], "TCP", named),
                         "%s:%d is open to another namespace" % (k.name_of(w), p["containerPort"]))


if __name__ == "__main__":
    k.skip_without_kustomize_v4("k8s/overlays/prometheus-operator")
    ct.main([test_schema_checker, test_crds_validate, test_podmonitor_equals_base_job,
             test_rules_equal_alerts_yml, test_operator_prometheus_may_scrape_only_engines])
