/**
 * The embedded backend: PGlite (Postgres compiled to WASM, in this process). PGlite has one
 * connection, so every statement goes through one FIFO lock: a transaction holds it from BEGIN to
 * COMMIT, and a query issued meanwhile (outside the transaction) waits for the commit — no caller
 * ever runs a statement inside another caller's transaction. Persistent with `dataDir`, in memory
 * without. Type parsing follows `values.ts`, as on Postgres.
 */
import { mkdir } from 'node:fs/promises';
import { PGlite, type ParserOptions } from '@electric-sql/pglite';
import { SwitchboardError, errorMessage, type Logger } from '@switchboard/common';
import type { Db, QueryResult, Queryable, TransactionOptions } from './db.js';
import { assertNotInTransaction, runTransaction, type Conn } from './transaction.js';
import { Mutex } from './mutex.js';
import { OID, parseDateText, parseInt8, parseTimestampUtc } from './values.js';

const parsers: ParserOptions = {
  // PGlite's array parser hands unquoted NULL elements to the element parser as the text 'NULL'.
  [OID.INT8]: (text: string) => (text === 'NULL' ? null : parseInt8(text)),
  [OID.DATE]: parseDateText,
  [OID.TIMESTAMP]: parseTimestampUtc,
  [OID.NUMERIC]: (text: string) => text,
};

async function runOn<T>(pg: PGlite, sql: string, params?: unknown[]): Promise<QueryResult<T>> {
  if (params === undefined || params.length === 0) {
    // Simple protocol, like pg without parameters: several statements allowed, the last result returned.
    const results = await pg.exec(sql);
    const last = results[results.length - 1];
    if (last === undefined) return { rows: [], rowCount: 0 };
    return { rows: last.rows as T[], rowCount: Math.max(last.affectedRows ?? 0, last.rows.length) };
  }
  const r = await pg.query<T>(sql, params);
  return { rows: r.rows, rowCount: Math.max(r.affectedRows ?? 0, r.rows.length) };
}

export class PgliteDb implements Db {
  readonly kind = 'pglite' as const;
  private readonly lock = new Mutex();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly pg: PGlite,
    private readonly logger: Logger,
  ) {}

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    assertNotInTransaction(this, 'db.query()');
    this.assertOpen();
    return this.lock.run(() => runOn<T>(this.pg, sql, params));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T> {
    assertNotInTransaction(this, 'db.transaction()');
    this.assertOpen();
    const acquire = async (): Promise<Conn> => {
      const release = await this.lock.acquire();
      return {
        query: <R>(sql: string, params?: unknown[]) => runOn<R>(this.pg, sql, params),
        release: () => release(),
      };
    };
    return runTransaction(this, acquire, fn, opts, this.logger);
  }

  private assertOpen(): void {
    if (this.closing) throw new SwitchboardError('unavailable', 'the embedded database is closed');
  }

  /** Waits for running work, then closes (and, with a dataDir, flushes) the database. */
  close(): Promise<void> {
    this.closing ??= this.lock.run(() => this.pg.close());
    return this.closing;
  }
}

export async function openPglite(dataDir: string | undefined, logger: Logger): Promise<PgliteDb> {
  try {
    if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });
    const pg = await PGlite.create({ dataDir, parsers });
    return new PgliteDb(pg, logger);
  } catch (err) {
    throw new SwitchboardError(
      'unavailable',
      `cannot open the embedded database${dataDir ? ` in ${dataDir}` : ''}: ${errorMessage(err)}`,
      dataDir
        ? 'is the directory writable, and not used by another running switchboard?'
        : 'the in-memory database could not start',
    );
  }
}
