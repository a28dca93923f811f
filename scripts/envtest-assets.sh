#!/usr/bin/env bash
# Builds the envtest assets -- a real kube-apiserver and etcd -- from the Go
# module proxy, once, and caches them. Prints the asset directory (the value
# for KUBEBUILDER_ASSETS) on stdout. Idempotent: a complete directory is
# reused; a build goes to a temporary directory that is renamed into place
# only when both binaries are there, so an interrupted build leaves nothing
# half-made behind.
#
# A cold build takes ~15 minutes on 2 cores (most of it kube-apiserver); the
# module downloads and the build cache make a warm rebuild about a minute.
#
#   KUBE_VERSION   Kubernetes release (k8s.io/kubernetes vX.Y.Z; the staging
#                  modules are published as v0.Y.Z)
#   ETCD_VERSION   go.etcd.io/etcd/server/v3 version
#   ENVTEST_CACHE  cache root (default ~/.cache/aipress/envtest)
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-1.36.3}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
ENVTEST_CACHE=${ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aipress/envtest}
export PATH=$PATH:/usr/local/go/bin
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

dest=$ENVTEST_CACHE/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION
if [ -x "$dest/kube-apiserver" ] && [ -x "$dest/etcd" ]; then
  echo "$dest"
  exit 0
fi

log() { echo "envtest-assets: $*" >&2; }
mkdir -p "$ENVTEST_CACHE"
tmp=$(mktemp -d "$ENVTEST_CACHE/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS

IFS=. read -r kmajor kminor kpatch <<<"$KUBE_VERSION"
staging="v0.$kminor.$kpatch"

# kube-apiserver: a wrapper module that requires k8s.io/kubernetes and
# replaces every staging module its go.mod points at ./staging/... with the
# published module of the same release.
log "kube-apiserver v$KUBE_VERSION (staging modules $staging)"
mkdir -p "$tmp/kube"
(
  cd "$tmp/kube"
  go mod init aipress.local/envtest/kube >/dev/null 2>&1
  kmod=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [ -f "$kmod" ] || { log "no go.mod for k8s.io/kubernetes@v$KUBE_VERSION"; exit 1; }
  # Lines like "	k8s.io/api => ./staging/src/k8s.io/api" (inside or outside a
  # replace block). k8s.io/sample-cli-plugin is not published, and nothing
  # kube-apiserver builds needs it.
  args=()
  while read -r mod; do
    [ "$mod" = k8s.io/sample-cli-plugin ] && continue
    args+=("-replace=$mod=$mod@$staging")
  done < <(sed -n 's/^[[:space:]]*\(replace[[:space:]]\+\)\{0,1\}\([^[:space:]]\+\)[[:space:]]\+=>[[:space:]]\+\.\/staging\/.*$/\2/p' "$kmod")
  [ ${#args[@]} -gt 0 ] || { log "found no staging replacements in $kmod"; exit 1; }
  go mod edit "${args[@]}"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@v$KUBE_VERSION" >&2
  pkg=k8s.io/component-base/version
  cpkg=k8s.io/client-go/pkg/version
  ld="-s -w"
  for p in $pkg $cpkg; do
    ld+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=$kmajor -X $p.gitMinor=$kminor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$tmp/out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
)
log "kube-apiserver built ($((SECONDS - start))s)"

# etcd: a wrapper module with the server as a tool dependency.
log "etcd v$ETCD_VERSION"
mkdir -p "$tmp/etcd"
(
  cd "$tmp/etcd"
  go mod init aipress.local/envtest/etcd >/dev/null 2>&1
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/out/etcd" go.etcd.io/etcd/server/v3
)
log "etcd built ($((SECONDS - start))s)"

"$tmp/out/kube-apiserver" --version >&2
"$tmp/out/etcd" --version >&2 | head -1 || true
rm -rf "$dest"
mv "$tmp/out" "$dest"
log "assets in $dest ($((SECONDS - start))s)"
echo "$dest"
