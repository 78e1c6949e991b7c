#!/usr/bin/env bash
# README command 1: builds Ferry and runs the whole loop locally on 127.0.0.1: a real
# registry (Debian's docker-registry, its push notifications going to the scanner's
# webhook) with the example images, a local config repo seeded from examples/ (a bare git
# repo served over file://, image references pointed at the local registry), a real
# Kubernetes API (tests/kube/cluster.sh; or your cluster with --kubeconfig PATH) and the
# four services on their embedded defaults (gRPC 3030-3033, metrics 9791-9794). It checks
# each service's health, then shows the loop with ferryctl: the automation catching up,
# list-workloads, list-images, a manual roll-back release, and a tag pushed to the
# registry reaching git and the cluster by itself.
#
# On a terminal (or with --keep-running) it then stays up until Ctrl-C so you can call the
# services yourself; otherwise it stops them and exits. Everything it started is stopped on
# exit. Exit code: 0 when every service came up healthy, 1 otherwise.
#
# --images: also builds Ferry's container images (scripts/build-images.sh, no Docker
# daemon), pushes them to the local registry as 127.0.0.1:PORT/ferry/NAME:VERSION, and runs
# a server-side dry run of deploy/ pointed at them (a temporary copy of deploy/ with an
# `images:` overlay) against the Kubernetes API. The local API has no kubelet, so no pod can
# start there: the dry run shows that the API accepts every object with those images.
set -euo pipefail
cd "$(dirname "$0")/.."

keep_running=0
[[ -t 0 ]] && keep_running=1
kubeconfig=""
images=0
while (($#)); do
  case "$1" in
    --images) images=1 ;;
    --keep-running) keep_running=1 ;;
    --no-keep-running) keep_running=0 ;;
    --kubeconfig) kubeconfig="${2:?--kubeconfig needs a path}"; shift ;;
    --kubeconfig=*) kubeconfig="${1#--kubeconfig=}" ;;
    *) echo "run-local.sh: unknown argument $1 (use --keep-running, --no-keep-running, --images or --kubeconfig PATH)" >&2; exit 2 ;;
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
ferryctl="$build/cli/ferryctl"
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

# The registry: Debian's docker-registry on loopback; every push is announced to the
# scanner's webhook (127.0.0.1:9780) with a shared secret.
registry_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry="127.0.0.1:$registry_port"
mkdir -p "$run_dir/registry"
echo "local-demo-webhook-secret" >"$run_dir/webhook-secret"
cat >"$run_dir/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $run_dir/registry/data
http:
  addr: $registry
notifications:
  endpoints:
    - name: ferry
      url: http://127.0.0.1:9780/webhook
      headers:
        Authorization: ["Bearer local-demo-webhook-secret"]
      timeout: 2s
      threshold: 3
      backoff: 1s
YAML
docker-registry serve "$run_dir/registry/config.yml" >"$run_dir/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
push() { python3 scripts/push-image.py "$registry" "$1" "$2" "$3" >/dev/null; }
echo "== registry $registry: pushing the example images"
push weaveworks/helloworld master-a000001 2026-01-10T10:00:00Z
push weaveworks/helloworld master-a000002 2026-01-11T10:00:00Z
push weaveworks/sidecar master-a000001 2026-01-10T10:00:00Z
push weaveworksdemos/front-end 0.3.0 2026-01-05T10:00:00Z
push weaveworksdemos/front-end 0.3.1 2026-01-06T10:00:00Z
push weaveworksdemos/front-end 0.4.0 2026-01-07T10:00:00Z
curl -fsS "http://$registry/v2/_catalog"; echo

# --images: Ferry's own images in the local registry and deploy/ dry-run against them.
if ((images)); then
  echo "== container images (scripts/build-images.sh, no Docker daemon) pushed to $registry/ferry"
  if ! bash scripts/build-images.sh --out "$run_dir/images" --push "$registry/ferry" 2>&1 |
      sed '/^build-images.sh: \(building\|pushing\)/d; s/^/  /'; then
    echo "run-local.sh: building or pushing the images failed" >&2
    exit 1
  fi
  image_tag="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tags"][0])' "$run_dir/images/images.json")"
  [[ -n "$kubectl" ]] || { echo "run-local.sh: --images needs kubectl for the dry run" >&2; exit 1; }
  k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }
  # The newest kustomize at hand renders (a current kubectl on PATH, else the local API's).
  render="$kubectl"
  command -v kubectl >/dev/null && render="$(command -v kubectl)"
  # Clusters before 1.24 have no native gRPC probes: their overlay (the local API is 1.20).
  server_minor="$(k version -o json 2>/dev/null | python3 -c 'import json, sys; print(int("".join(c for c in json.load(sys.stdin)["serverVersion"]["minor"] if c.isdigit())))')"
  source_dir="base"
  ((server_minor < 24)) && source_dir="overlays/pre-1.24"
  cp -r deploy "$run_dir/deploy"
  mkdir -p "$run_dir/deploy/local-images"
  field="resources"
  "$render" version --client 2>/dev/null | grep -q 'Kustomize Version: v[45]' || field="bases"
  {
    echo "# run-local.sh --images: deploy/$source_dir with the images just pushed to $registry."
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "$field:"
    echo "  - ../$source_dir"
    echo "images:"
    # Matched by the image each Deployment has after deploy/ (its own images: block may
    # already have renamed ferry-api to a registry's): what `kustomize edit set image` does.
    "$render" kustomize "$run_dir/deploy/$source_dir" 2>/dev/null |
      sed -n 's/^ *image: *//p' | sort -u | while read -r current; do
      name="$current"
      [[ "${current##*/}" == *:* ]] && name="${current%:*}"
      for ferry in ferry-api ferry-git-writer ferry-registry-scanner ferry-cluster-syncer; do
        [[ "$name" == "$ferry" || "$name" == */"$ferry" ]] || continue
        printf '  - name: %s\n    newName: %s\n    newTag: "%s"\n' "$name" "$registry/ferry/$ferry" "$image_tag"
      done
    done
  } >"$run_dir/deploy/local-images/kustomization.yaml"
  "$render" kustomize "$run_dir/deploy/local-images" >"$run_dir/deploy.yaml" 2>/dev/null
  [[ "$(grep -c "image: $registry/ferry/ferry-[a-z-]*:$image_tag\$" "$run_dir/deploy.yaml")" == 4 ]] || {
    echo "run-local.sh: deploy/$source_dir does not run the four images after the images: overlay" >&2
    exit 1
  }
  grep -o "image: $registry/ferry/.*" "$run_dir/deploy.yaml" | sort -u | sed 's/^/  /'
  k get namespace ferry >/dev/null 2>&1 || k create namespace ferry >/dev/null
  if ! k apply --server-side --dry-run=server --field-manager=ferry-run-local \
      -f "$run_dir/deploy.yaml" >"$run_dir/deploy.dry-run" 2>&1; then
    cat "$run_dir/deploy.dry-run" >&2
    echo "run-local.sh: the server-side dry run of deploy/$source_dir with the local images failed" >&2
    exit 1
  fi
  echo "  dry run of deploy/$source_dir (Kubernetes 1.$server_minor): $(grep -c 'serverside-applied (server dry run)' "$run_dir/deploy.dry-run") objects accepted"
  echo "  (no kubelet here: the API accepts the pods' specs, but no pod can start)"
fi

# The config repo: a bare repo seeded from examples/ with the git CLI, its images pointed
# at the local registry.
repo="$run_dir/config.git"
git init -q --bare -b main "$repo"
seed="$run_dir/seed"
git clone -q "$repo" "$seed" 2>/dev/null
cp -r examples/. "$seed/"
find "$seed" -name '*.yaml' -exec sed -i -e "s#quay.io/weaveworks/#$registry/weaveworks/#" \
  -e "s#image: weaveworksdemos/#image: $registry/weaveworksdemos/#" {} +
git -C "$seed" -c user.name=Ferry -c user.email=ferry@localhost add -A
git -C "$seed" -c user.name=Ferry -c user.email=ferry@localhost commit -q -m "Example manifests"
git -C "$seed" push -q origin HEAD:main

components=(api git-writer registry-scanner cluster-syncer)
declare -A extra_args=(
  [git-writer]="--git_url=file://$repo --git_branch=main --state_dir=$run_dir/git-writer"
  [registry-scanner]="--state_dir=$run_dir/registry-scanner --registry_insecure_hosts=$registry --webhook_address=127.0.0.1:9780 --webhook_secret_path=$run_dir/webhook-secret"
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
# Prints a command as typed (arguments with spaces quoted), then runs it.
show() {
  local line="\$" arg
  for arg in "$@"; do
    [[ "$arg" == *" "* ]] && arg="\"$arg\""
    line+=" $arg"
  done
  echo "${line/$ferryctl/ferryctl}"
  "$@" 2>&1
}
export FERRY_USER="Local Demo <demo@localhost>"
# Waits (up to 30 s) for a commit whose subject starts with $1 on the config repo.
wait_for_commit() {
  for _ in $(seq 1 300); do
    git -C "$repo" log -1 --format=%s | grep -q "^$1" && return 0
    sleep 0.1
  done
  echo "no '$1' commit after 30 s; logs in $run_dir" >&2
  return 1
}

echo "== the automation catches up: helloworld (glob:master-*) and front-end (semver:~0.3) are automated"
wait_for_commit "Auto-release"
git -C "$repo" log -1 --format='%h %an: %B' | sed 's/^/  /; /^  $/d'
echo
show "$ferryctl" list-workloads --all-namespaces
echo
show "$ferryctl" list-images -w default:deployment/helloworld
echo
echo "== a manual roll-back: stop the automation of helloworld, release the older tag"
show "$ferryctl" deautomate -w default:deployment/helloworld -m "rolling back"
show "$ferryctl" release --workload=default:deployment/helloworld \
  --update-image="$registry/weaveworks/helloworld:master-a000001" -m "roll back: master-a000002 broke the login"
echo
echo "== a new tag pushed to the registry reaches git and the cluster by itself"
pushed_at=$(date +%s%N)
push weaveworksdemos/front-end 0.3.2 "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "\$ python3 scripts/push-image.py $registry weaveworksdemos/front-end 0.3.2"
for _ in $(seq 1 300); do
  [[ -z "$kubectl" ]] && { wait_for_commit "Auto-release $registry/weaveworksdemos/front-end:0.3.2"; break; }
  [[ "$("$kubectl" --kubeconfig "$kubeconfig" -n sock-shop get deploy front-end -o jsonpath='{.spec.template.spec.containers[0].image}' 2>/dev/null)" == *:0.3.2 ]] && break
  sleep 0.05
done
echo "running in the cluster $(( ($(date +%s%N) - pushed_at) / 1000000 )) ms after the push:"
git -C "$repo" log -1 --format='  %h %an: %s'
if [[ -n "$kubectl" ]]; then
  "$kubectl" --kubeconfig "$kubeconfig" get deployments -A \
    -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,IMAGE:.spec.template.spec.containers[*].image' |
    sed 's/^/  /'
fi
show "$ferryctl" jobs
echo
echo "All four services are up and SERVING."
if ((keep_running)); then
  echo "Try:  $ferryctl list-workloads -a"
  echo "      python3 scripts/push-image.py $registry weaveworksdemos/front-end 0.3.3"
  echo "      $ferryctl release --workload=default:deployment/helloworld --update-all-images --watch"
  echo "      $reflect -plaintext 127.0.0.1:3030 describe ferry.v1.Ferry   (or grpcurl)"
  echo "      $kubectl --kubeconfig $kubeconfig get all -A"
  echo "      curl -s 127.0.0.1:9791/metrics | grep ferry_jobs     (api; 9792-9794 the others)"
  echo "      logs: $run_dir"
  echo "Press Ctrl-C to stop."
  wait
fi
