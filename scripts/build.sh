#!/usr/bin/env bash
# Installs the build dependencies (Debian 12 packages, idempotently) and builds Ferry into
# build/ with two parallel jobs.
#
# Environment: FERRY_BUILD_DIR (default: build), FERRY_BUILD_TYPE (default: RelWithDebInfo).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-build}"
bash scripts/install-deps.sh "$profile"
build_dir="${FERRY_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${FERRY_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$build_dir" -j2
