/**
 * Regression: two databases with the same schema (a rebuilt deployment, parallel test runs) publish
 * outbox rows with the same ids to one event log. Their msgIds must differ, or the log's duplicate
 * window silently drops one database's events.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createInProcessBus } from '@switchboard/bus';
import { appendOutbox, migrate, openDb, OutboxRelay } from '../src/index.js';
import { logger } from './helpers.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('outboxes of two databases never deduplicate each other', async () => {
  const bus = createInProcessBus({ logger });
  const emptyDir = mkdtempSync(join(tmpdir(), 'sb-mig-'));
  const dbs = [await openDb({ logger }), await openDb({ logger })];
  try {
    for (const db of dbs) {
      await migrate(db, { schema: 'twin', dir: emptyDir, logger });
      await appendOutbox(db, 'twin', 'events.v1.twin', { from: dbs.indexOf(db) });
      const relay = new OutboxRelay({ db, schema: 'twin', bus, logger, pollMs: 20 });
      relay.start();
      await relay.waitDrained();
      await relay.stop();
    }
    assert.equal(await bus.lastEventSeq(), 2, 'both events stored');
  } finally {
    for (const db of dbs) await db.close();
    await bus.close();
  }
});
