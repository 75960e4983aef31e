/**
 * Operators' endpoints of the split services (issue #11): every service runs as its own process
 * (`bin/switchboard service NAME`) with METRICS_LISTEN, over a Postgres and a NATS that this test
 * starts itself on free ports (it stops them; the shared servers are never touched) and the shared
 * Redis under a random key prefix. Real registrations and a deletion go through the fanout edge and
 * the admin API; then every /metrics must parse as Prometheus text (parse-prometheus-text-format)
 * with the issue's series present and moved, /readyz must turn 503 while Postgres or NATS is down
 * and 200 when it is back, and no log line of the run may contain a secret.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { adminCall } from '@switchboard/switchboard';
import { formatKey, generatePrivateKey, initZstd } from '@switchboard/protocol';
import { SimNode } from '../../src/sim-node.js';

const ROOT = new URL('../../../..', import.meta.url).pathname;
const MAIN = join(ROOT, 'services/switchboard/dist/src/main.js');
const PG_BIN = '/usr/lib/postgresql/15/bin';

interface Family {
  name: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    count?: string;
    buckets?: Record<string, string>;
  }[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const asPostgres = (args: string[]) => {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
};

describe('deploy: /metrics, /healthz and /readyz on every service, as separate processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-ops-'));
  const pgData = join(dir, 'pg');
  const natsDir = join(dir, 'nats');
  let pgPort = 0;
  let natsPort = 0;
  let nats: ChildProcess | undefined;
  const procs = new Map<string, ChildProcess>();
  const ops = new Map<string, number>();
  const logs: string[] = [];
  const noiseKey = formatKey('private', generatePrivateKey());
  let edgePort = 0;
  const socket = join(dir, 'admin.sock');
  const nodes: SimNode[] = [];
  const secrets: string[] = [noiseKey];

  const startNats = (): void => {
    nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', natsDir], {
      stdio: 'ignore',
    });
  };
  const pgCtl = (verb: 'start' | 'stop') =>
    asPostgres([
      `${PG_BIN}/pg_ctl`,
      '-D',
      pgData,
      '-w',
      '-l',
      join(pgData, 'log'),
      ...(verb === 'start'
        ? ['-o', `-p ${pgPort} -k ${pgData} -c listen_addresses=127.0.0.1`]
        : ['-m', 'fast']),
      verb,
    ]);

  const scrape = async (name: string): Promise<Map<string, Family>> => {
    const text = await (await fetch(`http://127.0.0.1:${ops.get(name)}/metrics`)).text();
    const families = parsePrometheusTextFormat(text) as Family[];
    return new Map(families.map((f) => [f.name, f]));
  };
  const value = (fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number => {
    const f = fams.get(name);
    assert.ok(f, `series ${name} is missing`);
    let sum = 0;
    for (const m of f.metrics) {
      // parse-prometheus-text-format 1.1 drops a histogram's labels: its +Inf bucket counts all of them
      if (m.buckets) {
        sum += Number(m.buckets['+Inf'] ?? 0);
        continue;
      }
      if (!Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)) continue;
      sum += Number(m.value ?? m.count ?? 0);
    }
    return sum;
  };
  const ready = async (name: string): Promise<number> => {
    const r = await fetch(`http://127.0.0.1:${ops.get(name)}/readyz`);
    if (process.env.TEST_LOG) console.error(name, r.status, await r.text());
    return r.status;
  };

  before(async () => {
    await initZstd();
    mkdirSync(pgData, { mode: 0o700 });
    chownSync(pgData, 101, 104);
    chownSync(dir, 101, 104);
    pgPort = await freePort();
    natsPort = await freePort();
    asPostgres([`${PG_BIN}/initdb`, '-D', pgData, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    pgCtl('start');
    startNats();
    const env = {
      PATH: process.env.PATH,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      NATS_URL: `nats://127.0.0.1:${natsPort}`,
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      REDIS_KEY_PREFIX: `sb-ops-${randomBytes(4).toString('hex')}:`,
      LOG_LEVEL: 'debug',
    };
    edgePort = await freePort();
    const extra: Record<string, Record<string, string>> = {
      identity: { ADMIN_SOCKET: socket },
      'netmap-fanout': {
        NOISE_PRIVATE_KEY: noiseKey,
        LISTEN_ADDR: `127.0.0.1:${edgePort}`,
        DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
      },
    };
    for (const name of ['key-registry', 'identity', 'policy-compiler', 'netmap-fanout']) {
      const port = await freePort();
      ops.set(name, port);
      const p = spawn(process.execPath, [MAIN, 'service', name], {
        env: { ...env, ...extra[name], METRICS_LISTEN: `127.0.0.1:${port}` },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      for (const s of [p.stdout, p.stderr]) s.on('data', (b: Buffer) => logs.push(b.toString('utf8')));
      procs.set(name, p);
    }
    for (const name of ops.keys())
      await until(`${name} ready`, async () => (await ready(name)) === 200, 60_000);
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
    for (const p of procs.values()) p.kill('SIGTERM');
    await Promise.all(
      [...procs.values()].map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))),
    );
    nats?.kill('SIGTERM');
    try {
      pgCtl('stop');
    } catch {
      // already stopped
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('every service answers /healthz and parses as Prometheus text with default process metrics', async () => {
    for (const name of ops.keys()) {
      assert.equal((await fetch(`http://127.0.0.1:${ops.get(name)}/healthz`)).status, 200, name);
      const fams = await scrape(name);
      assert.ok(value(fams, 'process_cpu_seconds_total') > 0, `${name}: default metrics`);
      assert.equal(fams.get('process_cpu_seconds_total')?.type, 'COUNTER');
    }
  });

  test('registrations and a deletion move the series the issue names', async () => {
    const admin = (method: string, path: string, body?: unknown) =>
      adminCall({ socketPath: socket }, method, path, body);
    await admin('POST', '/api/v1/users', { name: 'alice' });
    const { key } = (await admin('POST', '/api/v1/preauthkeys', { user: 'alice', reusable: true })) as {
      key: string;
    };
    const { key: apiKey } = (await admin('POST', '/api/v1/apikeys', {})) as { key: string };
    secrets.push(key, apiKey);
    const url = `http://127.0.0.1:${edgePort}`;
    for (const hostname of ['a', 'b', 'c']) {
      const n = new SimNode({ url, hostname });
      nodes.push(n);
      await n.connect();
      const r = await n.register(key);
      assert.equal(r.Error ?? '', '', `register ${hostname}`);
      await n.startStream();
    }
    await until('every node to see two peers', async () => nodes.every((n) => n.peers.size === 2));
    const victim = nodes[2]!;
    const victimId = Number((victim.self as { ID: number }).ID);
    await admin('DELETE', `/api/v1/nodes/${victimId}`);
    await until('the deletion to reach the others', async () =>
      nodes.slice(0, 2).every((n) => n.peers.size === 1),
    );

    const kr = await scrape('key-registry');
    assert.ok(
      value(kr, 'switchboard_registration_duration_seconds', { method: 'auth-key', outcome: 'ok' }) >= 3,
    );
    assert.ok(value(kr, 'switchboard_outbox_published_total', { schema: 'key_registry' }) >= 4);
    assert.ok(kr.has('switchboard_outbox_lag_seconds'));
    assert.ok(value(kr, 'switchboard_db_pool_connections') >= 1);
    assert.ok(kr.has('switchboard_db_errors_total'));
    assert.ok(value(kr, 'switchboard_event_view_seq') > 0);
    assert.equal(value(kr, 'switchboard_bus_connected'), 1);

    const fo = await scrape('netmap-fanout');
    assert.equal(value(fo, 'switchboard_fanout_streams'), 2);
    assert.ok(value(fo, 'switchboard_fanout_frames_total') > 3);
    assert.ok(value(fo, 'switchboard_fanout_frame_bytes_total') > 100);
    assert.ok(value(fo, 'switchboard_fanout_propagation_seconds') >= 1, 'propagation histogram counted');
    assert.ok(value(fo, 'switchboard_bus_request_duration_seconds', { outcome: 'ok' }) >= 3);
    assert.ok(value(fo, 'switchboard_edge_upgrades_total') >= 3);
    assert.ok(value(fo, 'switchboard_event_view_seq') > 0);
    assert.ok(fo.has('switchboard_event_view_lag_events'));
    assert.ok(fo.has('switchboard_edge_limit_hits_total'));

    const id = await scrape('identity');
    assert.ok(value(id, 'switchboard_outbox_published_total', { schema: 'identity' }) >= 1);
    assert.ok(id.has('switchboard_admin_auth_failures_total'));
    const pc = await scrape('policy-compiler');
    assert.ok(value(pc, 'switchboard_event_view_seq') > 0);
  });

  test('/readyz is 503 while Postgres is down and 200 when it is back', async () => {
    pgCtl('stop');
    for (const name of ['key-registry', 'identity', 'policy-compiler'])
      await until(`${name} not ready without Postgres`, async () => (await ready(name)) === 503, 20_000);
    const body = (await (await fetch(`http://127.0.0.1:${ops.get('key-registry')}/readyz`)).json()) as {
      checks: Record<string, { ok: boolean }>;
    };
    assert.equal(body.checks.database?.ok, false);
    pgCtl('start');
    for (const name of ['key-registry', 'identity', 'policy-compiler'])
      await until(`${name} ready again`, async () => (await ready(name)) === 200, 30_000);
  });

  test('/readyz is 503 while NATS is down and 200 when it is back', async () => {
    const n = nats!;
    await new Promise((r) => {
      n.once('exit', r);
      n.kill('SIGTERM');
    });
    for (const name of ops.keys())
      await until(`${name} not ready without NATS`, async () => (await ready(name)) === 503, 20_000);
    startNats();
    for (const name of ops.keys())
      await until(`${name} ready again`, async () => (await ready(name)) === 200, 40_000);
  });

  test('no log line of the run contains the Noise key, a pre-auth key or an API key', () => {
    const text = logs.join('');
    assert.ok(text.length > 1000, 'the services logged (LOG_LEVEL=debug)');
    for (const s of secrets) {
      const secretPart = s.slice(s.lastIndexOf('-') + 1).replace(/^privkey:/, '');
      assert.ok(!text.includes(secretPart), `a secret (${s.slice(0, 12)}…) appears in the logs`);
    }
  });
});
