#!/usr/bin/env bash
# Installs pnpm (if missing) and the workspace's dependencies, then builds everything.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v pnpm >/dev/null 2>&1; then
  echo "installing pnpm 10.34.8 with npm" >&2
  npm install -g pnpm@10.34.8 >/dev/null
fi
pnpm install --frozen-lockfile --prefer-offline >&2
pnpm build >&2
