#!/usr/bin/env bash
# Installs the Debian 12 packages Ferry needs to build and test. Idempotent: packages that
# are already installed are skipped, and apt-get is not called at all when nothing is missing.
#
# Usage: scripts/install-deps.sh [build|run|fuzz|bench|test]
#   build  compilers, libraries and code generators (default)
#   run    build + what scripts/run-local.sh uses (curl, ssh-keygen, python3, docker-registry)
#   fuzz   build + clang and libFuzzer
#   bench  build + python3 (report script)
#   test   build + the real peers the test suite starts (and fuzz, for its short run)
set -euo pipefail

profile="${1:-build}"

build_pkgs=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev libgrpc-dev
  libabsl-dev libgit2-dev libyaml-cpp-dev prometheus-cpp-dev libcurl4-openssl-dev
  libre2-dev libsqlite3-dev libcpp-httplib-dev libssl-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev libcli11-dev librnp-dev
  libgtest-dev libgmock-dev libbenchmark-dev grpc-proto
)
run_pkgs=(curl openssh-client python3 openssl docker-registry)
fuzz_pkgs=(clang libclang-rt-14-dev)
bench_pkgs=(python3 git docker-registry skopeo)
test_pkgs=(curl clang clang-format libclang-rt-14-dev openssh-server openssh-client git openssl python3
  docker-registry skopeo apache2-utils
  golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev prometheus procps sqlite3
  gnupg)

pkgs=("${build_pkgs[@]}")
case "$profile" in
  build) ;;
  run) pkgs+=("${run_pkgs[@]}") ;;
  fuzz) pkgs+=("${fuzz_pkgs[@]}") ;;
  bench) pkgs+=("${bench_pkgs[@]}") ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  *) echo "install-deps.sh: unknown profile '$profile' (use build, run, fuzz, bench or test)" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi

echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
