"""The laptop overlay's engine pods run with `podman kube play` on the
locally built image (scripts/build-image.sh), wired to a mock Kafka cluster
and a real influxd set up like the cluster's (config, TLS, users):

  producer pod -> Kafka -> processor pod -> InfluxDB over verified HTTPS

What runs as rendered: the Deployments' pod templates (image, args, env,
security context: user 10001, read-only root filesystem, capabilities
dropped), the pipelines ConfigMap mounted where the args point, the probes'
paths. What is adapted to this machine, and only that: the image name
(localhost/ in build-image.sh's store), the env values that name cluster
addresses (Kafka, InfluxDB, the listen address: host network, free ports),
the container ports (no port mappings on the host network), and the
Secrets: podman 4.3's kube play crashes on secret volumes and secret env
(its kube code dereferences a secrets manager it does not create), so each
Secret volume becomes a host folder holding exactly the files the kubelet
would project (items key -> path, defaultMode) and each secretKeyRef env
its value. Checked: points written by the processor pod land in InfluxDB
with the producer pod's tag, /healthz and /readyz answer on the probes'
port and path, the containers run as the pod spec says, and the Secret
files are where the processor's env says.

Slow on a cold image cache (the build): label image. Needs catatonit
(podman's pause process for the pod's infra container).
"""

import base64
import json
import os
import shutil
import stat
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402
import test_image as ti  # noqa: E402
from test_influxdb_setup import Influx  # noqa: E402

OVERLAY = os.path.join(k.K8S, "overlays", "laptop")
TOPIC = "conveyor-speed"
PRODUCER_POD = "producer-kubeplay-test"


def podman(*args, timeout=120):
    # From an empty folder: kube play looks for ./<image name>/Containerfile
    # to build from (and trips over the build dir's `conveyor` binary).
    cwd = os.path.join(ct.BUILD_DIR, "k8s-checks", "kubeplay-cwd")
    os.makedirs(cwd, exist_ok=True)
    return k.run([ti.BUILD, "podman"] + list(args), timeout=timeout, cwd=cwd)


def rendered():
    rc, out, err = k.run([k.kubectl(), "kustomize", OVERLAY], timeout=120)
    ct.check(rc == 0, "kubectl kustomize %s: %s" % (OVERLAY, err))
    path = os.path.join(k.workdir("kubeplay-render"), "rendered.yaml")
    with open(path, "w") as f:
        f.write(out)
    return k.yaml_docs(path)


def project_secret(secret, vol, root):
    """The files the kubelet would put in a Secret volume."""
    d = os.path.join(root, vol["name"])
    os.makedirs(d)
    data = secret.get("stringData", {})
    src = vol["secret"]
    items = src.get("items") or [{"key": key, "path": key} for key in data]
    mode = src.get("defaultMode", 0o644)
    for item in items:
        ct.check(item["key"] in data, "Secret %s has no key %s" % (src["secretName"], item["key"]))
        path = os.path.join(d, item["path"])
        ct.write_file(path, data[item["key"]])
        # Readable by the pod's user as the kubelet arranges (fsGroup);
        # here the files belong to root: keep the mode's read bits for all.
        os.chmod(path, mode | stat.S_IROTH)
    return d


def adapt(w, secrets, env_over, port, root):
    """The pod template of workload w, adapted to this machine (see the
    module doc); returns a Deployment with one replica."""
    w = json.loads(json.dumps(w))
    spec = w["spec"]["template"]["spec"]
    w["spec"]["replicas"] = 1
    for vol in spec.get("volumes", []):
        if "secret" in vol:
            secret = secrets[vol["secret"]["secretName"]]
            path = project_secret(secret, vol, root)
            vol.clear()
            vol.update({"name": os.path.basename(path), "hostPath": {"path": path, "type": "Directory"}})
    c = spec["containers"][0]
    c["image"] = "localhost/" + c["image"]
    env = []
    for e in c.get("env", []):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if e["name"] in env_over:  # cluster addresses; the downward API's POD_NAME
            e = {"name": e["name"], "value": env_over[e["name"]]}
        elif ref:
            e = {"name": e["name"], "value": secrets[ref["name"]]["stringData"][ref["key"]]}
        ct.check("valueFrom" not in e, "%s: env %s from %s not adapted" % (k.name_of(w), e["name"], e.get("valueFrom")))
        env.append(e)
    c["env"] = env
    c.pop("ports", None)
    for probe in ("livenessProbe", "readinessProbe"):
        if probe in c:
            c[probe]["httpGet"]["port"] = port
    return w


def test_laptop_engine_pods_with_kube_play():
    ct.check(shutil.which("catatonit") or os.path.exists("/usr/libexec/podman/catatonit"),
             "catatonit not found: podman's pod infra needs it (Debian package catatonit)")
    ti.build()
    import kafka_env as ke
    wd = k.workdir("kubeplay")
    objs = rendered()
    mc = ke.MockCluster({TOPIC: 6})
    db = Influx()
    play = os.path.join(wd, "play.yaml")
    try:
        rc, out, err = db.init()
        ct.check(rc == 0, "init-influxdb.sh: %s%s" % (out, err))
        secrets = {d["metadata"]["name"]: d for d in k.yaml_docs(os.path.join(db.wd, "secrets.yaml"))}
        ports = {"producer": ct.free_port(), "processor": ct.free_port()}
        over = {
            "producer": {"KAFKA_BROKERS": mc.bootstraps, "SIM_RATE": "200", "POD_NAME": PRODUCER_POD,
                         "CONVEYOR_HTTP_LISTEN": "127.0.0.1:%d" % ports["producer"]},
            "processor": {"KAFKA_BROKERS": mc.bootstraps, "INFLUXDB_URL": db.url,
                          "KAFKA_SESSION_TIMEOUT_MS": "3000", "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
                          "CONVEYOR_HTTP_LISTEN": "127.0.0.1:%d" % ports["processor"]}}
        docs = [k.one(objs, "ConfigMap", "conveyor-pipelines")]
        for app in ("processor", "producer"):
            w = k.one(objs, "Deployment", app)
            docs.append(adapt(w, secrets, over[app], ports[app], os.path.join(wd, "secrets-" + app)))
        with open(play, "w") as f:
            f.write("\n---\n".join(json.dumps(d) for d in docs) + "\n")
        podman("pod", "rm", "-f", "--ignore", "producer-pod-0", "processor-pod-0")
        rc, out, err = podman("kube", "play", "--network", "host", "--replace", play, timeout=300)
        if rc != 0 and "lock mismatch" in out + err:
            # podman 4.3 hands out a lock ID twice when its shared-memory locks
            # were reset under a kept store ("deadlock due to lock mismatch");
            # `system renumber` reallocates them. Once, and said.
            print("podman: lock mismatch in its store; renumbering its locks and playing again")
            podman("pod", "rm", "-f", "--ignore", "producer-pod-0", "processor-pod-0")
            podman("system", "renumber", timeout=120)
            rc, out, err = podman("kube", "play", "--network", "host", "--replace", play, timeout=300)
        ct.check(rc == 0, "podman kube play failed (%d):\n%s\n%s" % (rc, out[-3000:], err[-3000:]))

        def logs(app):
            return podman("logs", "%s-pod-0-engine" % app)[1:]

        # Probes' path and port answer, as the kubelet would ask them.
        for app in ("producer", "processor"):
            c = k.one(objs, "Deployment", app)["spec"]["template"]["spec"]["containers"][0]
            for probe in ("livenessProbe", "readinessProbe"):
                url = "http://127.0.0.1:%d%s" % (ports[app], c[probe]["httpGet"]["path"])
                try:
                    ct.wait_until(lambda: ct.http_get(url, timeout=2)[0] == 200, 90, 0.5,
                                  what="%s %s %s" % (app, probe, url))
                except ct.TestFailure as e:
                    raise ct.TestFailure("%s\nlogs: %s" % (e, logs(app)))

        def stored():
            status, body = db.request("POST", "/query", {"db": "conveyor", "q":
                                      'SELECT count("seq") FROM "conveyor_speed" WHERE "producer" = \'%s\''
                                      % PRODUCER_POD}, user="reader")
            series = json.loads(body)["results"][0].get("series") if status == 200 else None
            return series[0]["values"][0][1] if series else 0
        try:
            n = ct.wait_until(stored, 90, 0.5, what="points from the producer pod in InfluxDB")
        except ct.TestFailure as e:
            raise ct.TestFailure("%s\nproducer: %s\nprocessor: %s" % (e, logs("producer"), logs("processor")))
        print("InfluxDB holds %d points written by the processor pod, tagged producer=%s" % (n, PRODUCER_POD))
        # The containers run as their pod specs say.
        for app in ("producer", "processor"):
            rc, out, err = podman("inspect", "%s-pod-0-engine" % app)
            ct.check(rc == 0, "inspect: %s" % err)
            info = json.loads(out)[0]
            ct.check(info["Config"]["User"].split(":")[0] == "10001", "%s runs as %s" % (app, info["Config"]["User"]))
            ct.check(info["HostConfig"]["ReadonlyRootfs"], "%s root filesystem is writable" % app)
            ct.check("CAP_NET_RAW" in info["HostConfig"]["CapDrop"] and not info["HostConfig"].get("CapAdd"),
                     "%s keeps capabilities: %s" % (app, info["HostConfig"]["CapDrop"]))
            mounts = {m["Destination"] for m in info["Mounts"]}
            ct.check("/etc/conveyor/pipelines" in mounts, "%s: pipelines not mounted: %s" % (app, mounts))
        # The Secret files sit where the processor's env points.
        rc, out, err = podman("exec", "processor-pod-0-engine", "/bin/sh", "-c",
                              'test -s "$INFLUXDB_CA_FILE" && test -s "$INFLUXDB_PASSWORD_FILE" && echo ok')
        ct.check(rc == 0 and out.strip() == "ok", "processor: CA or password file missing: %s%s" % (out, err))
    finally:
        podman("pod", "rm", "-f", "--ignore", "producer-pod-0", "processor-pod-0")
        db.stop()
        mc.stop()


if __name__ == "__main__":
    k.skip_without_kustomize_v4("playing k8s/overlays/laptop")
    ct.main([test_laptop_engine_pods_with_kube_play])
