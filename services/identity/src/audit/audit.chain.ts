/**
 * The audit log's hash chain (pure). Each entry's hash is SHA-256 over the previous entry's hash and
 * the entry's canonical text (keys sorted at every level, so the text survives a jsonb round trip),
 * so altering, inserting or removing a row breaks every later hash.
 */
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export interface AuditEntry {
  tailnetId: number;
  /** ISO time, millisecond precision. */
  at: string;
  actor: string;
  actorRole: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
  /** `ok`, or `denied: …` / `failed: …`. */
  outcome: string;
  source: string;
  requestId: string;
}

export interface StoredAuditEntry extends AuditEntry {
  id: number;
  prevHash: string;
  hash: string;
}

/** JSON with object keys sorted recursively; `undefined` becomes null. */
export function canonicalJson(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function entryHash(prevHash: string, e: AuditEntry): string {
  const text = canonicalJson([
    e.tailnetId,
    e.at,
    e.actor,
    e.actorRole,
    e.action,
    e.target,
    e.before ?? null,
    e.after ?? null,
    e.outcome,
    e.source,
    e.requestId,
  ]);
  return createHash('sha256').update(prevHash).update('\n').update(text).digest('hex');
}

/** Checks a run of entries in id order, starting after `prevHash`; the first bad entry, if any. */
export function verifyChain(
  entries: readonly StoredAuditEntry[],
  prevHash = GENESIS_HASH,
): { ok: true; last: string } | { ok: false; id: number; why: string } {
  let prev = prevHash;
  for (const e of entries) {
    if (e.prevHash !== prev)
      return { ok: false, id: e.id, why: 'its prev_hash is not the previous entry’s hash' };
    if (entryHash(prev, e) !== e.hash)
      return { ok: false, id: e.id, why: 'its content does not match its hash' };
    prev = e.hash;
  }
  return { ok: true, last: prev };
}
