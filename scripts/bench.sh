#!/usr/bin/env bash
# Runs every benchmark of the project and writes one markdown report with Ferry's figures,
# the baselines' figures from the same run, and the ratios.
#
# Usage: scripts/bench.sh [REPORT]   (default: build/bench-report.md)
set -euo pipefail
cd "$(dirname "$0")/.."
report="${1:-build/bench-report.md}"
bash scripts/build.sh bench
build="${FERRY_BUILD_DIR:-build}"
json="$build/manifest_bench.json"
"$build/bench/manifest_bench" --benchmark_format=json --benchmark_out="$json" \
  --benchmark_out_format=json >/dev/null
python3 scripts/bench_report.py "$json" > "$report"
cat "$report"
