#!/usr/bin/env bash
# Runs a real Kubernetes API on loopback for the tests and the local stack: etcd
# (Debian's etcd-server), kube-apiserver and kube-controller-manager (built once per machine
# by tests/kube/build.sh), with a fresh CA, a serving certificate for 127.0.0.1, a static
# admin token, an admin client certificate and service-account keys, all under DIR.
#
# Usage: tests/kube/cluster.sh DIR
#   Runs in the foreground until SIGTERM/SIGINT (or until its parent dies), then stops
#   everything it started. Once the API answers /readyz it prints one line:
#     ferry-kube ready server=https://127.0.0.1:PORT kubeconfig=DIR/kubeconfig
#   DIR then holds: kubeconfig (token auth), ca.crt, admin.crt/admin.key (client cert),
#   token (the admin bearer token), server (the URL), bin (the binaries' directory), logs/.
set -euo pipefail

dir="${1:?usage: cluster.sh DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$("$here/build.sh")"
mkdir -p "$dir/logs" "$dir/etcd"
dir="$(cd "$dir" && pwd)"
log() { echo "kube/cluster.sh: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# --- certificates and credentials ----------------------------------------------------
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ferry-test-ca" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout serving.key \
  -out serving.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >serving.ext
openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile serving.ext -out serving.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=ferry-admin" -keyout admin.key \
  -out admin.csr 2>/dev/null
openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -out admin.crt 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$token" >token
printf '%s,ferry-admin,ferry-admin,system:masters\n' "$token" >tokens.csv
chmod 600 ./*.key token tokens.csv
echo "$bin" >bin

# --- processes -------------------------------------------------------------------------
pids=()
stop() {
  trap - EXIT INT TERM
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 0' INT TERM

# Ports are picked by binding port 0 and letting go, so a process started alongside (another
# test under ctest -j2) can take one before etcd or the API server binds it. A start whose
# process exits early is therefore retried with new ports and an empty etcd, up to 3 times.
write_kubeconfig() {
  echo "$server" >server
  cat >kubeconfig <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: ferry-test
  cluster:
    server: $server
    certificate-authority: $dir/ca.crt
users:
- name: ferry-admin
  user:
    token: $token
contexts:
- name: ferry-test
  context:
    cluster: ferry-test
    user: ferry-admin
current-context: ferry-test
KUBECONFIG
  chmod 600 kubeconfig
}

# Starts etcd and kube-apiserver on fresh ports and waits for /readyz. Returns 1 if one of
# them exited early (its logs stay in logs/), exits the script if the API is not ready in 60 s.
start_api() {
  etcd_client=$(free_port)
  etcd_peer=$(free_port)
  api_port=$(free_port)
  server="https://127.0.0.1:$api_port"
  write_kubeconfig
  rm -rf "$dir/etcd" && mkdir -p "$dir/etcd"

  etcd --name ferry --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" \
    --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "ferry=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync >logs/etcd.log 2>&1 &
  pids+=($!)

  "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_client" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --insecure-port 0 \
    --tls-cert-file serving.crt --tls-private-key-file serving.key \
    --client-ca-file ca.crt --token-auth-file tokens.csv \
    --service-account-key-file sa.pub --service-account-signing-key-file sa.key \
    --service-account-issuer https://kubernetes.default.svc \
    --authorization-mode RBAC --endpoint-reconciler-type none \
    --service-cluster-ip-range 10.96.0.0/16 --allow-privileged \
    >logs/kube-apiserver.log 2>&1 &
  pids+=($!)

  local p
  for _ in $(seq 1 600); do
    if curl -fsS --cacert ca.crt -H "Authorization: Bearer $token" "$server/readyz" >/dev/null 2>&1; then
      return 0
    fi
    for p in "${pids[@]}"; do
      kill -0 "$p" 2>/dev/null || return 1
    done
    sleep 0.1
  done
  log "kube-apiserver not ready after 60 s; see $dir/logs"
  exit 1
}

attempt=1
until start_api; do
  log "a process exited early (attempt $attempt of 3); logs in $dir/logs:"
  tail -n 5 logs/*.log >&2
  stop
  trap stop EXIT
  trap 'exit 0' INT TERM
  pids=()
  [ "$attempt" -lt 3 ] || exit 1
  attempt=$((attempt + 1))
done

# Deployments get ReplicaSets, service accounts get tokens, namespaces get cleaned up. The
# StatefulSet controller is off: tests set StatefulSet statuses themselves.
"$bin/kube-controller-manager" --kubeconfig kubeconfig --leader-elect=false \
  --port 0 --secure-port 0 \
  --service-account-private-key-file sa.key --root-ca-file ca.crt \
  --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service,-statefulset' \
  >logs/kube-controller-manager.log 2>&1 &
pids+=($!)

# For benchmarks that weigh the cluster's own CPU time (bench/scale_bench.cc).
printf 'etcd %s\nkube-apiserver %s\nkube-controller-manager %s\n' "${pids[@]}" >pids

echo "ferry-kube ready server=$server kubeconfig=$dir/kubeconfig"

# Stay up until told to stop, or until the parent is gone (a test killed with SIGKILL).
parent=$PPID
while kill -0 "$parent" 2>/dev/null; do
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { log "process $p exited; logs in $dir/logs"; exit 1; }
  done
  sleep 1 & wait $!
done
