/**
 * key-registry against a real Postgres (a scratch database) and embedded PGlite on an in-process bus;
 * identity's user lookup is answered by a stand-in on the bus (the real pairing is tested in test/).
 * Registration races, key binding to machines, logout, events.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createInProcessBus, type Bus, type BusEvent } from '@switchboard/bus';
import { openDb, type Db } from '@switchboard/db';
import {
  callRpc,
  identity,
  keyRegistry,
  NodeRemoved,
  NodeUpserted,
  PolicyChanged,
  policy,
  serveRpc,
  UserRemoved,
  UserUpserted,
  type RegisterInput,
  type UserRecord,
} from '@switchboard/contracts';
import {
  countingBus,
  scratchDatabase,
  testLogger,
  waitFor,
  type CountingBus,
  type ScratchDatabase,
} from '@switchboard/testing';
import { KeyRegistryRuntime, keyRegistryConfigSchema } from '../src/index.js';

const hex = (): string => randomBytes(32).toString('hex');
const mkey = (): string => `mkey:${hex()}`;
const nodekey = (): string => `nodekey:${hex()}`;

function reg(over: Partial<RegisterInput>): RegisterInput {
  return {
    machineKey: mkey(),
    capVersion: 130,
    nodeKey: nodekey(),
    oldNodeKey: null,
    authKey: null,
    expiry: null,
    followup: '',
    hostinfo: { Hostname: 'laptop', OS: 'linux' },
    ephemeral: false,
    ...over,
  };
}

const POLICY = `{
  "tagOwners": { "tag:server": ["alice@"] },
  "autoApprovers": { "routes": { "10.0.0.0/8": ["alice@", "tag:server"] } },
}`;

function user(id: number, name: string, version = 1): UserRecord {
  return {
    id,
    tailnetId: 1,
    name,
    loginName: name,
    displayName: name,
    email: null,
    profilePicUrl: null,
    provider: 'local',
    groups: [],
    createdAt: new Date().toISOString(),
    version,
  };
}

for (const backend of ['postgres', 'pglite'] as const) {
  describe(`key-registry on ${backend}`, () => {
    let scratch: ScratchDatabase | undefined;
    let db: Db;
    let bus: Bus;
    let kr: KeyRegistryRuntime;
    let krBus: CountingBus<Bus>;
    let userId: number;
    const events: BusEvent[] = [];
    const logger = testLogger('key-registry-test');

    before(async () => {
      if (backend === 'postgres') {
        scratch = await scratchDatabase('sbkr');
        db = await openDb({ url: scratch.url, logger });
      } else {
        db = await openDb({ logger });
      }
      bus = createInProcessBus({ logger });
      userId = 7;
      // identity and policy-compiler as key-registry sees them: their snapshots, then their events.
      serveRpc(bus, policy.PolicySnapshot, 'policy-compiler', async () => ({
        policies: [{ tailnetId: 1, version: 1, text: POLICY }],
      }));
      serveRpc(bus, identity.IdentitySnapshot, 'identity', async () => ({ users: [user(userId, 'alice')] }));
      // Every request key-registry makes goes through the counting wrapper.
      krBus = countingBus(bus);
      kr = new KeyRegistryRuntime({ db, bus: krBus, logger, config: keyRegistryConfigSchema.parse({}) });
      await kr.start();
      await kr.service.directory.whenReady();
      bus.consumeEvents({ filter: 'events.v1.>', fromSeq: 1, handler: async (e) => void events.push(e) });
    });

    after(async () => {
      await kr.stop();
      await bus.close();
      await db.close();
      await scratch?.drop();
    });

    const newKey = async (
      opts: { reusable?: boolean; ephemeral?: boolean; tags?: string[]; expiresInMs?: number } = {},
    ) =>
      (
        await callRpc(bus, keyRegistry.CreatePreAuthKey, {
          userId,
          reusable: opts.reusable ?? false,
          ephemeral: opts.ephemeral ?? false,
          tags: opts.tags ?? [],
          expiresAt: new Date(Date.now() + (opts.expiresInMs ?? 3_600_000)).toISOString(),
        })
      ).key;

    test('100 concurrent registrations with one single-use key yield exactly one node', async () => {
      const key = await newKey();
      const results = await Promise.all(
        Array.from({ length: 100 }, () =>
          callRpc(bus, keyRegistry.Register, reg({ authKey: key }), { timeoutMs: 60_000 }),
        ),
      );
      const ok = results.filter((r) => r.kind === 'ok');
      assert.equal(ok.length, 1, JSON.stringify(results.filter((r) => r.kind !== 'error').slice(0, 3)));
      for (const r of results) if (r.kind === 'error') assert.match(r.message, /already used/);
      const { keys } = await callRpc(bus, keyRegistry.ListPreAuthKeys, { userId });
      assert.equal(keys.find((k) => key.includes(k.prefix.slice(6)))?.usable, false);
    });

    test('100 concurrent registrations of one machine yield one node and one IP', async () => {
      const key = await newKey({ reusable: true });
      const machineKey = mkey();
      const nodeKey = nodekey();
      const results = await Promise.all(
        Array.from({ length: 100 }, () =>
          callRpc(bus, keyRegistry.Register, reg({ machineKey, nodeKey, authKey: key }), {
            timeoutMs: 60_000,
          }),
        ),
      );
      const ids = new Set(results.map((r) => (r.kind === 'ok' ? r.node.id : -1)));
      assert.deepEqual([...ids].length, 1);
      assert.ok(!ids.has(-1));
      const { nodes } = await callRpc(bus, keyRegistry.ListNodes, {});
      const mine = nodes.filter((n) => n.machineKey === machineKey);
      assert.equal(mine.length, 1);
      assert.equal(new Set(nodes.map((n) => n.ipv4)).size, nodes.length, 'addresses are unique');
    });

    test('concurrent registrations of many machines get distinct addresses and names', async () => {
      const key = await newKey({ reusable: true });
      const results = await Promise.all(
        Array.from({ length: 40 }, () =>
          callRpc(bus, keyRegistry.Register, reg({ authKey: key }), { timeoutMs: 60_000 }),
        ),
      );
      assert.ok(results.every((r) => r.kind === 'ok'));
      const { nodes } = await callRpc(bus, keyRegistry.ListNodes, {});
      assert.equal(new Set(nodes.map((n) => n.ipv4)).size, nodes.length);
      assert.equal(new Set(nodes.map((n) => n.ipv6)).size, nodes.length);
      assert.equal(new Set(nodes.map((n) => n.givenName)).size, nodes.length);
      for (const n of nodes) {
        assert.match(n.ipv4, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./);
        assert.match(n.ipv6, /^fd7a:115c:a1e0::/);
      }
    });

    test('a node key is bound to the machine that registered it', async () => {
      const key = await newKey({ reusable: true });
      const first = reg({ authKey: key });
      const r1 = await callRpc(bus, keyRegistry.Register, first);
      assert.equal(r1.kind, 'ok');
      const forged = await callRpc(bus, keyRegistry.Register, { ...first, machineKey: mkey() });
      assert.equal(forged.kind, 'error');
      const lookup = await callRpc(bus, keyRegistry.GetNodeByKey, {
        machineKey: mkey(),
        nodeKey: first.nodeKey,
      });
      assert.equal(lookup.kind, 'machine-mismatch');
      // A restart of the real machine (no credentials, same key) just gets its state back.
      const restart = await callRpc(bus, keyRegistry.Register, { ...first, authKey: null });
      assert.equal(restart.kind, 'ok');
    });

    test('unknown machines without a key are told how to log in; bad keys are refused', async () => {
      const r = await callRpc(bus, keyRegistry.Register, reg({}));
      assert.equal(r.kind, 'error');
      assert.match((r as { message: string }).message, /--auth-key/);
      const bad = await callRpc(bus, keyRegistry.Register, reg({ authKey: 'tskey-auth-nope' }));
      assert.deepEqual(bad.kind, 'error');
      const forgedSecret = (await newKey()).replace(/.$/, (c) => (c === 'a' ? 'b' : 'a'));
      const f = await callRpc(bus, keyRegistry.Register, reg({ authKey: forgedSecret }));
      assert.equal(f.kind, 'error');
      const expired = await newKey({ expiresInMs: -1000 });
      const e = await callRpc(bus, keyRegistry.Register, reg({ authKey: expired }));
      assert.match((e as { message: string }).message, /expired/);
    });

    test('logout deletes an ephemeral node and expires a normal one, with events', async () => {
      const eph = reg({ authKey: await newKey({ ephemeral: true }) });
      const r = await callRpc(bus, keyRegistry.Register, eph);
      assert.equal(r.kind, 'ok');
      const id = (r as { node: { id: number } }).node.id;
      const out = await callRpc(bus, keyRegistry.Register, {
        ...eph,
        authKey: null,
        expiry: '1970-01-01T00:02:03Z',
      });
      assert.deepEqual(out, { kind: 'logged-out', nodeId: id, deleted: true });
      await waitFor(
        () =>
          events.some(
            (e) => e.subject === NodeRemoved.subject && (e.payload as { nodeId: number }).nodeId === id,
          ),
        {
          what: 'node-removed event',
        },
      );

      const norm = reg({ authKey: await newKey() });
      const r2 = await callRpc(bus, keyRegistry.Register, norm);
      const id2 = (r2 as { node: { id: number } }).node.id;
      const out2 = await callRpc(bus, keyRegistry.Register, {
        ...norm,
        authKey: null,
        expiry: '1970-01-01T00:02:03Z',
      });
      assert.equal(out2.kind, 'logged-out');
      const again = await callRpc(bus, keyRegistry.Register, { ...norm, authKey: null });
      assert.equal(again.kind, 'node-key-expired');
      await waitFor(
        () =>
          events.some(
            (e) =>
              e.subject === NodeUpserted.subject &&
              (e.payload as { node: { id: number; keyExpiry: string | null } }).node.id === id2 &&
              (e.payload as { node: { keyExpiry: string | null } }).node.keyExpiry !== null,
          ),
        { what: 'node-upserted event with the expiry' },
      );
    });

    test('tagged keys make tagged nodes without user identity or expiry', async () => {
      const r = await callRpc(
        bus,
        keyRegistry.Register,
        reg({ authKey: await newKey({ tags: ['tag:server'] }) }),
      );
      assert.equal(r.kind, 'ok');
      const n = (r as { node: { userId: number | null; tags: string[]; keyExpiry: string | null } }).node;
      assert.equal(n.userId, null);
      assert.deepEqual(n.tags, ['tag:server']);
      assert.equal(n.keyExpiry, null);
    });

    test('tags on keys need tagOwners; admins can tag nodes', async () => {
      await assert.rejects(newKey({ tags: ['tag:other'] }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'tags_not_allowed');
        return true;
      });
      const r = await callRpc(bus, keyRegistry.Register, reg({ authKey: await newKey() }));
      const id = (r as { node: { id: number } }).node.id;
      const { node } = await callRpc(bus, keyRegistry.TagNode, {
        nodeId: id,
        tags: ['tag:web', 'tag:db', 'tag:web'],
      });
      assert.deepEqual(node.tags, ['tag:db', 'tag:web']);
      assert.equal(node.userId, null);
      await assert.rejects(callRpc(bus, keyRegistry.TagNode, { nodeId: id, tags: [] }), /at least one tag/);
    });

    test('key rotation keeps the node, its id and addresses', async () => {
      const key = await newKey({ reusable: true });
      const first = reg({ authKey: key });
      const r1 = await callRpc(bus, keyRegistry.Register, first);
      const n1 = (r1 as { node: { id: number; ipv4: string } }).node;
      const rotated = await callRpc(bus, keyRegistry.Register, {
        ...first,
        nodeKey: nodekey(),
        oldNodeKey: first.nodeKey,
        authKey: null,
      });
      assert.equal(rotated.kind, 'ok');
      const n2 = (rotated as { node: { id: number; ipv4: string; nodeKey: string } }).node;
      assert.equal(n2.id, n1.id);
      assert.equal(n2.ipv4, n1.ipv4);
      const old = await callRpc(bus, keyRegistry.GetNodeByKey, {
        machineKey: first.machineKey,
        nodeKey: first.nodeKey,
      });
      assert.equal(old.kind, 'not-found');
    });

    test('admin delete and expire emit events; bad ids get a clear error', async () => {
      const r = await callRpc(bus, keyRegistry.Register, reg({ authKey: await newKey() }));
      const id = (r as { node: { id: number } }).node.id;
      await callRpc(bus, keyRegistry.ExpireNode, { nodeId: id });
      await callRpc(bus, keyRegistry.DeleteNode, { nodeId: id });
      await assert.rejects(
        callRpc(bus, keyRegistry.DeleteNode, { nodeId: id }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'node_not_found');
          return true;
        },
      );
      await assert.rejects(bus.request(keyRegistry.DeleteNode.subject, { nodeId: 'x' }), /invalid/);
    });

    let seqNo = 0;
    const publish = (subject: string, payload: unknown) =>
      bus.publishEvent(subject, payload, `kr-test:${backend}:${++seqNo}`);
    const withRoutes = (routes: string[], authKey: string, name = 'router') =>
      reg({ authKey, hostinfo: { Hostname: name, OS: 'linux', RoutableIPs: routes } });

    test('a registration that advertises routes is one transaction and one node event', async () => {
      const r = await callRpc(bus, keyRegistry.Register, withRoutes(['10.20.0.0/16'], await newKey()));
      assert.equal(r.kind, 'ok');
      const node = (r as { node: { id: number; approvedRoutes: string[] } }).node;
      assert.deepEqual(node.approvedRoutes, ['10.20.0.0/16'], 'auto-approved in the same transaction');
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM key_registry.outbox WHERE payload->'node'->>'id' = $1`,
        [String(node.id)],
      );
      assert.equal(rows[0]?.n, 1, 'exactly one node event');
    });

    test('100 registrations with tags and routes make no request to identity or policy-compiler', async () => {
      const tagged = await newKey({ reusable: true, tags: ['tag:server'] });
      const own = await newKey({ reusable: true });
      krBus.counts.clear();
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          callRpc(
            bus,
            keyRegistry.Register,
            withRoutes([`10.30.${i}.0/24`], i % 2 ? tagged : own, `gw${i}`),
            {
              timeoutMs: 60_000,
            },
          ),
        ),
      );
      for (const r of results) {
        assert.equal(r.kind, 'ok');
        assert.equal((r as { node: { approvedRoutes: string[] } }).node.approvedRoutes.length, 1);
      }
      assert.equal(krBus.requestsTo('identity.'), 0, JSON.stringify([...krBus.counts]));
      assert.equal(krBus.requestsTo('policy.'), 0, JSON.stringify([...krBus.counts]));
    });

    test('stale view: a user created a moment ago gets a key at once; a policy set a moment ago applies', async () => {
      // The events are in the log, but key-registry's view has not applied them when the requests arrive.
      await publish(UserUpserted.subject, { user: user(8, 'bob') });
      const { key } = await callRpc(bus, keyRegistry.CreatePreAuthKey, {
        userId: 8,
        reusable: true,
        ephemeral: false,
        tags: [],
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
      const policyV2 = POLICY.replace('"10.0.0.0/8"', '"192.168.0.0/16": ["bob@"], "10.0.0.0/8"');
      await publish(PolicyChanged.subject, { policy: { tailnetId: 1, version: 2, text: policyV2 } });
      const r = await callRpc(bus, keyRegistry.Register, withRoutes(['192.168.1.0/24'], key));
      assert.equal(r.kind, 'ok');
      assert.deepEqual((r as { node: { approvedRoutes: string[] } }).node.approvedRoutes, ['192.168.1.0/24']);
      await assert.rejects(
        callRpc(bus, keyRegistry.CreatePreAuthKey, {
          userId: 99,
          reusable: false,
          ephemeral: false,
          tags: [],
          expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
        }),
        (err: Error & { code?: string }) => err.code === 'user_not_found',
      );

      // identity removed bob: his node and keys go with him.
      const id = (r as { node: { id: number } }).node.id;
      await publish(UserRemoved.subject, { userId: 8, tailnetId: 1, version: 2 });
      await waitFor(
        () =>
          events.some(
            (e) =>
              e.subject === NodeRemoved.subject &&
              (e.payload as { nodeId: number; reason: string }).nodeId === id &&
              (e.payload as { reason: string }).reason === 'user-deleted',
          ),
        { what: "the removed user's node to be deleted" },
      );
      const { keys } = await callRpc(bus, keyRegistry.ListPreAuthKeys, { userId: 8 });
      assert.ok(keys.every((k) => !k.usable));
    });
  });
}
