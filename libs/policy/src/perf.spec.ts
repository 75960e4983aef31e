/**
 * Performance smoke test: a few thousand nodes and a few hundred rules, built at once and then
 * changed one node at a time. Times are printed for information only (never asserted); the
 * answers are checked against a fresh compile so the fast paths stay correct at scale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyEngine } from './engine.js';
import { parsePolicy } from './policy.js';
import type { PolicyNode } from './types.js';

test('perf smoke: 3000 nodes x 300 rules, incremental joins and leaves', (t) => {
  let seed = 7;
  const r = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T;
  const users = Array.from({ length: 150 }, (_, i) => `user${i}@example.com`);
  const tags = Array.from({ length: 40 }, (_, i) => `tag:t${i}`);
  const groups: Record<string, string[]> = {};
  for (let g = 0; g < 40; g++) groups[`group:g${g}`] = Array.from({ length: 8 }, () => pick(users));
  const src = (): string => {
    const x = r();
    return x < 0.5 ? pick(Object.keys(groups)) : x < 0.8 ? pick(tags) : x < 0.97 ? pick(users) : '*';
  };
  const dst = (): string =>
    `${r() < 0.6 ? pick(tags) : pick(Object.keys(groups))}:${pick(['22', '443', '*'])}`;
  const acls = Array.from({ length: 300 }, () => ({ action: 'accept', src: [src()], dst: [dst(), dst()] }));
  acls.push({ action: 'accept', src: ['autogroup:member'], dst: ['autogroup:self:*'] });
  const policy = parsePolicy(
    JSON.stringify({ groups, tagOwners: Object.fromEntries(tags.map((x) => [x, []])), acls }),
  );
  const node = (i: number): PolicyNode => {
    const tagged = r() < 0.3;
    return {
      id: String(i),
      user: tagged ? null : pick(users),
      tags: tagged ? [pick(tags)] : [],
      ipv4: `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
      ipv6: `fd7a:115c:a1e0::${i.toString(16)}`,
      routableIPs: [],
      approvedRoutes: [],
    };
  };
  const nodes = Array.from({ length: 3000 }, (_, i) => node(i + 1));
  let t0 = performance.now();
  const engine = new PolicyEngine(policy, { nodes });
  const build = performance.now() - t0;
  t0 = performance.now();
  for (const n of nodes) engine.filterJsonFor(n.id);
  const filters = performance.now() - t0;
  const joins: number[] = [];
  for (let k = 0; k < 50; k++) {
    const n = node(5000 + k);
    nodes.push(n);
    t0 = performance.now();
    engine.upsertNode(n);
    joins.push(performance.now() - t0);
  }
  for (let k = 0; k < 20; k++) engine.removeNode(String(100 + k));
  joins.sort((a, b) => a - b);
  t.diagnostic(
    `build ${build.toFixed(0)} ms, all filters ${filters.toFixed(0)} ms, join p50 ${joins[25]?.toFixed(2)} ms max ${joins[49]?.toFixed(2)} ms`,
  );
  const fresh = new PolicyEngine(policy, {
    nodes: nodes.filter((n) => !(Number(n.id) >= 100 && Number(n.id) < 120)),
  });
  for (const id of fresh.nodeIds().filter((_, i) => i % 37 === 0)) {
    assert.equal(engine.filterJsonFor(id), fresh.filterJsonFor(id), id);
    assert.deepEqual(engine.peersOf(id), fresh.peersOf(id), id);
  }
});
