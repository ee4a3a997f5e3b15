#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS [TARGET...]
#
# Builds the libFuzzer targets (clang, -DCONVEYOR_FUZZ=ON, in build-fuzz/)
# and runs each for SECONDS, one after the other, from its seed corpus
# (tests/fuzz/corpus/<target>) and regression cases
# (tests/fuzz/regressions/<target>), growing a working corpus in the build
# tree. An input that crashes a target (or hangs it, or leaks) is copied
# into tests/fuzz/regressions/<target>/, where ctest replays it
# (fuzz_corpus_<target>), and the script exits 1. Prints each target's
# executions at the end.
#
# Targets: spec record_json record_influx roundtrip (default: all).
# Environment:
#   FUZZ_RUNS=N       stop each target after N executions instead (SECONDS
#                     still bounds the time)
#   FUZZ_BUILD_DIR    the build directory (build-fuzz)
#   FUZZ_MAX_LEN      the longest input tried (4096)
#   FUZZ_NO_BUILD=1   use the binaries already built
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: tests/fuzz/run.sh SECONDS [TARGET...]" >&2
  exit 2
fi
seconds=$1
shift
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(spec record_json record_influx roundtrip)
fi
build=${FUZZ_BUILD_DIR:-build-fuzz}
max_len=${FUZZ_MAX_LEN:-4096}
src=tests/fuzz

if [[ -z ${FUZZ_NO_BUILD:-} ]]; then
  echo "== building the fuzz targets in $build (clang, libFuzzer)"
  cmake -S . -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCONVEYOR_FUZZ=ON >/dev/null
  cmake --build "$build" --target "${targets[@]/%/_fuzz}"
fi

status=0
summary=()
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/${t}_fuzz
  [[ -x $bin ]] || { echo "no such fuzz target: $t ($bin)" >&2; exit 2; }
  work=$build/tests/fuzz/corpus/$t
  artifacts=$build/tests/fuzz/artifacts/$t
  mkdir -p "$work" "$artifacts" "$src/regressions/$t"
  log=$build/tests/fuzz/$t.log
  limit=(-max_total_time="$seconds")
  if [[ -n ${FUZZ_RUNS:-} ]]; then
    limit+=(-runs="$FUZZ_RUNS")
  fi
  echo "== $t: ${FUZZ_RUNS:+$FUZZ_RUNS runs, }at most ${seconds}s (log: $log)"
  set +e
  "$bin" "${limit[@]}" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$work" "$src/corpus/$t" "$src/regressions/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  found=()
  for f in "$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/leak-* "$artifacts"/oom-*; do
    [[ -e $f ]] || continue
    name=$(basename "$f")
    if [[ ! -e $src/regressions/$t/$name ]]; then
      cp "$f" "$src/regressions/$t/$name"
      found+=("$name")
    fi
  done
  if [[ $rc -ne 0 || ${#found[@]} -gt 0 ]]; then
    status=1
    echo "!! $t: exit $rc; new regression cases: ${found[*]:-none}; the end of $log:"
    tail -40 "$log"
  fi
  summary+=("$(printf '%-14s %12s executions  exit %d  new cases %d' "$t" "${execs:-?}" "$rc" \
    "${#found[@]}")")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
