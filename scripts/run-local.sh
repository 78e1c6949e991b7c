#!/usr/bin/env bash
# README command 1: builds Ferry and runs its four services locally on 127.0.0.1 with the
# embedded defaults (gRPC 3030-3033, metrics 9791-9794), a local config repo seeded from
# examples/ (a bare git repo served over file://) and a real Kubernetes API on loopback
# (tests/kube/cluster.sh; or your cluster with --kubeconfig PATH), shows that each service
# is healthy, lists its services through reflection and shows its metrics, then shows the
# loop: cluster-syncer applying the repo, a release committed through git-writer's
# ApplyUpdates, and the new image in the cluster.
#
# On a terminal (or with --keep-running) it then stays up until Ctrl-C so you can call the
# services yourself; otherwise it stops them and exits. Everything it started is stopped on
# exit. Exit code: 0 when every service came up healthy, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

keep_running=0
[[ -t 0 ]] && keep_running=1
kubeconfig=""
while (($#)); do
  case "$1" in
    --keep-running) keep_running=1 ;;
    --no-keep-running) keep_running=0 ;;
    --kubeconfig) kubeconfig="${2:?--kubeconfig needs a path}"; shift ;;
    --kubeconfig=*) kubeconfig="${1#--kubeconfig=}" ;;
    *) echo "run-local.sh: unknown argument $1 (use --keep-running, --no-keep-running or --kubeconfig PATH)" >&2; exit 2 ;;
  esac
  shift
done

bash scripts/build.sh run
if [[ -z "$kubeconfig" ]]; then
  echo "== building the local Kubernetes API (first run on a machine: ~8 minutes; cached after)"
  bash tests/kube/build.sh >/dev/null
fi
build="${FERRY_BUILD_DIR:-build}"
reflect="$build/tools/ferry-reflect/ferry-reflect"
run_dir="$(mktemp -d /tmp/ferry-local.XXXXXX)"
pids=()

cleanup() {
  # Services first, then the Kubernetes API they talk to.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do wait "${pids[$i]}" 2>/dev/null || true; done
  echo "stopped; logs are in $run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The Kubernetes API: the one the tests use, unless a kubeconfig was given.
if [[ -z "$kubeconfig" ]]; then
  bash tests/kube/cluster.sh "$run_dir/kube" >"$run_dir/kube.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do
    grep -q '^ferry-kube ready' "$run_dir/kube.log" && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "the local Kubernetes API did not start:" >&2; cat "$run_dir/kube.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q '^ferry-kube ready' "$run_dir/kube.log" || { echo "the local Kubernetes API is not ready after 60 s" >&2; exit 1; }
  kubeconfig="$run_dir/kube/kubeconfig"
  kubectl="$(cat "$run_dir/kube/bin")/kubectl"
  echo "== Kubernetes API $(cat "$run_dir/kube/server")  (KUBECONFIG=$kubeconfig)"
else
  kubectl="$(command -v kubectl || true)"
fi

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
  [cluster-syncer]="--kubeconfig=$kubeconfig --git_writer_address=127.0.0.1:3031 --sync_interval=1m"
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
first_service=$((${#pids[@]} - ${#components[@]}))
for i in "${!components[@]}"; do
  c="${components[$i]}"
  for _ in $(seq 1 200); do
    grep -q ' listening ' "$run_dir/$c.log" && break
    if ! kill -0 "${pids[$((first_service + i))]}" 2>/dev/null; then
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
echo "== a release through the public api: a job, followed with WatchJob"
echo "(forced: the example images live on quay.io, which this local demo does not reach)"
job="$("$reflect" -plaintext -d '{"spec":{"workloads":["default:deployment/helloworld"],"image":"quay.io/weaveworks/helloworld:master-a000002","force":true},"cause":{"user":"Local Demo <demo@localhost>","message":"released by run-local.sh"}}' \
  127.0.0.1:3030 ferry.v1.Ferry/Release | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
echo "job: $job"
"$reflect" -plaintext -d "{\"id\":\"$job\"}" 127.0.0.1:3030 ferry.v1.Ferry/WatchJob >/dev/null
"$reflect" -plaintext -d "{\"id\":\"$job\"}" 127.0.0.1:3030 ferry.v1.Ferry/GetJob | python3 -c '
import datetime, json, sys
job = json.load(sys.stdin)
t0 = None
for stage in job["stages"]:
    sec = datetime.datetime.fromisoformat(stage["time"]).timestamp()
    t0 = sec if t0 is None else t0
    print("  %-28s +%5.0f ms  %s %s" % (stage["kind"].replace("JOB_STAGE_KIND_", "").lower(),
          (sec - t0) * 1000, stage.get("message", ""), stage.get("revision", "")[:12]))
for r in job.get("results", []):
    print("  %-40s %s %s" % (r["workload"], r["status"].replace("WORKLOAD_RESULT_STATUS_", ""),
          ", ".join(u["container"] + ": " + u["toImage"] for u in r.get("updates", [])) or r.get("reason", "")))
print("  state: " + job["state"].replace("JOB_STATE_", ""))
'
echo "upstream now:"
git -C "$repo" log --format='  %h %an: %s' -2
git -C "$repo" show --format= HEAD | grep -E '^[-+] ' | sed 's/^/  /'
echo
echo "== the job applied its commit; SyncNow applies the head again (unchanged objects are not written)"
"$reflect" -plaintext 127.0.0.1:3033 ferry.v1.ClusterSyncer/SyncNow |
  grep -E '"(revision|applied|unchanged|failed)"' | sed 's/^ */  /'
echo "workloads through the public api (git merged with the cluster):"
"$reflect" -plaintext -d '{"namespace":"default"}' 127.0.0.1:3030 ferry.v1.Ferry/ListWorkloads |
  grep -E '"(id|image|state|path)"' | sed 's/^ */  /'
if [[ -n "$kubectl" ]]; then
  echo "kubectl agrees:"
  "$kubectl" --kubeconfig "$kubeconfig" get deployments -A \
    -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,IMAGE:.spec.template.spec.containers[*].image' |
    sed 's/^/  /'
fi
echo
echo "All four services are up and SERVING."
if ((keep_running)); then
  echo "Try:  $reflect -plaintext 127.0.0.1:3031 ferry.v1.GitWriter/ListWorkloads"
  echo "      $reflect -plaintext 127.0.0.1:3033 ferry.v1.ClusterSyncer/GetSyncStatus"
  echo "      $kubectl --kubeconfig $kubeconfig get all -A"
  echo "      $reflect -plaintext 127.0.0.1:3030 describe ferry.v1.Ferry"
  echo "      (or grpcurl -plaintext 127.0.0.1:3030 describe ferry.v1.Ferry)"
  echo "Press Ctrl-C to stop."
  wait
fi
