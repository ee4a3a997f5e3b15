"""shellcheck on every shell script of the repository (by extension or
shebang), build folders and node_modules excepted. Scripts that run inside
other images (busybox sh, the Kafka image's bash) are checked as what their
shebang says."""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8slib as k  # noqa: E402
from k8slib import ct  # noqa: E402

SKIP_DIRS = {".git", "node_modules", "__pycache__"}


def shell_scripts(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and
                             not (rel == "." and d.startswith("build")))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name.endswith(".sh"):
                out.append(path)
                continue
            try:
                with open(path, "rb") as f:
                    first = f.readline(100)
            except OSError:
                continue
            if first.startswith(b"#!") and any(s in first for s in (b"/sh", b"bash", b"env sh")):
                out.append(path)
    return out


def test_shellcheck():
    shellcheck = shutil.which("shellcheck")
    ct.check(shellcheck, "shellcheck not found (Debian package shellcheck)")
    scripts = shell_scripts(k.SOURCE_DIR)
    mine = [s for s in scripts if os.path.relpath(s, k.SOURCE_DIR).split(os.sep)[0] in ("k8s", "scripts")]
    ct.check(len(mine) >= 10, "too few scripts found under k8s/ and scripts/: %s" % mine)
    rc, out, err = k.run([shellcheck, "--external-sources", "--format=gcc"] + scripts, timeout=300)
    ct.check(rc == 0, "shellcheck findings:\n%s%s" % (out, err))
    # It must be able to fail.
    bad = ct.write_file(os.path.join(k.workdir("shellcheck"), "bad.sh"), "#!/bin/sh\nrm -rf $1/*\n")
    rc, out, _ = k.run([shellcheck, bad])
    ct.check(rc != 0 and "SC2086" in out, "shellcheck passed an unquoted expansion: %s" % out)


def test_scripts_executable_with_help():
    """Operator scripts are executable and answer --help without a cluster."""
    for rel in ("scripts/build-image.sh", "k8s/scripts/deploy.sh", "k8s/scripts/validate.sh",
                "k8s/scripts/destroy.sh", "k8s/scripts/load-test.sh",
                "k8s/scripts/resilience-test.sh", "k8s/scripts/make-secrets.sh",
                "k8s/scripts/sync-pipelines.sh", "k8s/tls/generate-influxdb-certs.sh"):
        path = os.path.join(k.SOURCE_DIR, rel)
        ct.check(os.access(path, os.X_OK), "%s is not executable" % rel)
        if rel.endswith("sync-pipelines.sh"):
            continue
        rc, out, err = k.run([path, "--help"], timeout=30, env={"KUBECTL": "/bin/false"})
        ct.check(rc == 0 and len(out) > 100, "%s --help: rc %d\n%s%s" % (rel, rc, out, err))


if __name__ == "__main__":
    ct.main([test_shellcheck, test_scripts_executable_with_help])
