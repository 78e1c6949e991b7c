#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each for
# a bounded time on the seed corpus in fuzz/corpus/ (new inputs go to a scratch copy).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 600; the test suite runs 15)
# A crash leaves its input as build-fuzz/crash-* and makes the script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
bash scripts/install-deps.sh fuzz
build=build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DFERRY_FUZZ=ON -DFERRY_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target fuzzers
status=0
for target in manifest_loader:manifest manifest_editor:manifest image_reference:image_reference semver:semver names:names; do
  name="${target%%:*}"
  corpus="${target##*:}"
  work="$build/corpus-$name"
  mkdir -p "$work"
  cp -n fuzz/corpus/"$corpus"/* "$work"/ 2>/dev/null || true
  echo "== $name: ${seconds}s"
  if ! "$build/fuzz/${name}_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 \
      -timeout=10 -max_len=65536 -artifact_prefix="$build/crash-$name-" -print_final_stats=1 \
      "$work" 2>"$build/$name.log"; then
    echo "FAILED: $name (see $build/$name.log)" >&2
    tail -40 "$build/$name.log" >&2
    status=1
  else
    grep -E 'stat::number_of_executed_units|cov:' "$build/$name.log" | tail -2
  fi
done
exit "$status"
