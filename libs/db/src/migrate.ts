/**
 * The migration runner: plain-SQL, forward-only migrations `NNNN_name.sql` from a directory, applied
 * in version order into one Postgres schema.
 * - Each migration runs in its own transaction with `SET LOCAL search_path TO "<schema>", public`, so
 *   migrations are written with unqualified names and land in the target schema, whatever it is
 *   called (tests use a unique schema per run). Schema-qualified names work too.
 * - Applied migrations are recorded in `<schema>.schema_migrations(version, name, checksum, applied_at)`.
 *   The runner refuses to start if an applied migration's file changed or disappeared, or if a new
 *   file is older than the newest applied one.
 * - Concurrent runners (replicas booting together) are serialised by a transaction-level advisory
 *   lock keyed by the schema, taken by every migration transaction; whoever comes second finds the
 *   work done. Works the same on PGlite.
 * - The runner also creates the schema and, unless `outbox: false`, the `<schema>.outbox` table.
 * Statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, …) are not supported.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, type Logger } from '@switchboard/common';
import type { Db, Queryable } from './db.js';
import { advisoryKey, assertSchemaName, quoteIdent } from './ident.js';
import {
  MigrationError,
  buildMigrationList,
  planMigrations,
  type AppliedMigration,
  type MigrationFile,
} from './migration-files.js';
import { outboxTableSql } from './outbox.js';
import { sqlState } from './retry.js';

export interface MigrateOptions {
  /** Target Postgres schema (created if missing). */
  schema: string;
  /** Directory holding `NNNN_name.sql` files (other non-.sql files are ignored). */
  dir: string;
  logger: Logger;
  /** Create `<schema>.outbox` too. Defaults to true. */
  outbox?: boolean;
}

export interface MigrateResult {
  /** Files applied by this call, in order (empty when already up to date). */
  applied: string[];
  /** Newest applied version after the call (0 when the directory is empty). */
  version: number;
}

/** Reads and validates the migration files of `dir`. */
export async function loadMigrations(dir: string): Promise<MigrationFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new MigrationError(
      'migration_conflict',
      `cannot read migrations directory ${dir}: ${errorMessage(err)}`,
    );
  }
  const entries = await Promise.all(
    names
      .filter((f) => f.endsWith('.sql'))
      .map(async (file) => ({ file, sql: await readFile(join(dir, file), 'utf8') })),
  );
  return buildMigrationList(dir, entries);
}

async function prepare(tx: Queryable, schema: string, outbox: boolean): Promise<AppliedMigration[]> {
  const s = quoteIdent(schema);
  await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryKey('migrate', schema)]);
  await tx.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  await tx.query(
    `CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (
       version integer PRIMARY KEY,
       name text NOT NULL,
       checksum text NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
  if (outbox) await tx.query(outboxTableSql(schema));
  const { rows } = await tx.query<AppliedMigration>(
    `SELECT version, name, checksum FROM ${s}.schema_migrations ORDER BY version`,
  );
  return rows;
}

export async function migrate(db: Db, opts: MigrateOptions): Promise<MigrateResult> {
  const { schema, dir, logger } = opts;
  assertSchemaName(schema);
  const files = await loadMigrations(dir);
  const applied: string[] = [];
  let version = 0;
  for (;;) {
    let current: MigrationFile | undefined;
    let done: MigrationFile | undefined;
    try {
      done = await db.transaction(async (tx) => {
        current = undefined;
        const already = await prepare(tx, schema, opts.outbox ?? true);
        version = already.reduce((v, a) => Math.max(v, a.version), 0);
        const next = planMigrations(schema, files, already)[0];
        if (next === undefined) return undefined;
        current = next;
        await tx.query(`SET LOCAL search_path TO ${quoteIdent(schema)}, public`);
        await tx.query(next.sql);
        await tx.query(
          `INSERT INTO ${quoteIdent(schema)}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
          [next.version, next.name, next.checksum],
        );
        return next;
      });
    } catch (err) {
      if (err instanceof MigrationError || current === undefined) throw err;
      const state = sqlState(err);
      throw new MigrationError(
        'migration_failed',
        `migration ${current.file} failed in schema ${schema}: ${errorMessage(err)}`,
        'fix the migration file; it was rolled back and nothing of it was applied',
        { file: current.file, ...(state ? { sqlState: state } : {}) },
      );
    }
    if (done === undefined) break;
    applied.push(done.file);
    version = done.version;
    logger.info('applied migration', { schema, file: done.file });
  }
  if (applied.length === 0) logger.debug('schema is up to date', { schema, version });
  return { applied, version };
}
