/**
 * Real clients that can reach each other only through our embedded DERP relay: two tailscaled
 * (newest and oldest) with no DERP debug variables, direct UDP between their namespaces dropped by
 * nftables, joined to the given control URLs (one server, or two replicas whose relays mesh).
 * Checks: `tailscale ping` succeeds via our region, a TCP connection over the tailnet works,
 * `tailscale netcheck` reports our region's latency (STUN answered), and the drop rules did drop
 * the clients' direct attempts.
 */
import assert from 'node:assert/strict';
import { adminCall, type AdminTarget } from '@switchboard/switchboard';
import type { Harness } from '../harness/harness.js';
import { exec, ip, peersOf, ping, spawnIn, status, up, type TailscaleNode } from '../harness/node.js';
import { droppedUdp, dropUdpWith } from '../harness/udp-drop.js';
import { notYet, waitFor } from '../harness/wait.js';

export interface DerpScenarioOptions {
  harness: Harness;
  admin: AdminTarget;
  /** Login server per client (n1, n2). */
  controlUrls: [string, string];
  /** The DERP RegionCode the clients should relay through. */
  regionCode: string;
  log: (msg: string) => void;
}

export async function runDerpScenario(o: DerpScenarioOptions): Promise<{ nodes: TailscaleNode[] }> {
  const h = o.harness;
  await adminCall(o.admin, 'POST', '/api/v1/users', { name: 'relay' });
  const { key } = (await adminCall(o.admin, 'POST', '/api/v1/preauthkeys', {
    user: 'relay',
    reusable: true,
    expiration: '1h',
  })) as { key: string };
  const n1 = await h.startNode({ name: 'r1', version: 'newest' });
  const n2 = await h.startNode({ name: 'r2', version: 'oldest' });
  // Before either is up: no direct path can exist before the drop.
  await dropUdpWith(n1, [n2.host.ip]);
  const rules = await dropUdpWith(n2, [n1.host.ip]);
  o.log(`nftables in ${n2.name}:\n${rules}`);
  await up(n1, { loginServer: o.controlUrls[0], authKey: key });
  await up(n2, { loginServer: o.controlUrls[1], authKey: key });
  for (const [a, b] of [
    [n1, n2],
    [n2, n1],
  ] as const)
    await waitFor(
      async () => {
        const seen = peersOf(await status(a)).map((p) => p.HostName);
        return seen.includes(b.name) ? true : notYet(seen);
      },
      { what: `${a.name} to list ${b.name}`, timeoutMs: 30_000 },
    );
  const ip2 = await ip(n2);
  const ip1 = await ip(n1);
  for (const [a, target] of [
    [n1, ip2],
    [n2, ip1],
  ] as const) {
    const r = await ping(a, target, { timeoutS: 60 });
    o.log(`${a.name} → ${target}: ${r.output}`);
    assert.equal(r.via, 'derp', `expected a relayed path, got ${r.path}`);
    assert.equal(r.path, `DERP(${o.regionCode})`);
  }

  // A TCP connection across the tailnet (carried by the relay).
  const port = 18_000 + Math.floor(Math.random() * 1000);
  spawnIn(n2, 'tcp-echo', [
    process.execPath,
    '-e',
    `require('net').createServer((s) => s.pipe(s)).listen(${port}, '${ip2}')`,
  ]);
  const echoed = await waitFor(
    async () => {
      const r = await exec(
        n1,
        [
          process.execPath,
          '-e',
          `const s = require('net').connect(${port}, '${ip2}', () => s.write('over derp'));` +
            `s.on('data', (d) => { process.stdout.write(d); s.end(); }); s.on('error', (e) => { console.error(e.message); process.exit(1); });` +
            `setTimeout(() => process.exit(2), 4000);`,
        ],
        { allowFailure: true, timeoutMs: 10_000 },
      );
      return r.stdout.includes('over derp') ? r.stdout : notYet(`${r.code} ${r.stderr}`);
    },
    { what: `a TCP echo from ${n1.name} to ${n2.name} over the tailnet`, timeoutMs: 30_000 },
  );
  assert.match(echoed, /over derp/);

  // netcheck: STUN answered by our server and our region's latency reported.
  for (const n of [n1, n2]) {
    const out = await waitFor(
      async () => {
        const r = await n.cli(['netcheck'], { timeoutMs: 30_000, allowFailure: true });
        const text = `${r.stdout}${r.stderr}`;
        return new RegExp(`-\\s+${o.regionCode}:\\s+[\\d.]+(ms|µs|s)`).test(text) ? text : notYet(text);
      },
      { what: `${n.name}'s netcheck to report region ${o.regionCode}`, timeoutMs: 60_000, intervalMs: 2_000 },
    );
    o.log(`${n.name} netcheck:\n${out}`);
    assert.match(out, /UDP: true/);
  }
  const dropped = (await droppedUdp(n1)) + (await droppedUdp(n2));
  o.log(`direct UDP packets dropped by nftables: ${dropped}`);
  assert.ok(dropped > 0, 'the clients tried a direct path and the drop rules stopped it');
  return { nodes: [n1, n2] };
}
