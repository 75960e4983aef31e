/** identity's SQL for API v2: credentials (API tokens, OAuth clients, access tokens), DNS, settings, roles. */
import type { Queryable } from '@switchboard/db';
import type { TailnetDnsRecord, UserRole } from '@switchboard/contracts';

const S = 'identity';

export interface CredentialRow {
  id: number;
  prefix: string;
  hash: string;
  kind: 'api' | 'client';
  tailnetId: number;
  userId: number | null;
  scopes: string[];
  tags: string[];
  description: string;
  createdAt: string;
  updatedAt: string;
  expiresAt: string;
  revokedAt: string | null;
}

interface RawCredential {
  id: number | string;
  prefix: string;
  hash: string;
  kind: 'api' | 'client';
  tailnet_id: number;
  user_id: number | string | null;
  scopes: string[];
  tags: string[];
  description: string;
  created_at: Date | string;
  updated_at: Date | string;
  expires_at: Date | string;
  revoked_at: Date | string | null;
}

const iso = (v: Date | string): string => new Date(v).toISOString();

function mapCredential(r: RawCredential): CredentialRow {
  return {
    id: Number(r.id),
    prefix: r.prefix,
    hash: r.hash,
    kind: r.kind,
    tailnetId: Number(r.tailnet_id),
    userId: r.user_id === null ? null : Number(r.user_id),
    scopes: r.scopes,
    tags: r.tags,
    description: r.description,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    expiresAt: iso(r.expires_at),
    revokedAt: r.revoked_at === null ? null : iso(r.revoked_at),
  };
}

export const DEFAULT_DNS = (tailnetId: number): TailnetDnsRecord => ({
  tailnetId,
  nameservers: [],
  searchPaths: [],
  magicDns: true,
  splitDns: {},
  version: 0,
});

export class V2Repository {
  async credentialByPrefix(q: Queryable, prefix: string): Promise<CredentialRow | null> {
    const r = await q.query<RawCredential>(`SELECT * FROM ${S}.api_keys WHERE prefix = $1`, [prefix]);
    return r.rows[0] ? mapCredential(r.rows[0]) : null;
  }

  async credentials(q: Queryable, tailnetId: number, kind: 'api' | 'client'): Promise<CredentialRow[]> {
    const r = await q.query<RawCredential>(
      `SELECT * FROM ${S}.api_keys WHERE tailnet_id = $1 AND kind = $2 ORDER BY id`,
      [tailnetId, kind],
    );
    return r.rows.map(mapCredential);
  }

  async insertCredential(
    q: Queryable,
    c: {
      prefix: string;
      hash: string;
      kind: 'api' | 'client';
      tailnetId: number;
      userId: number | null;
      scopes: string[];
      tags: string[];
      description: string;
      expiresAt: string;
    },
  ): Promise<CredentialRow> {
    const r = await q.query<RawCredential>(
      `INSERT INTO ${S}.api_keys (prefix, hash, kind, tailnet_id, user_id, scopes, tags, description, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6::text[], $7::text[], $8, $9::timestamptz) RETURNING *`,
      [c.prefix, c.hash, c.kind, c.tailnetId, c.userId, c.scopes, c.tags, c.description, c.expiresAt],
    );
    return mapCredential(r.rows[0]!);
  }

  async updateClient(
    q: Queryable,
    id: number,
    c: { scopes: string[]; tags: string[]; description: string },
  ): Promise<CredentialRow | null> {
    const r = await q.query<RawCredential>(
      `UPDATE ${S}.api_keys SET scopes = $2::text[], tags = $3::text[], description = $4, updated_at = now()
       WHERE id = $1 AND kind = 'client' RETURNING *`,
      [id, c.scopes, c.tags, c.description],
    );
    return r.rows[0] ? mapCredential(r.rows[0]) : null;
  }

  async revokeCredential(q: Queryable, id: number): Promise<CredentialRow | null> {
    const r = await q.query<RawCredential>(
      `UPDATE ${S}.api_keys SET revoked_at = COALESCE(revoked_at, now()), updated_at = now() WHERE id = $1 RETURNING *`,
      [id],
    );
    await q.query(`DELETE FROM ${S}.oauth_tokens WHERE client_id = $1`, [id]);
    return r.rows[0] ? mapCredential(r.rows[0]) : null;
  }

  async insertAccessToken(
    q: Queryable,
    t: { prefix: string; hash: string; clientId: number; scopes: string[]; expiresAt: string },
  ): Promise<void> {
    await q.query(`DELETE FROM ${S}.oauth_tokens WHERE expires_at < now() - interval '1 hour'`);
    await q.query(
      `INSERT INTO ${S}.oauth_tokens (prefix, hash, client_id, scopes, expires_at)
       VALUES ($1, $2, $3, $4::text[], $5::timestamptz)`,
      [t.prefix, t.hash, t.clientId, t.scopes, t.expiresAt],
    );
  }

  async accessToken(
    q: Queryable,
    prefix: string,
  ): Promise<{ hash: string; clientId: number; scopes: string[]; expiresAt: string } | null> {
    const r = await q.query<{
      hash: string;
      client_id: number | string;
      scopes: string[];
      expires_at: Date | string;
    }>(`SELECT hash, client_id, scopes, expires_at FROM ${S}.oauth_tokens WHERE prefix = $1`, [prefix]);
    const row = r.rows[0];
    if (!row) return null;
    return {
      hash: row.hash,
      clientId: Number(row.client_id),
      scopes: row.scopes,
      expiresAt: iso(row.expires_at),
    };
  }

  async credentialById(q: Queryable, id: number): Promise<CredentialRow | null> {
    const r = await q.query<RawCredential>(`SELECT * FROM ${S}.api_keys WHERE id = $1`, [id]);
    return r.rows[0] ? mapCredential(r.rows[0]) : null;
  }

  async userRole(q: Queryable, userId: number): Promise<UserRole | null> {
    const r = await q.query<{ role: UserRole }>(`SELECT role FROM ${S}.users WHERE id = $1`, [userId]);
    return r.rows[0]?.role ?? null;
  }

  /** Sets a user's role and bumps its version; returns the user's id and new version, null when absent. */
  async setUserRole(q: Queryable, userId: number, role: UserRole): Promise<boolean> {
    const r = await q.query(
      `UPDATE ${S}.users SET role = $2, version = version + 1 WHERE id = $1 RETURNING id`,
      [userId, role],
    );
    return r.rows.length > 0;
  }

  async dns(q: Queryable, tailnetId: number, forUpdate = false): Promise<TailnetDnsRecord> {
    const r = await q.query<{
      nameservers: string[];
      search_paths: string[];
      magic_dns: boolean;
      split_dns: Record<string, string[]> | string;
      version: number | string;
    }>(`SELECT * FROM ${S}.tailnet_dns WHERE tailnet_id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [tailnetId]);
    const row = r.rows[0];
    if (!row) return DEFAULT_DNS(tailnetId);
    return {
      tailnetId,
      nameservers: row.nameservers,
      searchPaths: row.search_paths,
      magicDns: row.magic_dns,
      splitDns:
        typeof row.split_dns === 'string'
          ? (JSON.parse(row.split_dns) as Record<string, string[]>)
          : row.split_dns,
      version: Number(row.version),
    };
  }

  async allDns(q: Queryable): Promise<TailnetDnsRecord[]> {
    const r = await q.query<{ tailnet_id: number }>(`SELECT tailnet_id FROM ${S}.tailnet_dns ORDER BY 1`);
    const out: TailnetDnsRecord[] = [];
    for (const row of r.rows) out.push(await this.dns(q, Number(row.tailnet_id)));
    return out;
  }

  async saveDns(q: Queryable, d: Omit<TailnetDnsRecord, 'version'>): Promise<TailnetDnsRecord> {
    const r = await q.query<{ version: number | string }>(
      `INSERT INTO ${S}.tailnet_dns (tailnet_id, nameservers, search_paths, magic_dns, split_dns)
       VALUES ($1, $2::text[], $3::text[], $4, $5::jsonb)
       ON CONFLICT (tailnet_id) DO UPDATE SET nameservers = EXCLUDED.nameservers,
         search_paths = EXCLUDED.search_paths, magic_dns = EXCLUDED.magic_dns,
         split_dns = EXCLUDED.split_dns, version = ${S}.tailnet_dns.version + 1
       RETURNING version`,
      [d.tailnetId, d.nameservers, d.searchPaths, d.magicDns, JSON.stringify(d.splitDns)],
    );
    return { ...d, version: Number(r.rows[0]!.version) };
  }

  async settings(q: Queryable, tailnetId: number): Promise<Record<string, unknown> | null> {
    const r = await q.query<{ settings: Record<string, unknown> | string }>(
      `SELECT settings FROM ${S}.tailnet_settings WHERE tailnet_id = $1`,
      [tailnetId],
    );
    const v = r.rows[0]?.settings;
    if (v === undefined) return null;
    return typeof v === 'string' ? (JSON.parse(v) as Record<string, unknown>) : v;
  }

  async saveSettings(q: Queryable, tailnetId: number, settings: Record<string, unknown>): Promise<void> {
    await q.query(
      `INSERT INTO ${S}.tailnet_settings (tailnet_id, settings) VALUES ($1, $2::jsonb)
       ON CONFLICT (tailnet_id) DO UPDATE SET settings = EXCLUDED.settings, version = ${S}.tailnet_settings.version + 1`,
      [tailnetId, JSON.stringify(settings)],
    );
  }
}
