/**
 * Policy end to end in one process with simulated nodes: a policy sets who sees whom and which
 * filter rules each node receives; bad policies and policies whose tests fail are refused with a
 * location and leave the running policy alone; history, rollback; tagOwners on pre-auth keys; the
 * offline `policy compile` command.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminApiError, adminCall, runAdminCli, serve, type RunningServer } from '@switchboard/switchboard';
import { testLogger, waitFor } from '@switchboard/testing';
import { SimNode } from '../../src/sim-node.js';

const POLICY = `// eng may reach the servers on ssh only
{
  "groups": { "group:eng": ["alice@"] },
  "tagOwners": { "tag:server": ["group:eng"] },
  "acls": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:server:22"] },
  ],
}
`;
/** The same with tests (they resolve tags to real nodes, so they need a tag:server node to exist). */
const WITH_TESTS = POLICY.replace(
  /\n}\n$/,
  `
  "tests": [
    { "src": "alice@", "accept": ["tag:server:22"], "deny": ["tag:server:80"] },
  ],
}
`,
);

describe('policy: one process, simulated nodes', () => {
  let srv: RunningServer;
  let dir: string;
  let url: string;
  const nodes: SimNode[] = [];
  const admin = (m: string, p: string, b?: unknown) => adminCall({ socketPath: srv.adminSocket }, m, p, b);

  async function joinNode(name: string, key: string): Promise<SimNode> {
    const n = new SimNode({ url, hostname: name });
    nodes.push(n);
    await n.connect();
    const r = await n.register(key);
    assert.equal(r.Error ?? '', '', r.Error);
    await n.startStream();
    return n;
  }
  const keyFor = async (user: string, tags: string[] = []) =>
    ((await admin('POST', '/api/v1/preauthkeys', { user, reusable: true, tags })) as { key: string }).key;
  const filterOf = (n: SimNode) => {
    for (let i = n.messages.length - 1; i >= 0; i--) {
      const f = (n.messages[i] as unknown as { PacketFilter?: unknown }).PacketFilter;
      if (f !== undefined)
        return f as {
          SrcIPs: string[];
          DstPorts: { IP: string; Ports: { First: number; Last: number } }[];
        }[];
    }
    return undefined;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-policy-'));
    srv = await serve({
      inMemory: true,
      logger: testLogger('policy'),
      env: { LISTEN_ADDR: '127.0.0.1:0', STUN_PORT: '0', DATA_DIR: dir, LOG_LEVEL: 'silent' },
    });
    url = `http://127.0.0.1:${srv.port}`;
    await admin('POST', '/api/v1/users', { name: 'alice' });
    await admin('POST', '/api/v1/users', { name: 'bob' });
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('without tagOwners, keys cannot carry tags', async () => {
    await assert.rejects(keyFor('alice', ['tag:server']), (err: AdminApiError) => {
      assert.equal(err.status, 403);
      assert.match(err.message, /tag:server/);
      return true;
    });
  });

  test('a policy decides visibility and filters, live, without reconnecting', async () => {
    const a = await joinNode('alice-laptop', await keyFor('alice'));
    const b = await joinNode('bob-laptop', await keyFor('bob'));
    await waitFor(() => a.peers.size === 1 && b.peers.size === 1, {
      what: 'allow-all: everyone sees everyone',
    });

    const set = (await admin('PUT', '/api/v1/policy', { policy: POLICY })) as { policy: { version: number } };
    assert.equal(set.policy.version, 1);
    await waitFor(() => a.peers.size === 0 && b.peers.size === 0, {
      what: 'no rule between alice and bob: they lose each other',
    });

    const s = await joinNode('server', await keyFor('alice', ['tag:server']));
    const sid = s.self!.ID as number;
    const aid = a.self!.ID as number;
    await waitFor(() => a.peers.has(sid), { what: 'alice (group:eng) to see the server' });
    assert.ok(!b.peers.has(sid), 'bob must not see the server');
    assert.deepEqual([...s.peers.keys()], [aid], 'the server sees alice (who may reach it), not bob');
    const aIPs = (a.self!.Addresses as string[]).map((x) => x.split('/')[0]);
    await waitFor(() => filterOf(s)?.some((r) => r.SrcIPs.includes(aIPs[0]!)), {
      what: "the server's filter to admit alice",
    });
    const rule = filterOf(s)!.find((r) => r.SrcIPs.includes(aIPs[0]!))!;
    assert.deepEqual(
      rule.DstPorts.map((d) => d.Ports),
      rule.DstPorts.map(() => ({ First: 22, Last: 22 })),
    );
    assert.deepEqual(filterOf(b), [], 'bob accepts nothing');

    // A policy change reaches running streams: open port 80 to everyone.
    const open80 = POLICY.replace(
      '{ "action": "accept", "src": ["group:eng"], "dst": ["tag:server:22"] },',
      '{ "action": "accept", "src": ["group:eng"], "dst": ["tag:server:22"] },\n    { "action": "accept", "src": ["autogroup:member"], "dst": ["tag:server:80"] },',
    );
    const seen = b.messages.length;
    await admin('PUT', '/api/v1/policy', { policy: open80 });
    await waitFor(() => b.peers.has(sid), { what: 'bob to see the server once port 80 is open to members' });
    const since = b.messages.slice(seen) as unknown as { Peers?: unknown[] }[];
    assert.ok(
      since.every((m) => !m.Peers?.length),
      'a delta, not a full peer list',
    );

    const hist = (await admin('GET', '/api/v1/policy/history')) as {
      versions: { version: number; diff: string; author: string }[];
    };
    assert.deepEqual(
      hist.versions.map((v) => v.version),
      [2, 1],
    );
    assert.match(hist.versions[0]!.diff, /\+.*tag:server:80/);
    assert.equal(hist.versions[0]!.author, 'local-admin');

    await admin('POST', '/api/v1/policy/rollback', { version: 1 });
    await waitFor(() => !b.peers.has(sid), { what: 'bob to lose the server after the rollback' });
  });

  test('invalid policies and failing tests are refused with a location; the policy stays', async () => {
    const before = (await admin('GET', '/api/v1/policy')) as { policy: { version: number; text: string } };
    const bad = [
      '{ "acls": [ { "action": "accept", "src": ["autogroup:nope"], "dst": ["*:*"] } ] }',
      '{ "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:99999"] } ] }',
      '{ "acls": [ }',
      WITH_TESTS.replace('"deny": ["tag:server:80"]', '"deny": ["tag:server:22"]'),
    ];
    for (const text of bad) {
      await assert.rejects(admin('PUT', '/api/v1/policy', { policy: text }), (err: AdminApiError) => {
        assert.equal(err.status, 400, err.message);
        assert.match(err.message, /\d+:\d+/, `a line:column in "${err.message}"`);
        return true;
      });
    }
    const after = (await admin('GET', '/api/v1/policy')) as { policy: { version: number; text: string } };
    assert.deepEqual(after, before);
    const check = (await admin('POST', '/api/v1/policy/check', { policy: WITH_TESTS })) as { tests: number };
    assert.equal(check.tests, 1);
  });

  test('policy compile works offline', async () => {
    const pf = join(dir, 'policy.hujson');
    const nf = join(dir, 'nodes.json');
    writeFileSync(pf, POLICY);
    writeFileSync(
      nf,
      JSON.stringify([
        {
          id: '1',
          user: 'alice',
          tags: [],
          ipv4: '100.64.0.1',
          ipv6: 'fd7a:115c:a1e0::1',
          routableIPs: [],
          approvedRoutes: [],
        },
        {
          id: '2',
          user: null,
          tags: ['tag:server'],
          ipv4: '100.64.0.2',
          ipv6: 'fd7a:115c:a1e0::2',
          routableIPs: [],
          approvedRoutes: [],
        },
        {
          id: '3',
          user: 'bob',
          tags: [],
          ipv4: '100.64.0.3',
          ipv6: 'fd7a:115c:a1e0::3',
          routableIPs: [],
          approvedRoutes: [],
        },
      ]),
    );
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env: {} };
    assert.equal(
      await runAdminCli(['policy', 'compile', '--policy', pf, '--nodes', nf], io),
      0,
      err.join(''),
    );
    const res = JSON.parse(out.join('')) as Record<string, { filter: unknown[]; peers: string[] }>;
    assert.deepEqual(res['1']!.peers, ['2']);
    assert.deepEqual(res['3']!.peers, []);
    assert.equal(res['2']!.filter.length, 1);
    writeFileSync(pf, '{\n  "acls": [ { "action": "accept", "src": ["group:missing"], "dst": ["*:*"] } ]\n}');
    out.length = 0;
    assert.equal(await runAdminCli(['policy', 'compile', '--policy', pf, '--nodes', nf], io), 1);
    assert.match(err.join(''), /\d+:\d+/);
  });

  test('announced routes are approved by autoApprovers or by an admin, and reach peers', async () => {
    await admin('PUT', '/api/v1/policy', {
      policy: `{
  "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ],
  "autoApprovers": { "routes": { "10.9.0.0/24": ["alice@"] } },
}`,
    });
    const router = new SimNode({ url, hostname: 'router' });
    nodes.push(router);
    await router.connect();
    const r = await router.register(await keyFor('alice'), {
      Hostinfo: {
        Hostname: 'router',
        OS: 'linux',
        BackendLogID: 'sim',
        RoutableIPs: ['10.9.0.0/24', '10.10.0.0/24'],
      },
    });
    assert.equal(r.Error ?? '', '');
    await router.startStream();
    const rid = router.self!.ID as number;
    const viewer = await joinNode('viewer', await keyFor('bob'));
    const allowed = () => (viewer.peers.get(rid)?.AllowedIPs as string[] | undefined) ?? [];
    await waitFor(() => allowed().includes('10.9.0.0/24'), {
      what: 'the auto-approved route in the router peer entry',
    });
    assert.ok(!allowed().includes('10.10.0.0/24'), 'an unapproved route is not routed');
    await admin('POST', `/api/v1/nodes/${rid}/routes`, { routes: ['10.9.0.0/24', '10.10.0.0/24'] });
    await waitFor(() => allowed().includes('10.10.0.0/24'), {
      what: 'the admin-approved route to reach peers',
    });
    assert.deepEqual(viewer.peers.get(rid)?.PrimaryRoutes, ['10.10.0.0/24', '10.9.0.0/24']);
  });
});
