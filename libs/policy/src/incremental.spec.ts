/**
 * Incremental compilation: after every join, leave, tag/route/user change and group change the
 * engine must answer exactly like an engine built from scratch, and the change it reports must
 * name exactly the nodes whose filter or peers differ (not everyone).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyEngine, type PolicyChange } from './engine.js';
import { parsePolicy } from './policy.js';
import { snapshot } from './test-support.js';
import type { Policy, PolicyNode } from './types.js';

const POLICIES: Record<string, string> = {
  acls: `{
    "groups": {"group:eng": ["alice@example.com", "bob@example.com"], "group:ops": ["carol@example.com"]},
    "hosts": {"lan": "10.1.0.0/16", "printer": "192.168.0.7"},
    "tagOwners": {"tag:web": [], "tag:db": [], "tag:router": [], "tag:exit": []},
    "acls": [
      {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:80,443", "tag:db:5432"]},
      {"action": "accept", "src": ["group:sre"], "dst": ["tag:db:*"]},
      {"action": "accept", "src": ["*"], "proto": "udp", "dst": ["tag:web:53"]},
      {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*", "lan:22"]},
      {"action": "accept", "src": ["group:ops", "tag:web"], "dst": ["printer:631", "autogroup:internet:*"]},
      {"action": "accept", "src": ["tag:db"], "dst": ["tag:db:5432"]},
      {"action": "accept", "src": ["group:eng"], "dst": ["tag:exit:9000"]},
    ],
  }`,
  grants: `{
    "groups": {"group:eng": ["alice@example.com"]},
    "tagOwners": {"tag:web": [], "tag:db": [], "tag:router": [], "tag:exit": []},
    "grants": [
      {"src": ["group:eng", "group:sre"], "dst": ["tag:web"], "ip": ["tcp:443"], "app": {"example.com/cap/web": [{"role": "admin"}]}},
      {"src": ["autogroup:member"], "dst": ["tag:db"], "app": {"tailscale.com/cap/drive": [{"shares": ["*"]}]}},
      {"src": ["*"], "dst": ["10.1.0.0/16", "10.2.0.0/16"], "ip": ["tcp:22"], "via": ["tag:router"]},
      {"src": ["autogroup:danger-all"], "dst": ["tag:web"], "ip": ["tcp:80"]},
      {"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["*"], "app": {"tailscale.com/cap/relay": []}},
      {"src": ["tag:router"], "dst": ["autogroup:internet"], "ip": ["*"], "via": ["tag:exit"]},
    ],
    "ssh": [
      {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]},
      {"action": "check", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root", "localpart:*@example.com"]},
    ],
    "nodeAttrs": [{"target": ["group:sre", "tag:db"], "attr": ["magicdns-aaaa"]}],
  }`,
  reorder: `{
    "tagOwners": {"tag:a": [], "tag:b": [], "tag:c": []},
    "acls": [
      {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:a:1"]},
      {"action": "accept", "src": ["tag:b"], "dst": ["tag:c:2"]},
      {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:c:3"]},
      {"action": "accept", "src": ["group:x"], "dst": ["tag:c:4"]},
      {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:c:5"]},
    ],
  }`,
};

const USERS = ['alice@example.com', 'bob@example.com', 'carol@example.com', 'dave@example.org'];
const TAGS = ['tag:web', 'tag:db', 'tag:router', 'tag:exit', 'tag:a', 'tag:b', 'tag:c'];
const ROUTES = [
  ['10.1.0.0/16'],
  ['10.2.0.0/16'],
  ['192.168.0.0/24'],
  ['0.0.0.0/0', '::/0'],
  ['10.1.0.0/16', '10.2.0.0/16'],
];
const GROUPS = ['sre', 'x', 'eng'];

/** Small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, list: readonly T[]): T {
  const v = list[Math.floor(r() * list.length)];
  if (v === undefined) throw new Error('empty list');
  return v;
}

function makeNode(r: () => number, id: number, ipIndex: number): PolicyNode {
  const tagged = r() < 0.4;
  const tags = tagged ? [...new Set([pick(r, TAGS), ...(r() < 0.3 ? [pick(r, TAGS)] : [])])] : [];
  const routes = r() < 0.35 ? pick(r, ROUTES) : [];
  const approved = routes.filter(() => r() < 0.8);
  return {
    id: String(id),
    user: tagged && r() < 0.5 ? null : pick(r, USERS),
    tags,
    ipv4: `100.64.${Math.floor(ipIndex / 250)}.${(ipIndex % 250) + 1}`,
    ipv6: r() < 0.9 ? `fd7a:115c:a1e0::${(ipIndex + 1).toString(16)}` : '',
    routableIPs: routes,
    approvedRoutes: approved,
  };
}

interface World {
  nodes: Map<string, PolicyNode>;
  groups: Map<string, string[]>;
}

function fresh(policy: Policy | null, w: World): PolicyEngine {
  return new PolicyEngine(policy, { nodes: [...w.nodes.values()], userGroups: [...w.groups.entries()] });
}

function diffIds(
  before: ReturnType<typeof snapshot>,
  after: ReturnType<typeof snapshot>,
  field: 'filter' | 'peers',
): Set<string> {
  const out = new Set<string>();
  for (const [id, a] of Object.entries(after)) {
    const b = before[id];
    if (b === undefined || JSON.stringify(b[field]) !== JSON.stringify(a[field])) out.add(id);
  }
  return out;
}

function checkChange(
  label: string,
  change: PolicyChange,
  before: ReturnType<typeof snapshot>,
  after: ReturnType<typeof snapshot>,
): void {
  const filters = diffIds(before, after, 'filter');
  const peers = diffIds(before, after, 'peers');
  assert.deepEqual([...change.filterChanged].sort(), [...filters].sort(), `${label}: filterChanged`);
  assert.deepEqual([...change.peersChanged].sort(), [...peers].sort(), `${label}: peersChanged`);
  assert.deepEqual(
    [...change.changed].sort(),
    [...new Set([...filters, ...peers])].sort(),
    `${label}: changed`,
  );
  for (const id of change.peerDelta === undefined ? [] : change.peersChanged) {
    const d = change.peerDelta?.get(id);
    const prev = new Set(before[id]?.peers ?? []);
    for (const x of d?.removed ?? []) prev.delete(x);
    for (const x of d?.added ?? []) prev.add(x);
    assert.deepEqual([...prev].sort(), [...(after[id]?.peers ?? [])].sort(), `${label}: peerDelta of ${id}`);
  }
  for (const [id, a] of Object.entries(after)) {
    if (before[id] !== undefined && before[id].caps !== a.caps) {
      assert.ok(change.capsChanged.has(id), `${label}: capsChanged misses ${id}`);
    }
    if (before[id] !== undefined && before[id].ssh !== a.ssh) {
      assert.ok(change.sshChanged.has(id), `${label}: sshChanged misses ${id}`);
    }
  }
}

function runSequence(
  policyName: string,
  policyText: string | null,
  seed: number,
  steps: number,
  queryEvery: number,
): void {
  const policy = policyText === null ? null : parsePolicy(policyText, { externalGroups: 'any' });
  const r = rng(seed);
  const w: World = { nodes: new Map(), groups: new Map() };
  let nextId = 1;
  let nextIp = 0;
  for (let i = 0; i < 12; i++) {
    const n = makeNode(r, nextId++, nextIp++);
    w.nodes.set(n.id, n);
  }
  const engine = fresh(policy, w);
  let before = snapshot(engine);
  for (let step = 0; step < steps; step++) {
    const op = r();
    let change: PolicyChange;
    let label: string;
    const ids = [...w.nodes.keys()];
    if (op < 0.25 || ids.length < 4) {
      const n = makeNode(r, nextId++, r() < 0.2 ? Math.floor(r() * nextIp) : nextIp++);
      w.nodes.set(n.id, n);
      label = `join ${n.id}`;
      change = engine.upsertNode(n);
    } else if (op < 0.4) {
      const id = pick(r, ids);
      w.nodes.delete(id);
      label = `leave ${id}`;
      change = engine.removeNode(id);
    } else if (op < 0.6) {
      const old = w.nodes.get(pick(r, ids));
      if (old === undefined) continue;
      const tags = r() < 0.3 ? [] : [pick(r, TAGS)];
      const n = { ...old, tags, user: old.user ?? pick(r, USERS) };
      w.nodes.set(n.id, n);
      label = `retag ${n.id} ${tags.join(',')}`;
      change = engine.upsertNode(n);
    } else if (op < 0.75) {
      const old = w.nodes.get(pick(r, ids));
      if (old === undefined) continue;
      const routes = r() < 0.3 ? [] : pick(r, ROUTES);
      const n = { ...old, routableIPs: routes, approvedRoutes: routes.filter(() => r() < 0.7) };
      w.nodes.set(n.id, n);
      label = `routes ${n.id} ${n.approvedRoutes.join(',')}`;
      change = engine.upsertNode(n);
    } else if (op < 0.85) {
      const old = w.nodes.get(pick(r, ids));
      if (old === undefined) continue;
      const n = { ...old, user: pick(r, USERS) };
      w.nodes.set(n.id, n);
      label = `user ${n.id} ${n.user ?? ''}`;
      change = engine.upsertNode(n);
    } else {
      const user = pick(r, USERS);
      const groups = GROUPS.filter(() => r() < 0.4);
      w.groups.set(user, groups);
      label = `groups ${user} ${groups.join(',')}`;
      change = engine.setUserGroups(user, groups);
    }
    const ctx = `${policyName} seed ${seed} step ${step} (${label})`;
    // Exactness must not depend on what happened to be cached.
    if (step % queryEvery === 0 || step === steps - 1) {
      const after = snapshot(engine);
      assert.deepEqual(after, snapshot(fresh(policy, w)), `${ctx}: incremental differs from a fresh compile`);
      checkChange(ctx, change, before, after);
      before = after;
    } else {
      before = snapshot(fresh(policy, w));
      // keep the engine's caches partly cold: query only one node
      const one = engine.nodeIds()[0];
      if (one !== undefined) engine.filterFor(one);
    }
  }
}

describe('incremental compilation equals a fresh compile, with exact change sets', () => {
  for (const [name, text] of Object.entries(POLICIES)) {
    for (const seed of [1, 2, 3, 4]) {
      test(`${name} seed ${seed}`, () => runSequence(name, text, seed, 60, 1));
    }
  }
  test('null policy (allow all)', () => runSequence('null', null, 7, 40, 1));
  test('cold caches', () => runSequence('acls', POLICIES.acls ?? '', 11, 60, 3));
});

describe('change sets name only what is affected', () => {
  const policy = parsePolicy(`{
    "groups": {"group:eng": ["alice@example.com"]},
    "tagOwners": {"tag:db": [], "tag:web": []},
    "acls": [
      {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
      {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
    ],
  }`);
  const node = (id: string, user: string | null, tags: string[], ip: number): PolicyNode => ({
    id,
    user,
    tags,
    ipv4: `100.64.0.${ip}`,
    ipv6: `fd7a:115c:a1e0::${ip}`,
    routableIPs: [],
    approvedRoutes: [],
  });
  const base = (): PolicyEngine =>
    new PolicyEngine(policy, {
      nodes: [
        node('1', 'alice@example.com', [], 1),
        node('2', null, ['tag:db'], 2),
        node('3', null, ['tag:db'], 3),
        node('4', 'bob@example.com', [], 4),
        node('5', null, ['tag:web'], 5),
      ],
    });

  test('a second device of alice changes her devices and the db servers, nobody else', () => {
    const e = base();
    const change = e.upsertNode(node('6', 'alice@example.com', [], 6));
    assert.deepEqual([...change.filterChanged].sort(), ['1', '2', '3', '6']);
    assert.deepEqual([...change.peersChanged].sort(), ['1', '2', '3', '6']);
    assert.deepEqual(change.peerDelta?.get('2'), { added: ['6'], removed: [] });
  });

  test('a web server joining changes only itself', () => {
    const e = base();
    const change = e.upsertNode(node('7', null, ['tag:web'], 7));
    assert.deepEqual([...change.changed], ['7']);
  });

  test('tagging a db server as web changes it and alice', () => {
    const e = base();
    const change = e.upsertNode(node('3', null, ['tag:web'], 3));
    assert.deepEqual([...change.filterChanged], ['3']);
    assert.deepEqual([...change.peersChanged].sort(), ['1', '3']);
  });

  test('bob joining group:eng through the IdP changes bob and the db servers', () => {
    const e = base();
    const change = e.setUserGroups('bob@example.com', ['eng']);
    assert.deepEqual([...change.filterChanged].sort(), ['2', '3']);
    assert.deepEqual([...change.peersChanged].sort(), ['2', '3', '4']);
  });

  test('a no-op upsert changes nothing', () => {
    const e = base();
    assert.equal(e.upsertNode(node('4', 'bob@example.com', [], 4)).changed.size, 0);
  });

  test('removing a node reports its former peers', () => {
    const e = base();
    const change = e.removeNode('2');
    assert.deepEqual([...change.peersChanged], ['1']);
    assert.deepEqual([...change.filterChanged], []);
    assert.equal(e.hasNode('2'), false);
  });

  test('setPolicy reports exactly the nodes whose outputs changed', () => {
    const e = base();
    const before = snapshot(e);
    const next = parsePolicy(`{
      "groups": {"group:eng": ["alice@example.com"]},
      "tagOwners": {"tag:db": [], "tag:web": []},
      "acls": [
        {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432", "tag:web:443"]},
        {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
      ],
    }`);
    const change = e.setPolicy(next);
    checkChange('setPolicy', change, before, snapshot(e));
    assert.deepEqual([...change.changed].sort(), ['1', '5']);
  });
});
