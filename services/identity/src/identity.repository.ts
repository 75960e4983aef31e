/** identity's door to Postgres (schema `identity`). */
import type { Queryable } from '@switchboard/db';
import type { ApiKeyRecord, UserRecord } from '@switchboard/contracts';

const S = 'identity';

export interface UserRow {
  id: number | string;
  tailnet_id: number;
  name: string;
  login_name: string;
  display_name: string;
  email: string | null;
  profile_pic_url: string | null;
  provider: string;
  groups: string[];
  role?: UserRecord['role'];
  created_at: Date | string;
  version: number | string;
  provider_id?: string | null;
  subject?: string | null;
  disabled?: boolean;
}

interface ApiKeyRow {
  id: number | string;
  prefix: string;
  hash: string;
  created_at: Date | string;
  expires_at: Date | string;
  last_used_at: Date | string | null;
  kind?: string;
  user_id?: number | string | null;
  revoked_at?: Date | string | null;
}

const iso = (v: Date | string): string => new Date(v).toISOString();

export function mapUser(r: UserRow): UserRecord {
  return {
    id: Number(r.id),
    tailnetId: Number(r.tailnet_id),
    name: r.name,
    loginName: r.login_name,
    displayName: r.display_name,
    email: r.email,
    profilePicUrl: r.profile_pic_url,
    provider: r.provider,
    groups: r.groups,
    role: r.role ?? 'member',
    createdAt: iso(r.created_at),
    version: Number(r.version),
    ...(r.disabled ? { disabled: true } : {}),
    ...(r.provider_id ? { providerSubject: `${r.provider_id}:${r.subject ?? ''}` } : {}),
  };
}

function mapApiKey(r: ApiKeyRow): ApiKeyRecord {
  const expiresAt = iso(r.expires_at);
  return {
    id: Number(r.id),
    prefix: `sbapi-${r.prefix}`,
    createdAt: iso(r.created_at),
    expiresAt,
    lastUsedAt: r.last_used_at === null ? null : iso(r.last_used_at),
    userId: r.user_id === undefined || r.user_id === null ? null : Number(r.user_id),
    usable: Date.parse(expiresAt) > Date.now() && (r.revoked_at ?? null) === null,
  };
}

export class IdentityRepository {
  async setting(q: Queryable, key: string, fallback: () => string): Promise<string> {
    await q.query(`INSERT INTO ${S}.settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, [
      key,
      fallback(),
    ]);
    const r = await q.query<{ value: string }>(`SELECT value FROM ${S}.settings WHERE key = $1`, [key]);
    return r.rows[0]!.value;
  }

  async insertUser(
    q: Queryable,
    u: { tailnetId: number; name: string; loginName: string; displayName: string; email: string | null },
  ): Promise<UserRecord | null> {
    const r = await q.query<UserRow>(
      `INSERT INTO ${S}.users (tailnet_id, name, login_name, display_name, email) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tailnet_id, name) DO NOTHING RETURNING *`,
      [u.tailnetId, u.name, u.loginName, u.displayName, u.email],
    );
    return r.rows[0] ? mapUser(r.rows[0]) : null;
  }

  async users(q: Queryable): Promise<UserRecord[]> {
    const r = await q.query<UserRow>(`SELECT * FROM ${S}.users ORDER BY id`);
    return r.rows.map(mapUser);
  }

  async userById(q: Queryable, id: number): Promise<UserRecord | null> {
    const r = await q.query<UserRow>(`SELECT * FROM ${S}.users WHERE id = $1`, [id]);
    return r.rows[0] ? mapUser(r.rows[0]) : null;
  }

  async userByName(q: Queryable, name: string): Promise<UserRecord | null> {
    const r = await q.query<UserRow>(
      `SELECT * FROM ${S}.users WHERE name = $1 OR login_name = $1 ORDER BY id LIMIT 1`,
      [name],
    );
    return r.rows[0] ? mapUser(r.rows[0]) : null;
  }

  async deleteUser(q: Queryable, id: number): Promise<UserRecord | null> {
    const r = await q.query<UserRow>(`DELETE FROM ${S}.users WHERE id = $1 RETURNING *`, [id]);
    return r.rows[0] ? mapUser(r.rows[0]) : null;
  }

  async insertApiKey(
    q: Queryable,
    k: { prefix: string; hash: string; expiresAt: Date; userId: number | null; tailnetId: number },
  ): Promise<ApiKeyRecord> {
    const r = await q.query<ApiKeyRow>(
      `INSERT INTO ${S}.api_keys (prefix, hash, expires_at, user_id, tailnet_id) VALUES ($1, $2, $3::timestamptz, $4, $5) RETURNING *`,
      [k.prefix, k.hash, k.expiresAt.toISOString(), k.userId, k.tailnetId],
    );
    return mapApiKey(r.rows[0]!);
  }

  async apiKeyByPrefix(q: Queryable, prefix: string): Promise<(ApiKeyRecord & { hash: string }) | null> {
    const r = await q.query<ApiKeyRow>(`SELECT * FROM ${S}.api_keys WHERE prefix = $1 AND kind = 'api'`, [
      prefix,
    ]);
    return r.rows[0] ? { ...mapApiKey(r.rows[0]), hash: r.rows[0].hash } : null;
  }

  async touchApiKey(q: Queryable, id: number): Promise<void> {
    await q.query(
      `UPDATE ${S}.api_keys SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
      [id],
    );
  }

  async apiKeys(q: Queryable): Promise<ApiKeyRecord[]> {
    const r = await q.query<ApiKeyRow>(`SELECT * FROM ${S}.api_keys WHERE kind = 'api' ORDER BY id`);
    return r.rows.map(mapApiKey);
  }

  async expireApiKey(q: Queryable, prefix: string): Promise<ApiKeyRecord | null> {
    const r = await q.query<ApiKeyRow>(
      `UPDATE ${S}.api_keys SET expires_at = LEAST(expires_at, now()) WHERE prefix = $1 RETURNING *`,
      [prefix],
    );
    return r.rows[0] ? mapApiKey(r.rows[0]) : null;
  }
}
