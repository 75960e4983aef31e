#!/usr/bin/env bash
# Builds the real, unmodified Tailscale clients that the interop tests run (test/src/harness):
#   newest supported release: tailscale, tailscaled, derper
#   oldest supported release: tailscale, tailscaled
#   legacy-channel release:   tailscale, tailscaled (v1.62.1, the newest that speaks the pre-Noise
#                             NaCl protocol; built with GOTOOLCHAIN=go1.22.12 as its go.mod asks)
# into ${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/tailscale/<version>/ with `go install`.
#
# Idempotent: a version whose binaries exist and run is skipped; a build of the same version that
# is already running (another shell, an earlier background command) is waited for, not duplicated.
#
# Environment:
#   TS_VERSION_NEWEST  (default v1.104.5)   TS_VERSION_OLDEST  (default v1.80.3)
#   TS_VERSION_LEGACY  (default v1.62.1)    TS_LEGACY_GOTOOLCHAIN (default go1.22.12)
#   SWITCHBOARD_CACHE  (default $HOME/.cache/switchboard)
#   TS_BUILD_WAIT_S    how long to wait for a build already running elsewhere (default 1800)
#   TS_GO_REPLACE      extra "module=version" pairs (space separated) for the fallback build below
#   HEADSCALE_VERSION  (default v0.27.1) built only with --with-headscale, into <cache>/headscale/<v>/
#
# Fallback build: the Go module proxy this project can reach refuses the zips of a few module
# versions that recent Tailscale releases pin (v1.104.x pins gvisor, gliderssh and setec versions
# whose zips answer 403). Then `go install pkg@version` cannot work, so the script builds the same
# Tailscale release as a dependency of a throw-away module under the cache directory, replacing
# only the refused modules by the nearest versions the proxy serves (table below). If the
# replacement gVisor lacks the `stack.Options.ClockResolution` field (set by tailscale only on
# Windows), a one-field stub is added to a private copy of that gVisor. Tailscale's own code is
# never changed. What was replaced is written to <version>/BUILD-INFO.
set -euo pipefail

WITH_HEADSCALE=0
for arg in "$@"; do
  case "$arg" in
    --with-headscale) WITH_HEADSCALE=1 ;;
    *)
      echo "usage: $0 [--with-headscale]" >&2
      exit 2
      ;;
  esac
done

CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
TS_DIR="$CACHE/tailscale"
NEWEST="${TS_VERSION_NEWEST:-v1.104.5}"
OLDEST="${TS_VERSION_OLDEST:-v1.80.3}"
LEGACY="${TS_VERSION_LEGACY:-v1.62.1}"
LEGACY_GOTOOLCHAIN="${TS_LEGACY_GOTOOLCHAIN:-go1.22.12}"
WAIT_S="${TS_BUILD_WAIT_S:-1800}"
HS_VERSION="${HEADSCALE_VERSION:-v0.27.1}"

# Replacements for module versions the proxy refuses, keyed by the refused "module@version".
# Each value is the newest version of that module the proxy serves that predates the refused one.
known_replacement() {
  case "$1" in
    gvisor.dev/gvisor@v0.0.0-20260915211658-a6f909f08a72) echo v0.0.0-20260905035102-160fafc42237 ;;
    github.com/tailscale/gliderssh@v0.3.4-0.20261026144310-31f7cf365d3a) echo v0.3.4-0.20260330083525-c1389c70ff89 ;;
    github.com/tailscale/setec@v0.0.0-20260824224040-f8d7a936837c) echo v0.0.0-20260115174028-19d190c5556d ;;
    *) return 1 ;;
  esac
}

log() { printf '[install-tailscale] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    echo /usr/local/go/bin/go
  else
    die "no Go toolchain found (need go >= 1.21 on PATH or in /usr/local/go; GOTOOLCHAIN=auto fetches newer ones)"
  fi
}
GO="$(find_go)"
export GOTOOLCHAIN=auto

# binaries_ok DIR CMD...: every CMD exists in DIR and the CLI runs.
binaries_ok() {
  local dir="$1"
  shift
  local c
  for c in "$@"; do
    [ -x "$dir/$c" ] || return 1
  done
  timeout 20 "$dir/tailscale" version >/dev/null 2>&1 || return 1
  if [ -x "$dir/derper" ]; then timeout 20 "$dir/derper" -version >/dev/null 2>&1 || return 1; fi
  return 0
}

# wait_for_foreign_build VERSION: waits while some other `go install tailscale.com/...@VERSION` runs.
wait_for_foreign_build() {
  local version="$1" waited=0
  while pgrep -f "go install tailscale.com/.*@${version}" >/dev/null 2>&1; do
    if [ "$waited" -eq 0 ]; then log "a build of tailscale $version is already running; waiting for it"; fi
    if [ "$waited" -ge "$WAIT_S" ]; then die "gave up waiting ${WAIT_S}s for the running build of $version"; fi
    sleep 5
    waited=$((waited + 5))
  done
}

# build_plain VERSION DIR LOG CMD...: the normal route, `go install tailscale.com/cmd/X@VERSION`.
build_plain() {
  local version="$1" dir="$2" logf="$3"
  shift 3
  local pkgs=() c
  for c in "$@"; do pkgs+=("tailscale.com/cmd/$c@$version"); done
  GOBIN="$dir" "$GO" install "${pkgs[@]}" >"$logf" 2>&1
}

# refused_modules LOG: prints "module@version" for each module zip the proxy refused (403/410).
refused_modules() {
  grep -oE '[A-Za-z0-9._~/-]+@v[A-Za-z0-9._+-]+: reading [^ ]+\.zip: 4(03|10)' "$1" |
    sed -E 's/: reading .*//' | sort -u
}

# build_wrapped VERSION DIR LOG CMD...: the fallback described at the top of this file.
build_wrapped() {
  local version="$1" dir="$2" logf="$3"
  shift 3
  local work="$TS_DIR/.build-$version"
  local refused mv mod ver repl info="" gv_dir="" gomod_go
  refused="$(refused_modules "$logf")"
  [ -n "$refused" ] || return 1
  rm -rf "$work"
  mkdir -p "$work"
  gomod_go="$(cd "$work" && "$GO" mod download -json "tailscale.com@$version" | sed -nE 's/.*"GoMod": "(.*)".*/\1/p')"
  [ -n "$gomod_go" ] || die "cannot read go.mod of tailscale.com@$version"
  printf 'module switchboard.local/tsbuild\n\n%s\n' "$(grep -m1 -E '^go [0-9.]+' "$gomod_go")" >"$work/go.mod"
  for mv in $refused ${TS_GO_REPLACE:-}; do
    if [[ "$mv" == *=* ]]; then
      mod="${mv%%=*}"
      repl="${mv#*=}"
    else
      mod="${mv%@*}"
      ver="${mv#*@}"
      repl="$(known_replacement "$mod@$ver")" ||
        die "the module proxy refuses $mod@$ver and no replacement is known: set TS_GO_REPLACE='$mod=<version>'"
    fi
    log "fallback build: replacing $mod (refused by the proxy) with $repl"
    info+="replace $mod => $repl"$'\n'
    (cd "$work" && "$GO" mod edit -replace "$mod=$mod@$repl")
    if [ "$mod" = gvisor.dev/gvisor ]; then
      gv_dir="$(cd "$work" && "$GO" mod download -json "gvisor.dev/gvisor@$repl" | sed -nE 's/.*"Dir": "(.*)".*/\1/p')"
    fi
  done
  local pkgs=() c
  for c in "$@"; do pkgs+=("tailscale.com/cmd/$c@$version"); done
  (cd "$work" && "$GO" get "${pkgs[@]}") >>"$logf" 2>&1 || return 1
  if [ -n "$gv_dir" ] && ! grep -q 'ClockResolution' "$gv_dir/pkg/tcpip/stack/stack.go"; then
    log "fallback build: adding the stack.Options.ClockResolution stub to a private copy of gVisor"
    cp -r "$gv_dir" "$work/gvisor"
    chmod -R u+w "$work/gvisor"
    sed -i '/^type Options struct {/a\	// ClockResolution is a stub added by switchboard scripts/install-tailscale.sh: a field of\n\t// newer gVisor that tailscale sets only on Windows.\n\tClockResolution time.Duration\n' \
      "$work/gvisor/pkg/tcpip/stack/stack.go"
    (cd "$work" && "$GO" mod edit -replace "gvisor.dev/gvisor=./gvisor")
    info+="gvisor.dev/gvisor: private copy with the stack.Options.ClockResolution stub"$'\n'
  fi
  pkgs=()
  for c in "$@"; do pkgs+=("tailscale.com/cmd/$c"); done
  (cd "$work" && GOBIN="$dir" "$GO" install "${pkgs[@]}") >>"$logf" 2>&1 || return 1
  printf 'tailscale.com %s built by scripts/install-tailscale.sh (fallback build)\n%s' "$version" "$info" >"$dir/BUILD-INFO"
  rm -rf "$work"
}

# ensure_version VERSION CMD...
ensure_version() {
  local version="$1"
  shift
  local dir="$TS_DIR/$version"
  mkdir -p "$dir"
  if binaries_ok "$dir" "$@"; then
    log "$version: already built ($*)"
    return 0
  fi
  wait_for_foreign_build "$version"
  exec 9>"$TS_DIR/.lock-$version"
  flock 9
  if binaries_ok "$dir" "$@"; then
    log "$version: built by another run ($*)"
    exec 9>&-
    return 0
  fi
  local logf="$TS_DIR/build-$version.log" start=$SECONDS
  log "$version: building $* (log: $logf)"
  if build_plain "$version" "$dir" "$logf" "$@"; then
    printf 'tailscale.com %s built by scripts/install-tailscale.sh (go install)\n' "$version" >"$dir/BUILD-INFO"
  elif build_wrapped "$version" "$dir" "$logf" "$@"; then
    :
  else
    tail -n 30 "$logf" >&2 || true
    die "$version: build failed; see $logf"
  fi
  binaries_ok "$dir" "$@" || die "$version: binaries missing or not runnable after the build; see $logf"
  log "$version: built in $((SECONDS - start))s"
  exec 9>&-
}

# ensure_headscale: headscale (stand-in control server for the harness self-check and the
# benchmark). The proxy refuses headscale's version list, which `go install pkg@version` reads for
# deprecation notices, so that route fails; `go get` into a scratch module and install from there.
ensure_headscale() {
  local dir="$CACHE/headscale/$HS_VERSION" pkg=github.com/juanfont/headscale/cmd/headscale
  if [ -x "$dir/headscale" ] && timeout 20 "$dir/headscale" version >/dev/null 2>&1; then
    log "headscale $HS_VERSION: already built"
    return 0
  fi
  mkdir -p "$dir"
  local logf="$dir/build.log" work="$CACHE/headscale/.build-$HS_VERSION" start=$SECONDS
  log "headscale $HS_VERSION: building (log: $logf)"
  if ! GOBIN="$dir" "$GO" install "$pkg@$HS_VERSION" >"$logf" 2>&1; then
    rm -rf "$work"
    mkdir -p "$work"
    printf 'module switchboard.local/hsbuild\n\ngo 1.21\n' >"$work/go.mod"
    { (cd "$work" && "$GO" get "$pkg@$HS_VERSION" && GOBIN="$dir" "$GO" install "$pkg"); } >>"$logf" 2>&1 || {
      tail -n 30 "$logf" >&2
      die "headscale $HS_VERSION: build failed; see $logf"
    }
    rm -rf "$work"
  fi
  log "headscale $HS_VERSION: built in $((SECONDS - start))s"
}

mkdir -p "$TS_DIR"
ensure_version "$NEWEST" tailscale tailscaled derper
ensure_version "$OLDEST" tailscale tailscaled
# The legacy release builds unmodified with `go install` on the toolchain its go.mod names.
GOTOOLCHAIN="$LEGACY_GOTOOLCHAIN" ensure_version "$LEGACY" tailscale tailscaled

if [ "$WITH_HEADSCALE" = 1 ]; then ensure_headscale; fi

for v in "$NEWEST" "$OLDEST" "$LEGACY"; do
  printf 'tailscale %s: %s (%s)\n' "$v" "$TS_DIR/$v" "$("$TS_DIR/$v/tailscale" version | head -n1)"
done
if [ "$WITH_HEADSCALE" = 1 ]; then
  printf 'headscale %s: %s\n' "$HS_VERSION" "$CACHE/headscale/$HS_VERSION/headscale"
fi
