#!/usr/bin/env bash
# README command 1: builds Ferry and runs its four services locally on 127.0.0.1 with the
# embedded defaults (gRPC 3030-3033, metrics 9791-9794) and a local config repo seeded from
# examples/ (a bare git repo served over file://), shows that each service is healthy,
# lists its services through reflection and shows its metrics, then shows git-writer at
# work: the repo's head and workloads, and a release committed through ApplyUpdates.
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

# The config repo: a bare repo seeded from examples/ with the git CLI.
repo="$run_dir/config.git"
git init -q --bare -b main "$repo"
seed="$run_dir/seed"
git clone -q "$repo" "$seed" 2>/dev/null
cp -r examples/. "$seed/"
git -C "$seed" -c user.name=Ferry -c user.email=ferry@localhost add -A
git -C "$seed" -c user.name=Ferry -c user.email=ferry@localhost commit -q -m "Example manifests"
git -C "$seed" push -q origin HEAD:main

components=(api git-writer registry-scanner cluster-syncer)
declare -A extra_args=(
  [git-writer]="--git_url=file://$repo --git_branch=main --state_dir=$run_dir/git-writer"
  [registry-scanner]="--state_dir=$run_dir/registry-scanner"
)
services=(ferry.v1.Ferry ferry.v1.GitWriter ferry.v1.RegistryScanner ferry.v1.ClusterSyncer)

for i in "${!components[@]}"; do
  c="${components[$i]}"
  # shellcheck disable=SC2086
  "$build/services/$c/ferry-$c" --grpc_address="127.0.0.1:$((3030 + i))" \
    --metrics_address="127.0.0.1:$((9791 + i))" ${extra_args[$c]:-} 2>"$run_dir/$c.log" &
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
echo "== git-writer and the config repo ($repo)"
echo "head: $("$reflect" -plaintext 127.0.0.1:3031 ferry.v1.GitWriter/Head | tr -d '\n ')"
echo "workloads:"
"$reflect" -plaintext 127.0.0.1:3031 ferry.v1.GitWriter/ListWorkloads |
  grep -E '"(id|image)"' | sed 's/^ */  /'
echo "release default:deployment/helloworld helloworld -> master-a000002:"
"$reflect" -plaintext -d '{"edits":[{"workload":"default:deployment/helloworld","image":{"container":"helloworld","fromImage":"quay.io/weaveworks/helloworld:master-a000001","toImage":"quay.io/weaveworks/helloworld:master-a000002"}}],"cause":{"user":"Local Demo <demo@localhost>"}}' \
  127.0.0.1:3031 ferry.v1.GitWriter/ApplyUpdates | grep -E '"(revision|retries)"' | sed 's/^ */  /'
echo "upstream now:"
git -C "$repo" log --format='  %h %an: %s' -2
git -C "$repo" show --format= HEAD | grep -E '^[-+] ' | sed 's/^/  /'
echo
echo "All four services are up and SERVING."
if ((keep_running)); then
  echo "Try:  $reflect -plaintext 127.0.0.1:3031 ferry.v1.GitWriter/ListWorkloads"
  echo "      $reflect -plaintext 127.0.0.1:3030 describe ferry.v1.Ferry"
  echo "      (or grpcurl -plaintext 127.0.0.1:3030 describe ferry.v1.Ferry)"
  echo "Press Ctrl-C to stop."
  wait
fi
