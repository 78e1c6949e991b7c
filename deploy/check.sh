#!/usr/bin/env bash
# Checks deploy/ (run by CTest as deploy_check; needs the built binaries and the Kubernetes
# API of the tests, tests/kube/build.sh):
#   - every kustomization renders, without warnings, with the newest kubectl on PATH whose
#     kustomize is v5 (kubectl 1.27 or later: deploy/ is written in kustomize v5 syntax,
#     which the kustomize inside older kubectl cannot read); the base's `images:` block
#     names every image with newName and newTag, the entries `kustomize edit set image`
#     changes, and the Deployments' selectors keep the label they always had;
#   - the rendered objects pass a server-side dry run against a real kube-apiserver
#     (tests/kube/cluster.sh), sent once by that API's own kubectl 1.20 and once by the
#     current kubectl. That API is 1.20, older than native gRPC probes (1.24), so for the
#     dry run gRPC probes are swapped for TCP ones, as deploy/overlays/pre-1.24 does, and
#     older than PodDisruptionBudget policy/v1 (1.21), so the ha overlay's budgets are sent
#     as policy/v1beta1 (the same fields, less unhealthyPodEvictionPolicy, 1.27+);
#   - the ha overlay runs two replicas of git-writer, the cluster-syncer and the api (one
#     scanner), each rolled one pod at a time, spread, under a PodDisruptionBudget, electing
#     a leader with the token and the Roles it needs; the base stays single-replica;
#   - the alerting rules parse and type-check (promtool);
#   - every Dockerfile's build stage is the README's build command (scripts/build.sh) and its
#     run stage installs packages that provide every shared library the binary links.
# Without a kubectl with kustomize v5 on PATH the first two are skipped, loudly (Debian 12
# packages only kubectl 1.20); under CI (CI=true) that is a failure instead.
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

# The newest kubectl on PATH with kustomize v5.
kubectl_v5=""
kubectl_v5_version=""
while read -r candidate; do
  version_text="$("$candidate" version --client 2>/dev/null || true)"
  grep -q '^Kustomize Version: v5' <<<"$version_text" || continue
  version="$(sed -n 's/^Client Version: v\([0-9.]*\).*/\1/p' <<<"$version_text")"
  if [[ -z "$kubectl_v5" ||
        "$(printf '%s\n%s\n' "$kubectl_v5_version" "$version" | sort -V | tail -1)" != "$kubectl_v5_version" ]]; then
    kubectl_v5="$candidate"
    kubectl_v5_version="$version"
  fi
done < <(type -ap kubectl | xargs -r -n1 realpath | sort -u)

if [[ -z "$kubectl_v5" ]]; then
  message="no kubectl with kustomize v5 on PATH (kubectl 1.27 or later; Debian 12's kubernetes-client is 1.20), so deploy/ is neither rendered nor dry-run. Install a current kubectl from Kubernetes' own packages to check it."
  [[ "${CI:-}" == true ]] && fail "$message"
  {
    echo "################################################################################"
    echo "deploy/check.sh: SKIPPED sections 1 and 2: $message"
    echo "################################################################################"
  } >&2
else
  echo "rendering with $kubectl_v5: kubectl $kubectl_v5_version, kustomize $("$kubectl_v5" version --client | sed -n 's/^Kustomize Version: //p')"
  bash tests/kube/cluster.sh "$work/kube" >"$work/kube.log" 2>&1 &
  cluster_pid=$!

  # 1. Render.
  overlays=(deploy/base deploy/overlays/*/)
  for dir in "${overlays[@]}"; do
    name="$(basename "$dir")"
    "$kubectl_v5" kustomize "$dir" >"$work/$name.yaml" 2>"$work/$name.warnings" ||
      { cat "$work/$name.warnings" >&2; fail "$dir does not render with $kubectl_v5"; }
    [[ ! -s "$work/$name.warnings" ]] || { cat "$work/$name.warnings" >&2; fail "$dir: kustomize warns"; }
    ! grep -qx '{}' "$work/$name.yaml" || fail "$dir: empty documents"
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
  # High availability (deploy/overlays/ha) on top of a single-replica base. The leader
  # election switch is on for the syncer in the base, for every component in ha.
  [[ "$(grep -c 'FERRY_LEADER_ELECT: "true"' "$work/base.yaml")" == 1 &&
     "$(grep -c 'FERRY_LEADER_ELECT: "true"' "$work/ha.yaml")" == 4 ]] ||
    fail "ha: FERRY_LEADER_ELECT must be on for every component (base: the syncer only)"
  ! grep -q '^kind: PodDisruptionBudget' "$work/base.yaml" || fail "base: PodDisruptionBudget in the single-replica base"
  [[ "$(grep -c '^kind: PodDisruptionBudget' "$work/ha.yaml")" == 4 ]] || fail "ha: expected four PodDisruptionBudgets"
  python3 - "$work/base.yaml" "$work/ha.yaml" <<'EOF' || fail "ha: replicas, rollout, spread, budgets, token or RBAC"
import sys, yaml
def load(path):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(path)) if d}
base, ha = load(sys.argv[1]), load(sys.argv[2])
elect = ["ferry-git-writer", "ferry-cluster-syncer", "ferry-api"]
def check(ok, message):
    if not ok:
        sys.exit(message)
for name in elect + ["ferry-registry-scanner"]:
    check(base[("Deployment", name)]["spec"]["replicas"] == 1, f"base: {name} is not single-replica")
    pod = base[("Deployment", name)]["spec"]["template"]["spec"]
    if name != "ferry-registry-scanner":
        env = {e["name"]: e for e in pod["containers"][0].get("env", [])}
        check(env.get("POD_NAME", {}).get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.name"}},
              f"base: {name} without POD_NAME from the Downward API (its election identity)")
# The registry-scanner: a StatefulSet of two (a cache volume each) in place of the base's
# Deployment and claim, its pod template the base's plus the token, POD_NAME and the spread.
scanner = ha.get(("StatefulSet", "ferry-registry-scanner"))
check(scanner is not None and ("Deployment", "ferry-registry-scanner") not in ha and
      ("PersistentVolumeClaim", "ferry-registry-scanner") not in ha,
      "ha: the registry-scanner must be a StatefulSet instead of the base's Deployment and claim")
check(scanner["spec"]["replicas"] == 2 and
      [t["metadata"]["name"] for t in scanner["spec"]["volumeClaimTemplates"]] == ["state"],
      "ha: the registry-scanner needs two replicas with a state volume each")
base_pod = base[("Deployment", "ferry-registry-scanner")]["spec"]["template"]["spec"]
scanner_pod = scanner["spec"]["template"]["spec"]
base_container, container = base_pod["containers"][0], scanner_pod["containers"][0]
check(container["image"] == base_container["image"] and
      container["envFrom"] == base_container["envFrom"] and
      container["volumeMounts"] == base_container["volumeMounts"] and
      container["ports"] == base_container["ports"] and
      container.get("securityContext") == base_container.get("securityContext") and
      scanner_pod["securityContext"] == base_pod["securityContext"],
      "ha: the registry-scanner StatefulSet's pod template drifted from the base Deployment's")
pdbs = [d for (kind, _), d in ha.items() if kind == "PodDisruptionBudget"]
workloads = {name: ("Deployment", name) for name in elect}
workloads["ferry-registry-scanner"] = ("StatefulSet", "ferry-registry-scanner")
for name in elect + ["ferry-registry-scanner"]:
    deployment = ha[workloads[name]]
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    matches = lambda selector: all(labels.get(k) == v for k, v in selector["matchLabels"].items())
    check(spec["replicas"] == 2, f"ha: {name} replicas {spec['replicas']}, not 2")
    if workloads[name][0] == "Deployment":
        check(spec["strategy"] == {"type": "RollingUpdate",
                                   "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
              f"ha: {name} must roll one pod at a time (a standby takes over), not {spec['strategy']}")
    else:
        check(spec["updateStrategy"] == {"type": "RollingUpdate"},
              f"ha: {name} must roll one pod at a time, not {spec['updateStrategy']}")
    spread = {c["topologyKey"]: c for c in pod.get("topologySpreadConstraints", [])}
    check(sorted(spread) == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"] and
          all(c["whenUnsatisfiable"] == "ScheduleAnyway" and matches(c["labelSelector"])
              for c in spread.values()),
          f"ha: {name} must spread its own pods over nodes and zones, softly")
    budgets = [p for p in pdbs if matches(p["spec"]["selector"])]
    check(len(budgets) == 1 and budgets[0]["apiVersion"] == "policy/v1" and
          budgets[0]["spec"].get("maxUnavailable") == 1,
          f"ha: {name} needs one policy/v1 PodDisruptionBudget with maxUnavailable 1 selecting its pods")
    # Its pods only: no budget selects another Deployment's pods.
    check(len([d for (kind, _), d in ha.items() if kind in ("Deployment", "StatefulSet") and
               all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                   for k, v in budgets[0]["spec"]["selector"]["matchLabels"].items())]) == 1,
          f"ha: the budget of {name} selects other pods too")
    check(pod.get("automountServiceAccountToken") is True, f"ha: {name} has no token for its Lease")
    env = {e["name"]: e for e in pod["containers"][0].get("env", [])}
    check(env.get("POD_NAME", {}).get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.name"}},
          f"ha: {name} without POD_NAME from the Downward API (its election identity)")
    check(ha[("ConfigMap", name)]["data"].get("FERRY_LEADER_ELECT") == "true",
          f"ha: {name} does not elect a leader")
def rules_of(role, account):
    binding = ha[("RoleBinding", role)]
    check(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role} and
          binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "ferry"}] and
          ha[("Role", role)]["metadata"]["namespace"] == "ferry",
          f"ha: {role} must be a Role in namespace ferry bound to {account}")
    return [(r["apiGroups"], r["resources"], sorted(r["verbs"])) for r in ha[("Role", role)]["rules"]]
leases = [(["coordination.k8s.io"], ["leases"], ["create", "get", "update"])]
check(rules_of("ferry-git-writer-leases", "ferry-git-writer") == leases, "ha: git-writer's Lease RBAC")
check(rules_of("ferry-api-leases", "ferry-api") == leases, "ha: the api's Lease RBAC")
check(rules_of("ferry-registry-scanner-leases", "ferry-registry-scanner") == leases,
      "ha: the registry-scanner's Lease RBAC")
check(rules_of("ferry-api-jobs", "ferry-api") ==
      [([""], ["configmaps"], ["create", "delete", "get", "list", "patch", "update"])],
      "ha: the api's job records RBAC")
check(not any(kind in ("ClusterRole", "ClusterRoleBinding") and name != "ferry-cluster-syncer"
              for kind, name in ha), "ha: cluster-wide RBAC beyond the syncer's")
# The leaders are reached through headless Services as gRPC replica lists, not through the
# plain Services, which route to the standby too.
for name, port in (("ferry-git-writer", 3031), ("ferry-cluster-syncer", 3033),
                   ("ferry-registry-scanner", 3032)):
    service = ha.get(("Service", name + "-replicas"))
    check(service is not None and service["spec"].get("clusterIP") == "None" and
          service["spec"]["selector"] == ha[workloads[name]]["spec"]["selector"]["matchLabels"] and
          [p["port"] for p in service["spec"]["ports"]] == [port],
          f"ha: {name}-replicas must be a headless Service of {name}'s pods on {port}")
target = lambda name, port: f"dns:///{name}-replicas:{port}"
check(ha[("ConfigMap", "ferry-api")]["data"].get("FERRY_GIT_WRITER_ADDRESS") ==
      target("ferry-git-writer", 3031) and
      ha[("ConfigMap", "ferry-api")]["data"].get("FERRY_CLUSTER_SYNCER_ADDRESS") ==
      target("ferry-cluster-syncer", 3033) and
      ha[("ConfigMap", "ferry-api")]["data"].get("FERRY_REGISTRY_SCANNER_ADDRESS") ==
      target("ferry-registry-scanner", 3032) and
      ha[("ConfigMap", "ferry-cluster-syncer")]["data"].get("FERRY_GIT_WRITER_ADDRESS") ==
      target("ferry-git-writer", 3031),
      "ha: the api and the syncer must reach the leaders as replica lists (dns:///...-replicas)")
EOF
  echo "ha: two replicas of every component, rolled one at a time, spread, budgeted, electing with their Roles, the leaders reached as replica lists"
  # One `images:` entry per service, each with newName and newTag (what `kustomize edit set
  # image NAME=NEWNAME:NEWTAG` writes), and every container of the base rendered with
  # exactly those images. Every Deployment's selector keeps app.kubernetes.io/part-of: a
  # selector cannot change, and installs made before must upgrade.
  python3 - deploy/base/kustomization.yaml "$work/base.yaml" <<'EOF' || fail "base: images or selectors"
import sys, yaml
kustomization = yaml.safe_load(open(sys.argv[1]))
names = ["ferry-api", "ferry-git-writer", "ferry-registry-scanner", "ferry-cluster-syncer"]
images = kustomization.get("images") or []
if sorted(i.get("name", "") for i in images) != sorted(names):
    sys.exit(f"images: expected one entry for each of {names}, got {images}")
for i in images:
    if sorted(i) != ["name", "newName", "newTag"]:
        sys.exit(f"images: {i['name']} must have newName and newTag, and nothing else")
wanted = {f"{i['newName']}:{i['newTag']}" for i in images}
rendered = set()
for doc in yaml.safe_load_all(open(sys.argv[2])):
    if doc and doc["kind"] == "Deployment":
        pod = doc["spec"]["template"]["spec"]
        rendered |= {c["image"] for c in pod.get("initContainers", []) + pod["containers"]}
        if doc["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/part-of") != "ferry":
            sys.exit(f"{doc['metadata']['name']}: selector without app.kubernetes.io/part-of")
if rendered != wanted:
    sys.exit(f"rendered images {sorted(rendered)} are not the images: block's {sorted(wanted)}")
EOF
  echo "base: every image and tag from the images: block"

  # 2. Server-side dry run, sent by the API's own kubectl 1.20 and by the current one (a
  # client newer than the server is fine for a dry run). The namespaces must exist (a dry
  # run creates nothing), and the monitoring and cert-manager overlays need the Prometheus
  # Operator's and cert-manager's kinds: minimal CRDs stand in for them.
  for _ in $(seq 1 600); do
    grep -q '^ferry-kube ready' "$work/kube.log" && break
    kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/kube.log" >&2; fail "the Kubernetes API did not start"; }
    sleep 0.1
  done
  grep -q '^ferry-kube ready' "$work/kube.log" || fail "the Kubernetes API is not ready after 60 s"
  kubectl="$(cat "$work/kube/bin")/kubectl"
  k() { "$kubectl" --kubeconfig "$work/kube/kubeconfig" "$@"; }
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
    # For the 1.20 API only (the renderings checked above keep their own versions): TCP
    # probes instead of gRPC ones (1.24+), and PodDisruptionBudgets as policy/v1beta1, which
    # 1.20 serves, instead of policy/v1 (1.21+; Ferry's users run 1.28+), without
    # unhealthyPodEvictionPolicy (1.27+). The same fields otherwise, so the server still
    # checks the selector and the budget. THE 1.20 DRY RUN NEVER SEES policy/v1.
    sed -E 's/^( +)grpc:$/\1tcpSocket:/' "$work/$name.yaml" |
      perl -0pe 's{^apiVersion: policy/v1\nkind: PodDisruptionBudget$}{apiVersion: policy/v1beta1\nkind: PodDisruptionBudget}mg;
                 s{^  unhealthyPodEvictionPolicy: \w+\n}{}mg' >"$work/$name.1.20.yaml"
    ! grep -A1 '^apiVersion: policy/v1$' "$work/$name.1.20.yaml" | grep -q '^kind: PodDisruptionBudget$' ||
      fail "$dir: a PodDisruptionBudget left as policy/v1 for the 1.20 API"
    for client in "$kubectl" "$kubectl_v5"; do
      "$client" --kubeconfig "$work/kube/kubeconfig" apply --server-side --dry-run=server \
        --field-manager=ferry-deploy-check -f "$work/$name.1.20.yaml" >"$work/$name.dry-run" 2>&1 ||
        { cat "$work/$name.dry-run" >&2; fail "$dir: the server-side dry run sent by $client failed"; }
      echo "dry run $dir by $client: $(grep -c 'serverside-applied (server dry run)' "$work/$name.dry-run") objects accepted"
    done
  done
fi

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
