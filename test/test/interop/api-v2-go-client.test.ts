/**
 * Tailscale's own Go API client (tailscale.com/client/tailscale/v2) against Switchboard's API v2 on
 * the control server's origin, once with an API access token and once with an OAuth client: it
 * creates an auth key that a real `tailscale up` uses, lists devices, sets tags and routes,
 * (de)authorizes, sets DNS (which `tailscale dns status` on the client then shows), and reads,
 * validates and writes the policy file with If-Match. Every effect is checked through our CLI; the
 * audit chain verifies at the end and fails once one row is altered.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAdminCli } from '@switchboard/switchboard';
import { assertNoForeignTraffic, type Harness } from '../../src/harness/harness.js';
import { withEmbeddedServer, withRealClients } from '../../src/scenarios/embedded-server.js';
import { buildGoApiClient, goApiClient } from '../../src/scenarios/go-api-client.js';
import { notYet, waitFor } from '../../src/harness/wait.js';

const policy = (comment: string) => `// ${comment}
{
  "tagOwners": { "tag:ci": ["alice@example.com"], "tag:web": ["alice@example.com"] },
  "autoApprovers": { "routes": {} },
  "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:*"] }],
}
`;

interface NodeRow {
  id: number;
  stableId: string;
  hostname: string;
  tags: string[];
  approvedRoutes: string[];
  machineAuthorized: boolean;
}

test(
  'Go API client v2: token and OAuth client, real tailscale up, effects via the CLI',
  { timeout: 600_000 },
  async (t) => {
    await buildGoApiClient();
    await withRealClients((h) =>
      withEmbeddedServer(h, async (srv, url) => {
        const cli = async (args: string[], expectCode = 0): Promise<string> => {
          const out: string[] = [];
          const code = await runAdminCli([...args, '--socket', srv.adminSocket], {
            out: (s) => out.push(s),
            err: (s) => out.push(s),
            env: {},
          });
          assert.equal(code, expectCode, `switchboard ${args.join(' ')}: ${out.join('')}`);
          return out.join('');
        };
        const nodes = async (): Promise<NodeRow[]> =>
          JSON.parse(await cli(['nodes', 'list', '-o', 'json'])) as NodeRow[];
        await cli(['users', 'create', 'alice', '--email', 'alice@example.com']);
        await cli(['users', 'set-role', 'alice', '--role', 'owner']);
        const pfile = (name: string, text: string): string => {
          const f = join(h.runDir, name);
          writeFileSync(f, text);
          return f;
        };
        await cli(['policy', 'set', pfile('p0.hujson', policy('start'))]);
        const token = (
          JSON.parse(await cli(['apikeys', 'create', '--user', 'alice', '-o', 'json'])) as { key: string }
        ).key;

        const flows: { name: string; auth: string[] }[] = [{ name: 'token', auth: ['-token', token] }];
        const client = await goApiClient([
          'create-oauth-client',
          '-base',
          url,
          '-token',
          token,
          '-scopes',
          'devices:core,devices:routes,auth_keys,policy_file,dns',
          '-tags',
          'tag:ci',
        ]);
        assert.equal(client['keyType'], 'client');
        flows.push({
          name: 'oauth',
          auth: ['-client-id', String(client['id']), '-client-secret', String(client['secret'])],
        });

        for (const [i, flow] of flows.entries()) await runFlow({ h, url, cli, nodes, pfile, t }, flow, i);

        // The OAuth client cannot go beyond its scopes.
        const narrow = await goApiClient([
          'create-oauth-client',
          '-base',
          url,
          '-token',
          token,
          '-scopes',
          'policy_file:read',
          '-tags',
          '',
        ]);
        const probe = await goApiClient([
          'forbidden-probe',
          '-base',
          url,
          '-client-id',
          String(narrow['id']),
          '-client-secret',
          String(narrow['secret']),
        ]);
        assert.equal(probe['status'], 403);

        // Audit: every action above is there, the chain verifies, and one altered row breaks it.
        const entries = JSON.parse(await cli(['audit', 'list', '-o', 'json'])) as {
          action: string;
          actor: string;
          outcome: string;
        }[];
        for (const action of [
          'createKey',
          'setDeviceTags',
          'setDeviceRoutes',
          'authorizeDevice',
          'setPolicyFile',
          'setDnsNameservers',
          'login.oauth',
        ])
          assert.ok(
            entries.some((e) => e.action === action),
            `audit has ${action}`,
          );
        assert.ok(
          entries.some((e) => e.action === 'setPolicyFile' && e.outcome.startsWith('denied')),
          'the refused write is audited',
        );
        await cli(['audit', 'verify']);
        await srv.db.query(`ALTER TABLE identity.audit_log DISABLE TRIGGER audit_log_append_only`);
        await srv.db.query(`UPDATE identity.audit_log SET actor = 'mallory' WHERE id = 3`);
        const broken = await cli(['audit', 'verify'], 1);
        assert.match(broken, /BROKEN at entry 3/);
        await assertNoForeignTraffic(h);
      }),
    );
  },
);

interface FlowContext {
  h: Harness;
  url: string;
  cli: (args: string[], expectCode?: number) => Promise<string>;
  nodes: () => Promise<NodeRow[]>;
  pfile: (name: string, text: string) => string;
  t: TestContext;
}

/** One pass with one credential: auth key → real client, device edits, DNS, policy with If-Match. */
async function runFlow(
  { h, url, cli, nodes, pfile, t }: FlowContext,
  flow: { name: string; auth: string[] },
  i: number,
): Promise<void> {
  const api = (cmd: string, ...args: string[]) => goApiClient([cmd, '-base', url, ...flow.auth, ...args]);
  t.diagnostic(`flow ${flow.name}`);
  // An auth key from the API, used by a real client.
  const k = await api('create-auth-key', '-tags', 'tag:ci', '-reusable');
  assert.match(String(k['key']), /^sbkey-/);
  const listed = JSON.parse(await cli(['preauthkeys', 'list', '-o', 'json'])) as {
    prefix: string;
    tags: string[];
  }[];
  assert.ok(
    listed.some((x) => String(k['key']).startsWith(x.prefix) && x.tags.includes('tag:ci')),
    'the key is in "preauthkeys list"',
  );
  const name = `api${i}`;
  await h.startNode({
    name,
    authKey: String(k['key']),
    loginServer: url,
    extraUpArgs: ['--advertise-routes=10.77.0.0/24'],
  });
  const mine = await waitFor(
    async () => (await nodes()).find((n) => n.hostname === name) ?? notYet('node not listed yet'),
    { what: `${name} in nodes list`, timeoutMs: 30_000 },
  );
  assert.deepEqual(mine.tags, ['tag:ci']);

  const devs = (await api('list-devices'))['devices'] as {
    nodeId: string;
    hostname: string;
    tags: string[];
    /** The Go struct's tag is capitalised (it decodes our advertisedRoutes case-insensitively). */
    AdvertisedRoutes?: string[] | null;
  }[];
  const dev = devs.find((d) => d.hostname === name);
  assert.ok(dev, `list-devices shows ${name}`);
  await waitFor(
    async () =>
      ((await api('list-devices'))['devices'] as typeof devs)
        .find((d) => d.hostname === name)
        ?.AdvertisedRoutes?.includes('10.77.0.0/24') || notYet('route not announced yet'),
    { what: `${name} announcing its route`, timeoutMs: 30_000 },
  );

  // Tags, routes, authorization.
  const m = await api(
    'manage-device',
    '-id',
    dev.nodeId,
    '-tags',
    flow.name === 'token' ? 'tag:ci,tag:web' : 'tag:ci',
    '-routes',
    '10.77.0.0/24',
  );
  assert.equal(m['authorizedWhileOff'], false);
  const after = (await nodes()).find((n) => n.hostname === name)!;
  assert.deepEqual(after.tags, flow.name === 'token' ? ['tag:ci', 'tag:web'] : ['tag:ci']);
  assert.deepEqual(after.approvedRoutes, ['10.77.0.0/24']);
  assert.equal(after.machineAuthorized, true);

  // DNS reaches the client's map.
  const ns = i === 0 ? '9.9.9.9' : '149.112.112.112';
  const dns = await api('dns', '-routes', ns);
  assert.deepEqual(dns['nameservers'], [ns]);
  const node = h.nodes.find((n) => n.name === name)!;
  await waitFor(
    async () => {
      const r = await node.cli(['dns', 'status'], { timeoutMs: 15_000, allowFailure: true });
      return (
        (r.stdout.includes(ns) && r.stdout.includes('corp.example') && r.stdout.includes('10.77.0.53')) ||
        notYet(`dns status: ${r.stdout.slice(0, 400)}`)
      );
    },
    { what: `the API's DNS in ${name}'s dns status`, timeoutMs: 20_000 },
  );

  // Policy: read, validate, write with If-Match; a stale ETag is refused with 412.
  const text = policy(`written by ${flow.name}`);
  const p = await api('policy', '-file', pfile(`p-${flow.name}.hujson`, text));
  assert.notEqual(p['etagBefore'], p['etagAfter']);
  assert.equal(p['staleStatus'], 412);
  assert.equal(p['invalidRejected'], true);
  assert.equal(p['hujsonAfter'], text);
  assert.match(await cli(['policy', 'get']), new RegExp(`written by ${flow.name}`));
}
