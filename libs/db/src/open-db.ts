/**
 * Opens the database: Postgres when a URL is given (DATABASE_URL), otherwise embedded PGlite
 * (persistent in `dataDir`, in memory without). Both behind the same `Db` contract.
 */
import type { Logger } from '@switchboard/common';
import type { Db } from './db.js';
import { openPglite } from './pglite-db.js';
import { openPostgres } from './postgres-db.js';

export interface OpenDbOptions {
  /** `postgres://user:pass@host:5432/db`; absent → embedded PGlite. */
  url?: string;
  /** PGlite data directory (created if missing); absent → in memory. Ignored with `url`. */
  dataDir?: string;
  /** Postgres pool size. Defaults to 10. */
  poolSize?: number;
  logger: Logger;
}

export async function openDb(opts: OpenDbOptions): Promise<Db> {
  if (opts.url !== undefined && opts.url !== '') {
    return openPostgres(opts.url, opts.logger.child('db', { backend: 'postgres' }), opts.poolSize);
  }
  return openPglite(opts.dataDir, opts.logger.child('db', { backend: 'pglite' }));
}
