#!/usr/bin/env bash
# README command 1: builds Ferry and runs its four services locally on 127.0.0.1 with the
# embedded defaults (gRPC 3030-3033, metrics 9791-9794), shows that each is healthy, lists
# and describes its services through reflection, and shows its metrics.
#
# On a terminal (or with --keep-running) it then stays up until Ctrl-C so you can call the
# services yourself; otherwise it stops them and exits. Everything it started is stopped on
# exit. Exit code: 0 when every service came up healthy, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

keep_running=0
[[ -t 0 ]] && keep_running=1
for arg in "$@"; do
  case "$arg" in
    --keep-running) keep_running=1 ;;
    --no-keep-running) keep_running=0 ;;
    *) echo "run-local.sh: unknown argument $arg (use --keep-running or --no-keep-running)" >&2; exit 2 ;;
  esac
done

bash scripts/build.sh run
build="${FERRY_BUILD_DIR:-build}"
reflect="$build/tools/ferry-reflect/ferry-reflect"
run_dir="$(mktemp -d /tmp/ferry-local.XXXXXX)"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped; logs are in $run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

components=(api git-writer registry-scanner cluster-syncer)
services=(ferry.v1.Ferry ferry.v1.GitWriter ferry.v1.RegistryScanner ferry.v1.ClusterSyncer)

for i in "${!components[@]}"; do
  c="${components[$i]}"
  "$build/services/$c/ferry-$c" --grpc_address="127.0.0.1:$((3030 + i))" \
    --metrics_address="127.0.0.1:$((9791 + i))" 2>"$run_dir/$c.log" &
  pids+=($!)
done

# Wait for each service's "listening" line (or its exit).
for i in "${!components[@]}"; do
  c="${components[$i]}"
  for _ in $(seq 1 200); do
    grep -q ' listening ' "$run_dir/$c.log" && break
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "ferry-$c did not start:" >&2
      cat "$run_dir/$c.log" >&2
      exit 1
    fi
    sleep 0.05
  done
done

status=0
for i in "${!components[@]}"; do
  c="${components[$i]}"
  addr="127.0.0.1:$((3030 + i))"
  echo "== ferry-$c  gRPC $addr  metrics http://127.0.0.1:$((9791 + i))/metrics"
  health="$("$reflect" -plaintext -d "{\"service\":\"${services[$i]}\"}" "$addr" grpc.health.v1.Health/Check | tr -d ' \n')"
  echo "health:  $health"
  [[ "$health" == '{"status":"SERVING"}' ]] || status=1
  echo "services: $("$reflect" -plaintext "$addr" list | tr '\n' ' ')"
  echo "rpcs:     $("$reflect" -plaintext "$addr" list "${services[$i]}" | sed 's/.*\.//' | tr '\n' ' ')"
  curl -fsS "http://127.0.0.1:$((9791 + i))/metrics" | grep -E '^ferry_build_info|^ferry_grpc_server_handled_total' | head -3 | sed 's/^/metrics:  /'
done

if ((status != 0)); then
  echo "some services are not healthy; logs in $run_dir" >&2
  exit 1
fi
echo
echo "All four services are up and SERVING."
if ((keep_running)); then
  echo "Try:  $reflect -plaintext 127.0.0.1:3030 describe ferry.v1.Ferry"
  echo "      (or grpcurl -plaintext 127.0.0.1:3030 describe ferry.v1.Ferry)"
  echo "Press Ctrl-C to stop."
  wait
fi
