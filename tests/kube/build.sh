#!/usr/bin/env bash
# Builds a real kube-apiserver, kube-controller-manager and kubectl (Kubernetes 1.20.2) from
# Debian 12's `kubernetes` source package with Debian's Go, once per machine, into a cache
# outside the repository. Debian ships no kube-apiserver binary and no Docker engine runs
# here, so this is how the tests and the local stack get a real Kubernetes API.
#
# Usage: tests/kube/build.sh          prints the directory holding the binaries
# Env:   FERRY_KUBE_CACHE             cache directory (default /var/cache/ferry/kube)
#
# The deb-src entries are derived at run time from the machine's own apt sources and used
# through a private apt state directory, so the system's apt configuration is not touched.
set -euo pipefail

cache="${FERRY_KUBE_CACHE:-/var/cache/ferry/kube}"
version_tag="1.20.2-ferry1"    # bump when the build recipe changes
bin="$cache/bin-$version_tag"
binaries=(kube-apiserver kube-controller-manager kubectl)

have_all() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}
if have_all; then echo "$bin"; exit 0; fi

log() { echo "kube/build.sh: $*" >&2; }

pkgs=(golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing packages: ${missing[*]}; run as root or install them"; exit 1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9                      # one build at a time (parallel tests may all ask)
if have_all; then echo "$bin"; exit 0; fi

work="$cache/work"
rm -rf "$work"
mkdir -p "$work/apt/lists/partial" "$work/apt/parts" "$work/src"

# --- 1. Source: deb-src twins of the machine's own deb entries --------------------------
srcs="$work/apt/parts/ferry-src.sources"
: >"$srcs"
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f "$f" ]] || continue
  awk 'BEGIN { RS = ""; FS = "\n" }
       { deb = 0
         for (i = 1; i <= NF; i++) if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
         if (!deb) next
         for (i = 1; i <= NF; i++) {
           if ($i ~ /^#/) continue
           if ($i ~ /^Types:/) print "Types: deb-src"; else print $i
         }
         print "" }' "$f" >>"$srcs"
done
lists="$work/apt/parts/ferry-src.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [[ -f "$f" ]] || continue
  sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >>"$lists"
done
aptopts=(-q -o "Dir::Etc::SourceList=$lists" -o "Dir::Etc::SourceParts=$work/apt/parts"
         -o "Dir::State::Lists=$work/apt/lists" -o "APT::Sandbox::User=root")
log "fetching the kubernetes source package"
apt-get "${aptopts[@]}" update >/dev/null
(cd "$work/src" && apt-get "${aptopts[@]}" source kubernetes >/dev/null 2>&1) || {
  log "apt-get source kubernetes failed"; exit 1; }
tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
[[ -n "$tree" ]] || { log "no kubernetes-* tree after apt-get source"; exit 1; }

# --- 2. GOPATH layout (module mode fails on 1.20's vendor/modules.txt) -----------------
export GOPATH="$work/gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOCACHE="$work/gocache"
mkdir -p "$GOPATH/src/k8s.io"
mv "$tree" "$GOPATH/src/k8s.io/kubernetes"
k="$GOPATH/src/k8s.io/kubernetes"

# reflect2 1.0.1 (vendored) corrupts memory on Go >= 1.18; use Debian's 1.0.2.
rm -rf "$k/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$k/vendor/github.com/modern-go/reflect2"

# --- 3. Generated OpenAPI definitions (not shipped in the source) ----------------------
cd "$k"
log "building openapi-gen and generating pkg/generated/openapi"
go build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
# The packages asking for OpenAPI definitions (a `// +k8s:openapi-gen=` tag at column 0),
# with staging/src named as its vendor/ twin, as the upstream generator rules do.
inputs=$( (find -H . \( -path ./_\* -o -path ./.\* -o -path ./vendor \) -prune -o \
             -type f -name '*.go' -print0 | xargs -0 grep -l '^// *+k8s:openapi-gen=' || true) \
          | sed 's|^./staging/src|vendor|; s|^./||; s|/[^/]*$||' \
          | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
          | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
[[ -n "$inputs" ]] || { log "found no +k8s:openapi-gen packages"; exit 1; }
"$work/openapi-gen" --logtostderr -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi \
  -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
  -r "$work/openapi-violations.report" >/dev/null 2>&1 || {
    log "openapi-gen failed"; exit 1; }

# --- 4. The binaries ------------------------------------------------------------------
log "building ${binaries[*]} (a few minutes on 2 cores)"
v=k8s.io/kubernetes/vendor/k8s.io
ldflags="-s -w"
for pkg in client-go/pkg/version component-base/version; do
  ldflags+=" -X $v/$pkg.gitVersion=v1.20.2 -X $v/$pkg.gitMajor=1 -X $v/$pkg.gitMinor=20"
  ldflags+=" -X $v/$pkg.gitTreeState=clean"
done
mkdir -p "$work/out"
for b in "${binaries[@]}"; do
  go build -p 2 -tags 'selinux notest providerless' -ldflags "$ldflags" -o "$work/out/$b" "./cmd/$b"
done
mkdir -p "$bin.tmp"
mv "$work/out/"* "$bin.tmp/"
rm -rf "$bin"; mv "$bin.tmp" "$bin"
rm -rf "$work"
log "done: $bin"
echo "$bin"
