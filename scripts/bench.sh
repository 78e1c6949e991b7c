#!/usr/bin/env bash
# Runs every benchmark of the project and writes one markdown report with Ferry's figures,
# the baselines' figures from the same run, and the ratios.
#
# Usage: scripts/bench.sh [REPORT]   (default: build/bench-report.md)
# Env:   FERRY_BENCH_SCALE_10K=1   also run scale_bench at 10,000 workloads (~15-25 min more);
#        the report then shows each scale figure at 1,000 and 10,000 and how it grew.
#        On its own: FERRY_SCALE_WORKLOADS=10000 build/bench/scale_bench
set -euo pipefail
cd "$(dirname "$0")/.."
report="${1:-build/bench-report.md}"
bash scripts/build.sh bench
build="${FERRY_BUILD_DIR:-build}"
# registry_scanner_bench pushes 10,000 images to a real registry first: ~15 min in all.
# cluster_syncer_bench starts a Kubernetes API (tests/kube/cluster.sh; built once per machine).
bash tests/kube/build.sh >/dev/null
# e2e_bench runs the four services against a registry, a git repo and the Kubernetes API;
# scale_bench the same with a generated repo of 1,000 workloads (a few minutes);
# kustomize_bench syncs 100 kustomize roots next to kubectl apply -k per root (~4 min).
for bench in manifest_bench git_writer_bench registry_scanner_bench cluster_syncer_bench e2e_bench \
  scale_bench kustomize_bench; do
  "$build/bench/$bench" --benchmark_format=json --benchmark_out="$build/$bench.json" \
    --benchmark_out_format=json >/dev/null
done
scale=("$build/scale_bench.json")
if [[ "${FERRY_BENCH_SCALE_10K:-}" == 1 ]]; then
  "$build/bench/scale_bench" --workloads=10000 --benchmark_format=json \
    --benchmark_out="$build/scale_bench_10000.json" --benchmark_out_format=json >/dev/null
  scale+=("$build/scale_bench_10000.json")
fi
python3 scripts/bench_report.py "$build/manifest_bench.json" "$build/git_writer_bench.json" \
  "$build/registry_scanner_bench.json" "$build/cluster_syncer_bench.json" \
  "$build/e2e_bench.json" "${scale[@]}" "$build/kustomize_bench.json" > "$report"
cat "$report"
