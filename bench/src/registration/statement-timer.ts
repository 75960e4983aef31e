/**
 * Client-side statement timings for anything behind the `Db` contract: wrap the Db handed to a
 * service, run the load, read the table. Each statement is keyed by the first non-empty line of its
 * SQL text (trimmed, at most 90 characters). Transactions add two pseudo-statements the wrapper
 * cannot see as SQL: `[tx] acquire+BEGIN` (from `transaction()` until the callback starts: pool wait
 * plus the BEGIN round trip) and `[tx] COMMIT+release` (from the callback's end until `transaction()`
 * resolves: the COMMIT round trip, i.e. the WAL flush, plus giving the connection back). Times are
 * wall time seen by the caller, so they include event-loop delay when the process is CPU-bound.
 *
 *   const timer = timeStatements(db);  new KeyRegistryRuntime({ db: timer.db, ... });
 *   timer.reset();  ...load...  console.table(timer.report());
 */
import type { Db, QueryResult, Queryable, TransactionOptions } from '@switchboard/db';

export interface StatementStats {
  statement: string;
  count: number;
  total_ms: number;
  mean_ms: number;
  p50_ms: number;
  p99_ms: number;
  /** Share of the summed time of all keys (the pseudo-statements included). */
  share_pct: number;
}

export interface StatementTimer {
  /** The wrapped Db: same behaviour, every statement timed. */
  readonly db: Db;
  /** Transactions completed (committed) through the wrapper since the last reset. */
  readonly transactions: () => number;
  reset(): void;
  /** Per-key statistics, largest total first. */
  report(): StatementStats[];
}

export const TX_BEGIN = '[tx] acquire+BEGIN';
export const TX_COMMIT = '[tx] COMMIT+release';

export function statementKey(sql: string): string {
  const line = sql
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '');
  const key = (line ?? '').replace(/\s+/g, ' ');
  return key.length > 90 ? `${key.slice(0, 87)}...` : key;
}

const round = (x: number): number => Math.round(x * 100) / 100;

export function timeStatements(inner: Db): StatementTimer {
  let samples = new Map<string, number[]>();
  let committed = 0;
  const keys = new Map<string, string>();
  const record = (key: string, ms: number): void => {
    let list = samples.get(key);
    if (list === undefined) samples.set(key, (list = []));
    list.push(ms);
  };
  const timed = async <T>(q: Queryable, sql: string, params?: unknown[]): Promise<QueryResult<T>> => {
    const t = performance.now();
    try {
      return await q.query<T>(sql, params);
    } finally {
      let key = keys.get(sql);
      if (key === undefined) keys.set(sql, (key = statementKey(sql)));
      record(key, performance.now() - t);
    }
  };

  const db: Db = {
    kind: inner.kind,
    query: <T = Record<string, unknown>>(sql: string, params?: unknown[]) => timed<T>(inner, sql, params),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T> {
      const called = performance.now();
      let fnEnd = 0;
      const result = await inner.transaction(async (tx) => {
        // A retried transaction calls this again; the BEGIN sample is then wait + retries.
        record(TX_BEGIN, performance.now() - called);
        const wrapped: Queryable = {
          query: <R = Record<string, unknown>>(sql: string, params?: unknown[]) => timed<R>(tx, sql, params),
        };
        try {
          return await fn(wrapped);
        } finally {
          fnEnd = performance.now();
        }
      }, opts);
      record(TX_COMMIT, performance.now() - fnEnd);
      committed++;
      return result;
    },
    close: () => inner.close(),
  };

  return {
    db,
    transactions: () => committed,
    reset() {
      samples = new Map();
      committed = 0;
    },
    report() {
      let all = 0;
      for (const list of samples.values()) for (const ms of list) all += ms;
      const rows: StatementStats[] = [];
      for (const [statement, list] of samples) {
        const sorted = [...list].sort((a, b) => a - b);
        const total = sorted.reduce((s, x) => s + x, 0);
        const q = (p: number): number => sorted[Math.floor(p * (sorted.length - 1))] ?? 0;
        rows.push({
          statement,
          count: sorted.length,
          total_ms: round(total),
          mean_ms: round(total / sorted.length),
          p50_ms: round(q(0.5)),
          p99_ms: round(q(0.99)),
          share_pct: all > 0 ? round((100 * total) / all) : 0,
        });
      }
      return rows.sort((a, b) => b.total_ms - a.total_ms);
    },
  };
}
