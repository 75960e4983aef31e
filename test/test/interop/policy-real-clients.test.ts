/**
 * Policy with real tailscale clients: group:eng may reach tag:server on tcp:22 only. An eng user's
 * client connects to the server's port 22 and fails on port 80; another user's client fails on both
 * and does not see the server in `tailscale status`. A policy change made with the CLI changes what
 * the running clients can reach within 2 s, without their map streams reconnecting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminCall, runAdminCli } from '@switchboard/switchboard';
import { assertNoForeignTraffic } from '../../src/harness/harness.js';
import { withEmbeddedServer, withRealClients } from '../../src/scenarios/embedded-server.js';
import { exec, ip, peersOf, spawnIn, status, type TailscaleNode } from '../../src/harness/node.js';
import { notYet, waitFor } from '../../src/harness/wait.js';

const policy = (ports: string) => `{
  "groups": { "group:eng": ["alice@"] },
  "tagOwners": { "tag:server": ["group:eng"] },
  "acls": [ { "action": "accept", "src": ["group:eng"], "dst": ["tag:server:${ports}"] } ],
}
`;

const LISTEN = `const net = require('net');
for (const port of [22, 80]) net.createServer((s) => s.end('hello ' + port + '\\n')).listen(port, '0.0.0.0');`;

/** True when a TCP connection from `from` to host:port is accepted within the timeout. */
async function tcpOk(from: TailscaleNode, host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  const script = `const s = require('net').connect({ host: ${JSON.stringify(host)}, port: ${port} });
s.setTimeout(${timeoutMs}, () => { console.log('TIMEOUT'); process.exit(2); });
s.on('data', (d) => { console.log('OK ' + d.toString().trim()); process.exit(0); });
s.on('error', (e) => { console.log('ERR ' + e.code); process.exit(3); });`;
  const r = await exec(from, [process.execPath, '-e', script], {
    timeoutMs: timeoutMs + 5000,
    allowFailure: true,
  });
  return r.code === 0 && r.stdout.startsWith(`OK hello ${port}`);
}

test('policy over real clients: tcp:22 for eng only, live policy change', { timeout: 300_000 }, (t) =>
  withRealClients((h) =>
    withEmbeddedServer(h, async (srv, controlUrl) => {
      const dir = h.runDir;
      const admin = { socketPath: srv.adminSocket };
      const cli = async (...args: string[]) => {
        const out: string[] = [];
        const code = await runAdminCli([...args, '--socket', srv.adminSocket], {
          out: (s) => out.push(s),
          err: (s) => out.push(s),
          env: {},
        });
        assert.equal(code, 0, out.join(''));
        return out.join('');
      };
      await cli('users', 'create', 'alice');
      await cli('users', 'create', 'bob');
      const pfile = join(dir, 'policy.hujson');
      writeFileSync(pfile, policy('22'));
      await cli('policy', 'set', pfile);
      const key = async (user: string, tags = '') =>
        (
          await cli('preauthkeys', 'create', '--user', user, '--reusable', ...(tags ? ['--tags', tags] : []))
        ).trim();

      const server = await h.startNode({
        name: 'srv',
        authKey: await key('alice', 'tag:server'),
        loginServer: controlUrl,
      });
      spawnIn(server, 'listeners', [process.execPath, '-e', LISTEN]);
      const alice = await h.startNode({
        name: 'alice',
        authKey: await key('alice'),
        loginServer: controlUrl,
      });
      const bob = await h.startNode({
        name: 'bob',
        authKey: await key('bob'),
        loginServer: controlUrl,
        version: 'oldest',
      });
      const srvIp = await ip(server);

      await waitFor(async () => ((await tcpOk(alice, srvIp, 22)) ? true : notYet('no connection')), {
        what: 'alice (group:eng) to reach the server on tcp:22',
        timeoutMs: 30_000,
      });
      assert.equal(await tcpOk(alice, srvIp, 80), false, 'alice must not reach port 80');
      assert.equal(await tcpOk(bob, srvIp, 22), false, 'bob must not reach port 22');
      assert.equal(await tcpOk(bob, srvIp, 80), false, 'bob must not reach port 80');
      const bobPeers = peersOf(await status(bob)).map((p) => p.HostName);
      assert.ok(!bobPeers.includes('srv'), `bob must not see the server: ${bobPeers.join(', ')}`);

      const opened = srv.fanout.engine.stats.streamsOpened;
      writeFileSync(pfile, policy('22,80'));
      const t0 = Date.now();
      await cli('policy', 'set', pfile);
      await waitFor(async () => ((await tcpOk(alice, srvIp, 80, 500)) ? true : notYet('refused')), {
        what: 'alice to reach port 80 after the policy change',
        timeoutMs: 2_000,
        intervalMs: 100,
      });
      t.diagnostic(`policy change took effect at the clients in ${Date.now() - t0} ms`);
      assert.equal(srv.fanout.engine.stats.streamsOpened, opened, 'no client reconnected its map stream');
      const { nodes } = (await adminCall(admin, 'GET', '/api/v1/nodes')) as { nodes: unknown[] };
      assert.equal(nodes.length, 3);
      await assertNoForeignTraffic(h);
    }),
  ),
);
