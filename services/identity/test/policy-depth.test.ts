/**
 * PUT /api/v1/policy with a policy nested thousands of levels deep, against a real Postgres.
 * The brackets are inside the body's `policy` string, so the admin API's own JSON depth limit
 * (admin.body.ts) never sees them: the text reaches policy-compiler intact, whose HuJSON parser
 * (libs/policy, MAX_HUJSON_DEPTH = 128) refuses it with a located PolicyError (code
 * invalid_policy). Before the parser had a limit it overflowed the stack, the bus turned the
 * RangeError into `internal`, and the admin API answered 500. This test stands in for
 * policy-compiler on the bus (a service never imports another service) and replies exactly what it
 * replies for this text; the admin API must answer 400 with the located message, leak nothing and
 * log no error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInProcessBus, type Bus, type Subscription } from '@switchboard/bus';
import { openDb, type Db } from '@switchboard/db';
import { SwitchboardError } from '@switchboard/common';
import { policy, serveRpc } from '@switchboard/contracts';
import {
  capturingLogger,
  scratchDatabase,
  testLogger,
  type LogLine,
  type ScratchDatabase,
} from '@switchboard/testing';
import { AdminServer, IdentityRuntime } from '../src/index.js';

/** libs/policy's MAX_HUJSON_DEPTH (identity does not depend on libs/policy). */
const MAX_HUJSON_DEPTH = 128;

interface Reply {
  status: number;
  body: string;
  json: { error?: { code?: string; message?: string; details?: unknown } } & Record<string, unknown>;
}

function call(socketPath: string, method: string, path: string, body: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
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
    req.end(body);
  });
}

describe('admin API: a policy nested past the HuJSON depth limit', () => {
  let scratch: ScratchDatabase;
  let db: Db;
  let bus: Bus;
  let identity: IdentityRuntime;
  let admin: AdminServer;
  let compiler: Subscription;
  let dir: string;
  let sock: string;
  const received: string[] = [];
  const lines: LogLine[] = [];
  const logger = testLogger('policy-depth-test');

  before(async () => {
    scratch = await scratchDatabase('sbpoldepth');
    db = await openDb({ url: scratch.url, logger });
    bus = createInProcessBus({ logger });
    identity = new IdentityRuntime({ db, bus, logger });
    await identity.start();
    // policy-compiler's reply for the texts below: PolicyError's wire form (code, message, issues).
    compiler = serveRpc(bus, policy.SetPolicy, policy.POLICY_QUEUE, (req) => {
      received.push(req.text);
      const issue = {
        line: 2,
        column: '  "acls": '.length + MAX_HUJSON_DEPTH,
        message: `parsing HuJSON: nested deeper than ${MAX_HUJSON_DEPTH} levels (arrays and objects)`,
      };
      return Promise.reject(
        new SwitchboardError('invalid_policy', `${issue.line}:${issue.column}: ${issue.message}`, undefined, {
          issues: [issue],
        }),
      );
    });
    dir = mkdtempSync(join(tmpdir(), 'sb-policy-depth-'));
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
    await compiler?.unsubscribe();
    await identity?.stop();
    await bus?.close();
    await db?.close();
    await scratch?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('5,000 and 100,000 nested brackets are 400 with line:column and the limit, not 500', async () => {
    for (const depth of [5_000, 100_000]) {
      const text = `{\n  "acls": ${'['.repeat(depth)}${']'.repeat(depth)}\n}`;
      const r = await call(sock, 'PUT', '/api/v1/policy', JSON.stringify({ policy: text }));
      assert.equal(r.status, 400, r.body.slice(0, 500));
      assert.equal(r.json.error?.code, 'invalid_policy');
      assert.equal(
        r.json.error?.message,
        `2:138: parsing HuJSON: nested deeper than ${MAX_HUJSON_DEPTH} levels (arrays and objects)`,
      );
      assert.deepEqual(r.json.error?.details, {
        issues: [
          {
            line: 2,
            column: 138,
            message: `parsing HuJSON: nested deeper than ${MAX_HUJSON_DEPTH} levels (arrays and objects)`,
          },
        ],
      });
      assert.doesNotMatch(r.body, /\n\s+at |\.js:\d+|Maximum call stack|RangeError|internal|stack/i);
      assert.equal(received.at(-1), text, 'the admin API passed the policy text on intact');
    }
    assert.equal(received.length, 2);
    assert.deepEqual(
      lines.filter((l) => l.level === 'error').map((l) => l.msg),
      [],
    );
  });
});
