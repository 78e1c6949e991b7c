#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each for
# a bounded time on its seed corpus (new inputs go to a scratch folder, the seeds are only
# read): fuzz/corpus/<name>/, and for the manifest targets also lib/manifest/testdata/ (the
# manifests the unit tests use, read in place).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 600; the test suite runs 15)
# A crash, a memory error or undefined behaviour (the first sanitizer report ends the target)
# leaves its input as build-fuzz/crash-* and makes the script exit non-zero. Before fuzzing,
# the ub_canary targets (fuzz/ub_canary.cc) are run on an input with planted undefined
# behaviour: the script fails unless both die with a UBSan report.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
bash scripts/install-deps.sh fuzz
build=build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DFERRY_FUZZ=ON -DFERRY_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target fuzzers

# Undefined behaviour is fatal also in code built with recoverable UBSan (the libraries).
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0

# The canaries: ub_canary is built as the fuzz targets (it must die even when UBSan is told
# to recover), ub_canary_recoverable as the libraries (it must die under UBSAN_OPTIONS).
canary_input="$build/ub-canary-input"
printf 'UB!\001' >"$canary_input"
for canary in ub_canary:halt_on_error=0 ub_canary_recoverable:"$UBSAN_OPTIONS"; do
  name="${canary%%:*}"
  log="$build/$name.log"
  if UBSAN_OPTIONS="${canary#*:}" "$build/fuzz/$name" "$canary_input" >"$log" 2>&1 ||
    ! grep -q 'runtime error: signed integer overflow' "$log"; then
    echo "FAILED: $name: planted undefined behaviour did not fail the run (see $log)" >&2
    tail -20 "$log" >&2
    status=1
  fi
done

for target in manifest_loader:manifest manifest_editor:manifest image_reference:image_reference \
  semver:semver names:names; do
  name="${target%%:*}"
  corpus="${target##*:}"
  work="$build/corpus-$name"
  mkdir -p "$work"
  seeds=(fuzz/corpus/"$corpus")
  [[ "$corpus" == manifest ]] && seeds+=(lib/manifest/testdata)
  echo "== $name: ${seconds}s"
  if ! "$build/fuzz/${name}_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -timeout=10 -max_len=65536 -artifact_prefix="$build/crash-$name-" -print_final_stats=1 \
    "$work" "${seeds[@]}" 2>"$build/$name.log"; then
    echo "FAILED: $name (see $build/$name.log)" >&2
    tail -40 "$build/$name.log" >&2
    status=1
  else
    grep -E 'stat::number_of_executed_units|cov:' "$build/$name.log" | tail -2
  fi
done
exit "$status"
