/**
 * The transactional outbox: a service writes its state change and an outbox row in one
 * transaction (`appendOutbox`), and the OutboxRelay publishes the rows to the event log afterwards.
 *
 * Ordering: `appendOutbox` takes a per-schema transaction-level advisory lock before inserting, so
 * outbox ids are handed out in commit order (a transaction that got id 5 has committed before one
 * with id 6 can even take an id). The relay can then publish in id order without ever skipping a
 * row that commits late. The cost: event-producing transactions of one schema serialise from
 * their `appendOutbox` call to their commit — call it last in the transaction.
 */
import { ValidationError, errorMessage } from '@switchboard/common';
import type { Queryable } from './db.js';
import { advisoryKey, assertSchemaName, qualified, quoteIdent } from './ident.js';

/** DDL of `<schema>.outbox` (idempotent). `migrate` runs it unless told not to. */
export function outboxTableSql(schema: string): string {
  const table = qualified(schema, 'outbox');
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (`,
    '  id bigserial PRIMARY KEY,',
    '  subject text NOT NULL,',
    '  payload jsonb NOT NULL,',
    '  created_at timestamptz NOT NULL DEFAULT now(),',
    '  published_at timestamptz',
    ');',
    `CREATE INDEX IF NOT EXISTS outbox_unpublished ON ${table} (id) WHERE published_at IS NULL;`,
    `CREATE INDEX IF NOT EXISTS outbox_published_at ON ${table} (published_at) WHERE published_at IS NOT NULL;`,
    // A random identity of this database's outbox: part of every msgId, so two databases (a rebuilt
    // deployment, parallel test runs) never deduplicate each other's events on the shared log.
    `CREATE TABLE IF NOT EXISTS ${qualified(schema, 'outbox_origin')} (id text PRIMARY KEY);`,
    `INSERT INTO ${qualified(schema, 'outbox_origin')} (id) SELECT md5(random()::text || clock_timestamp()::text)`,
    `  WHERE NOT EXISTS (SELECT 1 FROM ${qualified(schema, 'outbox_origin')});`,
  ].join('\n');
}

function isTransactionCapable(
  q: Queryable,
): q is Queryable & { transaction: <T>(fn: (tx: Queryable) => Promise<T>) => Promise<T> } {
  return typeof (q as { transaction?: unknown }).transaction === 'function';
}

export interface AppendOptions {
  /**
   * `commit-order` (default): ids follow commit order across the whole schema, at the price of
   * running event-producing transactions of the schema one at a time from the append to the commit.
   * `entity-order`: no schema-wide lock. Use it when every event carries a per-entity version and
   * consumers ignore versions they already hold, and the writer holds the entity's row lock (so two
   * changes of one entity still get ids in commit order). The relay never skips a row that commits
   * late, it only publishes it after rows of other entities with higher ids.
   */
  order?: 'commit-order' | 'entity-order';
}

/**
 * Appends an event to `<schema>.outbox` inside the caller's transaction; it is published after the
 * commit (call `relay.kick()` then). Given a Db instead of a transaction, it opens one itself.
 */
export async function appendOutbox(
  tx: Queryable,
  schema: string,
  subject: string,
  payload: unknown,
  opts: AppendOptions = {},
): Promise<void> {
  const ordered = (opts.order ?? 'commit-order') === 'commit-order';
  assertSchemaName(schema);
  if (typeof subject !== 'string' || subject === '')
    throw new ValidationError('outbox subject must be a non-empty string');
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (err) {
    throw new ValidationError(
      `outbox payload for "${subject}" is not JSON-serialisable: ${errorMessage(err)}`,
    );
  }
  if (json === undefined)
    throw new ValidationError(`outbox payload for "${subject}" is not JSON-serialisable`);
  if (isTransactionCapable(tx)) {
    const text = json;
    return tx.transaction((t) => insert(t, schema, subject, text, ordered));
  }
  return insert(tx, schema, subject, json, ordered);
}

async function insert(
  tx: Queryable,
  schema: string,
  subject: string,
  json: string,
  ordered: boolean,
): Promise<void> {
  if (ordered)
    await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryKey('outbox-append', schema)]);
  await tx.query(`INSERT INTO ${quoteIdent(schema)}.outbox (subject, payload) VALUES ($1, $2::text::jsonb)`, [
    subject,
    json,
  ]);
}
