#!/usr/bin/env bash
# Runs the README's two commands the way a new user would: on a minimal
# Debian 12 (debootstrap --variant=minbase bookworm: no git, no sudo, no
# ca-certificates) in a podman container, from a copy of the checkout
# without .git, and prints each command's outcome and wall time.
#
#   scripts/fresh-check.sh [options]
#
#   --state-dir DIR      base image, image store and run folders
#                        (default $CONVEYOR_FRESH_DIR, else /var/tmp/conveyor-fresh)
#   --refresh-base       debootstrap the base image again (security updates)
#   --only demo|test     run only one of the two commands
#   --demo-timeout S     bound on scripts/demo.sh up to its first anomaly (default 1800)
#   --test-timeout S     bound on scripts/test.sh (default 5400)
#   --no-host-ca         do not hand the host's CA bundle to npm in the container
#   --keep               keep the source copy and caches of this run (else logs only)
#
# Not part of scripts/test.sh: it takes as long as a first install, build and
# test run (see the README). Needs root, podman, runc and debootstrap
# (`scripts/install-deps.sh test` installs them) and the network access the
# README names: a Debian mirror (DEBIAN_MIRROR, default deb.debian.org) and
# the npm registry. The base image is made once by `scripts/build-image.sh
# base` and kept in the state dir (about 45 s to make, then reused).
#
# The demo runs until its first anomaly is printed, then gets Ctrl-C (SIGINT)
# and must exit 0. Its HTTP endpoint listens on a free port
# (CONVEYOR_HTTP_LISTEN), since the container shares the host's network.
# The container is privileged because the image test builds images inside
# it (nested buildah); the host's npm settings (registry, proxy, CA bundle)
# are passed in, because a machine behind the same proxy needs them too.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state_dir=${CONVEYOR_FRESH_DIR:-/var/tmp/conveyor-fresh}
refresh_base=0
only=
demo_timeout=1800
test_timeout=5400
host_ca=1
keep=0
base_image=localhost/bookworm-min

die() {
	echo "fresh-check: $*" >&2
	exit 2
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--state-dir) state_dir=${2:?--state-dir needs a value}; shift 2 ;;
	--refresh-base) refresh_base=1; shift ;;
	--only) only=${2:?--only needs demo or test}; shift 2 ;;
	--demo-timeout) demo_timeout=${2:?}; shift 2 ;;
	--test-timeout) test_timeout=${2:?}; shift 2 ;;
	--no-host-ca) host_ca=0; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[[ -z $only || $only == demo || $only == test ]] || die "--only takes demo or test"
[[ $(id -u) == 0 ]] || die "needs root (debootstrap, a privileged container)"
for tool in podman runc debootstrap python3; do
	command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh test installs it)"
done

podman_() {
	"$repo_root/scripts/build-image.sh" podman --state-dir "$state_dir" "$@"
}

elapsed() {
	printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the base image (cached)
mkdir -p "$state_dir/runs"
base_args=(base --state-dir "$state_dir")
((refresh_base)) && base_args+=(--refresh-base)
start=$SECONDS
timeout --foreground 900 "$repo_root/scripts/build-image.sh" "${base_args[@]}" ||
	die "making the base image failed (see $state_dir/debootstrap.log)"
echo "fresh-check: base image ready ($(elapsed $((SECONDS - start))))"

# ---- a copy of the checkout without .git (what a release tarball holds)
run_dir=$(mktemp -d "$state_dir/runs/$(date +%Y%m%d-%H%M%S).XXXX")
name=conveyor-fresh-$$
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	podman_ rm -f -t 5 "$name" >/dev/null 2>&1 || true
	if ((!keep)); then
		rm -rf "$run_dir/src" "$run_dir/cache"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$run_dir/src" "$run_dir/cache"
if git -C "$repo_root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked files as they are in the worktree, and new files not ignored.
	(cd "$repo_root" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
		tar --null -T - -c) | tar -C "$run_dir/src" -x
else
	tar -C "$repo_root" --exclude=.git --exclude='./build*' --exclude=node_modules \
		--exclude=__pycache__ --exclude=./bench/results -c . | tar -C "$run_dir/src" -x
fi
[[ ! -e $run_dir/src/.git ]] || die "the copy holds .git"
echo "fresh-check: source copy in $run_dir/src ($(du -sh "$run_dir/src" | cut -f1), no .git)"

# ---- the container
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_args=(run -d --name "$name" --privileged --network host
	--ulimit "nofile=1024:$(ulimit -Hn)" --ulimit nproc=1000:1000
	-v "$run_dir/src:/src" -v "$run_dir/cache:/root/.cache" -w /src
	-e "CONVEYOR_HTTP_LISTEN=127.0.0.1:$http_port" -e DEBIAN_FRONTEND=noninteractive)
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY DEBIAN_MIRROR; do
	[[ -n ${!var:-} ]] && run_args+=(-e "$var=${!var}")
done
registry=$(npm config get registry 2>/dev/null || true)
if [[ -n $registry && $registry != https://registry.npmjs.org/ ]]; then
	run_args+=(-e "npm_config_registry=$registry")
fi
if ((host_ca)); then
	ca=
	for f in "${NODE_EXTRA_CA_CERTS:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
		if [[ -n $f && -s $f ]]; then
			ca=$(readlink -f "$f")
			break
		fi
	done
	if [[ -n $ca ]]; then
		run_args+=(-v "$ca:/etc/conveyor-host-ca.pem:ro" -e NODE_EXTRA_CA_CERTS=/etc/conveyor-host-ca.pem)
		echo "fresh-check: npm in the container trusts the host's CA bundle $ca (NODE_EXTRA_CA_CERTS)"
	fi
fi
podman_ "${run_args[@]}" "$base_image" sleep infinity >/dev/null
echo "fresh-check: container $name (logs in $run_dir)"

# The demo: scripts/demo.sh until the first anomaly, then Ctrl-C; exit 0.
# Job control (set -m) so the background demo keeps SIGINT as a terminal
# would deliver it.
# shellcheck disable=SC2016 # expanded in the container
demo_script='set -m
scripts/demo.sh >/tmp/demo.log 2>&1 &
pid=$!
deadline=$((SECONDS + DEMO_TIMEOUT))
started=
while ! grep -q ANOMALY /tmp/demo.log; do
	[[ -z $started ]] && grep -q "\"level\":" /tmp/demo.log && started=$SECONDS
	if ! kill -0 $pid 2>/dev/null; then
		wait $pid; rc=$?
		cat /tmp/demo.log
		echo "demo: exited ($rc) before printing an anomaly"
		exit 1
	fi
	if ((SECONDS >= deadline)); then
		kill -TERM $pid; wait $pid
		cat /tmp/demo.log
		echo "demo: no anomaly within ${DEMO_TIMEOUT}s"
		exit 1
	fi
	sleep 1
done
first=$SECONDS
kill -INT $pid
rc=0; wait $pid || rc=$?
cat /tmp/demo.log
echo "demo: conveyor started after ${started:-?}s (install + build), first anomaly after ${first}s;" \
	"Ctrl-C: exit $rc after $((SECONDS - first))s more"
exit $rc'

summary=()
failed=0
# record WHAT RC SECONDS LOG MARKER: passed only with exit 0 and the line the
# command prints last on success (a podman exec cut short can exit 0 too).
record() {
	local what=$1 rc=$2 secs=$3
	if ((rc == 0)) && ! grep -q "$5" "$4"; then
		rc=125
		echo "$what: exit 0 but no \"$5\" in its log: it did not finish"
	fi
	if ((rc == 0)); then
		summary+=("$(printf '%-18s passed  %8s' "$what" "$(elapsed "$secs")")")
	else
		summary+=("$(printf '%-18s FAILED  %8s  (exit %d, log %s)' "$what" "$(elapsed "$secs")" "$rc" "$4")")
		failed=1
	fi
}

if [[ $only != test ]]; then
	echo "== scripts/demo.sh (until the first anomaly, then Ctrl-C)"
	start=$SECONDS
	rc=0
	timeout --foreground $((demo_timeout + 120)) \
		"$repo_root/scripts/build-image.sh" podman --state-dir "$state_dir" exec -w /src -e "DEMO_TIMEOUT=$demo_timeout" "$name" \
		bash -c "$demo_script" >"$run_dir/demo.log" 2>&1 || rc=$?
	secs=$((SECONDS - start))
	grep -E '^(installing|demo):' "$run_dir/demo.log" || tail -20 "$run_dir/demo.log"
	record "scripts/demo.sh" "$rc" "$secs" "$run_dir/demo.log" "^demo: .*Ctrl-C: exit 0"
fi

if [[ $only != demo ]]; then
	echo "== scripts/test.sh"
	start=$SECONDS
	rc=0
	timeout --foreground "$test_timeout" \
		"$repo_root/scripts/build-image.sh" podman --state-dir "$state_dir" exec -w /src "$name" \
		scripts/test.sh >"$run_dir/test.log" 2>&1 || rc=$?
	secs=$((SECONDS - start))
	sed -n '/^== summary/,$p' "$run_dir/test.log"
	grep -E '^[0-9]+% tests passed|^Total Test time' "$run_dir/test.log" || true
	((rc == 124)) && echo "scripts/test.sh did not finish within ${test_timeout}s"
	((rc == 0)) || tail -40 "$run_dir/test.log"
	record "scripts/test.sh" "$rc" "$secs" "$run_dir/test.log" "^test.sh: all steps passed"
fi

echo
echo "== fresh-check: Debian 12 minbase, $(nproc) cores, source without .git"
echo "host load average at the start: $load_start, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${summary[@]}"
echo "logs: $run_dir"
exit "$failed"
