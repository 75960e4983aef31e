/** Public API of @switchboard/db: the Db contract, its Postgres and PGlite backends, migrations and the outbox. */
export type { Db, QueryResult, Queryable, TransactionOptions } from './db.js';
export { openDb, type OpenDbOptions } from './open-db.js';
export { PostgresDb, redactUrl } from './postgres-db.js';
export { PgliteDb } from './pglite-db.js';
export { migrate, loadMigrations, type MigrateOptions, type MigrateResult } from './migrate.js';
export {
  MigrationError,
  checksumSql,
  parseMigrationFileName,
  planMigrations,
  type AppliedMigration,
  type MigrationFile,
} from './migration-files.js';
export { appendOutbox, outboxTableSql, type AppendOptions } from './outbox.js';
export { OutboxRelay, type OutboxRelayOptions } from './outbox-relay.js';
export { assertSchemaName, quoteIdent, qualified, advisoryKey } from './ident.js';
export { isRetryable, isUniqueViolation, sqlState } from './retry.js';
export { parseInt8 } from './values.js';
