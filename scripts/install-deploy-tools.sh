#!/usr/bin/env bash
# Builds the tools the deploy tier (`pnpm test:deploy`) needs, from Go modules, into
# ${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/tools/ (never into the repository):
#   helm          helm.sh/helm/v4/cmd/helm (HELM_VERSION, default v4.3.2)
#   k8s-validate  deploy/tools/k8s-validate: decodes rendered manifests strictly (unknown or
#                 duplicate fields are errors) into the k8s.io/api types of the Kubernetes release
#                 it is built against. kubeconform is not served by the module proxy this project
#                 reaches and needs its JSON schemas downloaded at run time, so this stands in for it.
# hadolint (Haskell) is neither a Go module nor a Debian package here: the Dockerfile is not linted.
# Idempotent: a tool that exists and runs is kept. Prints the tools directory on stdout.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
TOOLS="$CACHE/tools"
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
mkdir -p "$TOOLS"
log() { printf '[install-deploy-tools] %s\n' "$*" >&2; }
command -v go >/dev/null || { log "ERROR: go is not installed (needed to build helm and k8s-validate)"; exit 1; }

exec 9>"$TOOLS/.lock"
flock 9

if ! "$TOOLS/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION}"; then
  log "building helm $HELM_VERSION (a few minutes on 2 cores)"
  GOBIN="$TOOLS" GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 go install "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
fi
src="$root/deploy/tools/k8s-validate"
if [ -f "$src/go.mod" ]; then
stamp="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-16)"
if [ "$(cat "$TOOLS/k8s-validate.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -x "$TOOLS/k8s-validate" ]; then
  log "building k8s-validate"
  (cd "$src" && CGO_ENABLED=0 nice -n 10 go build -o "$TOOLS/k8s-validate" .)
  echo "$stamp" >"$TOOLS/k8s-validate.stamp"
fi
else
  log "deploy/tools/k8s-validate is not written yet: only helm is built"
fi
echo "$TOOLS"
