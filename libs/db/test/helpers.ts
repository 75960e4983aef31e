/**
 * Shared test setup: both backends (real Postgres at TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test, and in-memory PGlite), unique schema names per run.
 */
import { randomUUID } from 'node:crypto';
import { openDb, quoteIdent, type Db } from '../src/index.js';
import { testLogger } from './test-logger.js';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
export const logger = testLogger('db-test');

export interface Backend {
  name: 'postgres' | 'pglite';
  open(): Promise<Db>;
}

export const backends: Backend[] = [
  { name: 'postgres', open: () => openDb({ url: PG_URL, logger }) },
  { name: 'pglite', open: () => openDb({ logger }) },
];

export function uniqueSchema(prefix = 't'): string {
  return `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
}

export async function dropSchema(db: Db, schema: string): Promise<void> {
  await db.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
