import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { configureLogging, createLogger } from '@switchboard/common';
import type { NodeRecord, UserRecord } from '@switchboard/contracts';
import { FanoutEngine, type StreamSink } from './fanout-engine.js';
import { PolicyState } from './policy-state.js';
import { ReadModel, type ModelChange, type PolicyEffects } from './read-model.js';
import { ViewIngress, type ChangeSink, type PolicyFollower } from './view-ingress.js';

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

const alice: UserRecord = {
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
};

const marker = (tailnetId: number): PolicyEffects => ({
  kind: 'policy-effects',
  tailnetId,
  filterChanged: new Set(),
  peersChanged: new Set(),
  sshChanged: new Set(),
  capsChanged: new Set(),
  peerDelta: undefined,
});

/** A policy step that records what it was shown and answers with a marker effect. */
class RecordingPolicy implements PolicyFollower {
  followed: ModelChange[] = [];
  rebuilds = 0;
  fail = false;
  follow(c: ModelChange): ModelChange | null {
    this.followed.push(c);
    if (this.fail) throw new Error('engine broke');
    return 'tailnetId' in c ? marker(c.tailnetId) : null;
  }
  rebuildAll(): ModelChange[] {
    this.rebuilds++;
    return [{ kind: 'policy', tailnetId: 1 }];
  }
}

class RecordingSink implements ChangeSink {
  batches: ModelChange[][] = [];
  apply(changes: ModelChange[]): void {
    this.batches.push(changes);
  }
}

function fakes() {
  const model = new ReadModel();
  const policy = new RecordingPolicy();
  const sink = new RecordingSink();
  const ingress = new ViewIngress(model, policy, sink, createLogger('test'));
  return { model, policy, sink, ingress };
}

describe('view ingress', () => {
  test('a presence change passes the policy step before it is queued for the streams', () => {
    const { policy, sink, ingress } = fakes();
    const a = node();
    ingress.applyDirect({ node: a });
    policy.followed = [];
    sink.batches = [];
    ingress.applyPresence(a.id, true, '2026-01-01T00:00:00Z');
    assert.deepEqual(
      policy.followed.map((c) => c.kind),
      ['presence'],
    );
    assert.equal(sink.batches.length, 1);
    assert.deepEqual(
      sink.batches[0]!.map((c) => c.kind),
      ['presence', 'policy-effects'],
    );
  });

  test('presence that changes nothing (repeat, unknown node) reaches neither policy nor streams', () => {
    const { model, policy, sink, ingress } = fakes();
    const a = node();
    ingress.applyDirect({ node: a });
    ingress.applyPresence(a.id, true, '2026-01-01T00:00:00Z');
    policy.followed = [];
    sink.batches = [];
    ingress.applyPresence(a.id, true, '2026-01-01T00:00:01Z');
    ingress.applyPresence(9999, true, '2026-01-01T00:00:01Z');
    assert.equal(policy.followed.length, 0);
    assert.equal(sink.batches.length, 0);
    assert.ok(model.online.has(a.id));
  });

  test('events, direct records and presence all take the same path', () => {
    const { model, policy, sink, ingress } = fakes();
    const a = node();
    ingress.applyEvent({ kind: 'user-upserted', user: alice });
    ingress.applyDirect({ node: a });
    ingress.applyEvent({ kind: 'node-upserted', node: { ...a, version: 2 } });
    ingress.applyPresence(a.id, true, '2026-01-01T00:00:00Z');
    ingress.applyEvent({ kind: 'node-removed', nodeId: a.id, version: 3 });
    assert.deepEqual(
      policy.followed.map((c) => c.kind),
      ['user', 'node', 'node', 'presence', 'node'],
    );
    assert.equal(sink.batches.length, 5);
    assert.equal(model.nodes.size, 0);
  });

  test('stale records are dropped before the policy step (version-gated)', () => {
    const { policy, sink, ingress } = fakes();
    const a = node({ version: 5 });
    ingress.applyEvent({ kind: 'node-upserted', node: a });
    ingress.applyDirect({ node: { ...a, version: 4 } });
    ingress.applyEvent({ kind: 'node-upserted', node: a });
    assert.equal(policy.followed.length, 1);
    assert.equal(sink.batches.length, 1);
  });

  test('a policy step that throws is replaced by a full rebuild, still queued with the change', () => {
    const { policy, sink, ingress } = fakes();
    policy.fail = true;
    ingress.applyDirect({ node: node() });
    assert.equal(policy.rebuilds, 1);
    assert.deepEqual(
      sink.batches[0]!.map((c) => c.kind),
      ['node', 'policy'],
    );
  });

  test('a snapshot replaces the model and rebuilds the policy engines in one batch', () => {
    const { model, policy, sink, ingress } = fakes();
    const a = node();
    const b = node();
    ingress.loadSnapshot({
      users: [alice],
      tailnets: [{ id: 1, name: 'default', domain: 'example.test' }],
      nodes: [a, b],
      policies: [],
    });
    assert.equal(model.nodes.size, 2);
    assert.equal(policy.rebuilds, 1);
    assert.equal(sink.batches.length, 1);
    assert.deepEqual(
      sink.batches[0]!.map((c) => c.kind),
      ['user', 'tailnet', 'node', 'node', 'policy'],
    );
  });

  test('end to end: presence through the ingress reaches a peer stream as an Online patch', () => {
    const model = new ReadModel();
    const policy = new PolicyState(model, createLogger('test'));
    const engine = new FanoutEngine({
      model,
      settings: {
        derpMap: { Regions: {} },
        magicDns: true,
        nameservers: [],
        disableCaptivePortalDetection: false,
      },
      policy,
      encoder: {
        compress: (t) => Buffer.from(t),
        frame: (p) => p,
        keepAlive: Buffer.from('{"KeepAlive":true}'),
      },
      logger: createLogger('test'),
    });
    const followed: string[] = [];
    const spy: PolicyFollower = {
      follow: (c) => {
        followed.push(c.kind);
        return policy.follow(c);
      },
      rebuildAll: () => policy.rebuildAll(),
    };
    const ingress = new ViewIngress(model, spy, engine, createLogger('test'));
    ingress.loadSnapshot({
      users: [alice],
      tailnets: [{ id: 1, name: 'default', domain: 'example.test' }],
      nodes: [],
      policies: [],
    });
    const a = node();
    const b = node();
    ingress.applyDirect({ node: a });
    ingress.applyEvent({ kind: 'node-upserted', node: b });
    engine.flush();
    const frames: Record<string, unknown>[] = [];
    const sink: StreamSink = {
      write: (f) => frames.push(JSON.parse(f.toString('utf8')) as Record<string, unknown>),
      close: () => undefined,
    };
    engine.open('sa', a, sink);
    ingress.applyPresence(b.id, true, '2026-01-01T00:00:00Z');
    engine.flush();
    assert.deepEqual(followed, ['node', 'node', 'presence']);
    assert.deepEqual(frames[frames.length - 1]!.PeersChangedPatch, [{ NodeID: b.id, Online: true }]);
  });
});
