/**
 * The Postgres backend: a `pg` Pool. Each transaction holds one pooled client from BEGIN to
 * COMMIT/ROLLBACK. Type parsing follows `values.ts` and is set per pool (no global pg.types change).
 */
import pg from 'pg';
import { SwitchboardError, errorMessage, type Logger } from '@switchboard/common';
import type { Db, QueryResult, Queryable, TransactionOptions } from './db.js';
import { assertNotInTransaction, runTransaction, type Conn } from './transaction.js';
import { dbErrors, observePool } from './db-metrics.js';
import { OID, mapArray, parseDateText, parseInt8, parseTimestampUtc } from './values.js';

const typeParsers: Partial<Record<number, (text: string) => unknown>> = {
  [OID.INT8]: parseInt8,
  [OID.DATE]: parseDateText,
  [OID.TIMESTAMP]: parseTimestampUtc,
};

const defaultParser = pg.types.getTypeParser as (
  oid: number,
  format: 'text' | 'binary',
) => (text: string) => unknown;

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    const custom = typeParsers[oid];
    if (custom && format !== 'binary') return custom;
    if (oid === OID.INT8_ARRAY && format !== 'binary') {
      const parseArray = defaultParser(oid, 'text');
      return (text: string) => mapArray(parseArray(text), parseInt8);
    }
    return defaultParser(oid, format ?? 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

type PgResult = pg.QueryResult<Record<string, unknown>>;

function normalise<T>(r: PgResult | PgResult[]): QueryResult<T> {
  const last = Array.isArray(r) ? r[r.length - 1] : r;
  if (last === undefined) return { rows: [], rowCount: 0 };
  return { rows: last.rows as T[], rowCount: last.rowCount ?? last.rows.length };
}

/** Removes the password from a connection URL for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

export class PostgresDb implements Db {
  readonly kind = 'postgres' as const;
  private closing: Promise<void> | undefined;
  private readonly unobserve: () => void;

  constructor(
    private readonly pool: pg.Pool,
    private readonly logger: Logger,
    poolName = 'default',
  ) {
    this.unobserve = observePool(poolName, () => this.poolStats(), pool.options.max ?? 10);
  }

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    assertNotInTransaction(this, 'db.query()');
    try {
      const r = (await this.pool.query(sql, params)) as PgResult | PgResult[];
      return normalise<T>(r);
    } catch (err) {
      dbErrors.inc({ kind: errorKind(err) });
      throw err;
    }
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T> {
    assertNotInTransaction(this, 'db.transaction()');
    const acquire = async (): Promise<Conn> => {
      const client = await this.pool.connect();
      return {
        query: async <R>(sql: string, params?: unknown[]) =>
          normalise<R>(await client.query<Record<string, unknown>>(sql, params)),
        release: (broken) => client.release(broken ? true : undefined),
      };
    };
    return runTransaction(this, acquire, fn, opts, this.logger).catch((err: unknown) => {
      dbErrors.inc({ kind: errorKind(err) });
      throw err;
    });
  }

  /** Pool statistics (for metrics and tests). */
  poolStats(): { total: number; idle: number; waiting: number } {
    return { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  close(): Promise<void> {
    this.unobserve();
    this.closing ??= this.pool.end();
    return this.closing;
  }
}

export async function openPostgres(url: string, logger: Logger, poolSize = 10): Promise<PostgresDb> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types });
  pool.on('error', (err) => {
    dbErrors.inc({ kind: 'connection' });
    logger.error('idle Postgres connection failed; it is discarded', { err });
  });
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new SwitchboardError(
      'unavailable',
      `cannot connect to Postgres at ${redactUrl(url)}: ${errorMessage(err)}`,
      'is Postgres running and reachable, and are the user, password and database in DATABASE_URL right?',
    );
  }
  return new PostgresDb(pool, logger);
}

/** "connection" for errors reaching the server (no SQLSTATE), else "sql" (the server refused the statement). */
function errorKind(err: unknown): 'connection' | 'sql' {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08')
    ? 'sql'
    : 'connection';
}
