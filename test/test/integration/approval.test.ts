/**
 * Machine approval: with REQUIRE_MACHINE_APPROVAL a new machine registers but its self node says
 * MachineAuthorized=false and it gets no peers (tailscale shows NeedsMachineAuth) until an admin runs
 * `switchboard nodes approve ID`; then peers and filter arrive on the same stream.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCall, runAdminCli, serve, type RunningServer } from '@switchboard/switchboard';
import { testLogger, waitFor } from '@switchboard/testing';
import { SimNode } from '../../src/sim-node.js';

let srv: RunningServer;
let dir: string;
const nodes: SimNode[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-approve-'));
  srv = await serve({
    inMemory: true,
    logger: testLogger('approval'),
    env: {
      LISTEN_ADDR: '127.0.0.1:0',
      STUN_PORT: '0',
      DATA_DIR: dir,
      LOG_LEVEL: 'silent',
      REQUIRE_MACHINE_APPROVAL: 'true',
    },
  });
});

after(async () => {
  await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a new machine waits for approval, then gets its peers without reconnecting', async () => {
  const admin = { socketPath: srv.adminSocket };
  await adminCall(admin, 'POST', '/api/v1/users', { name: 'carol' });
  const { key } = (await adminCall(admin, 'POST', '/api/v1/preauthkeys', {
    user: 'carol',
    reusable: true,
  })) as { key: string };
  const url = `http://127.0.0.1:${srv.port}`;
  const join2 = async (name: string) => {
    const n = new SimNode({ url, hostname: name });
    nodes.push(n);
    await n.connect();
    const r = await n.register(key);
    assert.equal(r.MachineAuthorized, false);
    await n.startStream();
    return n;
  };
  const a = await join2('a');
  const b = await join2('b');
  assert.equal(a.self?.MachineAuthorized, false);
  assert.equal(a.peers.size, 0);
  const first = a.messages[0] as unknown as { PacketFilter: unknown[] };
  assert.deepEqual(first.PacketFilter, []);

  for (const n of [a, b]) {
    const out: string[] = [];
    const code = await runAdminCli(['nodes', 'approve', String(n.self!.ID), '--socket', srv.adminSocket], {
      out: (s) => out.push(s),
      err: (s) => out.push(s),
      env: {},
    });
    assert.equal(code, 0, out.join(''));
  }
  await waitFor(() => a.self?.MachineAuthorized === true && a.peers.has(b.self!.ID as number), {
    what: 'a to be authorised and see b',
  });
  await waitFor(() => b.peers.has(a.self!.ID as number), { what: 'b to see a' });
  assert.equal(srv.fanout.engine.stats.streamsOpened, 2, 'no reconnects');
});
