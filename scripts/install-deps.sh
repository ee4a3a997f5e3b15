#!/usr/bin/env bash
# Installs the Debian 12 packages Conveyor needs: `build` for building and
# running the engine, `test` for the whole test suite. Skips apt entirely when
# everything is present already.
set -euo pipefail

BUILD_PKGS=(build-essential cmake ninja-build pkg-config
  librdkafka-dev libssl-dev libcurl4-openssl-dev libyaml-dev libmicrohttpd-dev zlib1g-dev)
TEST_PKGS=(libcmocka-dev clang libclang-rt-14-dev valgrind python3 python3-matplotlib clang-format
  kcat influxdb influxdb-client prometheus openssl curl shellcheck tmux chromium
  buildah podman runc debootstrap uidmap catatonit)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-build}" == "test" ]]; then
  want+=("${TEST_PKGS[@]}")
  # kubectl renders k8s/ offline. Debian's is kubernetes-client; where some
  # other package already provides kubectl, keep that one (both own the file).
  command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client)
  # Node.js may come from another package that bundles npm: ask for the
  # commands, not for Debian's package names.
  command -v node >/dev/null 2>&1 || want+=(nodejs)
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The influxdb package starts a system service on install; the tests run
# their own instances on free ports, so keep the system one out of the way.
if [[ " ${missing[*]} " == *" influxdb "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now influxdb >/dev/null 2>&1 || true
fi
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
