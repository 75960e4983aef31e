#!/usr/bin/env bash
# Makes a machine of the project's kind ready for the test suite, idempotently, and returns in a
# few seconds when it already is:
#   1. Debian packages the tests use (apt-get update + install only when something is missing);
#   2. PostgreSQL, Redis and NATS (JetStream) answering on 127.0.0.1, started if not;
#   3. pnpm;
#   4. the real Tailscale clients (scripts/install-tailscale.sh) and, when
#      SWITCHBOARD_WITH_HEADSCALE=1 or SWITCHBOARD_HARNESS_HEADSCALE=1, headscale.
# Run as root. Safe to run any number of times.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PNPM_VERSION="10.34.8"
WAIT_S="${CI_SETUP_WAIT_S:-60}"

log() { printf '[ci-setup] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, TUN devices, services)"

# --- 1. Debian packages -------------------------------------------------------------------
# command -> package providing it
declare -A NEED=(
  [ip]=iproute2
  [ss]=iproute2
  [setpriv]=util-linux
  [flock]=util-linux
  [pgrep]=procps
  [curl]=curl
  [nft]=nftables
  [timeout]=coreutils
  [chromium]=chromium
  [pg_ctlcluster]=postgresql
  [pg_isready]=postgresql-client
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [nats-server]=nats-server
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages: present"
fi
[ -c /dev/net/tun ] || die "/dev/net/tun is missing: the real-client tests need TUN devices"

# --- 2. services --------------------------------------------------------------------------
# wait_until WHAT CMD...: polls CMD every 0.5 s until it succeeds or WAIT_S passes.
wait_until() {
  local what="$1" tries=$((WAIT_S * 2))
  shift
  while ! "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || die "$what did not answer within ${WAIT_S}s"
    sleep 0.5
  done
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
# NATS announces itself with an INFO line; JetStream must be enabled in it.
nats_up() {
  (
    exec 3<>/dev/tcp/127.0.0.1/4222
    IFS= read -r -t 2 line <&3
    [[ "$line" == INFO* && "$line" == *'"jetstream":true'* ]]
  ) 2>/dev/null
}

if pg_up; then
  log "PostgreSQL: answering"
else
  log "PostgreSQL: starting"
  for version in /etc/postgresql/*; do
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
  done
  wait_until PostgreSQL pg_up
fi

if redis_up; then
  log "Redis: answering"
else
  log "Redis: starting"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_until Redis redis_up
fi

if nats_up; then
  log "NATS: answering with JetStream"
else
  log "NATS: starting"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_until "NATS (JetStream)" nats_up
fi

# --- 3. pnpm ------------------------------------------------------------------------------
if command -v pnpm >/dev/null 2>&1; then
  log "pnpm: $(pnpm --version)"
else
  log "pnpm: installing $PNPM_VERSION"
  npm i -g "pnpm@$PNPM_VERSION" >/dev/null
fi

# --- 4. real clients ----------------------------------------------------------------------
if [ "${SWITCHBOARD_WITH_HEADSCALE:-}" = 1 ] || [ "${SWITCHBOARD_HARNESS_HEADSCALE:-}" = 1 ]; then
  "$HERE/install-tailscale.sh" --with-headscale
else
  "$HERE/install-tailscale.sh"
fi
log "ready"
