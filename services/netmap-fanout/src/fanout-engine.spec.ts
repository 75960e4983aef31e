import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { configureLogging, createLogger } from '@switchboard/common';
import type { NodeRecord } from '@switchboard/contracts';
import { FanoutEngine, type StreamSink } from './fanout-engine.js';
import { ReadModel } from './read-model.js';
import { PolicyState } from './policy-state.js';
import type { ModelChange } from './read-model.js';

const ALLOW_ALL_FILTER_JSON = JSON.stringify([
  { SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] },
]);
import { TAGGED_USER_ID } from './map-builder.js';

configureLogging({ level: 'silent' });

let nextId = 1;
function node(over: Partial<NodeRecord> = {}): NodeRecord {
  const id = over.id ?? nextId++;
  return {
    id,
    stableId: `n${id}`,
    tailnetId: 1,
    userId: 1,
    machineKey: `mkey:${id.toString(16).padStart(64, '0')}`,
    nodeKey: `nodekey:${id.toString(16).padStart(64, '0')}`,
    discoKey: `discokey:${id.toString(16).padStart(64, '0')}`,
    ipv4: `100.64.${id >> 8}.${id & 255}`,
    ipv6: `fd7a:115c:a1e0::6440:${id.toString(16)}`,
    hostname: `host${id}`,
    givenName: `host${id}`,
    hostinfo: { Hostname: `host${id}`, OS: 'linux' },
    endpoints: [`192.0.2.${id}:41641`],
    homeDerp: 900,
    tags: [],
    ephemeral: false,
    keyExpiry: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    lastSeen: null,
    machineAuthorized: true,
    capVersion: 130,
    routableIPs: [],
    approvedRoutes: [],
    version: 1,
    ...over,
  };
}

class Sink implements StreamSink {
  frames: Record<string, unknown>[] = [];
  closed: string | null = null;
  write(frame: Buffer): void {
    this.frames.push(JSON.parse(frame.toString('utf8')) as Record<string, unknown>);
  }
  close(reason: string): void {
    this.closed = reason;
  }
  last(): Record<string, unknown> {
    return this.frames[this.frames.length - 1]!;
  }
}

function setup() {
  const model = new ReadModel();
  model.upsertTailnet({ id: 1, name: 'default', domain: 'example.test' });
  model.upsertUser({
    id: 1,
    tailnetId: 1,
    name: 'alice',
    loginName: 'alice@example.test',
    displayName: 'Alice',
    email: null,
    profilePicUrl: null,
    provider: 'local',
    groups: [],
    createdAt: '2026-01-01T00:00:00.000Z',
    version: 1,
  });
  const policy = new PolicyState(model, createLogger('test'));
  const engine = new FanoutEngine({
    model,
    settings: {
      derpMap: { Regions: {} },
      magicDns: true,
      nameservers: [],
      disableCaptivePortalDetection: true,
    },
    policy,
    encoder: {
      compress: (t) => Buffer.from(t),
      frame: (p) => p,
      keepAlive: Buffer.from('{"KeepAlive":true}'),
    },
    logger: createLogger('test'),
  });
  /** Applies changes the way the runtime does: through the policy engine, then to the streams. */
  const push = (c: ModelChange | null): void => {
    if (!c) return;
    const fx = policy.follow(c);
    engine.apply(fx ? [c, fx] : [c]);
  };
  return { model, engine, push };
}

describe('fan-out engine', () => {
  test('a new stream gets a full map with self, peers, filter, DERP map and profiles', () => {
    const { model, engine, push } = setup();
    const a = node();
    const b = node();
    push(model.upsertNode(a));
    push(model.upsertNode(b));
    engine.flush();
    const sink = new Sink();
    engine.open('s1', a, sink);
    const m = sink.frames[0]!;
    assert.equal((m.Node as { ID: number }).ID, a.id);
    assert.equal((m.Node as { Name: string }).Name, `${a.givenName}.example.test.`);
    assert.deepEqual((m.Node as { CapMap: unknown }).CapMap, { 'disable-captive-portal-detection': null });
    assert.deepEqual(
      (m.Peers as { ID: number }[]).map((p) => p.ID),
      [b.id],
    );
    assert.deepEqual(m.PacketFilter, JSON.parse(ALLOW_ALL_FILTER_JSON));
    assert.ok(m.DERPMap);
    assert.deepEqual(
      (m.UserProfiles as { ID: number }[]).map((u) => u.ID),
      [1],
    );
    const peer = (m.Peers as Record<string, unknown>[])[0]!;
    assert.equal(peer.DERP, '127.3.3.40:900');
    assert.deepEqual(peer.AllowedIPs, [`${b.ipv4}/32`, `${b.ipv6}/128`]);
  });

  test('joins, endpoint changes, hostinfo changes and deletions become deltas', async () => {
    const { model, engine, push } = setup();
    const a = node();
    push(model.upsertNode(a));
    engine.flush();
    const sa = new Sink();
    engine.open('sa', a, sa);
    assert.equal(sa.frames[0]!.Peers, undefined, 'no peers yet');

    const t = node({ userId: null, tags: ['tag:server'] });
    push(model.upsertNode(t));
    engine.flush();
    const join = sa.last();
    assert.deepEqual(
      (join.PeersChanged as { ID: number }[]).map((p) => p.ID),
      [t.id],
    );
    assert.deepEqual(
      (join.UserProfiles as { ID: number }[]).map((u) => u.ID),
      [TAGGED_USER_ID],
    );
    assert.equal(join.Node, undefined, 'self unchanged');

    const moved = { ...t, endpoints: ['198.51.100.7:41641'], version: 2 };
    push(model.upsertNode(moved));
    engine.flush();
    assert.deepEqual(sa.last().PeersChangedPatch, [{ NodeID: t.id, Endpoints: ['198.51.100.7:41641'] }]);

    const renamed = { ...moved, hostinfo: { Hostname: 'other', OS: 'linux' }, version: 3 };
    push(model.upsertNode(renamed));
    engine.flush();
    assert.deepEqual(
      (sa.last().PeersChanged as { ID: number }[]).map((p) => p.ID),
      [t.id],
    );

    push(model.removeNode(t.id, 4));
    engine.flush();
    assert.deepEqual(sa.last().PeersRemoved, [t.id]);
  });

  test('a deleted node loses its own stream', () => {
    const { model, engine, push } = setup();
    const a = node();
    const b = node();
    push(model.upsertNode(a));
    push(model.upsertNode(b));
    engine.flush();
    const sa = new Sink();
    const sb = new Sink();
    engine.open('sa', a, sa);
    engine.open('sb', b, sb);
    push(model.removeNode(b.id, 2));
    engine.flush();
    assert.equal(sb.closed, 'node deleted');
    assert.deepEqual(sa.last().PeersRemoved, [b.id]);
    assert.equal(engine.streamCount, 1);
  });

  test('identical deltas are encoded once and written to every stream', () => {
    const { model, engine, push } = setup();
    const sinks: Sink[] = [];
    const nodes = Array.from({ length: 50 }, () => node());
    for (const n of nodes) push(model.upsertNode(n));
    engine.flush();
    let encodes = 0;
    for (const n of nodes) {
      const s = new Sink();
      sinks.push(s);
      engine.open(`s${n.id}`, n, s);
    }
    const before = engine.stats.encodes;
    const gone = nodes[0]!;
    push(model.removeNode(gone.id, 2));
    engine.flush();
    encodes = engine.stats.encodes - before;
    assert.equal(encodes, 1);
    for (const s of sinks.slice(1)) assert.deepEqual(s.last().PeersRemoved, [gone.id]);
  });

  test('presence becomes an Online patch; self changes resend the self node', () => {
    const { model, engine, push } = setup();
    const a = node();
    const b = node();
    push(model.upsertNode(a));
    push(model.upsertNode(b));
    engine.flush();
    const sa = new Sink();
    engine.open('sa', a, sa);
    push(model.setOnline(b.id, true, '2026-01-01T00:00:00Z'));
    engine.flush();
    assert.deepEqual(sa.last().PeersChangedPatch, [{ NodeID: b.id, Online: true }]);
    push(model.upsertNode({ ...a, keyExpiry: '2020-01-01T00:00:00.000Z', version: 2 }));
    engine.flush();
    const self = sa.last().Node as Record<string, unknown>;
    assert.equal(self.Expired, true);
    assert.equal(self.MachineAuthorized, false);
  });

  test('an unapproved machine gets no peers until approved', () => {
    const { model, engine, push } = setup();
    const a = node({ machineAuthorized: false });
    const b = node();
    push(model.upsertNode(a));
    push(model.upsertNode(b));
    engine.flush();
    const sa = new Sink();
    engine.open('sa', a, sa);
    assert.equal(sa.frames[0]!.Peers, undefined);
    assert.deepEqual(sa.frames[0]!.PacketFilter, []);
    push(model.upsertNode({ ...a, machineAuthorized: true, version: 2 }));
    engine.flush();
    const m = sa.last();
    assert.equal((m.Node as { MachineAuthorized: boolean }).MachineAuthorized, true);
    assert.deepEqual(
      (m.PeersChanged as { ID: number }[]).map((p) => p.ID),
      [b.id],
    );
    assert.deepEqual(m.PacketFilter, JSON.parse(ALLOW_ALL_FILTER_JSON));
  });

  test('a newer stream of the same node supersedes the older one', () => {
    const { model, engine, push } = setup();
    const a = node();
    push(model.upsertNode(a));
    engine.flush();
    const s1 = new Sink();
    const s2 = new Sink();
    engine.open('one', a, s1);
    engine.open('two', a, s2);
    assert.match(s1.closed ?? '', /superseded/);
    assert.equal(engine.streamFor(a.id)?.id, 'two');
  });
});

describe('full map frames from cached peer blocks', () => {
  test('equal the one-piece map for every viewer, and share compressed blocks', () => {
    const { model, engine, push } = setup();
    const nodes = Array.from({ length: 700 }, () => node());
    for (const n of nodes) push(model.upsertNode(n));
    engine.flush();
    const before = engine.stats.encodes;
    for (const viewer of [nodes[0]!, nodes[300]!, nodes[699]!]) {
      const framed = engine.fullMapFrame(viewer).toString('utf8');
      const whole = engine.fullMap(viewer);
      // ControlTime may tick between the two renders; compare without it.
      const strip = (x: string) => x.replace(/"ControlTime":"[^"]*"/, '');
      assert.equal(strip(framed), strip(whole));
      const parsed = JSON.parse(framed) as { Peers: { ID: number }[] };
      assert.equal(parsed.Peers.length, 699);
      assert.ok(!parsed.Peers.some((p) => p.ID === viewer.id));
    }
    // 700 peers span 3-4 blocks; later viewers reuse the blocks that do not contain them.
    assert.ok(engine.stats.encodes - before < 3 * 4, `encodes ${engine.stats.encodes - before}`);
  });
});

describe('read model', () => {
  test('applies events idempotently by version and keeps tombstones', () => {
    const m = new ReadModel();
    const a = node({ version: 3 });
    assert.ok(m.upsertNode(a));
    assert.equal(m.upsertNode({ ...a, version: 2 }), null, 'older version ignored');
    assert.equal(m.upsertNode(a), null, 'same version ignored');
    assert.ok(m.removeNode(a.id, 4));
    assert.equal(m.upsertNode({ ...a, version: 4 }), null, 'no resurrection from a late event');
    assert.equal(m.nodeByKey(a.nodeKey), undefined);
  });
  test('a key rotation re-indexes the node key', () => {
    const m = new ReadModel();
    const a = node();
    m.upsertNode(a);
    const rotated = { ...a, nodeKey: `nodekey:${'f'.repeat(64)}`, version: 2 };
    m.upsertNode(rotated);
    assert.equal(m.nodeByKey(a.nodeKey), undefined);
    assert.equal(m.nodeByKey(rotated.nodeKey)?.id, a.id);
  });
});
