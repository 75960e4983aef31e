#!/usr/bin/env bash
# The whole test suite, from a fresh clone: machine setup (services, packages, real tailscale
# clients), dependencies and build, lint and format checks, then unit, integration and real-client
# interop tests. This is the command README.md documents and .ci/run calls.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/ci-setup.sh
bash scripts/bootstrap.sh
echo "== lint and format" >&2
pnpm lint
pnpm format:check
echo "== unit and integration tests" >&2
pnpm test
node scripts/run-tests.mjs fuzz
echo "== deploy tier: operators' endpoints of the split services" >&2
pnpm test:deploy
echo "== real-client interop tests" >&2
pnpm test:interop
echo "== browser login tests (real clients, headless Chromium, real IdPs)" >&2
pnpm test:login
echo "== unit and integration tests again on Node 24 (the containers' runtime)" >&2
node24="$(bash scripts/install-node24.sh)"
"$node24" scripts/run-tests.mjs unit integration
"$node24" scripts/run-tests.mjs fuzz
