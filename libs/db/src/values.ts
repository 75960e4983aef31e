/**
 * How column values come back, the same on Postgres (`pg`) and PGlite:
 * - int8/bigint/bigserial (and int8[]) → JS `number`. A value outside ±(2^53 − 1) makes the query
 *   fail with `int8_overflow` rather than silently lose precision (select it as `::text` or
 *   `::numeric` to read such values).
 * - json/jsonb → parsed values. timestamptz → Date. timestamp (without zone) → Date read as UTC.
 * - date → the 'YYYY-MM-DD' string (no time zone shifts). numeric → string. bytea → Uint8Array
 *   (a Buffer on Postgres). Everything else: the drivers' defaults (int2/int4/float → number, text → string).
 * Parameters: pass JSON for json/jsonb as `JSON.stringify(value)` with a `$n::jsonb` cast (`pg` turns a
 * JS array into a Postgres array, not JSON); pass int8 values as numbers or decimal strings.
 */
import { SwitchboardError } from '@switchboard/common';

export const OID = {
  INT8: 20,
  INT8_ARRAY: 1016,
  DATE: 1082,
  TIMESTAMP: 1114,
  TIMESTAMPTZ: 1184,
  NUMERIC: 1700,
} as const;

export function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    throw new SwitchboardError(
      'int8_overflow',
      `int8 value ${text} does not fit a JS number exactly`,
      'select the column as ::text (or ::numeric) to read values beyond ±(2^53 − 1)',
    );
  }
  return n;
}

/** `timestamp without time zone` text ('2024-01-02 03:04:05.123') read as UTC. */
export function parseTimestampUtc(text: string): Date | string {
  const d = new Date(`${text.replace(' ', 'T')}Z`);
  return Number.isNaN(d.getTime()) ? text : d;
}

export function parseDateText(text: string): string {
  return text;
}

/** Applies `fn` to every non-null leaf of a (possibly nested) array parsed by a driver. */
export function mapArray(value: unknown, fn: (text: string) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => mapArray(v, fn));
  if (value === null || value === undefined) return value;
  return fn(typeof value === 'string' ? value : JSON.stringify(value));
}
