/**
 * The admin API's OpenAPI document and its role rules, over every route the document lists (the
 * routes are read from /api/openapi.json, not from a hand list): every route is documented, every
 * example validates against the schema the router uses; an auditor reads everything and every write
 * is refused with 403 and audited; a network admin edits policy, DNS and routes but not users; an
 * IT admin manages devices, keys and users but cannot edit the policy. No call answers 5xx.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCall, serve, type RunningServer } from '@switchboard/switchboard';
import { testLogger, waitFor } from '@switchboard/testing';

let srv: RunningServer;
let dir: string;
const tokens: Record<string, { token: string; userId: number }> = {};

interface Op {
  method: string;
  path: string;
  operationId: string;
  access: { scope: string; write: boolean } | null;
  example: unknown;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-roles-'));
  srv = await serve({
    inMemory: true,
    logger: testLogger('api-v2-roles'),
    env: {
      LISTEN_ADDR: '127.0.0.1:0',
      STUN_PORT: '0',
      ADMIN_LISTEN: '127.0.0.1:0',
      DATA_DIR: dir,
      LOG_LEVEL: 'silent',
    },
  });
  const admin = { socketPath: srv.adminSocket };
  for (const role of ['owner', 'auditor', 'network-admin', 'it-admin']) {
    const name = `u-${role}`;
    const { user } = (await adminCall(admin, 'POST', '/api/v1/users', { name })) as { user: { id: number } };
    await adminCall(admin, 'POST', `/api/v1/users/${user.id}/role`, { role });
    const { key } = (await adminCall(admin, 'POST', '/api/v1/apikeys', { user: name })) as { key: string };
    tokens[role] = { token: key, userId: user.id };
  }
});

after(async () => {
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function operations(): Promise<Op[]> {
  const res = await fetch(`http://127.0.0.1:${srv.port}/api/openapi.json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as {
    openapi: string;
    paths: Record<string, Record<string, Record<string, unknown>>>;
  };
  assert.equal(doc.openapi, '3.1.0');
  const ops: Op[] = [];
  for (const [path, methods] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(methods)) {
      const body = (op['requestBody'] as { content?: Record<string, { example?: unknown }> } | undefined)
        ?.content;
      ops.push({
        method: method.toUpperCase(),
        path,
        operationId: String(op['operationId']),
        access: (op['x-switchboard-access'] as Op['access']) ?? null,
        example: body ? Object.values(body)[0]?.example : undefined,
      });
    }
  return ops;
}

/**
 * Calls a documented route with harmless ids (no such device, key or user) and its example body.
 * The status, with 403s from the role check told apart from other refusals (a tag the user does not
 * own) by the error code `forbidden`.
 */
async function call(op: Op, token: string): Promise<{ status: number; byRole: boolean }> {
  const path = op.path
    .replace(/\{tailnet\}/g, '-')
    .replace(/\{[^}]+\}/g, (m) => (m === '{keyId}' ? 'k999999' : '999999'));
  const v1 = path.startsWith('/api/v1/');
  const base = v1 ? `http://127.0.0.1:${srv.adminTcp!.port}` : `http://127.0.0.1:${srv.port}`;
  const hasBody = !['GET', 'DELETE'].includes(op.method);
  const res = await fetch(base + path, {
    method: op.method,
    headers: { authorization: `Bearer ${token}`, ...(hasBody ? { 'content-type': 'application/json' } : {}) },
    ...(hasBody ? { body: JSON.stringify(op.example ?? {}) } : {}),
  });
  const text = await res.text();
  if (res.status !== 403) return { status: res.status, byRole: false };
  const body = JSON.parse(text) as { code?: string; error?: { code?: string } };
  return { status: 403, byRole: (body.code ?? body.error?.code) === 'forbidden' };
}

test('every route is in the document and every example validates against its route schema', async () => {
  const ops = await operations();
  const documented = srv.identity.apiV2.documented();
  for (const r of documented)
    assert.ok(
      ops.some((o) => o.method === r.method && o.path === r.path),
      `${r.method} ${r.path} is in /api/openapi.json`,
    );
  assert.equal(ops.length, documented.length, 'no route in the document that the server does not serve');
  let checked = 0;
  for (const r of documented) {
    if (r.examples?.body !== undefined && r.body) {
      const p = r.body.safeParse(r.examples.body);
      assert.ok(p.success, `${r.operationId} body example: ${p.success ? '' : p.error.message}`);
      checked++;
    }
    if (r.examples?.response !== undefined && r.response) {
      const p = r.response.safeParse(r.examples.response);
      assert.ok(p.success, `${r.operationId} response example: ${p.success ? '' : p.error.message}`);
      checked++;
    }
  }
  assert.ok(checked > 30, `examples checked: ${checked}`);
});

const WRITES: Record<string, readonly string[]> = {
  'network-admin': ['policy_file', 'dns', 'devices:routes'],
  'it-admin': ['devices:core', 'users', 'auth_keys'],
};
const NOT_WRITES: Record<string, readonly string[]> = {
  'network-admin': ['users', 'devices:core', 'auth_keys'],
  'it-admin': ['policy_file', 'dns', 'devices:routes'],
};

test('auditor reads everything; every write is refused with 403 and audited', async () => {
  const ops = (await operations()).filter((o) => o.access !== null);
  let writes = 0;
  for (const op of ops) {
    const { status, byRole } = await call(op, tokens['auditor']!.token);
    assert.ok(status < 500, `${op.operationId} as auditor answered ${status}`);
    if (op.access!.write) {
      writes++;
      assert.ok(status === 403 && byRole, `${op.operationId} (write) as auditor answered ${status}`);
    } else
      assert.ok(status !== 403 && status !== 401, `${op.operationId} (read) as auditor answered ${status}`);
  }
  const actor = `user:${tokens['auditor']!.userId}`;
  await waitFor(
    async () => {
      const { entries } = (await adminCall(
        { socketPath: srv.adminSocket },
        'GET',
        '/api/v1/audit?limit=10000',
      )) as {
        entries: { actor: string; outcome: string }[];
      };
      const denied = entries.filter(
        (e) => e.actor.startsWith(actor) && e.outcome.startsWith('denied'),
      ).length;
      return denied >= writes ? true : undefined;
    },
    { timeoutMs: 5000, what: `${writes} denied writes of the auditor in the audit log` },
  );
});

for (const role of ['network-admin', 'it-admin'] as const) {
  test(`${role}: may write ${WRITES[role]!.join(', ')}; refused ${NOT_WRITES[role]!.join(', ')}`, async () => {
    const ops = (await operations()).filter((o) => o.access?.write);
    let allowed = 0;
    let refused = 0;
    for (const op of ops) {
      const scope = op.access!.scope;
      if (!WRITES[role]!.includes(scope) && !NOT_WRITES[role]!.includes(scope)) continue;
      const { status, byRole } = await call(op, tokens[role]!.token);
      assert.ok(status < 500, `${op.operationId} as ${role} answered ${status}`);
      if (WRITES[role]!.includes(scope)) {
        assert.ok(!byRole, `${op.operationId} (${scope}) as ${role} was refused by its role`);
        allowed++;
      } else {
        assert.ok(status === 403 && byRole, `${op.operationId} (${scope}) as ${role} answered ${status}`);
        refused++;
      }
    }
    assert.ok(allowed > 3 && refused > 3, `allowed ${allowed}, refused ${refused}`);
  });
}
