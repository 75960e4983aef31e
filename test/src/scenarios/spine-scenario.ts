/**
 * The spine's real-client scenario, shared by the one-process and the split-services runs: three
 * unmodified tailscale clients (newest, newest, oldest) in their own namespaces join with a pre-auth
 * key, see each other, ping each other over WireGuard; a node deleted with the CLI disappears from
 * the others within 2 s; an ephemeral node that logs out is deleted.
 */
import assert from 'node:assert/strict';
import { adminCall, runAdminCli, type AdminTarget } from '@switchboard/switchboard';
import type { Harness } from '../harness/harness.js';
import { ip, logout, peersOf, ping, status, type TailscaleNode } from '../harness/node.js';
import { waitFor, notYet } from '../harness/wait.js';

export interface SpineScenarioOptions {
  harness: Harness;
  admin: AdminTarget;
  /** Login-server URL per node index (clients spread over replicas), cycled. */
  controlUrls: string[];
  log: (msg: string) => void;
}

async function hostnamesSeenBy(n: TailscaleNode): Promise<string[]> {
  return peersOf(await status(n))
    .map((p) => p.HostName)
    .sort();
}

export async function runSpineScenario(o: SpineScenarioOptions): Promise<{ deletePropagationMs: number }> {
  const h = o.harness;
  const call = (m: string, p: string, b?: unknown) => adminCall(o.admin, m, p, b);
  await call('POST', '/api/v1/users', { name: 'interop' });
  const { key } = (await call('POST', '/api/v1/preauthkeys', {
    user: 'interop',
    reusable: true,
    expiration: '1h',
  })) as {
    key: string;
  };
  const specs = [
    { name: 'n1', version: 'newest' as const },
    { name: 'n2', version: 'newest' as const },
    { name: 'n3', version: 'oldest' as const },
  ];
  const nodes: TailscaleNode[] = [];
  for (const [i, s] of specs.entries()) {
    const url = o.controlUrls[i % o.controlUrls.length]!;
    nodes.push(await h.startNode({ ...s, authKey: key, loginServer: url }));
    o.log(`${s.name} (${s.version}) joined via ${url}`);
  }
  const names = specs.map((s) => s.name);
  for (const n of nodes) {
    const others = names.filter((x) => x !== n.name).sort();
    await waitFor(
      async () => {
        const seen = await hostnamesSeenBy(n);
        return JSON.stringify(seen) === JSON.stringify(others) ? true : notYet(seen);
      },
      { what: `${n.name} to list ${others.join(', ')} in tailscale status`, timeoutMs: 20_000 },
    );
  }
  const ips = new Map<string, string>();
  for (const n of nodes) ips.set(n.name, await ip(n));
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      const r = await ping(a, ips.get(b.name)!, { timeoutS: 30 });
      o.log(`ping ${a.name} -> ${b.name}: via ${r.via} ${r.path} in ${r.latencyMs} ms`);
    }
  }

  // Delete n3 with the CLI; the others must lose it within 2 s.
  const { nodes: list } = (await call('GET', '/api/v1/nodes')) as {
    nodes: { id: number; givenName: string }[];
  };
  const n3 = list.find((x) => x.givenName === 'n3');
  assert.ok(n3, `n3 in the node list: ${JSON.stringify(list.map((x) => x.givenName))}`);
  const out: string[] = [];
  const t0 = Date.now();
  const code = await runAdminCli(
    ['nodes', 'delete', String(n3.id), ...(o.admin.socketPath ? ['--socket', o.admin.socketPath] : [])],
    { out: (s) => out.push(s), err: (s) => out.push(s), env: {} },
  );
  assert.equal(code, 0, out.join(''));
  for (const n of nodes.slice(0, 2)) {
    await waitFor(
      async () => {
        const seen = await hostnamesSeenBy(n);
        return !seen.includes('n3') ? true : notYet(seen);
      },
      { what: `${n.name} to drop n3`, timeoutMs: 2_000, intervalMs: 50 },
    );
  }
  const deletePropagationMs = Date.now() - t0;
  o.log(`deleted n3 disappeared from n1 and n2 in ${deletePropagationMs} ms`);

  // An ephemeral node that logs out is deleted.
  const { key: ekey } = (await call('POST', '/api/v1/preauthkeys', { user: 'interop', ephemeral: true })) as {
    key: string;
  };
  const e = await h.startNode({ name: 'eph', authKey: ekey, loginServer: o.controlUrls[0]! });
  await waitFor(
    async () => {
      const seen = await hostnamesSeenBy(nodes[0]!);
      return seen.includes('eph') ? true : notYet(seen);
    },
    { what: 'n1 to see the ephemeral node', timeoutMs: 10_000 },
  );
  await logout(e);
  await waitFor(
    async () => {
      const r = (await call('GET', '/api/v1/nodes')) as { nodes: { givenName: string }[] };
      return r.nodes.some((x) => x.givenName === 'eph') ? notYet(r.nodes.map((x) => x.givenName)) : true;
    },
    { what: 'the ephemeral node to be deleted after logout', timeoutMs: 10_000 },
  );
  await waitFor(
    async () => {
      const seen = await hostnamesSeenBy(nodes[0]!);
      return seen.includes('eph') ? notYet(seen) : true;
    },
    { what: 'n1 to drop the logged-out ephemeral node', timeoutMs: 5_000 },
  );
  return { deletePropagationMs };
}
