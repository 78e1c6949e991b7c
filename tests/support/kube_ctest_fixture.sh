#!/usr/bin/env bash
# One test Kubernetes API (tests/kube/cluster.sh) shared by the separate CTest entries of a test
# binary, as a CTest fixture: `start DIR` (FIXTURES_SETUP) starts it in the background and
# returns once it is ready; the tests find it through FERRY_TEST_KUBE_DIR=DIR/cluster
# (tests/support/kube.h); `stop DIR` (FIXTURES_CLEANUP) stops it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
action="${1:?usage: kube_ctest_fixture.sh start|stop DIR}"
dir="${2:?usage: kube_ctest_fixture.sh start|stop DIR}"
# Stops the cluster.sh whose pid DIR/pid holds (only if that pid is still a cluster.sh: a stale
# file after a reboot may name another process) and waits, bounded, until it has gone.
stop_cluster() {
  local pid
  [[ -f "$dir/pid" ]] || return 0
  pid="$(cat "$dir/pid")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'cluster\.sh'; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/pid"
}
case "$action" in
  start)
    stop_cluster
    rm -rf "$dir"
    mkdir -p "$dir"
    # cluster.sh stops when its parent goes: the parent is a detached shell that waits for it,
    # and stops it when ctest ($PPID here) is gone without running the cleanup (killed,
    # interrupted, timed out).
    setsid bash -c 'bash "$0" "$1/cluster" & child=$!; echo $child >"$1/pid"
      while kill -0 "$2" 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done
      kill $child 2>/dev/null; wait' \
      "$here/../kube/cluster.sh" "$dir" "$PPID" </dev/null >"$dir/log" 2>&1 &
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
    stop_cluster
    ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
