/**
 * Test building blocks for integration tests against the real local services: a scratch Postgres
 * database per test file (created from the `test` database, dropped afterwards), polling helpers,
 * a logger that stays quiet unless TEST_LOG is set, a logger that records its lines, and the fuzz
 * tier's fast-check parameters.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { configureLogging, createLogger, type Logger } from '@switchboard/common';

export const ADMIN_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface ScratchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Creates an empty database for one test file; `drop()` removes it (terminating leftover sessions). */
export async function scratchDatabase(prefix = 'sbtest'): Promise<ScratchDatabase> {
  const name = `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(ADMIN_DATABASE_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export function testLogger(name: string): Logger {
  if (!process.env.TEST_LOG) configureLogging({ level: 'silent' });
  return createLogger(name);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `probe` returns a truthy value; the error names what was awaited and the last value. */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what: string },
): Promise<NonNullable<T>> {
  const end = Date.now() + (opts.timeoutMs ?? 5000);
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > end) {
      const tail =
        lastErr instanceof Error
          ? ` (last error: ${lastErr.message})`
          : ` (last value: ${JSON.stringify(last)})`;
      throw new Error(`timed out after ${opts.timeoutMs ?? 5000} ms waiting for ${opts.what}${tail}`);
    }
    await sleep(opts.intervalMs ?? 20);
  }
}
export { TcpProxy } from './tcp-proxy.js';
export { countingBus, type CountingBus } from './counting-bus.js';
export { capturingLogger, type CapturingLoggerOptions, type LogLine } from './capturing-logger.js';
export { fuzzParams, type FuzzParams } from './fuzz-params.js';
export { watchUncaught } from './watch-uncaught.js';
