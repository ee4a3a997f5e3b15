#!/usr/bin/env bash
# The README's second command: installs what the tests need, checks the
# formatting, then builds and runs the whole suite twice: with gcc (warnings
# as errors) and with clang under AddressSanitizer + UndefinedBehaviorSanitizer.
# Every step runs even when an earlier one failed (a failing gcc test does not
# hide what the sanitizers find); a summary of all steps comes last, and the
# script exits 1 if any failed.
# Set CONVEYOR_TEST_LABELS to a ctest label regex to run a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

jobs=$(nproc)
labels=${CONVEYOR_TEST_LABELS:-}
# Per-test bound; the suite as a whole takes well under 30 minutes.
ctest_args=(--output-on-failure --timeout 1500 -j "$jobs")
if [[ -n "$labels" ]]; then
  ctest_args+=(-L "$labels")
fi

summary=()
failed=0

# step NAME COMMAND...: runs it, records "ok"/"FAILED (exit N)" and its time.
step() {
  local name=$1 start=$SECONDS rc=0
  shift
  echo "== $name"
  "$@" || rc=$?
  if ((rc == 0)); then
    summary+=("$(printf '%-28s ok      %4ds' "$name" $((SECONDS - start)))")
  else
    summary+=("$(printf '%-28s FAILED  %4ds  (exit %d)' "$name" $((SECONDS - start)) "$rc")")
    failed=1
  fi
  return "$rc"
}

# What the last ctest run in build dir $1 failed, and what it skipped with
# the reason the test printed ("SKIP: ..."; ctest itself keeps none).
ctest_notes() {
  local dir=$1 name reason
  local failed_log=$dir/Testing/Temporary/LastTestsFailed.log
  [[ -f $failed_log ]] && summary+=("    failed: $(cut -d: -f2- "$failed_log" | tr '\n' ' ')")
  [[ -f $dir/ctest.out ]] || return 0
  while read -r name; do
    reason=$(awk -v t="$name" '$0 ~ "Testing: " t "$" { f = 1; next }
      f && /^SKIP/ { print; exit } f && /Testing: / { exit }' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null)
    summary+=("    skipped: $name${reason:+ ($reason)}")
  done < <(sed -n 's/^.*Test *#[0-9]*: \([^ ]*\) .*\*\*\*Skipped.*$/\1/p' "$dir/ctest.out")
  return 0
}

not_run() {
  summary+=("$(printf '%-28s not run (%s)' "$1" "$2")")
}

format_check() {
  local sources
  # The file list from git where this is a checkout, else (a release
  # tarball, no git) every C file of the source folders.
  mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null)
  if ((${#sources[@]} == 0)); then
    mapfile -t sources < <(find engine sdk plugins tests bench -name '*.[ch]' -not -path '*/node_modules/*' | sort)
  fi
  clang-format --dry-run -Werror "${sources[@]}"
}

configure_gcc() {
  cmake -S . -B build-test -G Ninja -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    cmake --build build-test
}

configure_asan() {
  cmake -S . -B build-asan -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
    -DCONVEYOR_SANITIZE=ON >/dev/null &&
    cmake --build build-asan
}

gcc_tests() {
  rm -f build-test/Testing/Temporary/LastTestsFailed.log
  (cd build-test && ctest "${ctest_args[@]}" | tee ctest.out)
}

asan_tests() {
  (
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    rm -f build-asan/Testing/Temporary/LastTestsFailed.log
    cd build-asan && ctest "${ctest_args[@]}" -LE "image|valgrind|bench" | tee ctest.out
  )
}

step "format check (clang-format)" format_check || true

if step "gcc build (-Werror)" configure_gcc; then
  step "gcc: tests" gcc_tests || true
  ctest_notes build-test
else
  not_run "gcc: tests" "the gcc build failed"
fi

if step "clang ASan+UBSan build" configure_asan; then
  step "clang ASan+UBSan: tests" asan_tests || true
  ctest_notes build-asan
else
  not_run "clang ASan+UBSan: tests" "the clang build failed"
fi

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
if ((failed)); then
  echo "test.sh: FAILED (see the failing steps above)"
  exit 1
fi
echo "test.sh: all steps passed"
