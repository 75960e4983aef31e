/**
 * The admin API's edges against a real Postgres: the failed-authentication limit per source address
 * on the TCP listener (401 then 429 with Retry-After, other sources still served, one log line per
 * block, metrics), and the unix socket created 0600 from the start (never a looser mode).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInProcessBus, type Bus } from '@switchboard/bus';
import { openDb, type Db } from '@switchboard/db';
import {
  capturingLogger,
  scratchDatabase,
  testLogger,
  type LogLine,
  type ScratchDatabase,
} from '@switchboard/testing';
import { AdminServer, IdentityRuntime } from '../src/index.js';
import { listenPrivateSocket } from '../src/admin/admin.socket.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(
  target: { port: number } | { socketPath: string },
  path: string,
  opts: { key?: string; from?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...('port' in target ? { host: '127.0.0.1', port: target.port } : { socketPath: target.socketPath }),
        ...(opts.from ? { localAddress: opts.from } : {}),
        path,
        method: 'GET',
        agent: false,
        headers: opts.key ? { authorization: `Bearer ${opts.key}` } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  if (!line) throw new Error(`metric ${series} missing from:\n${text}`);
  return Number(line.slice(series.length + 1));
}

const WRONG_KEY = 'sbapi-0123456789abcdef-notthesecretnotthesecretnotthe';

describe('admin API edges', () => {
  let scratch: ScratchDatabase;
  let db: Db;
  let bus: Bus;
  let identity: IdentityRuntime;
  let admin: AdminServer;
  let dir: string;
  let socketPath: string;
  let port: number;
  let key: string;
  let clockOffset = 0;
  const lines: LogLine[] = [];
  const logger = testLogger('admin-edge-test');
  const previousUmask = process.umask(0o022);
  let socketModeAtListen: number | undefined;

  before(async () => {
    scratch = await scratchDatabase('sbadm');
    db = await openDb({ url: scratch.url, logger });
    bus = createInProcessBus({ logger });
    identity = new IdentityRuntime({ db, bus, logger });
    await identity.start();
    key = (await identity.service.createApiKey(new Date(Date.now() + 3_600_000).toISOString())).key;
    dir = mkdtempSync(join(tmpdir(), 'sb-admin-'));
    socketPath = join(dir, 'run', 'admin.sock');
    admin = new AdminServer({
      bus,
      identity: identity.service,
      apiV2: identity.apiV2,
      credentials: identity.credentials,
      audit: identity.audit,
      logger: capturingLogger(lines),
      socketPath,
      listen: '127.0.0.1:0',
      authFailuresPerMinute: 10,
      now: () => Date.now() + clockOffset,
    });
    await admin.start();
    port = admin.tcpAddress!.port;
  });

  after(async () => {
    await admin?.stop();
    await identity?.stop();
    await bus?.close();
    await db?.close();
    await scratch?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    process.umask(previousUmask);
  });

  const blockLines = (source: string): LogLine[] =>
    lines.filter((l) => l.msg.includes('too many failed API-key attempts') && l.fields.source === source);

  test('50 wrong keys from one source: 10 answered 401, then 429 with Retry-After, logged once', async () => {
    const statuses: number[] = [];
    let last: Reply | undefined;
    for (let i = 0; i < 50; i++) {
      last = await call({ port }, '/api/v1/apikeys', { key: WRONG_KEY, from: '127.0.0.1' });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [...Array<number>(10).fill(401), ...Array<number>(40).fill(429)]);
    const retryAfter = Number(last!.headers['retry-after']);
    assert.ok(
      Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
      `Retry-After ${retryAfter}`,
    );
    const err = (JSON.parse(last!.body) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, 'too_many_auth_failures');
    assert.match(err.message, new RegExp(`from 127\\.0\\.0\\.1; retry after ${retryAfter} s \\(at \\d{4}-`));
    assert.equal(blockLines('127.0.0.1').length, 1, 'one rate-limit log line, not one per request');
    assert.equal(blockLines('127.0.0.1')[0]!.level, 'warn');
  });

  test('a correct key from the blocked source is refused too; other sources are served', async () => {
    const blocked = await call({ port }, '/api/v1/apikeys', { key, from: '127.0.0.1' });
    assert.equal(blocked.status, 429);
    const other = await call({ port }, '/api/v1/apikeys', { key, from: '127.0.0.2' });
    assert.equal(other.status, 200, other.body);
    const otherWrong = await call({ port }, '/api/v1/apikeys', { key: WRONG_KEY, from: '127.0.0.2' });
    assert.equal(otherWrong.status, 401, 'another source has its own budget');
    const noKey = await call({ port }, '/api/v1/apikeys', { from: '127.0.0.2' });
    assert.equal(noKey.status, 401);
    const local = await call({ socketPath }, '/api/v1/apikeys');
    assert.equal(local.status, 200, 'the unix socket is not limited');
  });

  test('metrics count the failures and the refusals; over TCP they need an API key', async () => {
    const local = await call({ socketPath }, '/metrics');
    assert.equal(local.status, 200);
    assert.match(String(local.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.equal(metric(local.body, 'switchboard_admin_auth_failures_total{reason="invalid"}'), 11);
    assert.equal(metric(local.body, 'switchboard_admin_auth_failures_total{reason="missing"}'), 1);
    assert.equal(metric(local.body, 'switchboard_admin_auth_rate_limited_total'), 41);
    assert.equal(metric(local.body, 'switchboard_admin_auth_tracked_sources'), 2);

    assert.equal((await call({ port }, '/metrics', { from: '127.0.0.4' })).status, 401);
    const remote = await call({ port }, '/metrics', { key, from: '127.0.0.4' });
    assert.equal(remote.status, 200);
    assert.equal(metric(remote.body, 'switchboard_admin_auth_failures_total{reason="missing"}'), 2);
  });

  test('a concurrent burst cannot outrun the limit', async () => {
    const replies = await Promise.all(
      Array.from({ length: 50 }, () =>
        call({ port }, '/api/v1/apikeys', { key: WRONG_KEY, from: '127.0.0.3' }),
      ),
    );
    const unauthorized = replies.filter((r) => r.status === 401).length;
    const limited = replies.filter((r) => r.status === 429).length;
    assert.equal(unauthorized + limited, 50, `statuses ${replies.map((r) => r.status).join(',')}`);
    assert.ok(unauthorized <= 10, `${unauthorized} wrong keys were checked, the limit is 10`);
    assert.ok(replies.filter((r) => r.status === 429).every((r) => Number(r.headers['retry-after']) >= 1));
    assert.ok(blockLines('127.0.0.3').length <= 1);
  });

  test('when the block has passed the source is served again', async () => {
    clockOffset = 61_000;
    const r = await call({ port }, '/api/v1/apikeys', { key, from: '127.0.0.1' });
    assert.equal(r.status, 200, r.body);
  });

  test('the admin socket is 0600 from creation, in a 0700 directory, and the umask is restored', async () => {
    // Nothing chmods the socket after listen, so its mode now is the mode it was created with.
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
    assert.equal(process.umask(0o022), 0o022, 'umask restored after listen');

    // Catch the moment the socket appears: the first 'listening' listener runs before anyone else
    // can have changed the mode.
    const path = join(dir, 'fresh.sock');
    const srv = createServer((_req, res) => res.end());
    srv.once('listening', () => {
      socketModeAtListen = statSync(path).mode & 0o777;
    });
    await listenPrivateSocket(srv, path);
    assert.equal(socketModeAtListen, 0o600);
    assert.equal(process.umask(0o022), 0o022);
    await new Promise<void>((r) => srv.close(() => r()));
  });

  test('a socket left by a crashed run is replaced; a live one or a regular file is refused', async () => {
    const path = join(dir, 'stale.sock');
    // A process that exits without closing its server leaves the socket file behind.
    const crashed = spawnSync(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`,
    ]);
    assert.equal(crashed.status, 0, crashed.stderr.toString());
    assert.ok(statSync(path).isSocket(), 'the crashed run left its socket file');
    const first = createServer((_req, res) => res.end());
    await listenPrivateSocket(first, path);
    assert.equal(statSync(path).mode & 0o777, 0o600);

    await assert.rejects(
      listenPrivateSocket(createServer(), path),
      /another process already serves the admin API/,
    );
    assert.equal((await call({ socketPath: path }, '/')).status, 200, 'the live server kept its socket');
    await new Promise<void>((r) => first.close(() => r()));

    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'keep me');
    await assert.rejects(listenPrivateSocket(createServer(), file), /exists and is not a socket; refusing/);
    assert.equal(statSync(file).size, 7);
  });
});
