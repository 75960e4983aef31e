#!/usr/bin/env node
// Finds compiled test files by tier and runs them with node's built-in test runner.
//   unit:        **/dist/src/**/*.spec.js      (pure, no I/O)
//   integration: services/*/dist/test/**/*.test.js, libs/*/dist/test/**/*.test.js (real Postgres, Redis, NATS)
//   interop:     test/dist/test/{harness,interop}/**/*.test.js (real tailscale clients in network namespaces)
//   e2e:         test/dist/test/e2e/**/*.test.js
//   deploy:      test/dist/test/deploy/**/*.test.js (services as processes, own Postgres/NATS; Helm and containers)
//   login:       test/dist/test/login/**/*.test.js   (browser login: real clients, headless Chromium, real IdPs)
//   fuzz:        **/dist/src/**/*.fuzz.js         (fast-check properties; FUZZ_RUNS runs each, FUZZ_SEED/FUZZ_PATH replay)
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const tiers = process.argv.slice(2);
if (tiers.length === 0) tiers.push('unit', 'integration');

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

const pkgDirs = ['libs', 'services'].flatMap((d) =>
  existsSync(join(root, d)) ? readdirSync(join(root, d)).map((n) => join(root, d, n)) : [],
);
pkgDirs.push(join(root, 'test'), join(root, 'bench'));

const files = [];
for (const tier of tiers) {
  for (const pkg of pkgDirs) {
    const dist = join(pkg, 'dist');
    if (tier === 'unit') files.push(...walk(join(dist, 'src'), []).filter((f) => f.endsWith('.spec.js')));
    if (tier === 'integration' && !pkg.endsWith('/test'))
      files.push(...walk(join(dist, 'test'), []).filter((f) => f.endsWith('.test.js')));
    if (tier === 'integration' && pkg.endsWith('/test'))
      files.push(...walk(join(dist, 'test', 'integration'), []).filter((f) => f.endsWith('.test.js')));
    if (tier === 'interop' && pkg.endsWith('/test'))
      files.push(
        ...walk(join(dist, 'test', 'harness'), []).filter((f) => f.endsWith('.test.js')),
        ...walk(join(dist, 'test', 'interop'), []).filter((f) => f.endsWith('.test.js')),
      );
    if (tier === 'fuzz') files.push(...walk(join(dist, 'src'), []).filter((f) => f.endsWith('.fuzz.js')));
    if (tier === 'deploy' && pkg.endsWith('/test'))
      files.push(...walk(join(dist, 'test', 'deploy'), []).filter((f) => f.endsWith('.test.js')));
    if (tier === 'login' && pkg.endsWith('/test'))
      files.push(...walk(join(dist, 'test', 'login'), []).filter((f) => f.endsWith('.test.js')));
    if (tier === 'e2e' && pkg.endsWith('/test'))
      files.push(...walk(join(dist, 'test', 'e2e'), []).filter((f) => f.endsWith('.test.js')));
  }
}
if (files.length === 0) {
  console.error(`no compiled test files found for tiers ${tiers.join(', ')}: run "pnpm build" first`);
  process.exit(1);
}
if (tiers.includes('fuzz'))
  console.error(
    `fuzz: FUZZ_RUNS=${process.env.FUZZ_RUNS || '100 (default)'}` +
      (process.env.FUZZ_SEED
        ? ` FUZZ_SEED=${process.env.FUZZ_SEED}`
        : ' (random seeds; a failure prints its seed and path)'),
  );
const concurrency =
  tiers.includes('interop') || tiers.includes('deploy') || tiers.includes('login')
    ? '1'
    : (process.env.TEST_CONCURRENCY ?? '2');
const r = spawnSync(
  process.execPath,
  ['--enable-source-maps', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: process.env },
);
process.exit(r.status ?? 1);
