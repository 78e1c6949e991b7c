#!/usr/bin/env bash
# Checks deploy/ (run by CTest as deploy_check; needs the built binaries and the Kubernetes
# API of the tests, tests/kube/build.sh):
#   - every kustomization renders with the kustomize inside kubectl 1.20 (and with a newer
#     kubectl when one is on PATH);
#   - the rendered objects pass a server-side dry run against a real kube-apiserver
#     (tests/kube/cluster.sh). That API is 1.20, older than native gRPC probes (1.24), so for
#     the dry run gRPC probes are swapped for TCP ones, as deploy/overlays/pre-1.24 does;
#   - the alerting rules parse and type-check (promtool);
#   - every Dockerfile's build stage is the README's build command (scripts/build.sh) and its
#     run stage installs packages that provide every shared library the binary links.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
build="$(cd "${FERRY_BUILD_DIR:-build}" && pwd)"
work="$(mktemp -d /tmp/ferry-deploy-check.XXXXXX)"
cluster_pid=""
cleanup() {
  [[ -n "$cluster_pid" ]] && kill -TERM "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "deploy/check.sh: $*" >&2; exit 1; }

bash tests/kube/cluster.sh "$work/kube" >"$work/kube.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 600); do
  grep -q '^ferry-kube ready' "$work/kube.log" && break
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/kube.log" >&2; fail "the Kubernetes API did not start"; }
  sleep 0.1
done
grep -q '^ferry-kube ready' "$work/kube.log" || fail "the Kubernetes API is not ready after 60 s"
kubectl="$(cat "$work/kube/bin")/kubectl"
k() { "$kubectl" --kubeconfig "$work/kube/kubeconfig" "$@"; }

# 1. Render.
overlays=(deploy/base deploy/overlays/*/)
for dir in "${overlays[@]}"; do
  name="$(basename "$dir")"
  "$kubectl" kustomize "$dir" >"$work/$name.yaml" || fail "$dir does not render with kubectl 1.20"
  if command -v kubectl >/dev/null && [[ "$(command -v kubectl)" != "$kubectl" ]]; then
    kubectl kustomize "$dir" >"$work/$name.new.yaml" 2>"$work/$name.warnings" || fail "$dir does not render with $(command -v kubectl)"
    ! grep -qx '{}' "$work/$name.new.yaml" || fail "$dir: empty documents with $(command -v kubectl)"
  fi
  echo "rendered $dir: $(grep -c '^kind:' "$work/$name.yaml") objects"
done
[[ "$(grep -c 'grpc:' "$work/base.yaml")" == 8 ]] || fail "base: expected a gRPC readiness and liveness probe per service"
! grep -q 'grpc:' "$work/pre-1.24.yaml" || fail "pre-1.24 still has gRPC probes"
grep -q 'FERRY_ALLOW_NAMESPACE: apps' "$work/namespaced.yaml" || fail "namespaced: no FERRY_ALLOW_NAMESPACE"
! grep -q 'kind: ClusterRole' "$work/namespaced.yaml" || fail "namespaced: cluster-wide RBAC left"
grep -q 'FERRY_DOCKER_CONFIG_PATH: /etc/ferry/registry/config.json' "$work/registry-credentials.yaml" &&
  grep -q 'secretName: ferry-registry-credentials' "$work/registry-credentials.yaml" ||
  fail "registry-credentials: the scanner does not read the credentials Secret"
[[ "$(grep -c 'FERRY_PEER_TOKEN_PATH: /etc/ferry/peer/token' "$work/base.yaml")" == 4 &&
   "$(grep -c 'secretName: ferry-peer-token' "$work/base.yaml")" == 4 ]] ||
  fail "base: every service must read the peer token Secret"
[[ "$(grep -c '^kind: Certificate' "$work/cert-manager.yaml")" == 5 &&
   "$(grep -c 'FERRY_TLS_CLIENT_CA_PATH: /etc/ferry/tls/ca.crt' "$work/cert-manager.yaml")" == 3 &&
   "$(grep -c 'FERRY_PEER_TLS_CERT_PATH' "$work/cert-manager.yaml")" == 2 ]] ||
  fail "cert-manager: expected the CA and four certificates, mutual TLS on the three internal services and client certificates for the api and the syncer"
for port in 3041 3042 3043; do
  [[ "$(grep -c "port: $port" "$work/cert-manager.yaml")" == 2 ]] || fail "cert-manager: the probes must use the health-only port $port"
done

# 2. Server-side dry run. The namespaces must exist (a dry run creates nothing), and the
# monitoring and cert-manager overlays need the Prometheus Operator's and cert-manager's
# kinds: minimal CRDs stand in for them.
k create namespace ferry >/dev/null
k create namespace apps >/dev/null
crds=(monitoring.coreos.com/ServiceMonitor monitoring.coreos.com/PrometheusRule
      cert-manager.io/Issuer cert-manager.io/Certificate)
crd_names=()
for crd in "${crds[@]}"; do
  group="${crd%/*}"
  kind="${crd#*/}"
  plural="$(tr '[:upper:]' '[:lower:]' <<<"$kind")s"
  crd_names+=("crd/$plural.$group")
  k apply -f - >/dev/null <<YAML
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: $plural.$group
spec:
  group: $group
  scope: Namespaced
  names: {kind: $kind, plural: $plural, singular: $(tr '[:upper:]' '[:lower:]' <<<"$kind")}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
YAML
done
k wait --for condition=established --timeout=30s "${crd_names[@]}" >/dev/null
for dir in "${overlays[@]}"; do
  name="$(basename "$dir")"
  python3 - "$work/$name.yaml" >"$work/$name.1.20.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
# The kustomize in kubectl 1.20 leaves an empty document for each `$patch: delete`
# (namespaced overlay); newer ones drop them.
docs = [d for d in text.split("\n---\n") if d.strip() != "{}"]
print(re.sub(r"(\n\s+)grpc:(\n\s+port:)", r"\1tcpSocket:\2", "\n---\n".join(docs)), end="")
PY
  k apply --server-side --dry-run=server --field-manager=ferry-deploy-check \
    -f "$work/$name.1.20.yaml" >"$work/$name.dry-run" 2>&1 || { cat "$work/$name.dry-run" >&2; fail "$dir: the server-side dry run failed"; }
  echo "dry run $dir: $(grep -c 'serverside-applied (server dry run)' "$work/$name.dry-run") objects accepted"
done

# 3. Alerting rules.
sed -n '/^spec:/,$p' deploy/overlays/monitoring/prometheusrule.yaml | tail -n +2 | sed 's/^  //' >"$work/rules.yaml"
promtool check rules "$work/rules.yaml" >"$work/promtool.log" 2>&1 || { cat "$work/promtool.log" >&2; fail "alerting rules"; }
echo "alerting rules: $(grep -o '[0-9]* rules found' "$work/promtool.log")"

# 4. Dockerfiles.
for dockerfile in deploy/images/*/Dockerfile deploy/drone-plugin/Dockerfile; do
  build_run="$(sed -n '/^FROM .* AS build/,/^FROM /p' "$dockerfile" | grep -A1 '^RUN' | tr -d '\\\n' | tr -s ' ')"
  [[ "$build_run" == "RUN FERRY_BUILD_TYPE=Release bash scripts/build.sh build && strip -o /"* ]] ||
    fail "$dockerfile: the build stage must run the README's build (bash scripts/build.sh), not: $build_run"
  binary="$(grep -o 'strip -o /[^ ]* build/[^ ]*' "$dockerfile" | awk '{print $4}')"
  binary="$build/${binary#build/}"
  [[ -x "$binary" ]] || fail "$dockerfile: $binary is not built"
  packages="$(sed -n '/^FROM debian:12-slim/,$p' "$dockerfile" | tr -d '\\\n' | grep -o 'install -y -qq --no-install-recommends [^&]*' | cut -d' ' -f5-)"
  closure="$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances $packages 2>/dev/null | grep -v '^ ' | sed 's/:any$//' | sort -u)"
  [[ -n "$closure" ]] || fail "apt-cache knows none of $packages (run apt-get update)"
  # dpkg knows a library by one of its paths (/lib or /usr/lib, link or file): ask once for
  # every candidate path of every library.
  libs="$(ldd "$binary" | awk '$3 ~ /^\// {print $3}')"
  candidates="$(for lib in $libs; do printf '%s\n%s\n%s\n%s\n' "$lib" "$(realpath "$lib")" "/usr$lib" "${lib#/usr}"; done | sort -u)"
  owners="$(dpkg -S $candidates 2>/dev/null || true)"
  for lib in $libs; do
    owner=""
    for candidate in "$lib" "$(realpath "$lib")" "/usr$lib" "${lib#/usr}"; do
      owner="$(awk -F': ' -v p="$candidate" '$2 == p {print $1; exit}' <<<"$owners" | cut -d: -f1)"
      [[ -n "$owner" ]] && break
    done
    [[ -n "$owner" ]] || fail "$dockerfile: $lib (linked by $(basename "$binary")) is from no Debian package"
    [[ "$owner" == libc6 ]] && continue
    grep -qx "$owner" <<<"$closure" || fail "$dockerfile: $(basename "$lib") comes from $owner, which the run stage does not install"
  done
  echo "$dockerfile: build stage is scripts/build.sh; run stage provides every library of $(basename "$binary")"
done
echo "deploy/check.sh: all checks passed"
