#!/usr/bin/env bash
# Builds the SAML identity provider the login tests sign in at (test/idp/saml-idp: our small main
# around crewjam/saml's samlidp, Go modules from the module proxy) into
# ${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/saml-idp/saml-idp and prints the binary's path.
#
# Idempotent: the binary is rebuilt only when the sources (main.go, util.go, go.mod, go.sum) changed
# since the last build (their hash is kept next to the binary). Concurrent callers are serialised by
# a lock file, so two test files starting together build once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/test/idp/saml-idp"
out="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/saml-idp"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
hash="$(cd "$src" && cat go.mod go.sum ./*.go | sha256sum | cut -d' ' -f1)"
if [[ -x "$out/saml-idp" && "$(cat "$out/.source-hash" 2>/dev/null)" == "$hash" ]]; then
  echo "$out/saml-idp"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-saml-idp: 'go' is not on PATH; install Go (>= 1.25) to build the test SAML IdP" >&2
  exit 1
fi
(cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -o "$out/saml-idp.tmp" .)
mv "$out/saml-idp.tmp" "$out/saml-idp"
echo "$hash" >"$out/.source-hash"
echo "$out/saml-idp"
