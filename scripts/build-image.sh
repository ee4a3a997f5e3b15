#!/usr/bin/env bash
# Builds the Conveyor container image from the repository's Dockerfile.
#
#   scripts/build-image.sh [options]          build (docker if an engine answers, else buildah)
#   scripts/build-image.sh podman ARGS...     run podman on the image store this script uses
#   scripts/build-image.sh base [options]     only make (or reuse) the bookworm base image
#                                             (scripts/fresh-check.sh runs the README in it)
#
# Options:
#   --tag NAME:TAG     image name (default conveyor:<project version>)
#   --builder B        auto (default), docker or buildah
#   --state-dir DIR    buildah state: storage, base image, containers.conf
#                      (default $CONVEYOR_IMAGE_STATE_DIR, else ~/.cache/conveyor-image)
#   --refresh-base     rebuild the local bookworm base image (security updates)
#   --save FILE        also write the image as a docker-archive tarball
#                      (for `kind load image-archive`, `ctr images import`, ...)
#
# Without a Docker engine (and without registry access) the script makes the
# base image itself: `debootstrap --variant=minbase bookworm`, imported as
# localhost/bookworm-min and kept in the state dir, then `buildah bud
# --pull=never` with BASE_IMAGE=localhost/bookworm-min. Apt inside the build
# reaches Debian's mirrors. The buildah path needs root (debootstrap, overlay).
#
# State dir layout (stable; tests and operators rely on it):
#   containers.conf   runtime runc and ulimits that work in restricted sandboxes
#   storage/          image store (--root)        run/   runtime state (--runroot)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(sed -n 's/^project(conveyor VERSION \([0-9][0-9.]*\).*/\1/p' "$repo_root/CMakeLists.txt")
tag="conveyor:${version:-0.0.0}"
builder=${CONVEYOR_BUILDER:-auto}
state_dir=${CONVEYOR_IMAGE_STATE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/conveyor-image}
refresh_base=0
save_file=
base_image=localhost/bookworm-min
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian_security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

die() {
	echo "build-image: $*" >&2
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}


prepare_state() {
	mkdir -p "$state_dir/storage" "$state_dir/run"
	# Podman tells a reboot by its runtime state vanishing (it expects
	# --runroot on a tmpfs); here it sits on disk and outlives a reboot,
	# and podman then trusts locks the reboot wiped ("lock mismatch").
	# Clear it when the boot id changes, as a tmpfs would.
	local boot_id
	boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)
	if [[ -n $boot_id && $(cat "$state_dir/run.boot_id" 2>/dev/null) != "$boot_id" ]]; then
		rm -rf "$state_dir/run"
		mkdir -p "$state_dir/run"
		echo "$boot_id" >"$state_dir/run.boot_id"
	fi
	# crun and the default ulimits (above a sandbox's hard limits) fail in
	# some sandboxes; runc with modest explicit limits works everywhere.
	cat >"$state_dir/containers.conf.tmp" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
runtime = "runc"
CONF
	mv "$state_dir/containers.conf.tmp" "$state_dir/containers.conf"
	export CONTAINERS_CONF="$state_dir/containers.conf"
}

run_podman() {
	local args=(--root "$state_dir/storage" --runroot "$state_dir/run" --storage-driver overlay)
	prepare_state
	exec podman "${args[@]}" "$@"
}

# run_bounded SECONDS CMD...: runs CMD, killed after SECONDS (exit 124).
# Plain bash: macOS has no GNU timeout, and without it a working Docker
# looked like no Docker at all.
run_bounded() {
	local limit=$1 pid i
	shift
	"$@" &
	pid=$!
	for ((i = 0; i < limit * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			return
		fi
		sleep 0.1
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 124
}

docker_answers() {
	command -v docker >/dev/null 2>&1 && run_bounded 20 docker info >/dev/null 2>&1
}

make_base_image() {
	local rootfs args=(--root "$state_dir/storage" --runroot "$state_dir/run" --storage-driver overlay)
	if [[ $refresh_base == 0 ]] && podman "${args[@]}" image exists "$base_image"; then
		echo "build-image: reusing base image $base_image"
		return 0
	fi
	command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
	[[ $(id -u) == 0 ]] || die "making the base image needs root (debootstrap)"
	rootfs=$(mktemp -d "$state_dir/rootfs.XXXXXX")
	# shellcheck disable=SC2064 # expand now: rootfs is local
	trap "rm -rf '$rootfs'" EXIT
	echo "build-image: debootstrap --variant=minbase bookworm (about a minute)"
	debootstrap --variant=minbase bookworm "$rootfs" "$debian_mirror" >"$state_dir/debootstrap.log" 2>&1 ||
		die "debootstrap failed, see $state_dir/debootstrap.log"
	# The same suites as debian:bookworm-slim, security updates included.
	rm -f "$rootfs/etc/apt/sources.list"
	cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $debian_mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $debian_security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/debootstrap
	tar -C "$rootfs" -c . | podman "${args[@]}" import --change 'CMD ["bash"]' - "$base_image" >/dev/null
	rm -rf "$rootfs"
	trap - EXIT
	echo "build-image: imported $base_image"
}

# One build at a time per state dir: debootstrap and the store share it.
lock_state() {
	exec 9>"$state_dir/lock"
	flock -w 1800 9 || die "timed out waiting for another build using $state_dir" # portable-ok: buildah path, Linux only
}

build_base_only() {
	command -v podman >/dev/null || die "podman not found (apt-get install podman runc debootstrap)"
	prepare_state
	lock_state
	make_base_image
}

build_with_buildah() {
	local args
	command -v buildah >/dev/null || die "no Docker engine and no buildah (apt-get install buildah podman runc debootstrap)"
	command -v podman >/dev/null || die "podman not found (apt-get install podman)"
	prepare_state
	args=(--root "$state_dir/storage" --runroot "$state_dir/run" --storage-driver overlay)
	lock_state
	make_base_image
	buildah "${args[@]}" bud --pull=never --network host --layers \
		--build-arg BASE_IMAGE="$base_image" \
		-f "$repo_root/Dockerfile" -t "$tag" "$repo_root"
	if [[ -n $save_file ]]; then
		rm -f "$save_file"
		podman "${args[@]}" save --format docker-archive -o "$save_file" "$tag"
	fi
}

build_with_docker() {
	docker build -f "$repo_root/Dockerfile" -t "$tag" "$repo_root"
	if [[ -n $save_file ]]; then
		docker save -o "$save_file" "$tag"
	fi
}

if [[ ${1:-} == podman ]]; then
	shift
	while [[ ${1:-} == --state-dir ]]; do
		state_dir=$2
		shift 2
	done
	run_podman "$@"
fi

action=build
while [[ $# -gt 0 ]]; do
	case $1 in
	build) shift ;;
	base) action=base; shift ;;
	--tag) tag=${2:?--tag needs a value}; shift 2 ;;
	--builder) builder=${2:?--builder needs a value}; shift 2 ;;
	--state-dir) state_dir=${2:?--state-dir needs a value}; shift 2 ;;
	--refresh-base) refresh_base=1; shift ;;
	--save) save_file=${2:?--save needs a file}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

if [[ $action == base ]]; then
	build_base_only
	exit 0
fi

case $builder in
auto)
	if docker_answers; then build_with_docker; else build_with_buildah; fi ;;
docker) build_with_docker ;;
buildah) build_with_buildah ;;
*) die "unknown builder '$builder' (auto, docker, buildah)" ;;
esac
echo "build-image: built $tag"
