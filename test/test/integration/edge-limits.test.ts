/**
 * Edge hardening, part 3 (regression tests for the findings): the client edge and the admin API
 * refuse JSON nested past the limit with 400 naming the limit (a register request nested 5,000
 * deep inside an unknown Hostinfo field was a 503 with "Maximum call stack size exceeded", a map
 * request 20,000 deep a 500 and an error log), unknown Hostinfo fields are dropped instead of
 * reaching peers, and route prefixes with host bits or a zone are refused with the canonical form.
 * The whole server runs in one process (serve()); the nodes speak the real protocol.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminApiError, adminCall, serve, type RunningServer } from '@switchboard/switchboard';
import { capturingLogger, waitFor, type LogLine } from '@switchboard/testing';
import { SimNode } from '../../src/sim-node.js';

/** Nothing from inside the server: no stack frames, no JS engine messages. */
function assertNoLeak(text: string): void {
  assert.doesNotMatch(text, /\n\s+at |\.js:\d+|Maximum call stack|RangeError|internal error/i);
}

const nest = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;

describe('edge limits: JSON depth, Hostinfo fields, route prefixes', () => {
  let srv: RunningServer;
  let dir: string;
  let url: string;
  let key: string;
  const nodes: SimNode[] = [];
  const lines: LogLine[] = [];

  const admin = (method: string, path: string, body?: unknown) =>
    adminCall({ socketPath: srv.adminSocket }, method, path, body);

  async function joinNode(name: string, hostinfo?: Record<string, unknown>): Promise<SimNode> {
    const n = new SimNode({ url, hostname: name });
    nodes.push(n);
    await n.connect();
    const r = await n.register(key, hostinfo ? { Hostinfo: hostinfo } : {});
    assert.equal(r.Error ?? '', '', `register ${name}: ${r.Error}`);
    await n.startStream();
    return n;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-edge-limits-'));
    srv = await serve({
      inMemory: true,
      logger: capturingLogger(lines),
      env: { LISTEN_ADDR: '127.0.0.1:0', STUN_PORT: '0', DATA_DIR: dir, LOG_LEVEL: 'silent' },
    });
    url = `http://127.0.0.1:${srv.port}`;
    await admin('POST', '/api/v1/users', { name: 'edge' });
    key = ((await admin('POST', '/api/v1/preauthkeys', { user: 'edge', reusable: true })) as { key: string })
      .key;
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('deep JSON in register and map requests is 400 naming the limit, with no error logged', async () => {
    const n = new SimNode({ url, hostname: 'deep' });
    nodes.push(n);
    await n.connect();
    const register = (depth: number) =>
      JSON.stringify({
        Version: n.capVersion,
        NodeKey: n.nodeKey,
        Auth: { AuthKey: key },
        Hostinfo: { X: 0 },
      }).replace('"X":0', `"Hostname":"deep","Unknown":${nest(depth)}`);
    for (const depth of [63, 5_000]) {
      const r = await n.client!.request('POST', '/machine/register', register(depth));
      const body = r.body.toString();
      assert.equal(r.status, 400, body);
      assert.match(body, /^RegisterRequest: JSON nested deeper than 64 levels/);
      assertNoLeak(body);
    }
    const map = JSON.stringify(n.mapRequest({ Stream: false, OmitPeers: true })).replace(
      /}$/,
      `,"Z":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`,
    );
    const r = await n.client!.request('POST', '/machine/map', map);
    assert.equal(r.status, 400, r.body.toString());
    assert.match(r.body.toString(), /^MapRequest: JSON nested deeper than 64 levels/);
    assertNoLeak(r.body.toString());

    // Deep but within the limit, in an unknown field: accepted, the field dropped.
    const ok = await n.client!.request('POST', '/machine/register', register(50));
    assert.equal(ok.status, 200, ok.body.toString());
    assert.deepEqual(
      lines.filter((l) => l.level === 'error').map((l) => l.msg),
      [],
    );
  });

  test('unknown Hostinfo fields never reach peers; the known ones do, as sent', async () => {
    const viewer = await joinNode('viewer');
    const hostinfo = {
      Hostname: 'fancy',
      OS: 'linux',
      OSVersion: '6.8.0',
      BackendLogID: 'sim',
      IPNVersion: '1.104.5',
      Services: [{ Proto: 'peerapi4', Port: 41234, Description: 'x', Extra: 1 }],
      sshHostKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample'],
      RoutableIPs: ['10.20.0.0/24'],
      Location: { City: 'Oslo', CityCode: 'OSL', Secret: 'x' },
      Futuristic: { deeply: { nested: [1, 2, 3] } },
      AnotherOne: 'x'.repeat(1000),
    };
    const fancy = await joinNode('fancy', hostinfo);
    const id = fancy.self!.ID as number;
    await waitFor(() => viewer.peers.get(id), { what: 'the viewer to see the node' });
    const seen = viewer.peers.get(id)!.Hostinfo as Record<string, unknown>;
    assert.equal(seen.Hostname, 'fancy');
    assert.equal(seen.OSVersion, '6.8.0');
    assert.deepEqual(seen.Services, [{ Proto: 'peerapi4', Port: 41234, Description: 'x' }]);
    assert.deepEqual(seen.sshHostKeys, hostinfo.sshHostKeys);
    assert.deepEqual(seen.RoutableIPs, ['10.20.0.0/24']);
    assert.deepEqual(seen.Location, { City: 'Oslo', CityCode: 'OSL' });
    assert.equal('Futuristic' in seen, false);
    assert.equal('AnotherOne' in seen, false);
    const self = fancy.self!.Hostinfo as Record<string, unknown>;
    assert.equal('Futuristic' in self, false, 'not even echoed to the node itself');
  });

  test('routes with host bits or a zone are refused at the edge with the canonical form', async () => {
    const n = new SimNode({ url, hostname: 'router' });
    nodes.push(n);
    await n.connect();
    const reg = (routes: string[]) =>
      JSON.stringify({
        Version: n.capVersion,
        NodeKey: n.nodeKey,
        Auth: { AuthKey: key },
        Hostinfo: { Hostname: 'router', BackendLogID: 'sim', RoutableIPs: routes },
      });
    const hostBits = await n.client!.request('POST', '/machine/register', reg(['10.0.0.1/24']));
    assert.equal(hostBits.status, 400);
    assert.equal(
      hostBits.body.toString().trim(),
      'RegisterRequest.Hostinfo.RoutableIPs.0: route 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?',
    );
    const zone = await n.client!.request(
      'POST',
      '/machine/register',
      reg(['10.0.0.0/24', 'fe80::1%eth0/64']),
    );
    assert.equal(zone.status, 400);
    assert.match(zone.body.toString(), /RoutableIPs\.1: route "fe80::1%eth0\/64" has an IPv6 zone/);

    assert.equal(
      (await n.register(key, { Hostinfo: { Hostname: 'router', RoutableIPs: ['10.0.0.0/24'] } })).Error ?? '',
      '',
    );
    const lite = await n.client!.request(
      'POST',
      '/machine/map',
      JSON.stringify(
        n.mapRequest({ Stream: false, OmitPeers: true, Hostinfo: { RoutableIPs: ['10.0.0.7/24'] } }),
      ),
    );
    assert.equal(lite.status, 400);
    assert.match(
      lite.body.toString(),
      /MapRequest\.Hostinfo\.RoutableIPs\.0: route 10\.0\.0\.7\/24 has host bits set/,
    );
  });

  test('the admin API refuses non-canonical routes to approve with 400 and the fix', async () => {
    const router = await joinNode('router2', { Hostname: 'router2', RoutableIPs: ['10.30.0.0/24'] });
    const id = router.self!.ID as number;
    await assert.rejects(
      admin('POST', `/api/v1/nodes/${id}/routes`, { routes: ['10.30.0.1/24'] }),
      (err: unknown) => {
        assert.ok(err instanceof AdminApiError, String(err));
        assert.equal(err.status, 400);
        assert.equal(err.code, 'invalid_input');
        assert.equal(
          err.message,
          `POST /api/v1/nodes/${id}/routes: route 10.30.0.1/24 has host bits set; did you mean 10.30.0.0/24?`,
        );
        return true;
      },
    );
    await assert.rejects(
      admin('POST', `/api/v1/nodes/${id}/routes`, { routes: ['fe80::1%eth0/64'] }),
      (err: unknown) => {
        assert.ok(
          err instanceof AdminApiError && err.status === 400 && /IPv6 zone/.test(err.message),
          String(err),
        );
        return true;
      },
    );
    const ok = (await admin('POST', `/api/v1/nodes/${id}/routes`, { routes: ['10.30.0.0/24'] })) as {
      node: { approvedRoutes: string[] };
    };
    assert.deepEqual(ok.node.approvedRoutes, ['10.30.0.0/24']);
  });
});
