/**
 * Policy compiler benchmark (issue 3): full compile at 10k nodes × 1k rules, the cost of one node
 * join and one group change, and the size of the compiled form. Synthetic but shaped like a large
 * tailnet: 500 users in 40 groups, 50 tags, rules mixing users, groups, tags, autogroups and hosts.
 * Prints a table and writes bench/out/policy.json. Targets (read, never asserted): full compile
 * under 1 s, a join under 5 ms.
 *
 *   pnpm bench:policy [--nodes 10000] [--rules 1000]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { parsePolicy, PolicyEngine, type PolicyNode } from '@switchboard/policy';

const { values } = parseArgs({
  options: { nodes: { type: 'string', default: '10000' }, rules: { type: 'string', default: '1000' } },
});
const N = Number(values.nodes);
const R = Number(values.rules);
const USERS = 500;
const GROUPS = 40;
const TAGS = 50;

function ip4(i: number): string {
  const n = 1 + i;
  return `100.${64 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`;
}

function makePolicy(): string {
  const groups: Record<string, string[]> = {};
  for (let g = 0; g < GROUPS; g++) {
    groups[`group:g${g}`] = [];
    for (let u = g; u < USERS; u += GROUPS) groups[`group:g${g}`]!.push(`user${u}@`);
  }
  const tagOwners: Record<string, string[]> = {};
  for (let t = 0; t < TAGS; t++) tagOwners[`tag:t${t}`] = [`group:g${t % GROUPS}`];
  const hosts: Record<string, string> = {};
  for (let h = 0; h < 20; h++) hosts[`net${h}`] = `10.${h}.0.0/16`;
  const acls: unknown[] = [];
  for (let r = 0; r < R; r++) {
    const kind = r % 5;
    const src =
      kind === 0
        ? [`group:g${r % GROUPS}`]
        : kind === 1
          ? [`user${r % USERS}@`]
          : kind === 2
            ? [`tag:t${r % TAGS}`]
            : kind === 3
              ? ['autogroup:member']
              : [`group:g${(r * 7) % GROUPS}`, `tag:t${(r * 3) % TAGS}`];
    const dst =
      kind === 0
        ? [`tag:t${(r * 11) % TAGS}:22,443`]
        : kind === 1
          ? [`tag:t${(r * 13) % TAGS}:${1000 + (r % 2000)}`]
          : kind === 2
            ? [`tag:t${(r * 17) % TAGS}:*`]
            : kind === 3
              ? [`autogroup:self:*`]
              : [`net${r % 20}:80`, `group:g${(r * 5) % GROUPS}:8000-8100`];
    acls.push({ action: 'accept', src, dst, ...(r % 9 === 0 ? { proto: 'tcp' } : {}) });
  }
  return JSON.stringify({ groups, tagOwners, hosts, acls });
}

function makeNodes(): PolicyNode[] {
  const nodes: PolicyNode[] = [];
  for (let i = 0; i < N; i++) {
    const tagged = i % 4 === 0;
    nodes.push({
      id: String(i + 1),
      user: tagged ? null : `user${i % USERS}`,
      tags: tagged ? [`tag:t${i % TAGS}`] : [],
      ipv4: ip4(i),
      ipv6: `fd7a:115c:a1e0::${(i + 1).toString(16)}`,
      routableIPs: [],
      approvedRoutes: [],
    });
  }
  return nodes;
}

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 100) / 100;
}

const text = makePolicy();
const nodes = makeNodes();
let t0 = performance.now();
const policy = parsePolicy(text);
const parseMs = ms(t0);
t0 = performance.now();
const engine = new PolicyEngine(policy, { nodes });
const buildMs = ms(t0);
t0 = performance.now();
let filterBytes = 0;
let peerEntries = 0;
for (const n of nodes) {
  filterBytes += engine.filterJsonFor(n.id).length;
  peerEntries += engine.peersOf(n.id).length;
}
const renderAllMs = ms(t0);

// One join (a user node): the engine update alone, and with re-rendering every filter it changed.
const joinUpdates: number[] = [];
const joins: number[] = [];
for (let j = 0; j < 50; j++) {
  const id = String(N + 1 + j);
  const n: PolicyNode = {
    id,
    user: `user${j}`,
    tags: [],
    ipv4: ip4(N + j),
    ipv6: `fd7a:115c:a1e0::f${j}`,
    routableIPs: [],
    approvedRoutes: [],
  };
  const s = performance.now();
  const ch = engine.upsertNode(n);
  joinUpdates.push(performance.now() - s);
  for (const c of ch.filterChanged) engine.filterJsonFor(c);
  joins.push(performance.now() - s);
}
joins.sort((a, b) => a - b);
joinUpdates.sort((a, b) => a - b);

// One group change (an IdP group gained a user), with re-rendering.
const groupChanges: number[] = [];
for (let j = 0; j < 20; j++) {
  const s = performance.now();
  const ch = engine.setUserGroups(`user${j}`, [`group:g${(j + 1) % GROUPS}`]);
  for (const c of ch.filterChanged) engine.filterJsonFor(c);
  groupChanges.push(performance.now() - s);
}
groupChanges.sort((a, b) => a - b);

const p = (xs: number[], q: number) =>
  Math.round(xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]! * 1000) / 1000;
const result = {
  date: new Date().toISOString(),
  nodes: N,
  rules: R,
  parse_ms: parseMs,
  engine_build_ms: buildMs,
  render_all_filters_and_peers_ms: renderAllMs,
  full_compile_ms: Math.round((parseMs + buildMs + renderAllMs) * 100) / 100,
  join_update_p50_ms: p(joinUpdates, 0.5),
  join_update_p99_ms: p(joinUpdates, 0.99),
  join_p50_ms: p(joins, 0.5),
  join_p99_ms: p(joins, 0.99),
  group_change_p50_ms: p(groupChanges, 0.5),
  group_change_p99_ms: p(groupChanges, 0.99),
  compiled_filter_bytes_total: filterBytes,
  compiled_filter_bytes_per_node: Math.round(filterBytes / N),
  peer_entries_total: peerEntries,
  policy_text_bytes: text.length,
  targets: {
    compile_under_1s: parseMs + buildMs < 1000,
    compile_and_render_all_under_1s: parseMs + buildMs + renderAllMs < 1000,
    join_update_under_5ms: p(joinUpdates, 0.99) < 5,
  },
};
console.table(result);
mkdirSync(new URL('../../out/', import.meta.url), { recursive: true });
writeFileSync(new URL('../../out/policy.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
