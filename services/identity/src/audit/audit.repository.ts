/** The audit log's SQL (identity.audit_log): append (chained, serialised), list with filters, read in order. */
import type { Queryable } from '@switchboard/db';
import { GENESIS_HASH, entryHash, type AuditEntry, type StoredAuditEntry } from './audit.chain.js';

const S = 'identity';
/** Advisory lock key that serialises appends, so the chain has one order across replicas. */
const AUDIT_LOCK = 0x61756469;

interface Row {
  id: number | string;
  tailnet_id: number;
  at: Date | string;
  actor: string;
  actor_role: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
  outcome: string;
  source: string;
  request_id: string;
  prev_hash: string;
  hash: string;
}

function mapRow(r: Row): StoredAuditEntry {
  const json = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);
  return {
    id: Number(r.id),
    tailnetId: Number(r.tailnet_id),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    actorRole: r.actor_role,
    action: r.action,
    target: r.target,
    before: json(r.before),
    after: json(r.after),
    outcome: r.outcome,
    source: r.source,
    requestId: r.request_id,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export interface AuditFilter {
  tailnetId?: number | undefined;
  actor?: string | undefined;
  action?: string | undefined;
  target?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  limit?: number | undefined;
}

export class AuditRepository {
  /** Appends one entry inside the caller's transaction (the change it records commits with it). */
  async append(q: Queryable, e: AuditEntry): Promise<StoredAuditEntry> {
    await q.query(`SELECT pg_advisory_xact_lock($1)`, [AUDIT_LOCK]);
    const last = await q.query<{ hash: string }>(`SELECT hash FROM ${S}.audit_log ORDER BY id DESC LIMIT 1`);
    const prevHash = last.rows[0]?.hash ?? GENESIS_HASH;
    const hash = entryHash(prevHash, e);
    const r = await q.query<Row>(
      `INSERT INTO ${S}.audit_log (tailnet_id, at, actor, actor_role, action, target, before, after, outcome,
         source, request_id, prev_hash, hash)
       VALUES ($1, $2::timestamptz, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13) RETURNING *`,
      [
        e.tailnetId,
        e.at,
        e.actor,
        e.actorRole,
        e.action,
        e.target,
        e.before === undefined ? null : JSON.stringify(e.before),
        e.after === undefined ? null : JSON.stringify(e.after),
        e.outcome,
        e.source,
        e.requestId,
        prevHash,
        hash,
      ],
    );
    return mapRow(r.rows[0]!);
  }

  async list(q: Queryable, f: AuditFilter): Promise<StoredAuditEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown): void => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.tailnetId !== undefined) add('tailnet_id = ?', f.tailnetId);
    if (f.actor !== undefined) add('actor = ?', f.actor);
    if (f.action !== undefined) add('action LIKE ?', `${f.action.replace(/[%_\\]/g, '\\$&')}%`);
    if (f.target !== undefined) add('target = ?', f.target);
    if (f.since !== undefined) add('at >= ?::timestamptz', f.since);
    if (f.until !== undefined) add('at < ?::timestamptz', f.until);
    params.push(f.limit ?? 1000);
    const r = await q.query<Row>(
      `SELECT * FROM ${S}.audit_log${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY id LIMIT $${params.length}`,
      params,
    );
    return r.rows.map(mapRow);
  }

  /** Entries with id > afterId, in id order (for verification in batches). */
  async page(q: Queryable, afterId: number, limit: number): Promise<StoredAuditEntry[]> {
    const r = await q.query<Row>(`SELECT * FROM ${S}.audit_log WHERE id > $1 ORDER BY id LIMIT $2`, [
      afterId,
      limit,
    ]);
    return r.rows.map(mapRow);
  }
}
