/**
 * Pure rules of the migration runner: file names (`NNNN_name.sql`), checksums, and the plan —
 * which migrations are pending, or why the runner must refuse to start (forward-only: a committed
 * migration never changes, disappears, or gets a sibling older than the newest applied one).
 */
import { createHash } from 'node:crypto';
import { SwitchboardError } from '@switchboard/common';

export interface MigrationFile {
  version: number;
  name: string;
  /** File name, e.g. `0001_create_nodes.sql`. */
  file: string;
  sql: string;
  checksum: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
}

/** Migration problems: a refused plan (`migration_conflict`) or a failing migration (`migration_failed`). */
export class MigrationError extends SwitchboardError {}

const fileRe = /^(\d{4})_([a-z0-9][a-z0-9_-]*)\.sql$/;

/** `0001_create_nodes.sql` → { version: 1, name: 'create_nodes' }; undefined for anything else. */
export function parseMigrationFileName(file: string): { version: number; name: string } | undefined {
  const m = fileRe.exec(file);
  if (!m) return undefined;
  return { version: Number(m[1]), name: m[2]! };
}

/** sha256 (hex) of the SQL with line endings normalised, so a CRLF checkout does not count as a change. */
export function checksumSql(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex');
}

/** Builds the sorted migration list from (file name, contents) pairs; refuses bad names and duplicate versions. */
export function buildMigrationList(dir: string, entries: { file: string; sql: string }[]): MigrationFile[] {
  const out: MigrationFile[] = [];
  const seen = new Map<number, string>();
  for (const { file, sql } of entries) {
    const parsed = parseMigrationFileName(file);
    if (!parsed) {
      throw new MigrationError(
        'migration_conflict',
        `${dir}/${file} is not a valid migration file name`,
        'name migrations NNNN_what_it_does.sql (four digits, lower-case letters, digits, "_" or "-")',
      );
    }
    const other = seen.get(parsed.version);
    if (other !== undefined) {
      throw new MigrationError(
        'migration_conflict',
        `${dir}: ${other} and ${file} have the same version ${String(parsed.version).padStart(4, '0')}`,
        'give the newer one the next free number',
      );
    }
    seen.set(parsed.version, file);
    out.push({ ...parsed, file, sql, checksum: checksumSql(sql) });
  }
  return out.sort((a, b) => a.version - b.version);
}

function fileName(m: { version: number; name: string }): string {
  return `${String(m.version).padStart(4, '0')}_${m.name}.sql`;
}

/**
 * The migrations still to apply, in order. Throws a `migration_conflict` MigrationError (naming the
 * file) when an applied migration's file changed or is missing, or when a pending one is older
 * than the newest applied one.
 */
export function planMigrations(
  schema: string,
  files: MigrationFile[],
  applied: AppliedMigration[],
): MigrationFile[] {
  const byVersion = new Map(files.map((f) => [f.version, f]));
  let newest = 0;
  for (const a of applied) {
    newest = Math.max(newest, a.version);
    const f = byVersion.get(a.version);
    if (f === undefined) {
      throw new MigrationError(
        'migration_conflict',
        `migration ${fileName(a)} was applied to schema ${schema} but its file is missing`,
        'migrations are forward-only: restore the file; undo a change with a new migration',
      );
    }
    if (f.checksum !== a.checksum) {
      throw new MigrationError(
        'migration_conflict',
        `migration ${f.file} was changed after it was applied to schema ${schema} (checksum ${a.checksum.slice(0, 12)}… is now ${f.checksum.slice(0, 12)}…)`,
        'migrations are forward-only: restore the committed file and put the change in a new migration',
      );
    }
  }
  const done = new Set(applied.map((a) => a.version));
  const pending = files.filter((f) => !done.has(f.version));
  const early = pending.find((f) => f.version < newest);
  if (early !== undefined) {
    throw new MigrationError(
      'migration_conflict',
      `migration ${early.file} is older than ${fileName(applied.find((a) => a.version === newest)!)}, already applied to schema ${schema}`,
      'migrations are forward-only: renumber it after the newest applied migration',
    );
  }
  return pending;
}
