/**
 * The database contract: Postgres through `pg` in production, PGlite (embedded, WASM) in the
 * one-process mode. Both run the same plain-SQL migrations. Only repositories use this.
 */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
}

export interface TransactionOptions {
  /** Defaults to 'read committed'. Serializable transactions are retried on 40001/40P01. */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /** How many times a serialization failure or deadlock is retried (default 10). */
  retries?: number;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
}
