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
# registry_scanner_bench pushes 10,000 images to a real registry first: ~15 min in all.
# cluster_syncer_bench starts a Kubernetes API (tests/kube/cluster.sh; built once per machine).
bash tests/kube/build.sh >/dev/null
# e2e_bench runs the four services against a registry, a git repo and the Kubernetes API.
for bench in manifest_bench git_writer_bench registry_scanner_bench cluster_syncer_bench e2e_bench; do
  "$build/bench/$bench" --benchmark_format=json --benchmark_out="$build/$bench.json" \
    --benchmark_out_format=json >/dev/null
done
python3 scripts/bench_report.py "$build/manifest_bench.json" "$build/git_writer_bench.json" \
  "$build/registry_scanner_bench.json" "$build/cluster_syncer_bench.json" \
  "$build/e2e_bench.json" > "$report"
cat "$report"
