"""Every query of the provisioned dashboards (and every alert rule) run on
real data, the way Grafana runs them:

- the system runs here as in the cluster: the real producer and processor
  pipelines from the kustomize ConfigMap with their Deployments' env, Kafka
  (librdkafka's mock cluster), InfluxDB with the manifests' influxdb.conf,
  TLS and users set up by the influxdb-init script; the processor writes
  over HTTPS with the writer account;
- Prometheus runs the manifests' prometheus.yml: its pod-discovery job gets
  static targets carrying the __meta_kubernetes_* labels Kubernetes would
  attach (so the relabelling that makes the app/pod/namespace labels runs
  for real), and the alert rules are loaded;
- template variables are filled in as Grafana does: $pipeline and $line_id
  from their own variable queries, multi-value/All as (a|b) regexes,
  $__interval, $__rate_interval (from the datasource's timeInterval rule),
  $timeFilter as Grafana's InfluxDB time range;
- each InfluxQL query runs with the reader account (Grafana's) over verified
  TLS; each PromQL query as a range query. Each must answer without error
  and return data (a non-null value); the alert rules must evaluate (health
  ok). The headline panels must select exactly one role's series each (no
  double counting of the producer's and the processor's deliveries).

Loki's log panel is not run (no Loki here): its query type-checks in
test_dashboards.
"""

import json
import os
import re
import signal
import shutil
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402
import test_dashboards as td  # noqa: E402
from test_influxdb_setup import Influx  # noqa: E402

TOPIC = "conveyor-speed"
SCRAPE = 1  # seconds, here (the cluster's is 15 s)
RATE = 200  # records/s of the producer here
QUERY_TIMEOUT = 180  # seconds until every query has data


def grafana_regex_escape(v):
    """Grafana's escape of a variable value inside a regex."""
    return re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", v)


def multi_value(values):
    """A multi-value / All variable in a regex, as Grafana writes it."""
    return "(" + "|".join(grafana_regex_escape(v) for v in values) + ")"


def rate_interval(interval_s, scrape_s):
    """Grafana's $__rate_interval: max($__interval + scrape, 4 * scrape)."""
    return max(interval_s + scrape_s, 4 * scrape_s)


def substitute(query, values):
    """Replaces $name and ${name} (longest names first)."""
    for name in sorted(values, key=len, reverse=True):
        query = query.replace("${%s}" % name, values[name]).replace("$" + name, values[name])
    ct.check("$" not in query.replace("$__", "") or not re.search(r"\$\w", query),
             "unsubstituted variable left in %r" % query)
    return query


class Prometheus:
    def __init__(self, config, rules_text, wd, port):
        self.wd = wd
        self.port = port
        os.makedirs(wd, exist_ok=True)
        rules = ct.write_file(os.path.join(wd, "alerts.yml"), rules_text)
        config["rule_files"] = [rules]
        path = ct.write_file(os.path.join(wd, "prometheus.yml"), json.dumps(config))
        rc, out, err = k.run(["promtool", "check", "config", path])
        ct.check(rc == 0, "promtool check config (test copy):\n%s%s" % (out, err))
        self.log = open(os.path.join(wd, "prometheus.log"), "wb")
        self.proc = ct.start_process(
            ["prometheus", "--config.file=" + path, "--storage.tsdb.path=" + os.path.join(wd, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=self.log, cwd=wd)

    def api(self, path, **params):
        ct.check(self.proc.poll() is None, "prometheus exited %s" % self.proc.returncode)
        url = "http://127.0.0.1:%d%s?%s" % (self.port, path, urllib.parse.urlencode(params, doseq=True))
        status, body = ct.http_get(url, timeout=10)
        doc = json.loads(body) if body.startswith("{") else {"status": "http %d" % status, "error": body}
        return doc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def prometheus_config(objs, targets, prom_port):
    """The manifests' prometheus.yml with the discovery replaced by static
    targets that carry what Kubernetes discovery would attach."""
    data = k.configmap_data(objs, "prometheus-config")
    config = k.yaml_text(data["prometheus.yml"], "prometheus.yml")[0]
    config["global"].update({"scrape_interval": "%ds" % SCRAPE, "evaluation_interval": "%ds" % SCRAPE,
                             "scrape_timeout": "%ds" % SCRAPE})
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["127.0.0.1:%d" % port], "labels": labels}
                                     for port, labels in targets]
        elif job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": ["127.0.0.1:%d" % prom_port]}]
    return config, data["alerts.yml"]


def pod_labels(app, pod, port, annotations):
    labels = {"__meta_kubernetes_namespace": k.NAMESPACE, "__meta_kubernetes_pod_name": pod,
              "__meta_kubernetes_pod_phase": "Running", "__meta_kubernetes_pod_node_name": "laptop",
              "__meta_kubernetes_pod_label_app_kubernetes_io_name": app}
    for key, value in annotations.items():
        name = "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)
        labels[name] = value
    # The pod's container port: 8000 in the cluster, a free port here.
    labels["__meta_kubernetes_pod_annotation_prometheus_io_port"] = str(port)
    return labels


def engine_env(container, overrides):
    env = {}
    for name, value in k.env_of(container).items():
        if isinstance(value, str):
            env[name] = value
    env.update(overrides)
    return env


def start_system(wd):
    """(engines {app: Engine}, Influx, MockCluster, objs)."""
    import kafka_env as ke
    objs = k.objects()
    ct.check(os.path.exists(ke.MOCK_BIN), "mock Kafka cluster %s not built" % ke.MOCK_BIN)
    os.makedirs(os.path.join(wd, "kafka"))
    mc = ke.MockCluster({TOPIC: 6}, workdir=os.path.join(wd, "kafka"))
    db = Influx()
    rc, out, err = db.init()
    ct.check(rc == 0, "init-influxdb.sh failed:\n%s%s" % (out, err))
    auth = db.secrets["influxdb-auth"]
    engines = {}
    for app in ("processor", "producer"):
        w = k.one(objs, "Deployment", app)
        meta, spec = k.pod_template(w)
        c = spec["containers"][0]
        key, text = k.engine_pipeline(objs, w, c)
        spec_path = ct.write_file(os.path.join(wd, key), text)
        if app == "producer":
            over = {"KAFKA_BROKERS": mc.bootstraps, "SIM_RATE": str(RATE), "SIM_ANOMALY_RATE": "0.02",
                    "POD_NAME": "producer-5d8f7c9b4-x2x7q"}
        else:
            over = {"KAFKA_BROKERS": mc.bootstraps, "INFLUXDB_URL": db.url, "INFLUXDB_CA_FILE": db.ca,
                    "INFLUXDB_USERNAME": auth["writer-username"],
                    "INFLUXDB_PASSWORD_FILE": os.path.join(db.auth_dir, "writer-password"),
                    "PROCESSOR_DEAD_LETTER": os.path.join(wd, "dead-letter.jsonl"),
                    "KAFKA_SESSION_TIMEOUT_MS": "3000", "KAFKA_HEARTBEAT_INTERVAL_MS": "300"}
        edir = os.path.join(wd, app)
        os.makedirs(edir)
        engines[app] = (ct.Engine(spec_path, env=engine_env(c, over), workdir=edir), meta)
    for app, (e, _) in engines.items():
        e.wait_ready(60)
    return engines, db, mc, objs


def influx_query(db, q):
    """(error or None, series) of a query as Grafana's reader account."""
    status, body = db.request("POST", "/query", {"db": "conveyor", "q": q, "epoch": "ms"}, user="reader")
    if status != 200:
        return "HTTP %d: %s" % (status, body[:300]), []
    doc = json.loads(body)
    for r in doc.get("results", []):
        if "error" in r:
            return r["error"], []
    return None, [s for r in doc.get("results", []) for s in r.get("series", [])]


def has_value(series):
    return any(v is not None for s in series for row in s.get("values", []) for v in row[1:])


def test_every_panel_query_returns_data():
    wd = k.workdir("dashboard-queries")
    engines, db, mc, objs = start_system(wd)
    prom = None
    try:
        prom_port = ct.free_port()
        targets = []
        for app, (e, meta) in engines.items():
            pod = "%s-5d8f7c9b4-%s" % (app, "x2x7q" if app == "producer" else "k9m4d")
            targets.append((e.port, pod_labels(app, pod, e.port, meta.get("annotations", {}))))
        config, rules = prometheus_config(objs, targets, prom_port)
        prom = Prometheus(config, rules, os.path.join(wd, "prometheus"), prom_port)

        def targets_up():
            t = prom.api("/api/v1/targets").get("data", {}).get("activeTargets", [])
            up = {x["labels"].get("app") for x in t
                  if x["labels"].get("job") == "conveyor-engines" and x["health"] == "up"}
            return up == {"producer", "processor"} and t
        t = ct.wait_until(targets_up, 60, 0.5, what="Prometheus scraping both engines (job conveyor-engines)")
        for x in t:
            if x["labels"].get("job") == "conveyor-engines":
                ct.check(x["labels"].get("namespace") == k.NAMESPACE and x["labels"].get("pod") and
                         x["labels"].get("node") == "laptop",
                         "relabelling lost the pod labels: %s" % x["labels"])

        dashboards = {os.path.basename(p): td.load(p) for p in td.dashboards()}
        deadline = time.monotonic() + QUERY_TIMEOUT
        while True:
            failures, checked, values = run_all(dashboards, prom, db)
            if not failures or time.monotonic() > deadline:
                break
            for app, (e, _) in engines.items():
                ct.check(e.alive(), "%s exited:\n%s" % (app, e.stderr_text()[-3000:]))
            time.sleep(2)
        ct.check(not failures, "queries without data or with errors after %ds:\n  %s\n"
                 "the processor's first sink and warning lines:\n%s" %
                 (QUERY_TIMEOUT, "\n  ".join(failures), first_warnings(engines["processor"][0])))
        print("%d panel queries answered with data" % checked)
        for name, v in sorted(values.items()):
            print("  %-32s %s" % (name, v))
        check_headline_selectors(prom)
        check_rules(prom)
    finally:
        if prom:
            prom.stop()
        for app in ("producer", "processor"):
            e = engines[app][0]
            rc = e.stop(timeout=60)
            ct.check(rc == 0, "%s exited %d:\n%s" % (app, rc, e.stderr_text()[-2000:]))
        db.stop()
        mc.stop()
    shutil.rmtree(os.path.join(wd, "prometheus", "data"), ignore_errors=True)


def first_warnings(e, n=12):
    """The first lines an engine logged at warn or above, or from its sink: the
    cause of a stall is usually there, long before the tail of its log."""
    lines = [ln for ln in e.stderr_text().splitlines()
             if '"level":"warn"' in ln or '"level":"error"' in ln or '"stage":"influxdb"' in ln]
    return "\n".join(lines[:n]) or "(none)"


def run_all(dashboards, prom, db):
    """Runs every panel query once: ([failure], count, {panel: last value})."""
    failures, values = [], {}
    checked = 0
    now = time.time()
    start, end = now - 120, now
    interval = 2
    for dname, dash in dashboards.items():
        variables = {"__interval": "%ds" % interval, "__interval_ms": str(interval * 1000),
                     "__rate_interval": "%ds" % rate_interval(interval, SCRAPE),
                     "__range_s": str(int(end - start)), "__range": "%ds" % int(end - start),
                     "timeFilter": "time >= %dms and time <= %dms" % (start * 1000, end * 1000)}
        for v in dash.get("templating", {}).get("list", []):
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            ds = v["datasource"]["type"]
            if ds == "prometheus":
                m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q)
                ct.check(m, "%s: variable %s: unsupported query %r" % (dname, v["name"], q))
                doc = prom.api("/api/v1/label/%s/values" % m.group(2), **{"match[]": m.group(1)})
                vals = doc.get("data") or []
            else:
                err, series = influx_query(db, q)
                ct.check(err is None, "%s: variable %s: %s" % (dname, v["name"], err))
                vals = [row[1] for s in series for row in s["values"]]
            if not vals:
                failures.append("%s: variable $%s has no values (%r)" % (dname, v["name"], q))
                continue
            variables[v["name"]] = multi_value(sorted(vals)) if v.get("multi") or v.get("includeAll") \
                else grafana_regex_escape(vals[0])
        if any(f.startswith(dname) for f in failures):
            continue
        for p in dash["panels"]:
            for t in p.get("targets", []):
                ds = (t.get("datasource") or p.get("datasource") or {}).get("type")
                name = "%s: %s [%s]" % (dname, p["title"], t["refId"])
                if ds == "prometheus":
                    q = substitute(t["expr"], variables)
                    doc = prom.api("/api/v1/query_range", query=q, start="%.3f" % start,
                                   end="%.3f" % end, step="%ds" % interval)
                    if doc.get("status") != "success":
                        failures.append("%s: %s (%s)" % (name, doc.get("error"), q))
                        continue
                    result = doc["data"]["result"]
                    pts = [float(v[1]) for r in result for v in r["values"] if v[1] not in ("NaN",)]
                    if not pts:
                        failures.append("%s: no data (%s)" % (name, q))
                        continue
                    values[name] = "%.1f" % pts[-1]
                elif ds == "influxdb":
                    q = substitute(t["query"], variables)
                    err, series = influx_query(db, q)
                    if err:
                        failures.append("%s: %s (%s)" % (name, err, q))
                        continue
                    if not has_value(series):
                        failures.append("%s: no data (%s)" % (name, q))
                        continue
                    last = [row for s in series for row in s["values"]][-1]
                    values[name] = last[1:]
                else:
                    continue  # loki: no Loki here
                checked += 1
    return failures, checked, values


def check_headline_selectors(prom):
    """Each headline panel selects one role's series: no sum of the
    producer's and the processor's deliveries."""
    dash = td.load(os.path.join(td.DASH_DIR, "pipeline-health.json"))
    want = {"Producer records/s": ("producer", "kafka_out"),
            "Processor records/s": ("processor", "kafka_in"),
            "InfluxDB points written/s": ("processor", "influxdb")}
    found = {p["title"]: p for p in dash["panels"] if p["title"] in want}
    ct.check(sorted(found) == sorted(want), "headline panels: %s" % sorted(found))
    for title, (app, plugin) in want.items():
        expr = found[title]["targets"][0]["expr"]
        m = re.search(r"rate\((\w+\{[^}]*\})\[", expr)
        ct.check(m, "%s: no rate(selector[...]) in %r" % (title, expr))
        result = prom.api("/api/v1/query", query=m.group(1))["data"]["result"]
        got = {(r["metric"].get("app"), r["metric"].get("plugin")) for r in result}
        ct.check(got == {(app, plugin)} and len(result) == 1,
                 "%s sums %s, expected the %s pod's %s stage only" % (title, sorted(got), app, plugin))
        ct.check(found[title]["type"] == "stat" and found[title]["gridPos"]["y"] == 0,
                 "%s is not a headline stat in the top row" % title)


def check_rules(prom):
    """Every alert rule evaluates on the real series (health ok)."""
    def evaluated():
        groups = prom.api("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        bad = [(r["name"], r.get("lastError")) for r in rules if r.get("health") == "err"]
        ct.check(not bad, "alert rules fail to evaluate: %s" % bad)
        return rules and all(r.get("health") == "ok" for r in rules) and rules
    rules = ct.wait_until(evaluated, 60, 0.5, what="every alert rule evaluated")
    print("%d alert rules evaluate: %s" % (len(rules), ", ".join(r["name"] for r in rules)))


def test_variable_formatting():
    """The Grafana rules the substitution follows."""
    ct.check(multi_value(["line-1", "a.b"]) == r"(line-1|a\.b)", "multi-value regex")
    ct.check(rate_interval(2, 1) == 4 and rate_interval(60, 15) == 75, "$__rate_interval")
    ct.check(substitute("x{p=~\"$pipeline\"}[$__rate_interval]", {"pipeline": "(a|b)",
                                                                    "__rate_interval": "4s"}) ==
             'x{p=~"(a|b)"}[4s]', "substitution")


def test_rate_interval_matches_scrape_interval():
    """Grafana derives $__rate_interval from the Prometheus datasource's
    timeInterval: it must be the scrape interval of prometheus.yml."""
    objs = k.objects()
    data = k.configmap_data(objs, "grafana-config")
    sources = k.yaml_text(data["datasources.yaml"], "datasources.yaml")[0]["datasources"]
    prom_ds = [d for d in sources if d["type"] == "prometheus"][0]
    config = k.yaml_text(k.configmap_data(objs, "prometheus-config")["prometheus.yml"], "p.yml")[0]
    ct.check(prom_ds["jsonData"].get("timeInterval") == config["global"]["scrape_interval"],
             "datasource timeInterval %s != scrape_interval %s" %
             (prom_ds["jsonData"].get("timeInterval"), config["global"]["scrape_interval"]))


def test_readings_rate_divides_a_full_window():
    """Readings/s divides a complete window by its length: no current,
    partial minute (which made it read low)."""
    dash = td.load(os.path.join(td.DASH_DIR, "conveyor-data.json"))
    panels = [p for p in dash["panels"] if p["title"].startswith("Readings/s")]
    ct.check(len(panels) == 1, "no Readings/s panel")
    q = panels[0]["targets"][0]["query"]
    m = re.search(r'count\("speed_ms"\)\s*/\s*(\d+)\b.*time > now\(\) - (\d+)s AND time <= now\(\) - (\d+)s', q)
    ct.check(m, "Readings/s does not count a closed window ending before now(): %r" % q)
    divisor, older, newer = (int(x) for x in m.groups())
    ct.check(older - newer == divisor and newer > 0, "Readings/s divides %ds of points by %d" %
             (older - newer, divisor))
    ct.check("GROUP BY time" not in q, "Readings/s groups by time: the last group is partial")


if __name__ == "__main__":
    ct.main([test_variable_formatting, test_rate_interval_matches_scrape_interval,
             test_readings_rate_divides_a_full_window, test_every_panel_query_returns_data])
