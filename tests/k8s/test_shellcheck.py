"""shellcheck on every shell script of the repository (by extension or
shebang), build folders and node_modules excepted. Scripts that run inside
other images (busybox sh, the Kafka image's bash) are checked as what their
shebang says.

The operator scripts (k8s/scripts, k8s/tls, scripts/build-image.sh) run on
operators' machines, macOS included: bash 3.2 and BSD tools. They pass
shellcheck --shell=bash and a linter for bash-4+ constructs and GNU-only
tool options (no bash 3.2 or BSD userland is to be had here to run them
with). A line may carry `# portable-ok: REASON` where the construct is on a
Linux-only path."""

import os
import re
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


# Scripts operators run on their own machines (macOS: bash 3.2, BSD tools).
OPERATOR_SCRIPTS = ("k8s/scripts/*.sh", "k8s/tls/*.sh", "scripts/build-image.sh")

# (what, regex) of constructs bash 3.2 or BSD/macOS tools do not have. A
# command word is matched at the start of a command: line start, after
# ; & | ( $( ! or a keyword.
_CMD = r"(?:^|[;&|(!]|\$\(|\b(?:then|do|else|if|while|until|time)\s)\s*"
BASH32_RULES = [
    ("associative array (bash 4)", r"\b(?:declare|local|typeset)\s+-[a-zA-Z]*A"),
    ("nameref / global declare (bash 4.2+)", r"\b(?:declare|local|typeset)\s+-[a-zA-Z]*[ng]\b"),
    ("negative array index (bash 4.3)", r"\$\{#?\w+\[\s*-\s*\d"),
    ("negative substring length (bash 4.2)", r"\$\{\w+:[^}:]*:\s*-\d"),
    ("mapfile/readarray (bash 4)", _CMD + r"(?:mapfile|readarray)\b"),
    ("case modification ${x,,} ${x^^} (bash 4)", r"\$\{\w+(?:\[[^]]*\])?(?:,|\^)"),
    ("&>> (bash 4)", r"&>>"),
    ("|& (bash 4)", r"\|&"),
    ("coproc (bash 4)", _CMD + r"coproc\b"),
    ("[[ -v ]] (bash 4.2)", r"\[\[\s+(?:!\s+)?-v\s"),
    ("wait -n (bash 4.3)", _CMD + r"wait\s+-n\b"),
    ("case fall-through ;& ;;& (bash 4)", r";;&|[^;];&"),
    ("named file descriptor {fd}> (bash 4.1)", r"\{\w+\}\s*[<>]"),
    ("brace range with step or padding (bash 4)", r"\{-?\d+\.\.-?\d+\.\.|\{0\d+\.\."),
    ("shopt globstar/lastpipe (bash 4)", r"shopt\s+-s\s+(?:globstar|lastpipe|autocd|checkjobs)"),
    ("$EPOCHSECONDS/$EPOCHREALTIME/$BASHPID (bash 4+)", r"\$\{?(?:EPOCHSECONDS|EPOCHREALTIME|BASHPID)\b"),
    ("printf %(...)T (bash 4.2)", r"printf\s+(?:-v\s+\w+\s+)?['\"][^'\"]*%\("),
    ("sed -i without an attached suffix (BSD takes the next word as the suffix)",
     _CMD + r"sed\s+(?:-[a-zA-Z]+\s+)*-[a-zA-Z]*i(?:\s|$)"),
    ("sed -r (GNU; use -E)", _CMD + r"sed\s+(?:-[a-zA-Z]+\s+)*-[a-zA-Z]*r\b"),
    ("GNU timeout (not on macOS)", _CMD + r"g?timeout\s+(?:-|\d)"),
    ("readlink -f (GNU; macOS < 12.3)", r"\breadlink\s+-[a-zA-Z]*f"),
    ("date -d / date --date (GNU)", r"\bdate\s+(?:-[a-zA-Z]*d\b|--date)"),
    ("grep -P (GNU)", r"\bgrep\s+(?:-[a-zA-Z]+\s+)*-[a-zA-Z]*P"),
    ("stat -c / --format (GNU)", r"\bstat\s+(?:-c\b|--)"),
    ("xargs -r (GNU)", r"\bxargs\s+(?:-[a-zA-Z]+\s+)*-[a-zA-Z]*r\b"),
    ("find -printf (GNU)", r"\bfind\b.*\s-printf\b"),
    ("base64 -d (old macOS knows -D; use --decode)", r"\bbase64\s+-d\b"),
    ("head -n -N (GNU)", r"\bhead\s+-n\s*-\d"),
    ("mktemp --long-option (GNU)", r"\bmktemp\s+--"),
    ("flock (util-linux, not on macOS)", _CMD + r"flock\b"),
]


def _code_lines(text):
    """(line number, code) of a script: comments, heredoc bodies and blank
    lines dropped; lines marked `# portable-ok:` kept out."""
    out = []
    heredoc = None
    for n, line in enumerate(text.splitlines(), 1):
        if heredoc:
            if line.strip() == heredoc:
                heredoc = None
            continue
        if "# portable-ok:" in line or not line.strip() or line.lstrip().startswith("#"):
            pass
        else:
            out.append((n, re.sub(r"\s#\s.*$", "", line)))
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if m and "<<<" not in line:
            heredoc = m.group(1)
    return out


def bash32_findings(text):
    found = []
    for n, code in _code_lines(text):
        for what, rule in BASH32_RULES:
            if re.search(rule, code):
                found.append((n, what, code.strip()))
    return found


def operator_scripts():
    import glob
    out = []
    for pattern in OPERATOR_SCRIPTS:
        out += sorted(glob.glob(os.path.join(k.SOURCE_DIR, pattern)))
    return out


def test_bash32_and_bsd_compat():
    scripts = operator_scripts()
    ct.check(len(scripts) >= 10, "too few operator scripts: %s" % scripts)
    shellcheck = shutil.which("shellcheck")
    ct.check(shellcheck, "shellcheck not found (Debian package shellcheck)")
    rc, out, err = k.run([shellcheck, "--shell=bash", "--external-sources", "--format=gcc"] + scripts,
                         timeout=300)
    ct.check(rc == 0, "shellcheck --shell=bash findings:\n%s%s" % (out, err))
    problems = []
    for path in scripts:
        with open(path) as f:
            text = f.read()
        ct.check(text.startswith("#!/usr/bin/env bash") or path.endswith("lib.sh"),
                 "%s: not started with #!/usr/bin/env bash (macOS' bash is not in /bin/bash 5)" % path)
        for n, what, code in bash32_findings(text):
            problems.append("%s:%d: %s: %s" % (os.path.relpath(path, k.SOURCE_DIR), n, what, code))
    ct.check(not problems, "not portable to bash 3.2 / BSD tools:\n  " + "\n  ".join(problems))


# Lines the linter must flag: each rule once, and the lines that broke the
# scripts before (resilience-test.sh, deploy.sh, build-image.sh).
BAD_SAMPLES = [
    'declare -A seen', 'local -n ref=$1', 'echo "${a[-1]}"', 'log "${results[-1]}"',
    'echo "${s:0:-2}"', 'mapfile -t args < <(store_args)', 'x=$(readarray -t a)', 'echo "${x,,}"',
    'echo "${x^^}"', 'cmd &>> log', 'cmd |& tee', 'coproc cat', '[[ -v foo ]]', 'wait -n',
    'a) x ;;&', 'exec {fd}>file', 'for i in {1..10..2}; do :; done', 'shopt -s globstar',
    'echo $EPOCHSECONDS', "printf '%(%s)T' -1",
    'sed -i -E "s#^(x)#\\1#" "$rendered"', "sed -i 's/a/b/' f", "sed -r 's/a/b/' f",
    'command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1',
    'd=$(readlink -f "$0")', 'date -d @1', 'grep -P "x" f', 'stat -c %s f', 'xargs -r rm',
    'find . -printf "%p"', 'base64 -d', 'head -n -1 f', 'mktemp --tmpdir x', 'flock -w 1 9',
]
GOOD_SAMPLES = [
    'echo "${a[${#a[@]} - 1]}"', 'sed -E "s/a/b/" f >f.new', "sed -i.bak 's/a/b/' f",
    'kc rollout status x --timeout="$(left)"', 'timeout=180', '--timeout) timeout=${2:?}; shift 2 ;;',
    'base64 --decode', 'date -u +%H:%M:%S', 'echo "${x:-default}"', 'echo "${x: -1}"',
    'local args=(--root "$d")', 'for ((i = ${#a[@]} - 1; i >= 0; i--)); do :; done',
    'cat <<EOF\nmapfile inside a heredoc is text\nEOF', 'flock -w 1 9  # portable-ok: Linux-only path',
]


def test_bash32_linter_can_fail():
    for sample in BAD_SAMPLES:
        ct.check(bash32_findings(sample), "the linter passed %r" % sample)
    for sample in GOOD_SAMPLES:
        ct.check(not bash32_findings(sample), "the linter flagged %r: %s" % (sample, bash32_findings(sample)))
    # Every rule is exercised by a sample.
    hit = {what for s in BAD_SAMPLES for _, what, _ in bash32_findings(s)}
    unused = [what for what, _ in BASH32_RULES if what not in hit]
    ct.check(not unused, "rules without a failing sample: %s" % unused)


if __name__ == "__main__":
    ct.main([test_shellcheck, test_scripts_executable_with_help, test_bash32_linter_can_fail,
             test_bash32_and_bsd_compat])
