"""Builds the container image with scripts/build-image.sh (Docker where an
engine answers, else buildah on a locally made bookworm base, cached between
runs) and runs it with podman (or docker) the way Kubernetes will: as its
numeric non-root user, read-only root filesystem, no capabilities, no new
privileges. Checks `conveyor version`, the plugins and pipelines inside, that
no compiler shipped, and the demo for a few seconds with /metrics answering
on 127.0.0.1 (host network), then a graceful stop (exit 0).

Slow (a first build debootstraps and compiles: minutes): label "image".
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402

BUILD = os.path.join(k.SOURCE_DIR, "scripts", "build-image.sh")
PLUGINS = ("anomaly", "console", "file", "influxdb", "kafka_in", "kafka_out", "null", "sim_speed")
NAME = "conveyor-image-test-%d" % os.getpid()


def docker_answers():
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


USE_DOCKER = os.environ.get("CONVEYOR_BUILDER", "auto") == "docker" or \
    (os.environ.get("CONVEYOR_BUILDER", "auto") == "auto" and docker_answers())


def engine_cmd(*args):
    """docker, or podman on build-image.sh's image store."""
    return (["docker"] if USE_DOCKER else [BUILD, "podman"]) + list(args)


def image_tag():
    return "conveyor:%s" % k.project_version()


def cli(*args, timeout=120):
    return k.run(engine_cmd(*args), timeout=timeout)


_built = []


def build():
    if _built:
        return
    rc, out, err = k.run([BUILD, "--tag", image_tag()], timeout=1100)
    ct.check(rc == 0, "build-image.sh failed (%d):\n%s\n%s" % (rc, out[-4000:], err[-4000:]))
    _built.append(True)


def test_image_builds_and_is_lean():
    build()
    rc, out, err = cli("image", "inspect", image_tag())
    ct.check(rc == 0, "image inspect: %s" % err)
    cfg = json.loads(out)[0]["Config"]
    ct.check(cfg.get("User") == "10001:10001", "image user is %r, not 10001:10001" % cfg.get("User"))
    ct.check(cfg.get("Entrypoint") == ["conveyor"], "entrypoint %r" % cfg.get("Entrypoint"))
    ct.check(cfg.get("Cmd") == ["run"], "cmd %r" % cfg.get("Cmd"))
    ct.check("8000/tcp" in (cfg.get("ExposedPorts") or {}), "port 8000 not exposed")
    rc, out, err = cli("run", "--rm", image_tag(), "version")
    ct.check(rc == 0 and k.project_version() in out + err, "conveyor version: rc %d %s%s" %
             (rc, out, err))
    # Nothing to compile with, no headers: the build stage stayed behind.
    rc, out, err = cli("run", "--rm", "--entrypoint", "/bin/sh", image_tag(), "-c",
                       "for t in cc gcc clang cmake ninja ld make; do command -v $t; done; "
                       "ls /usr/include/librdkafka /usr/include/curl 2>/dev/null; "
                       "ls /usr/lib/conveyor/plugins /etc/conveyor/pipelines; id -u")
    ct.check(rc == 0, "shell in image: %s" % err)
    for tool in ("/cc", "/gcc", "/cmake", "/ld", "librdkafka:", "curl:"):
        ct.check(tool not in out, "build tooling in the final image: %s" % out)
    for p in PLUGINS:
        ct.check("%s.so" % p in out, "plugin %s.so missing from /usr/lib/conveyor/plugins" % p)
    for p in ("producer.yaml", "processor.yaml", "demo.yaml"):
        ct.check(p in out, "pipeline %s missing from /etc/conveyor/pipelines" % p)
    ct.check(out.strip().splitlines()[-1] == "10001", "runs as uid %s" % out.strip()[-10:])
    rc, out, err = cli("run", "--rm", image_tag(), "plugins")
    for p in PLUGINS:
        ct.check(p in out, "`conveyor plugins` in the image does not list %s:\n%s%s" % (p, out, err))


def test_image_validates_pipelines():
    build()
    # validate reads secret files as run does: mount one where the Secret
    # would be.
    secret = os.path.join(ct.tmpdir(), "influxdb-password")
    ct.write_file(secret, "not-a-real-password\n")
    os.chmod(secret, 0o644)
    rc, out, err = cli("run", "--rm", "-e", "KAFKA_BROKERS=kafka:9092",
                       "-e", "INFLUXDB_URL=https://influxdb:8086",
                       "-v", "%s:/etc/conveyor/secrets/influxdb-password:ro" % secret,
                       "-e", "INFLUXDB_PASSWORD_FILE=/etc/conveyor/secrets/influxdb-password",
                       image_tag(), "validate",
                       "/etc/conveyor/pipelines/producer.yaml",
                       "/etc/conveyor/pipelines/processor.yaml")
    ct.check(rc == 0, "conveyor validate in the image (%d):\n%s%s" % (rc, out, err))


def test_image_runs_demo_like_kubernetes():
    build()
    port = ct.free_port()
    cli("rm", "-f", NAME)
    rc, out, err = cli("run", "-d", "--name", NAME, "--network", "host",
                       "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                       "--security-opt", "no-new-privileges", "--user", "10001:10001",
                       image_tag(), "run", "--listen", "127.0.0.1:%d" % port)
    ct.check(rc == 0, "podman run -d: %s%s" % (out, err))
    try:
        url = "http://127.0.0.1:%d" % port

        def delivering():
            status, body = ct.http_get(url + "/metrics", timeout=2)
            if status != 200:
                return False
            m = ct.parse_metrics(body)
            return (ct.metric_sum(m, "conveyor_stage_records_out_total", kind="sink") or 0) > 0 \
                and body
        body = ct.wait_until(delivering, timeout=60, what="the demo's /metrics with deliveries")
        for name in ("conveyor_stage_records_in_total", "conveyor_pipeline_latency_seconds_bucket",
                     "conveyor_build_info", "process_resident_memory_bytes"):
            ct.check(name in body, "%s missing from the container's /metrics" % name)
        ct.check(ct.http_get(url + "/healthz")[0] == 200, "/healthz is not 200")
        ct.wait_until(lambda: ct.http_get(url + "/readyz", timeout=2)[0] == 200, timeout=30,
                      what="/readyz 200")
        time.sleep(2)  # a few seconds of the demo running (not a synchronisation)
        rc, out, err = cli("stop", "-t", "20", NAME, timeout=60)
        ct.check(rc == 0, "stop: %s" % err)
        rc, out, err = cli("inspect", NAME, "--format", "{{.State.ExitCode}}")
        ct.check(rc == 0 and out.strip() == "0", "the demo exited %s after SIGTERM" % out.strip())
        rc, out, err = cli("logs", NAME)
        logs = [line for line in (out + err).splitlines() if line.startswith("{")]
        ct.check(logs and all("level" in json.loads(line) for line in logs[:20]),
                 "the container does not log JSON lines:\n%s" % (out + err)[-2000:])
    finally:
        cli("rm", "-f", NAME)


if __name__ == "__main__":
    ct.main([test_image_builds_and_is_lean, test_image_validates_pipelines,
             test_image_runs_demo_like_kubernetes])
