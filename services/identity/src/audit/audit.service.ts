/** The audit log: records admin actions and logins, lists them, verifies the chain. */
import type { Db, Queryable } from '@switchboard/db';
import { verifyChain, GENESIS_HASH, type AuditEntry, type StoredAuditEntry } from './audit.chain.js';
import { AuditRepository, type AuditFilter } from './audit.repository.js';

export type AuditVerification =
  | { ok: true; entries: number; lastHash: string }
  | { ok: false; entries: number; brokenAt: number; why: string };

export class AuditLog {
  private readonly repo = new AuditRepository();

  constructor(private readonly db: Db) {}

  /** Records one entry in the caller's transaction, or in its own when `q` is omitted. */
  async record(e: Omit<AuditEntry, 'at'> & { at?: string }, q?: Queryable): Promise<StoredAuditEntry> {
    const entry: AuditEntry = { ...e, at: e.at ?? new Date().toISOString() };
    if (q) return this.repo.append(q, entry);
    return this.db.transaction((tx) => this.repo.append(tx, entry));
  }

  list(f: AuditFilter): Promise<StoredAuditEntry[]> {
    return this.repo.list(this.db, f);
  }

  /** Walks the whole chain in batches. */
  async verify(batch = 1000): Promise<AuditVerification> {
    let prev = GENESIS_HASH;
    let after = 0;
    let n = 0;
    for (;;) {
      const page = await this.repo.page(this.db, after, batch);
      if (page.length === 0) return { ok: true, entries: n, lastHash: prev };
      const r = verifyChain(page, prev);
      if (!r.ok) return { ok: false, entries: n, brokenAt: r.id, why: r.why };
      n += page.length;
      prev = r.last;
      after = page[page.length - 1]!.id;
    }
  }
}
