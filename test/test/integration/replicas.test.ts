/**
 * Split services over real NATS, Postgres and Redis (each service started with runService, two
 * netmap-fanout replicas), driven by simulated nodes: a node's newer stream on another replica
 * supersedes the older one, and changes reach streams on both replicas. Also the admin API over TCP
 * with API keys and the CLI's JSON output.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCall, runAdminCli, runService } from '@switchboard/switchboard';
import { NATS_URL, REDIS_URL, scratchDatabase, waitFor, type ScratchDatabase } from '@switchboard/testing';
import { SimNode } from '../../src/sim-node.js';

describe('split services with two fanout replicas', () => {
  let db: ScratchDatabase;
  let dir: string;
  const stops: (() => Promise<void>)[] = [];
  const urls: string[] = [];
  let adminSocket: string;
  let key: string;
  let adminPort = 0;
  const nodes: SimNode[] = [];

  before(async () => {
    db = await scratchDatabase('sbrep');
    dir = mkdtempSync(join(tmpdir(), 'sb-rep-'));
    adminSocket = join(dir, 'admin.sock');
    const env = {
      DATABASE_URL: db.url,
      NATS_URL,
      REDIS_URL,
      REDIS_KEY_PREFIX: `sbtest-${db.name}:`,
      DATA_DIR: dir,
      LOG_LEVEL: process.env.TEST_LOG ? 'debug' : 'silent',
      NOISE_KEY_FILE: join(dir, 'noise.key'),
      ADMIN_SOCKET: adminSocket,
      ADMIN_LISTEN: '127.0.0.1:0',
    };
    for (const name of ['identity', 'key-registry', 'policy-compiler'] as const) {
      const s = await runService(name, env);
      stops.push(s.stop);
      if (s.adminPort) adminPort = s.adminPort;
    }
    for (const id of ['r1', 'r2']) {
      const s = await runService('netmap-fanout', {
        ...env,
        LISTEN_ADDR: '127.0.0.1:0',
        STUN_PORT: '0',
        REPLICA_ID: id,
      });
      stops.push(s.stop);
      urls.push(`http://127.0.0.1:${s.port}`);
    }
    await adminCall({ socketPath: adminSocket }, 'POST', '/api/v1/users', { name: 'bob' });
    key = (
      (await adminCall({ socketPath: adminSocket }, 'POST', '/api/v1/preauthkeys', {
        user: 'bob',
        reusable: true,
      })) as { key: string }
    ).key;
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
    for (const s of stops.reverse()) await s();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function joinAt(url: string, name: string): Promise<SimNode> {
    const n = new SimNode({ url, hostname: name });
    nodes.push(n);
    await n.connect();
    const r = await n.register(key);
    assert.equal(r.Error ?? '', '');
    await n.startStream();
    return n;
  }

  test('changes reach streams on both replicas; deletions cross replicas', async () => {
    const a = await joinAt(urls[0]!, 'on-r1');
    const b = await joinAt(urls[1]!, 'on-r2');
    await waitFor(() => a.peers.has(b.self!.ID as number) && b.peers.has(a.self!.ID as number), {
      what: 'both nodes to see each other across replicas',
    });
    const c = await joinAt(urls[1]!, 'gone-soon');
    const cid = c.self!.ID as number;
    await waitFor(() => a.peers.has(cid), { what: 'r1 stream to learn of a node on r2' });
    await adminCall({ socketPath: adminSocket }, 'DELETE', `/api/v1/nodes/${cid}`);
    await waitFor(() => !a.peers.has(cid) && !b.peers.has(cid), {
      what: 'deletion on both replicas',
      timeoutMs: 2000,
    });
  });

  test("a node's newer stream on another replica supersedes the older one", async () => {
    const n = await joinAt(urls[0]!, 'mover');
    const first = n.streamDone!;
    // Same machine and node key, new connection to the other replica.
    const again = new SimNode({ url: urls[1]!, hostname: 'mover', machinePrivate: n.machinePrivate });
    again.nodePrivate = n.nodePrivate;
    nodes.push(again);
    await again.connect();
    await again.startStream();
    await waitFor(
      async () =>
        (await Promise.race([
          first.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 20)),
        ])) as boolean,
      {
        what: 'the older stream on r1 to be closed',
        timeoutMs: 3000,
      },
    );
    assert.ok(again.self, 'the newer stream got its map');
  });

  test('the admin API over TCP needs an API key; the CLI prints JSON', async () => {
    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s), env: {} };
    assert.equal(await runAdminCli(['apikeys', 'create', '--socket', adminSocket, '-o', 'json'], io), 0);
    const apiKey = (JSON.parse(out.join('')) as { key: string }).key;
    assert.match(apiKey, /^sbapi-/);
    const server = `http://127.0.0.1:${adminPort}`;
    await assert.rejects(
      adminCall({ server }, 'GET', '/api/v1/users'),
      (err: Error & { status?: number }) => {
        assert.equal(err.status, 401);
        return true;
      },
    );
    await assert.rejects(
      adminCall({ server, apiKey: 'sbapi-0000000000000000-' + 'a'.repeat(32) }, 'GET', '/api/v1/users'),
      /API key/,
    );
    const viaTcp = (await adminCall({ server, apiKey }, 'GET', '/api/v1/users')) as { users: unknown[] };
    assert.ok(viaTcp.users.length >= 1);
    out.length = 0;
    assert.equal(
      await runAdminCli(['users', 'list', '--server', server, '--api-key', apiKey, '--output', 'json'], io),
      0,
    );
    const users = JSON.parse(out.join('')) as { name: string }[];
    assert.ok(users.some((u) => u.name === 'bob'));
    out.length = 0;
    assert.equal(await runAdminCli(['nodes', 'list', '--socket', adminSocket, '-o', 'json'], io), 0);
    assert.ok(Array.isArray(JSON.parse(out.join(''))));
    out.length = 0;
    assert.equal(
      await runAdminCli(['preauthkeys', 'list', '--user', 'bob', '--socket', adminSocket, '-o', 'json'], io),
      0,
    );
    assert.ok((JSON.parse(out.join('')) as unknown[]).length >= 1);
    await assert.rejects(runAdminCli(['users', 'create', '--socket', adminSocket], io), /NAME/);
    await assert.rejects(
      runAdminCli(['nodes', 'delete', '999999', '--socket', adminSocket], io),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'node_not_found');
        return true;
      },
    );
  });
});
