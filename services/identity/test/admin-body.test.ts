/**
 * Admin API request bodies against a real Postgres (edge-hardening issue, part 3): a body over the
 * limit is 413 naming the limit (it was a 500 PayloadTooLargeError), malformed JSON is 400, JSON
 * nested past the depth limit is 400 naming the limit, non-canonical routes are 400 with the
 * canonical form; none of them leaks a stack trace or an internal message, or logs an error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
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
import { MAX_ADMIN_BODY_BYTES, MAX_ADMIN_JSON_DEPTH } from '../src/admin/admin.body.js';

interface Reply {
  status: number;
  body: string;
  json: { error?: { code?: string; message?: string; hint?: string } } & Record<string, unknown>;
}

/** One request over the unix socket; `chunked` sends the body without Content-Length. */
function call(
  socketPath: string,
  method: string,
  path: string,
  body?: string | Buffer,
  opts: { chunked?: boolean; contentType?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json' };
    if (body !== undefined && !opts.chunked) headers['content-length'] = String(Buffer.byteLength(body));
    const req = request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: Reply['json'] = {};
        try {
          json = JSON.parse(text) as Reply['json'];
        } catch {
          // left empty: the assertions on `body` say what came back
        }
        resolve({ status: res.statusCode ?? 0, body: text, json });
      });
    });
    req.on('error', reject);
    if (body !== undefined && opts.chunked) {
      const b = Buffer.from(body);
      for (let i = 0; i < b.length; i += 64 * 1024) req.write(b.subarray(i, i + 64 * 1024));
    } else if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Nothing from inside the server: no stack frames, no JS engine messages, no raw error names. */
function assertNoLeak(r: Reply): void {
  assert.doesNotMatch(r.body, /\n\s+at |\.js:\d+|Maximum call stack|RangeError|PayloadTooLarge|stack/i);
}

describe('admin API request bodies', () => {
  let scratch: ScratchDatabase;
  let db: Db;
  let bus: Bus;
  let identity: IdentityRuntime;
  let admin: AdminServer;
  let dir: string;
  let sock: string;
  const lines: LogLine[] = [];
  const logger = testLogger('admin-body-test');

  before(async () => {
    scratch = await scratchDatabase('sbadmbody');
    db = await openDb({ url: scratch.url, logger });
    bus = createInProcessBus({ logger });
    identity = new IdentityRuntime({ db, bus, logger });
    await identity.start();
    dir = mkdtempSync(join(tmpdir(), 'sb-admin-body-'));
    sock = join(dir, 'admin.sock');
    admin = new AdminServer({
      bus,
      identity: identity.service,
      apiV2: identity.apiV2,
      credentials: identity.credentials,
      audit: identity.audit,
      logger: capturingLogger(lines),
      socketPath: sock,
    });
    await admin.start();
  });

  after(async () => {
    await admin?.stop();
    await identity?.stop();
    await bus?.close();
    await db?.close();
    await scratch?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a body within the limits reaches the API', async () => {
    const r = await call(sock, 'POST', '/api/v1/users', JSON.stringify({ name: 'body-alice' }));
    assert.equal(r.status, 201, r.body);
    assert.equal((r.json.user as { name: string }).name, 'body-alice');
    const none = await call(sock, 'POST', '/api/v1/apikeys');
    assert.equal(none.status, 201, `no body at all is an empty request: ${none.body}`);
  });

  test('a 10 MiB policy is 413 naming the limit and the policy size (was 500 PayloadTooLargeError)', async () => {
    const policy = JSON.stringify({ policy: `{"acls":[]}${' '.repeat(10 << 20)}` });
    for (const chunked of [false, true]) {
      const r = await call(sock, 'PUT', '/api/v1/policy', policy, { chunked });
      assert.equal(r.status, 413, r.body);
      assert.equal(r.json.error?.code, 'too_large');
      assert.match(
        r.json.error?.message ?? '',
        new RegExp(
          `^PUT /api/v1/policy: the request body .* is over the admin API limit of ${MAX_ADMIN_BODY_BYTES} bytes \\(2 MiB\\)$`,
        ),
      );
      assert.match(r.json.error?.hint ?? '', /a policy may be at most 1 MiB/);
      assertNoLeak(r);
    }
  });

  test('malformed JSON is 400 saying so', async () => {
    for (const body of ['{"policy":', '{"name": "x",}', 'name=x']) {
      const r = await call(sock, 'POST', '/api/v1/users', body);
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error?.code, 'invalid_input');
      assert.match(r.json.error?.message ?? '', /^POST \/api\/v1\/users: body is not valid JSON \(/);
      assertNoLeak(r);
    }
  });

  test('JSON nested past the limit is 400 naming the limit, before anything walks it', async () => {
    for (const depth of [MAX_ADMIN_JSON_DEPTH + 1, 5_000, 100_000]) {
      const body = `{"name":"deep","x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const r = await call(sock, 'POST', '/api/v1/users', body);
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error?.code, 'invalid_input');
      assert.match(
        r.json.error?.message ?? '',
        new RegExp(`^POST /api/v1/users: JSON nested deeper than ${MAX_ADMIN_JSON_DEPTH} levels`),
      );
      assertNoLeak(r);
    }
    const users = await call(sock, 'GET', '/api/v1/users');
    assert.ok(
      !(users.json.users as { name: string }[]).some((u) => u.name === 'deep'),
      'nothing was created',
    );
  });

  test('approved routes must be canonical prefixes: host bits and zones are 400 with the fix', async () => {
    const cases: [string, RegExp][] = [
      ['10.0.0.1/24', /route 10\.0\.0\.1\/24 has host bits set; did you mean 10\.0\.0\.0\/24\?/],
      ['fe80::1%eth0/64', /route "fe80::1%eth0\/64" has an IPv6 zone \(%eth0\); .*did you mean fe80::\/64\?/],
      ['10.0.0.0', /route "10\.0\.0\.0" has no prefix length; did you mean 10\.0\.0\.0\/32\?/],
      ['FD00::/8', /did you mean fd00::\/8\?/],
    ];
    for (const [route, re] of cases) {
      const r = await call(
        sock,
        'POST',
        '/api/v1/nodes/7/routes',
        JSON.stringify({ routes: ['10.9.0.0/24', route] }),
      );
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error?.code, 'invalid_input');
      assert.match(r.json.error?.message ?? '', /^POST \/api\/v1\/nodes\/7\/routes: /);
      assert.match(r.json.error?.message ?? '', re);
      assert.match(r.json.error?.hint ?? '', /masked prefix/);
      assertNoLeak(r);
    }
  });

  test('none of the refusals logged an error', () => {
    assert.deepEqual(
      lines.filter((l) => l.level === 'error').map((l) => l.msg),
      [],
    );
  });
});
