"""Shared helpers of the k8s checks: render the kustomize tree, run the Node
tools (kubernetes-models, TypeScript) of this folder, walk pod specs.

Needs kubectl (kustomize built in), node + npm, and this folder's
node_modules (installed here with `npm ci` when missing; see DEPS.md).
"""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import conveyor_test as ct  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = ct.SOURCE_DIR
K8S = os.path.join(SOURCE_DIR, "k8s")
NAMESPACE = "conveyor-pipeline"
ENGINE_IMAGE = "conveyor"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def fail(msg):
    raise ct.TestFailure(msg)


def workdir(name):
    """A fresh folder for generated files, under the build dir: one tree
    per test script, since ctest runs the scripts in parallel and several
    use the same helpers (and so the same names)."""
    script = os.path.splitext(os.path.basename(sys.argv[0]))[0] or "k8s"
    base = os.path.join(ct.BUILD_DIR, "k8s-checks", script)
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def kubectl():
    path = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not path:
        fail("kubectl not found (set KUBECTL or install it: tests/k8s/DEPS.md)")
    return path


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        m = re.search(r"project\(conveyor VERSION ([0-9.]+)", f.read())
    return m.group(1)


def run(args, timeout=120, env=None, input=None, cwd=None):
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=full_env,
                       input=input, cwd=cwd)
    return r.returncode, r.stdout, r.stderr


# Node.js that package.json's "engines" asks for: Debian 12's nodejs is 18.
NODE_MIN_MAJOR = 18
# npm's own retries take about 70 s per command where the registry cannot be
# reached or not trusted; the probe fails in seconds and says why.
NPM_PROBE_OPTS = ["--fetch-retries=0", "--fetch-timeout=20000"]
NPM_CI_OPTS = ["--no-audit", "--no-fund", "--fetch-retries=1", "--fetch-timeout=60000"]
_CERT_CODES = ("SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
               "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
               "DEPTH_ZERO_SELF_SIGNED_CERT", "CERT_HAS_EXPIRED", "CERT_UNTRUSTED",
               "ERR_TLS_CERT_ALTNAME_INVALID")
_NET_CODES = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT",
              "ESOCKETTIMEDOUT", "ENETUNREACH", "EHOSTUNREACH", "ERR_SOCKET_TIMEOUT",
              "FETCH_ERROR", "EPROXY")
_npm_problem = []


def npm_error_code(text):
    """The `code` of an npm error message (npm 9: `npm ERR! code X`, npm 10+:
    `npm error code X`), else None."""
    m = re.search(r"npm (?:ERR!|error) code (\S+)", text)
    return m.group(1) if m else None


def npm_registry_problem(opts=()):
    """None when the npm registry answers and is trusted, else a message that
    says what is missing and how to provide it. One quick `npm ping`; opts
    are more npm options (a registry, a CA file)."""
    opts = list(opts)
    rc, out, _ = run(["npm", "config", "get", "registry"] + opts, timeout=60)
    registry = out.strip() if rc == 0 and out.strip() else "the npm registry"
    try:
        rc, out, err = run(["npm", "ping"] + NPM_PROBE_OPTS + opts, timeout=60)
    except subprocess.TimeoutExpired:
        rc, out, err = -1, "", "npm ping did not answer within 60 s"
    if rc == 0:
        return None
    text = out + err
    code = npm_error_code(text) or ("ETIMEDOUT" if rc == -1 else "unknown")
    lines = [l for l in text.splitlines() if "complete log" not in l][-4:]
    detail = "\n  ".join(lines)
    if code in _CERT_CODES or "certificate" in text:
        return ("npm does not trust the certificate of %s (%s; a proxy that intercepts "
                "TLS?). Give npm the CA that signed it: NODE_EXTRA_CA_CERTS=/path/ca.pem "
                "or `npm config set cafile /path/ca.pem` (tests/k8s/DEPS.md).\n  %s"
                % (registry, code, detail))
    if code in _NET_CODES or code.startswith("E"):
        return ("cannot reach %s (%s). The k8s checks install tests/k8s/node_modules from "
                "it once (tests/k8s/DEPS.md): allow HTTPS to it, point npm at a mirror "
                "(`npm config set registry URL`), or set HTTPS_PROXY.\n  %s"
                % (registry, code, detail))
    return "npm ping %s failed (%s):\n  %s" % (registry, code, detail)


def node_major():
    rc, out, _ = run(["node", "--version"], timeout=60)
    m = re.match(r"v(\d+)\.", out.strip()) if rc == 0 else None
    return int(m.group(1)) if m else None


def ensure_node_modules():
    """npm ci into this folder once per lock file change, shared by every
    test and both build halves (locked: tests may run in parallel): from
    npm's cache when it holds the packages, else from the registry. Where
    the registry cannot be used, fails in seconds saying what is missing."""
    if _npm_problem:
        fail(_npm_problem[0])
    if not shutil.which("node") or not shutil.which("npm"):
        fail("node and npm are needed (scripts/install-deps.sh test; tests/k8s/DEPS.md)")
    major = node_major()
    if major is None or major < NODE_MIN_MAJOR:
        fail("Node.js %d or newer is needed, found %s" % (NODE_MIN_MAJOR, major))
    lock_path = os.path.join("/tmp", "conveyor-k8s-npm-%d.lock" % os.getuid())
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = os.path.join(HERE, "node_modules", ".package-lock.json")
        lockfile = os.path.join(HERE, "package-lock.json")
        if os.path.exists(marker) and os.path.getmtime(marker) >= os.path.getmtime(lockfile):
            return
        # From npm's cache alone when it holds every package (no network).
        rc, _, _ = run(["npm", "ci", "--offline"] + NPM_CI_OPTS + ["--prefix", HERE], timeout=600)
        if rc == 0:
            return
        problem = npm_registry_problem()
        if problem:
            _npm_problem.append(problem + "\n  (npm's cache does not hold the packages either)")
            fail(_npm_problem[0])
        rc, out, err = run(["npm", "ci"] + NPM_CI_OPTS + ["--prefix", HERE], timeout=600)
        if rc != 0:
            _npm_problem.append("npm ci in %s failed:\n%s%s" % (HERE, out[-2000:], err[-2000:]))
            fail(_npm_problem[0])


def node_tool(*args, timeout=120):
    ensure_node_modules()
    rc, out, err = run(["node", os.path.join(HERE, "k8s_tool.mjs")] + list(args), timeout=timeout)
    return rc, out, err


def yaml_docs(*paths):
    """Every YAML document of the files, parsed strictly (duplicate keys fail)."""
    rc, out, err = node_tool("yaml2json", *paths)
    if rc != 0:
        fail("YAML parse failed: %s" % err)
    return [item["doc"] for item in json.loads(out)]


def yaml_text(text, name="doc.yaml"):
    path = os.path.join(workdir("yaml-" + name), name)
    with open(path, "w") as f:
        f.write(text)
    return yaml_docs(path)


def kustomize_major():
    """Major version of the kustomize built into kubectl, or None when
    kubectl does not say (kubectl before 1.21, such as Debian 12's
    kubernetes-client 1.20, embeds kustomize v2 and prints no version)."""
    rc, out, err = run([kubectl(), "version", "--client", "-o", "json"], timeout=30)
    if rc != 0:
        return None
    try:
        v = json.loads(out).get("kustomizeVersion", "")
    except ValueError:
        return None
    m = re.match(r"v?(\d+)", v)
    return int(m.group(1)) if m else None


def kustomize_short_of_v4():
    """None when kubectl's kustomize renders the overlays (v4 or later),
    else what it has, for a message: "kustomize v3" or "kustomize older
    than v4"."""
    major = kustomize_major()
    if major is not None and major >= 4:
        return None
    return "kustomize v%d" % major if major is not None else "kustomize older than v4"


def skip_without_kustomize_v4(what):
    """Exits 77 (ctest's skip) when kubectl's kustomize is older than v4,
    saying which kubectl and how to get one that renders `what`."""
    have = kustomize_short_of_v4()
    if have is None:
        return
    print("SKIP: %s needs kustomize v4+ (kubectl 1.21+); %s has %s (Debian 12's "
          "kubernetes-client 1.20 embeds v2). Put kubectl 1.21+ first in PATH, "
          "or set KUBECTL, to run it." % (what, kubectl(), have))
    sys.exit(77)


_rendered = {}


def render(kubectl_path=None):
    """`kubectl kustomize k8s/` (cached per kubectl)."""
    k = kubectl_path or kubectl()
    if k not in _rendered:
        rc, out, err = run([k, "kustomize", K8S], timeout=120)
        if rc != 0:
            fail("%s kustomize %s failed:\n%s" % (k, K8S, err))
        _rendered[k] = out
    return _rendered[k]


_objects = None


def objects():
    global _objects
    if _objects is None:
        path = os.path.join(workdir("render"), "rendered.yaml")
        with open(path, "w") as f:
            f.write(render())
        _objects = yaml_docs(path)
    return _objects


def name_of(obj):
    return "%s/%s" % (obj["kind"], obj["metadata"]["name"])


def find(objs, kind, name=None):
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs, kind, name):
    found = find(objs, kind, name)
    if len(found) != 1:
        fail("expected one %s/%s, found %d" % (kind, name, len(found)))
    return found[0]


def pod_template(obj):
    """(template metadata, pod spec) of a workload."""
    if obj["kind"] == "CronJob":
        tpl = obj["spec"]["jobTemplate"]["spec"]["template"]
    else:
        tpl = obj["spec"]["template"]
    return tpl.get("metadata", {}), tpl["spec"]


def workloads(objs):
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def containers(spec, init=True):
    out = list(spec.get("containers", []))
    if init:
        out += spec.get("initContainers", [])
    return out


def is_engine(container):
    return container.get("image", "").split(":")[0].split("/")[-1] == ENGINE_IMAGE


def selector_matches(selector, labels):
    """A LabelSelector (matchLabels + matchExpressions) against labels."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def configmap_data(objs, base_name):
    """The data of the generated ConfigMap base_name-<hash>."""
    for o in find(objs, "ConfigMap"):
        n = o["metadata"]["name"]
        if n == base_name or re.fullmatch(re.escape(base_name) + r"-[a-z0-9]{10}", n):
            return o.get("data", {})
    fail("ConfigMap %s not rendered" % base_name)


def env_of(container):
    """name -> value (or the valueFrom dict) of a container's env."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")


def spec_vars(text):
    """[(name, default or None)] of ${VAR} / ${VAR:-default} in a pipeline spec
    (comment lines skipped)."""
    out = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in _VAR.finditer(line):
            out.append((m.group(1), m.group(3) if m.group(2) else None))
    return out


def expand(text, env):
    """The engine's ${VAR} / ${VAR:-default} expansion, for checks."""
    def sub(m):
        v = env.get(m.group(1))
        if (v is None or v == "") and m.group(2):
            return m.group(3)
        return v if v is not None else ""
    return _VAR.sub(sub, text)


_DURATION = re.compile(r"^\s*([0-9.]+)\s*(ms|s|m|h)?\s*$")


def duration_seconds(text):
    m = _DURATION.match(str(text))
    if not m:
        fail("unparsable duration %r" % text)
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def engine_pipeline(objs, workload, container):
    """(ConfigMap key, spec text) of the pipeline an engine container runs:
    the path in its args, resolved through its volume mounts."""
    _, spec = pod_template(workload)
    args = container.get("args", [])
    if len(args) < 2 or args[0] != "run":
        fail("%s: engine args should be ['run', SPEC], got %r" % (name_of(workload), args))
    path = args[1]
    for m in container.get("volumeMounts", []):
        mount = m["mountPath"].rstrip("/") + "/"
        if path.startswith(mount):
            vol = [v for v in spec.get("volumes", []) if v["name"] == m["name"]][0]
            if "configMap" not in vol:
                fail("%s: pipeline %s is not from a ConfigMap" % (name_of(workload), path))
            key = path[len(mount):]
            data = configmap_data(objs, re.sub(r"-[a-z0-9]{10}$", "", vol["configMap"]["name"]))
            if key not in data:
                fail("%s: ConfigMap %s has no key %s" % (name_of(workload),
                                                          vol["configMap"]["name"], key))
            return key, data[key]
    fail("%s: %s is on no volume mount" % (name_of(workload), path))


def _glob_regex(glob):
    """A .gitignore glob as a regex over a slash-separated path."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = glob.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = glob[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _gitignore_rules(directory):
    """[(negated, dir_only, regex)] of directory/.gitignore, in file order."""
    rules = []
    try:
        with open(os.path.join(directory, ".gitignore")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return rules
    for line in lines:
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        # A slash before the end anchors the pattern to this folder; without
        # one it matches a name at any depth.
        anchored = "/" in line
        body = _glob_regex(line.lstrip("/"))
        rules.append((negated, dir_only, re.compile(body if anchored else "(?:.*/)?" + body)))
    return rules


def gitignored(rel):
    """Whether git would ignore the file rel (relative to the source dir),
    read from the .gitignore files on its way down, so that it also answers
    in a release tarball (no .git, maybe no git). Global and .git/info
    excludes are not the project's and are left out on purpose."""
    parts = rel.split("/")
    for depth in range(1, len(parts) + 1):
        # A folder that is ignored takes everything below it along (git
        # does not look inside it, so no later rule can re-include).
        prefix = "/".join(parts[:depth])
        is_dir = depth < len(parts)
        ignored = False
        for level in range(depth):
            base = os.path.join(SOURCE_DIR, *parts[:level])
            sub = "/".join(parts[level:depth])
            for negated, dir_only, rx in _gitignore_rules(base):
                if dir_only and not is_dir:
                    continue
                if rx.fullmatch(sub):
                    ignored = not negated
        if ignored:
            return True, prefix
    return False, None


def tsc(outdir, files):
    """tsc --noEmit --strict over generated files; (rc, output)."""
    ensure_node_modules()
    link = os.path.join(outdir, "node_modules")
    if not os.path.exists(link):
        os.symlink(os.path.join(HERE, "node_modules"), link)
    with open(os.path.join(outdir, "tsconfig.json"), "w") as f:
        json.dump({"compilerOptions": {"strict": True, "noEmit": True, "target": "es2022",
                                       "module": "esnext", "moduleResolution": "bundler",
                                       "skipLibCheck": True, "types": []},
                   "files": files}, f)
    rc, out, err = run(["node", os.path.join(HERE, "node_modules", "typescript", "bin", "tsc"),
                        "-p", os.path.join(outdir, "tsconfig.json")], timeout=300)
    return rc, out + err
