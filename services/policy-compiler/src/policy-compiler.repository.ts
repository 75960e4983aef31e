/** policy-compiler's door to Postgres (schema `policy`). */
import type { Queryable } from '@switchboard/db';
import type { PolicyRecord, PolicyVersion } from '@switchboard/contracts';

interface VersionRow {
  tailnet_id: number;
  version: number;
  text: string | null;
  author: string;
  created_at: Date | string;
  diff: string;
}

export class PolicyRepository {
  async latest(q: Queryable, tailnetId: number): Promise<PolicyRecord> {
    const r = await q.query<{ version: number; text: string | null }>(
      `SELECT version, text FROM policy.versions WHERE tailnet_id = $1 ORDER BY version DESC LIMIT 1`,
      [tailnetId],
    );
    const row = r.rows[0];
    return row
      ? { tailnetId, version: Number(row.version), text: row.text }
      : { tailnetId, version: 0, text: null };
  }

  async version(q: Queryable, tailnetId: number, version: number): Promise<PolicyRecord | null> {
    const r = await q.query<{ version: number; text: string | null }>(
      `SELECT version, text FROM policy.versions WHERE tailnet_id = $1 AND version = $2`,
      [tailnetId, version],
    );
    const row = r.rows[0];
    return row ? { tailnetId, version: Number(row.version), text: row.text } : null;
  }

  async allLatest(q: Queryable): Promise<PolicyRecord[]> {
    const r = await q.query<{ tailnet_id: number; version: number; text: string | null }>(
      `SELECT DISTINCT ON (tailnet_id) tailnet_id, version, text FROM policy.versions ORDER BY tailnet_id, version DESC`,
    );
    return r.rows.map((x) => ({ tailnetId: Number(x.tailnet_id), version: Number(x.version), text: x.text }));
  }

  /** Locks the tailnet's policy history for the rest of the transaction (one writer at a time). */
  async lock(q: Queryable, tailnetId: number): Promise<void> {
    await q.query(`SELECT pg_advisory_xact_lock(hashtext('policy.versions'), $1)`, [tailnetId]);
  }

  async insert(
    q: Queryable,
    v: { tailnetId: number; version: number; text: string; author: string; diff: string },
  ): Promise<void> {
    await q.query(
      `INSERT INTO policy.versions (tailnet_id, version, text, author, diff) VALUES ($1, $2, $3, $4, $5)`,
      [v.tailnetId, v.version, v.text, v.author, v.diff],
    );
  }

  async history(q: Queryable, tailnetId: number, limit: number): Promise<PolicyVersion[]> {
    const r = await q.query<VersionRow>(
      `SELECT tailnet_id, version, text, author, created_at, diff FROM policy.versions
       WHERE tailnet_id = $1 ORDER BY version DESC LIMIT $2`,
      [tailnetId, limit],
    );
    return r.rows.map((x) => ({
      tailnetId: Number(x.tailnet_id),
      version: Number(x.version),
      author: x.author,
      createdAt: new Date(x.created_at).toISOString(),
      diff: x.diff,
    }));
  }
}
