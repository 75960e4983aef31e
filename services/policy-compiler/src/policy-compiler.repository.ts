/** policy-compiler's door to Postgres (schema `policy`). */
import type { Queryable } from '@switchboard/db';
import type { PolicyRecord } from '@switchboard/contracts';

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

  async allLatest(q: Queryable): Promise<PolicyRecord[]> {
    const r = await q.query<{ tailnet_id: number; version: number; text: string | null }>(
      `SELECT DISTINCT ON (tailnet_id) tailnet_id, version, text FROM policy.versions ORDER BY tailnet_id, version DESC`,
    );
    return r.rows.map((x) => ({ tailnetId: Number(x.tailnet_id), version: Number(x.version), text: x.text }));
  }
}
