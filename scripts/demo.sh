#!/usr/bin/env bash
# The README's first command: installs what the build needs, builds, and runs
# the built-in demo (sim_speed -> anomaly -> console, /metrics on
# 127.0.0.1:8000). Ctrl-C drains and exits 0. Extra arguments go to `run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVEYOR_TESTS=OFF >/dev/null
cmake --build build
listen="${CONVEYOR_HTTP_LISTEN:-127.0.0.1:8000}"
echo "Console: http://$listen/  Terminal view: build/conveyor top --url http://$listen" >&2
exec build/conveyor run "$@"
