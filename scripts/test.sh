#!/usr/bin/env bash
# The README's second command: installs what the tests need, checks the
# formatting, then builds and runs the whole suite twice: with gcc (warnings
# as errors) and with clang under AddressSanitizer + UndefinedBehaviorSanitizer.
# Set CONVEYOR_TEST_LABELS to a ctest label regex to run a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

jobs=$(nproc)
labels=${CONVEYOR_TEST_LABELS:-}
ctest_args=(--output-on-failure --timeout 1500 -j "$jobs")
if [[ -n "$labels" ]]; then
  ctest_args+=(-L "$labels")
fi

echo "== format check (clang-format)"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find engine sdk plugins tests bench -name '*.[ch]')
clang-format --dry-run -Werror "${sources[@]}"

echo "== gcc build (-Wall -Wextra -Werror)"
cmake -S . -B build-test -G Ninja -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-test
echo "== gcc: tests"
(cd build-test && ctest "${ctest_args[@]}")

echo "== clang build with AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DCONVEYOR_SANITIZE=ON >/dev/null
cmake --build build-asan
echo "== clang + sanitizers: tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest "${ctest_args[@]}" -LE "image|valgrind|bench")
