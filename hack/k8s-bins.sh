#!/usr/bin/env bash
# Builds the local control-plane binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) from the pinned tools modules under e2e/tools/k8s into a cache outside
# the clone, keyed by version. Builds only what is missing; safe to run again.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
k8s_version=v1.37.2
cache=${FLOTILLA_K8S_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flotilla/k8s/$k8s_version}
mkdir -p "$cache"

stamp="-X k8s.io/component-base/version.gitVersion=$k8s_version \
-X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=37 \
-X k8s.io/component-base/version.gitTreeState=clean"

build() { # build NAME MODULE_DIR PACKAGE [LDFLAGS]
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-}
  if [ -x "$cache/$name" ]; then
    echo "k8s-bins: $name cached"
    return
  fi
  echo "k8s-bins: building $name (first build takes minutes)"
  local start=$SECONDS
  (cd "$root/e2e/tools/k8s/$dir" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$cache/$name.tmp" "$pkg")
  mv "$cache/$name.tmp" "$cache/$name"
  echo "k8s-bins: built $name in $((SECONDS - start))s"
}

start=$SECONDS
build etcd etcd go.etcd.io/etcd/server/v3
build kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
build kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$stamp"
build kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$stamp"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok

echo "k8s-bins: ready in $cache ($((SECONDS - start))s)"
