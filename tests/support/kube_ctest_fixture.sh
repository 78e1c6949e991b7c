#!/usr/bin/env bash
# One test Kubernetes API (tests/kube/cluster.sh) shared by the separate CTest entries of a test
# binary, as a CTest fixture: `start DIR` (FIXTURES_SETUP) starts it in the background and
# returns once it is ready; the tests find it through FERRY_TEST_KUBE_DIR=DIR/cluster
# (tests/support/kube.h); `stop DIR` (FIXTURES_CLEANUP) stops it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
action="${1:?usage: kube_ctest_fixture.sh start|stop DIR}"
dir="${2:?usage: kube_ctest_fixture.sh start|stop DIR}"
case "$action" in
  start)
    [[ -f "$dir/pid" ]] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -rf "$dir"
    mkdir -p "$dir"
    # cluster.sh stops when its parent goes: the parent is a detached shell that waits for it.
    setsid bash -c 'bash "$0" "$1/cluster" & echo $! >"$1/pid"; wait' \
      "$here/../kube/cluster.sh" "$dir" </dev/null >"$dir/log" 2>&1 &
    for _ in $(seq 1200); do  # the first start on a machine builds the binaries (minutes)
      grep -q '^ferry-kube ready ' "$dir/log" 2>/dev/null && exit 0
      if ! kill -0 "$!" 2>/dev/null; then break; fi
      sleep 1
    done
    cat "$dir/log" >&2
    echo "the test Kubernetes API did not start (its binaries: bash tests/kube/build.sh)" >&2
    exit 1
    ;;
  stop)
    [[ -f "$dir/pid" ]] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
