/**
 * The audit log on Postgres: concurrent appends form one chain that verifies; rows cannot be
 * updated or deleted (trigger); and once one row is altered behind the trigger's back, verification
 * names that row.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { migrate, openDb, type Db } from '@switchboard/db';
import { scratchDatabase, testLogger, type ScratchDatabase } from '@switchboard/testing';
import { AuditLog, IDENTITY_MIGRATIONS } from '../src/index.js';

let scratch: ScratchDatabase;
let db: Db;
const logger = testLogger('audit-chain-test');

before(async () => {
  scratch = await scratchDatabase('sbaudit');
  db = await openDb({ url: scratch.url, logger });
  await migrate(db, { schema: 'identity', dir: IDENTITY_MIGRATIONS, logger });
});

after(async () => {
  await db.close();
  await scratch.drop();
});

test('concurrent appends chain and verify; an altered row is found', async () => {
  const audit = new AuditLog(db);
  await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      audit.record({
        tailnetId: 1,
        actor: `user:${i % 3}`,
        actorRole: 'admin',
        action: 'setDeviceTags',
        target: `device:n${i}`,
        before: { tags: [], nested: { b: 1, a: [1, 2] } },
        after: { tags: ['tag:x'], z: null },
        outcome: 'ok',
        source: '127.0.0.1',
        requestId: `r${i}`,
      }),
    ),
  );
  const v = await audit.verify(7);
  assert.deepEqual({ ok: v.ok, entries: v.entries }, { ok: true, entries: 40 });
  assert.equal((await audit.list({ actor: 'user:1' })).length, 13);

  await assert.rejects(
    db.query(`UPDATE identity.audit_log SET actor = 'mallory' WHERE id = 5`),
    /append-only/,
  );
  await assert.rejects(db.query(`DELETE FROM identity.audit_log WHERE id = 5`), /append-only/);

  await db.query(`ALTER TABLE identity.audit_log DISABLE TRIGGER audit_log_append_only`);
  await db.query(`UPDATE identity.audit_log SET after = '{"tags":["tag:y"]}'::jsonb WHERE id = 17`);
  const broken = await audit.verify(7);
  assert.equal(broken.ok, false);
  assert.equal(broken.ok === false && broken.brokenAt, 17);
});
