#!/usr/bin/env bash
# README command 2: installs what the tests need, builds, and runs the whole test suite with
# CTest (real processes and peers on 127.0.0.1 only).
#
# Extra arguments go to ctest, e.g. scripts/test.sh -R ServiceBinary --output-on-failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh test
# The Kubernetes API the cluster-syncer tests use: built once per machine, cached.
bash tests/kube/build.sh >/dev/null
cd "${FERRY_BUILD_DIR:-build}"
ctest -j2 --output-on-failure --timeout 600 "$@"
