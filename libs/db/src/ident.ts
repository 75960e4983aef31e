/**
 * SQL identifiers and advisory-lock keys. Schema names are interpolated into SQL (they cannot be
 * bind parameters), so they are validated first: lower-case letters, digits and `_`, starting with a
 * letter or `_`, at most 63 bytes (Postgres' limit), and quoted on output.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '@switchboard/common';

const schemaRe = /^[a-z_][a-z0-9_]{0,62}$/;

/** Throws a ValidationError unless `schema` is a plain lower-case identifier (and not a system schema). */
export function assertSchemaName(schema: string): void {
  if (
    typeof schema !== 'string' ||
    !schemaRe.test(schema) ||
    schema.startsWith('pg_') ||
    schema === 'information_schema'
  ) {
    throw new ValidationError(
      `invalid schema name ${JSON.stringify(schema)}`,
      'use lower-case letters, digits and "_" (starting with a letter), at most 63 characters, not pg_*',
    );
  }
}

/** Double-quotes an identifier for SQL (after validation by the caller). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `"schema".table` for a validated schema name. */
export function qualified(schema: string, table: string): string {
  assertSchemaName(schema);
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/**
 * A stable signed 64-bit advisory-lock key for (purpose, schema), as a decimal string to bind as
 * `$1::bigint` (it does not fit a JS number). Different purposes never share a key.
 */
export function advisoryKey(purpose: string, schema: string): string {
  const digest = createHash('sha256').update(`switchboard:${purpose}:${schema}`).digest();
  return BigInt.asIntN(64, digest.readBigUInt64BE(0)).toString();
}
