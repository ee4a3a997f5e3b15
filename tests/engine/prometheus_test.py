"""A real Prometheus (Debian package) scrapes a running engine and a rate
query over the host-injected metrics returns a positive value."""

import json
import os
import shutil
import signal
import sys
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_common as ec  # noqa: E402
from engine_common import ct  # noqa: E402


def _api(port, path, **params):
    url = "http://127.0.0.1:%d%s" % (port, path)
    if params:
        url += "?" + urllib.parse.urlencode(params)
    status, body = ct.http_get(url, timeout=3)
    ct.check(status == 200, "%s answered %d: %s" % (url, status, body[:500]))
    doc = json.loads(body)
    ct.check(doc.get("status") == "success", "%s: %s" % (url, body[:500]))
    return doc["data"]


def test_prometheus_scrapes_and_queries_a_rate():
    ec.require_plugins()
    prom = ec.which("prometheus")
    ct.check(prom, "prometheus not installed (Debian package prometheus)")
    d = ct.tmpdir("conveyor-prom-")
    e = ct.Engine(ec.spec({"scraped": """
    source: { plugin: sim_speed, lines: 5, rate: 2000 }
    transforms:
      - { plugin: anomaly }
    sink: { plugin: null }
"""}), workdir=d)
    e.wait_ready()
    port = ct.free_port()
    cfg = ct.write_file(os.path.join(d, "prometheus.yml"), """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: conveyor
    static_configs:
      - targets: ["127.0.0.1:%d"]
""" % e.port)
    log = open(os.path.join(d, "prometheus.log"), "wb")
    p = ct.start_process([prom, "--config.file=" + cfg,
                          "--storage.tsdb.path=" + os.path.join(d, "data"),
                          "--web.listen-address=127.0.0.1:%d" % port,
                          "--log.level=warn"], stdout=log, stderr=log, cwd=d)

    def prom_log():
        log.flush()
        return open(log.name, errors="replace").read()[-3000:]

    try:
        def target_up():
            ct.check(p.poll() is None, "prometheus exited %s:\n%s" % (p.returncode, prom_log()))
            for t in _api(port, "/api/v1/targets").get("activeTargets", []):
                if t.get("scrapeUrl", "").startswith("http://127.0.0.1:%d/" % e.port):
                    ct.check(t.get("health") != "down", "target down: %s" % t.get("lastError"))
                    return t.get("health") == "up"
            return False

        ct.wait_until(target_up, 30, 0.5, what="prometheus to scrape the engine")
        query = 'sum by (pipeline) (rate(conveyor_stage_records_out_total{stage="sim_speed"}[5s]))'

        def positive_rate():
            ct.check(e.alive(), "engine exited")
            res = _api(port, "/api/v1/query", query=query)["result"]
            for r in res:
                if r["metric"].get("pipeline") == "scraped" and float(r["value"][1]) > 0:
                    return float(r["value"][1])
            return None

        rate = ct.wait_until(positive_rate, 25, 0.5, what="a positive rate from prometheus")
        print("  prometheus: rate(conveyor_stage_records_out_total{stage=\"sim_speed\"}) = %.0f/s"
              % rate)
        # The stage labels arrive intact in Prometheus.
        res = _api(port, "/api/v1/query",
                   query='conveyor_stage_records_out_total{pipeline="scraped"}')["result"]
        kinds = {(r["metric"].get("stage"), r["metric"].get("plugin"), r["metric"].get("kind"))
                 for r in res}
        ct.check(kinds == {("sim_speed", "sim_speed", "source"),
                           ("anomaly", "anomaly", "transform"), ("null", "null", "sink")},
                 "series in prometheus: %s" % kinds)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except Exception:
                p.kill()
                p.wait(5)
        log.close()
        if p.poll() is not None:
            shutil.rmtree(os.path.join(d, "data"), ignore_errors=True)
    ct.check(e.stop() == 0, "engine exit code")


if __name__ == "__main__":
    ct.main([test_prometheus_scrapes_and_queries_a_rate])
