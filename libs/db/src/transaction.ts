/**
 * The transaction runner shared by both backends: BEGIN with the isolation level, run the callback
 * with a Queryable bound to the transaction, COMMIT; ROLLBACK on any error; retry the whole
 * callback on 40001/40P01 (default 10 retries); always give the connection back (destroying it if
 * ROLLBACK itself failed). Also guards against the two classic mistakes: using the Db (instead of
 * `tx`) inside the callback, and using `tx` after the transaction ended.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { SwitchboardError, type Logger } from '@switchboard/common';
import type { QueryResult, Queryable, TransactionOptions } from './db.js';
import { isRetryable, retryDelayMs, sqlState } from './retry.js';

/** One connection held for the duration of a transaction attempt. */
export interface Conn {
  query<T>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
  /** Gives the connection back; `broken` asks to discard it. */
  release(broken: boolean): void;
}

interface TxScope {
  owner: object;
  active: boolean;
}

const txScope = new AsyncLocalStorage<TxScope>();

/** Throws if called from inside a running transaction callback of `owner` (a Db). */
export function assertNotInTransaction(owner: object, what: string): void {
  const scope = txScope.getStore();
  if (scope?.owner === owner && scope.active) {
    throw new SwitchboardError(
      'internal',
      `${what} was called inside a transaction callback of the same database`,
      'use the `tx` argument inside the callback (nested transactions are not supported; on PGlite this would deadlock)',
    );
  }
}

class TxQueryable implements Queryable {
  active = true;
  constructor(private readonly conn: Conn) {}

  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    if (!this.active) {
      return Promise.reject(
        new SwitchboardError(
          'internal',
          'query on a transaction that has already finished',
          'a `tx` must not be used after its callback returned (do not keep it, or un-awaited work using it)',
        ),
      );
    }
    return this.conn.query<T>(sql, params);
  }
}

const isolationSql: Record<NonNullable<TransactionOptions['isolation']>, string> = {
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

export async function runTransaction<T>(
  owner: object,
  acquire: () => Promise<Conn>,
  fn: (tx: Queryable) => Promise<T>,
  opts: TransactionOptions | undefined,
  logger: Logger,
): Promise<T> {
  const isolation = isolationSql[opts?.isolation ?? 'read committed'];
  const retries = Math.max(0, opts?.retries ?? 10);
  for (let attempt = 0; ; attempt++) {
    const conn = await acquire();
    const tx = new TxQueryable(conn);
    const scope: TxScope = { owner, active: true };
    let broken = false;
    try {
      await conn.query(`BEGIN ISOLATION LEVEL ${isolation}`);
      const result = await txScope.run(scope, () => fn(tx));
      await conn.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await conn.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = true;
        logger.warn('ROLLBACK failed; discarding the connection', { err: rollbackErr });
      }
      if (isRetryable(err) && attempt < retries) {
        const wait = retryDelayMs(attempt);
        logger.debug('transaction conflict; retrying', {
          sqlState: sqlState(err),
          attempt: attempt + 1,
          waitMs: wait,
        });
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      throw err;
    } finally {
      tx.active = false;
      scope.active = false;
      conn.release(broken);
    }
  }
}
