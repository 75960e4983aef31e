/**
 * The whole control plane in one process (serve() on embedded defaults) driven by simulated nodes
 * speaking the real protocol (Noise over /ts2021, HTTP/2, zstd map frames): registration, full maps,
 * deltas for joins/changes/deletions, machine-key binding, and bad input that must not crash it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { adminCall, serve, type RunningServer } from '@switchboard/switchboard';
import { testLogger, waitFor } from '@switchboard/testing';
import { configureLogging } from '@switchboard/common';
import { SimNode } from '../../src/sim-node.js';

describe('spine: one process, simulated nodes', () => {
  let srv: RunningServer;
  let dir: string;
  let url: string;
  let key: string;
  const nodes: SimNode[] = [];

  const admin = (method: string, path: string, body?: unknown) =>
    adminCall({ socketPath: srv.adminSocket }, method, path, body);

  async function joinNode(name: string, authKey = key): Promise<SimNode> {
    const n = new SimNode({ url, hostname: name });
    nodes.push(n);
    await n.connect();
    const r = await n.register(authKey);
    assert.equal(r.Error ?? '', '', `register ${name}: ${r.Error}`);
    assert.equal(r.MachineAuthorized, true);
    await n.startStream();
    return n;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-spine-'));
    srv = await serve({
      inMemory: true,
      logger: testLogger('spine'),
      env: {
        LISTEN_ADDR: '127.0.0.1:0',
        STUN_PORT: '0',
        DATA_DIR: dir,
        LOG_LEVEL: process.env.TEST_LOG ? 'debug' : 'silent',
      },
    });
    url = `http://127.0.0.1:${srv.port}`;
    await admin('POST', '/api/v1/users', { name: 'alice' });
    key = ((await admin('POST', '/api/v1/preauthkeys', { user: 'alice', reusable: true })) as { key: string })
      .key;
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('GET /key publishes the Noise key and a zero legacy key', async () => {
    const r = await fetch(`${url}/key?v=113`);
    assert.equal(r.status, 200);
    const body = (await r.json()) as { publicKey: string; legacyPublicKey: string };
    assert.match(body.publicKey, /^mkey:[0-9a-f]{64}$/);
    assert.equal(body.legacyPublicKey, `mkey:${'0'.repeat(64)}`);
  });

  test('nodes register, get a full map, and learn about joins, changes and deletions as deltas', async () => {
    const a = await joinNode('alpha');
    const b = await joinNode('beta');
    assert.equal(a.self?.Name, 'alpha.switchboard.internal.');
    await waitFor(() => a.peers.has(b.self!.ID as number), { what: 'alpha to see beta' });
    assert.ok(b.peers.has(a.self.ID as number));
    const first = b.messages[0] as unknown as Record<string, unknown>;
    assert.ok(first.DERPMap, 'DERPMap in the first message');
    assert.deepEqual(first.PacketFilter, [
      { SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] },
    ]);

    const c = await joinNode('gamma');
    const cid = c.self!.ID as number;
    await waitFor(() => a.peers.has(cid) && b.peers.has(cid), { what: 'alpha and beta to see gamma' });
    const joinMsg = a.messages.find((m) =>
      (m as unknown as { PeersChanged?: { ID: number }[] }).PeersChanged?.some((p) => p.ID === cid),
    );
    assert.ok(joinMsg, 'the join came as PeersChanged, not a full map');
    assert.equal((joinMsg as unknown as { Peers?: unknown }).Peers, undefined);

    await c.client!.liteUpdate(
      c.mapRequest({ Stream: false, OmitPeers: true, Endpoints: ['198.51.100.9:41641'] }),
    );
    await waitFor(
      () => JSON.stringify(a.peers.get(cid)?.Endpoints) === JSON.stringify(['198.51.100.9:41641']),
      {
        what: 'endpoint patch at alpha',
      },
    );
    assert.ok(
      a.messages.some((m) => (m as unknown as { PeersChangedPatch?: unknown[] }).PeersChangedPatch),
      'patch used',
    );

    const t0 = Date.now();
    await admin('DELETE', `/api/v1/nodes/${cid}`);
    await waitFor(() => !a.peers.has(cid) && !b.peers.has(cid), {
      what: 'gamma removed everywhere',
      timeoutMs: 2000,
    });
    const ms = Date.now() - t0;
    assert.ok(ms < 2000, `deletion propagated in ${ms} ms`);
    await waitFor(
      async () =>
        (await Promise.race([
          c.streamDone!.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 10)),
        ])) as boolean,
      {
        what: "the deleted node's stream to end",
      },
    );
  });

  test('a node key owned by another machine is refused on map and register', async () => {
    const victim = await joinNode('victim');
    const thief = new SimNode({ url, hostname: 'thief' });
    nodes.push(thief);
    await thief.connect();
    const res = await thief.client!.request(
      'POST',
      '/machine/map',
      JSON.stringify(victim.mapRequest({ Stream: false, OmitPeers: true })),
    );
    assert.equal(res.status, 403);
    thief.nodePrivate = victim.nodePrivate;
    const r = await thief.register(key);
    assert.match(r.Error ?? '', /another machine/);
  });

  test('malformed requests get errors, a log line, and the server keeps serving', async () => {
    const logs: string[] = [];
    configureLogging({ level: 'warn', sink: (line) => logs.push(line) });
    const n = new SimNode({ url, hostname: 'bad' });
    nodes.push(n);
    await n.connect();
    const garbage = await n.client!.request('POST', '/machine/register', '{not json');
    assert.equal(garbage.status, 400);
    const wrongShape = await n.client!.request(
      'POST',
      '/machine/register',
      JSON.stringify({ NodeKey: 'nodekey:zz' }),
    );
    assert.equal(wrongShape.status, 400);
    const big = await n.client!.request('POST', '/machine/map', Buffer.alloc(2 << 20, 0x20));
    assert.equal(big.status, 413);
    const unknown = await n.client!.request('POST', '/machine/map', JSON.stringify(n.mapRequest()));
    assert.equal(unknown.status, 404);

    // Raw garbage on /ts2021: bad header, bad base64, a short handshake, then noise.
    for (const req of [
      'POST /ts2021 HTTP/1.1\r\nHost: x\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n',
      'POST /ts2021 HTTP/1.1\r\nHost: x\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\nX-Tailscale-Handshake: !!!\r\n\r\n',
      'POST /ts2021 HTTP/1.1\r\nHost: x\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\nX-Tailscale-Handshake: AAAA\r\n\r\n',
      '\x16\x03\x01garbage\r\n\r\n',
    ]) {
      await new Promise<void>((resolve) => {
        const s = connect(srv.port, '127.0.0.1', () => s.end(req));
        s.on('data', () => undefined);
        s.on('error', () => resolve());
        s.on('close', () => resolve());
      });
    }
    configureLogging({ level: 'silent' });
    const msgs = logs.map((l) => (JSON.parse(l) as { msg: string }).msg);
    assert.ok(msgs.filter((m) => m === 'malformed request').length >= 2, msgs.join(' | '));
    assert.ok(msgs.includes('request refused'), 'the oversized body is logged');
    assert.ok(
      msgs.filter((m) => m.startsWith('refused ts2021')).length >= 2,
      'raw /ts2021 garbage is logged',
    );
    const ok = await joinNode('still-alive');
    assert.ok(ok.self);
  });

  test('an ephemeral node that logs out is deleted', async () => {
    const ekey = (
      (await admin('POST', '/api/v1/preauthkeys', { user: 'alice', ephemeral: true })) as { key: string }
    ).key;
    const e = await joinNode('eph', ekey);
    const id = e.self!.ID as number;
    const out = await e.client!.register({
      Version: e.capVersion,
      NodeKey: e.nodeKey,
      Expiry: '1970-01-01T00:02:03Z',
      Hostinfo: { Hostname: 'eph' },
    });
    assert.equal(out.NodeKeyExpired, true);
    const { nodes: list } = (await admin('GET', '/api/v1/nodes')) as { nodes: { id: number }[] };
    assert.ok(!list.some((n) => n.id === id));
  });
});
