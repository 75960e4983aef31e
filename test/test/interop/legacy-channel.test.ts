/**
 * The pre-Noise NaCl channel with a real client: tailscale v1.62.1 (the newest release that still
 * speaks it, built by scripts/install-tailscale.sh), offered only the legacy key by `/key`, joins
 * `switchboard serve` with LEGACY_PROTOCOL on, gets its map stream, reaches a current client that
 * uses Noise (v1.104.5) over TCP, and loses that peer at once when it is deleted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adminCall, runAdminCli } from '@switchboard/switchboard';
import { haveClientBinaries } from '../../src/harness/binaries.js';
import { exec, ip, peersOf, ping, spawnIn, status, type TailscaleNode } from '../../src/harness/node.js';
import { notYet, waitFor } from '../../src/harness/wait.js';
import { withEmbeddedServer, withRealClients } from '../../src/scenarios/embedded-server.js';

const LEGACY = 'v1.62.1';

async function peerNames(n: TailscaleNode): Promise<string[]> {
  return peersOf(await status(n)).map((p) => p.HostName);
}

test(
  'tailscale v1.62.1 over the legacy NaCl channel registers, streams, reaches a Noise peer and loses a deleted one',
  {
    timeout: 300_000,
    skip: haveClientBinaries(LEGACY) ? false : `tailscale ${LEGACY} not built (scripts/install-tailscale.sh)`,
  },
  (t) =>
    withRealClients((h) =>
      withEmbeddedServer(
        h,
        async (srv, url) => {
          const admin = { socketPath: srv.adminSocket };
          await adminCall(admin, 'POST', '/api/v1/users', { name: 'legacy' });
          const { key } = (await adminCall(admin, 'POST', '/api/v1/preauthkeys', {
            user: 'legacy',
            reusable: true,
            expiration: '1h',
          })) as { key: string };
          // v1.62 picks iptables when it sees no nftables rules and then dereferences a nil runner on a
          // host without the iptables binary (util/linuxfw); nftables is what the namespaces have.
          const old = await h.startNode({
            name: 'old',
            version: LEGACY,
            authKey: key,
            loginServer: url,
            env: { TS_DEBUG_FIREWALL_MODE: 'nftables' },
          });
          const cur = await h.startNode({ name: 'cur', version: 'newest', authKey: key, loginServer: url });

          // The legacy path was used: the client logs the keys it got, the Noise one zero.
          const line = old.daemon
            .logTail(10_000)
            .split('\n')
            .find((l) => l.includes('control server key from'));
          t.diagnostic(`v1.62.1: ${line?.trim() ?? '(no key line)'}`);
          assert.match(line ?? '', /ts2021=, legacy=\[\w/, 'v1.62.1 got only the legacy key');
          const curLine = cur.daemon
            .logTail(10_000)
            .split('\n')
            .find((l) => l.includes('control server key from'));
          assert.match(old.daemon.logTail(10_000), /active login: legacy/);
          assert.match(curLine ?? '', /ts2021=\[\S+\]/, 'v1.104.5 got the Noise key');
          t.diagnostic(`v1.104.5: ${curLine?.trim() ?? '(no key line: it logs none when it uses Noise)'}`);

          for (const [n, other] of [
            [old, 'cur'],
            [cur, 'old'],
          ] as const)
            await waitFor(
              async () => {
                const seen = await peerNames(n);
                return seen.includes(other) ? true : notYet(seen);
              },
              { what: `${n.name} to see ${other}`, timeoutMs: 30_000 },
            );

          const curIp = await ip(cur);
          const r = await ping(old, curIp, { timeoutS: 30 });
          t.diagnostic(`ping old -> cur: via ${r.via} ${r.path} in ${r.latencyMs} ms`);

          // TCP over the tailnet: a one-line echo server on cur, a client in old's namespace.
          spawnIn(cur, 'tcp-echo', [
            process.execPath,
            '-e',
            `require('node:net').createServer((s)=>s.pipe(s)).listen(7777, ${JSON.stringify(curIp)})`,
          ]);
          const client = `const s=require('node:net').connect(7777,${JSON.stringify(curIp)},()=>s.write('legacy-ok'));s.on('data',(d)=>{process.stdout.write(d);s.end()});setTimeout(()=>process.exit(2),10000).unref()`;
          await waitFor(
            async () => {
              const res = await exec(old, [process.execPath, '-e', client], {
                allowFailure: true,
                timeoutMs: 15_000,
              });
              return res.stdout.includes('legacy-ok') ? true : notYet(`${res.code} ${res.stderr.trim()}`);
            },
            { what: 'a TCP echo from old to cur over the tailnet', timeoutMs: 30_000, intervalMs: 1000 },
          );

          // Deleting the Noise peer reaches the legacy client's stream at once.
          const { nodes } = (await adminCall(admin, 'GET', '/api/v1/nodes')) as {
            nodes: { id: number; givenName: string }[];
          };
          const curId = nodes.find((n) => n.givenName === 'cur')?.id;
          assert.ok(curId, 'cur in the node list');
          const t0 = Date.now();
          const out: string[] = [];
          const code = await runAdminCli(['nodes', 'delete', String(curId), '--socket', srv.adminSocket], {
            out: (s) => out.push(s),
            err: (s) => out.push(s),
            env: {},
          });
          assert.equal(code, 0, out.join(''));
          await waitFor(
            async () => {
              const seen = await peerNames(old);
              return seen.includes('cur') ? notYet(seen) : true;
            },
            { what: 'old to lose the deleted cur', timeoutMs: 2_000, intervalMs: 50 },
          );
          t.diagnostic(`delete reached the legacy client in ${Date.now() - t0} ms`);
        },
        { LEGACY_PROTOCOL: 'true', LEGACY_ONLY_MAX_CAPABILITY_VERSION: '88' },
      ),
    ),
);
