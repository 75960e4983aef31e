/**
 * key-registry's only door to Postgres: plain SQL against schema `key_registry`. Every function takes
 * a Queryable so callers compose them inside one transaction together with the outbox write.
 */
import type { Queryable } from '@switchboard/db';
import type { NodeRecord, PreAuthKeyRecord, TailnetRecord } from '@switchboard/contracts';

const S = 'key_registry';

interface NodeRow {
  id: number | string;
  stable_id: string;
  tailnet_id: number;
  user_id: number | string | null;
  owner_key: string;
  machine_key: string;
  node_key: string;
  disco_key: string | null;
  ipv4: string;
  ipv6: string;
  hostname: string;
  given_name: string;
  hostinfo: Record<string, unknown> | null;
  endpoints: string[];
  home_derp: number;
  tags: string[];
  ephemeral: boolean;
  key_expiry: Date | string | null;
  created_at: Date | string;
  last_seen: Date | string | null;
  machine_authorized: boolean;
  cap_version: number;
  routable_ips: string[];
  approved_routes: string[];
  version: number | string;
}

const iso = (v: Date | string): string => new Date(v).toISOString();
const isoOrNull = (v: Date | string | null): string | null => (v === null ? null : iso(v));

export function mapNode(r: NodeRow): NodeRecord {
  return {
    id: Number(r.id),
    stableId: r.stable_id,
    tailnetId: Number(r.tailnet_id),
    userId: r.user_id === null ? null : Number(r.user_id),
    machineKey: r.machine_key,
    nodeKey: r.node_key,
    discoKey: r.disco_key,
    ipv4: r.ipv4,
    ipv6: r.ipv6,
    hostname: r.hostname,
    givenName: r.given_name,
    hostinfo: r.hostinfo,
    endpoints: Array.isArray(r.endpoints) ? r.endpoints : [],
    homeDerp: Number(r.home_derp),
    tags: r.tags,
    ephemeral: r.ephemeral,
    keyExpiry: isoOrNull(r.key_expiry),
    createdAt: iso(r.created_at),
    lastSeen: isoOrNull(r.last_seen),
    machineAuthorized: r.machine_authorized,
    capVersion: Number(r.cap_version),
    routableIPs: r.routable_ips,
    approvedRoutes: r.approved_routes,
    version: Number(r.version),
  };
}

export interface NodeOwner {
  userId: number | null;
  ownerKey: string;
}

export interface NewNode {
  tailnetId: number;
  owner: NodeOwner;
  machineKey: string;
  nodeKey: string;
  ipv4: string;
  ipv6: string;
  hostname: string;
  givenName: string;
  hostinfo: Record<string, unknown> | null;
  tags: string[];
  ephemeral: boolean;
  keyExpiry: Date | null;
  machineAuthorized: boolean;
  capVersion: number;
  routableIPs: string[];
  approvedRoutes: string[];
  authKeyId: number | null;
}

export interface NodePatch {
  nodeKey?: string;
  discoKey?: string | null;
  hostname?: string;
  givenName?: string;
  hostinfo?: Record<string, unknown> | null;
  endpoints?: string[];
  homeDerp?: number;
  tags?: string[];
  ephemeral?: boolean;
  keyExpiry?: Date | null;
  lastSeen?: Date | null;
  machineAuthorized?: boolean;
  capVersion?: number;
  routableIPs?: string[];
  approvedRoutes?: string[];
  userId?: number | null;
  ownerKey?: string;
  authKeyId?: number | null;
}

const patchColumns: Record<
  keyof NodePatch,
  { col: string; cast?: string; encode?: (v: unknown) => unknown }
> = {
  nodeKey: { col: 'node_key' },
  discoKey: { col: 'disco_key' },
  hostname: { col: 'hostname' },
  givenName: { col: 'given_name' },
  hostinfo: { col: 'hostinfo', cast: '::jsonb', encode: (v) => (v === null ? null : JSON.stringify(v)) },
  endpoints: { col: 'endpoints', cast: '::jsonb', encode: (v) => JSON.stringify(v) },
  homeDerp: { col: 'home_derp' },
  tags: { col: 'tags', cast: '::text[]' },
  ephemeral: { col: 'ephemeral' },
  keyExpiry: {
    col: 'key_expiry',
    cast: '::timestamptz',
    encode: (v) => (v === null ? null : (v as Date).toISOString()),
  },
  lastSeen: {
    col: 'last_seen',
    cast: '::timestamptz',
    encode: (v) => (v === null ? null : (v as Date).toISOString()),
  },
  machineAuthorized: { col: 'machine_authorized' },
  capVersion: { col: 'cap_version' },
  routableIPs: { col: 'routable_ips', cast: '::text[]' },
  approvedRoutes: { col: 'approved_routes', cast: '::text[]' },
  userId: { col: 'user_id' },
  ownerKey: { col: 'owner_key' },
  authKeyId: { col: 'auth_key_id' },
};

export class KeyRegistryRepository {
  async tailnets(q: Queryable): Promise<TailnetRecord[]> {
    const r = await q.query<{ id: number; name: string; domain: string }>(
      `SELECT id, name, domain FROM ${S}.tailnets ORDER BY id`,
    );
    return r.rows.map((t) => ({ id: Number(t.id), name: t.name, domain: t.domain }));
  }

  async setTailnetDomain(q: Queryable, tailnetId: number, domain: string): Promise<boolean> {
    const r = await q.query(`UPDATE ${S}.tailnets SET domain = $2 WHERE id = $1 AND domain <> $2`, [
      tailnetId,
      domain,
    ]);
    return r.rowCount > 0;
  }

  async setting(q: Queryable, key: string, fallback: () => string): Promise<string> {
    await q.query(`INSERT INTO ${S}.settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, [
      key,
      fallback(),
    ]);
    const r = await q.query<{ value: string }>(`SELECT value FROM ${S}.settings WHERE key = $1`, [key]);
    return r.rows[0]!.value;
  }

  /** Serialises every registration of one machine key (transaction-scoped advisory lock). */
  async lockMachine(q: Queryable, machineKey: string): Promise<void> {
    await q.query(`SELECT pg_advisory_xact_lock(hashtext('key_registry.machine'), hashtext($1))`, [
      machineKey,
    ]);
  }

  async nodeByKey(q: Queryable, nodeKey: string, forUpdate = false): Promise<NodeRecord | null> {
    const r = await q.query<NodeRow>(
      `SELECT * FROM ${S}.nodes WHERE node_key = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [nodeKey],
    );
    return r.rows[0] ? mapNode(r.rows[0]) : null;
  }

  async nodeById(q: Queryable, id: number, forUpdate = false): Promise<NodeRecord | null> {
    const r = await q.query<NodeRow>(
      `SELECT * FROM ${S}.nodes WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return r.rows[0] ? mapNode(r.rows[0]) : null;
  }

  async nodeByMachineOwner(
    q: Queryable,
    tailnetId: number,
    machineKey: string,
    ownerKey: string,
  ): Promise<NodeRecord | null> {
    const r = await q.query<NodeRow>(
      `SELECT * FROM ${S}.nodes WHERE tailnet_id = $1 AND machine_key = $2 AND owner_key = $3 FOR UPDATE`,
      [tailnetId, machineKey, ownerKey],
    );
    return r.rows[0] ? mapNode(r.rows[0]) : null;
  }

  async listNodes(q: Queryable, filter: { tailnetId?: number; userId?: number } = {}): Promise<NodeRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tailnetId !== undefined) {
      params.push(filter.tailnetId);
      where.push(`tailnet_id = $${params.length}`);
    }
    if (filter.userId !== undefined) {
      params.push(filter.userId);
      where.push(`user_id = $${params.length}`);
    }
    const r = await q.query<NodeRow>(
      `SELECT * FROM ${S}.nodes${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY id`,
      params,
    );
    return r.rows.map(mapNode);
  }

  async takenNames(q: Queryable, tailnetId: number, base: string): Promise<Set<string>> {
    const r = await q.query<{ given_name: string }>(
      `SELECT given_name FROM ${S}.nodes WHERE tailnet_id = $1 AND (given_name = $2 OR given_name LIKE $3)`,
      [tailnetId, base, `${base.slice(0, 60)}-%`],
    );
    return new Set(r.rows.map((x) => x.given_name));
  }

  async nextIpv4Counter(q: Queryable): Promise<number> {
    const r = await q.query<{ n: number | string }>(`SELECT nextval('${S}.ipv4_seq') AS n`);
    return Number(r.rows[0]!.n);
  }

  async ipv4Taken(q: Queryable, tailnetId: number, ipv4: string): Promise<boolean> {
    const r = await q.query(`SELECT 1 FROM ${S}.nodes WHERE tailnet_id = $1 AND ipv4 = $2`, [
      tailnetId,
      ipv4,
    ]);
    return r.rowCount > 0;
  }

  async insertNode(q: Queryable, n: NewNode): Promise<NodeRecord> {
    const r = await q.query<NodeRow>(
      `INSERT INTO ${S}.nodes (stable_id, tailnet_id, user_id, owner_key, machine_key, node_key, ipv4, ipv6,
         hostname, given_name, hostinfo, tags, ephemeral, key_expiry, machine_authorized, cap_version,
         routable_ips, auth_key_id, approved_routes)
       VALUES ('n' || substr(md5(random()::text || clock_timestamp()::text), 1, 12) || 'SB', $1, $2, $3, $4, $5, $6, $7,
         $8, $9, $10::jsonb, $11::text[], $12, $13::timestamptz, $14, $15, $16::text[], $17, $18::text[])
       RETURNING *`,
      [
        n.tailnetId,
        n.owner.userId,
        n.owner.ownerKey,
        n.machineKey,
        n.nodeKey,
        n.ipv4,
        n.ipv6,
        n.hostname,
        n.givenName,
        n.hostinfo === null ? null : JSON.stringify(n.hostinfo),
        n.tags,
        n.ephemeral,
        n.keyExpiry === null ? null : n.keyExpiry.toISOString(),
        n.machineAuthorized,
        n.capVersion,
        n.routableIPs,
        n.authKeyId,
        n.approvedRoutes,
      ],
    );
    return mapNode(r.rows[0]!);
  }

  /** Applies a patch and bumps the version; returns the new record (null if the node is gone). */
  async updateNode(q: Queryable, id: number, patch: NodePatch): Promise<NodeRecord | null> {
    const sets: string[] = ['version = version + 1', 'updated_at = now()'];
    const params: unknown[] = [id];
    for (const [k, v] of Object.entries(patch) as [keyof NodePatch, unknown][]) {
      if (v === undefined) continue;
      const c = patchColumns[k];
      params.push(c.encode ? c.encode(v) : v);
      sets.push(`${c.col} = $${params.length}${c.cast ?? ''}`);
    }
    const r = await q.query<NodeRow>(
      `UPDATE ${S}.nodes SET ${sets.join(', ')} WHERE id = $1 RETURNING *`,
      params,
    );
    return r.rows[0] ? mapNode(r.rows[0]) : null;
  }

  async deleteNode(q: Queryable, id: number): Promise<NodeRecord | null> {
    const r = await q.query<NodeRow>(`DELETE FROM ${S}.nodes WHERE id = $1 RETURNING *`, [id]);
    return r.rows[0] ? mapNode(r.rows[0]) : null;
  }

  /** Ephemeral nodes offline since before `cutoff`. */
  async inactiveEphemeral(q: Queryable, cutoff: Date): Promise<number[]> {
    const r = await q.query<{ id: number | string }>(
      `SELECT id FROM ${S}.nodes WHERE ephemeral AND last_seen IS NOT NULL AND last_seen < $1::timestamptz ORDER BY id LIMIT 500`,
      [cutoff.toISOString()],
    );
    return r.rows.map((x) => Number(x.id));
  }

  // ---- pre-auth keys ----

  async insertPreAuthKey(
    q: Queryable,
    k: {
      prefix: string;
      hash: string;
      tailnetId: number;
      userId: number;
      reusable: boolean;
      ephemeral: boolean;
      tags: string[];
      expiresAt: Date;
    },
  ): Promise<PreAuthKeyRecord> {
    const r = await q.query<PreAuthKeyRow>(
      `INSERT INTO ${S}.preauth_keys (prefix, hash, tailnet_id, user_id, reusable, ephemeral, tags, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7::text[], $8::timestamptz) RETURNING *`,
      [k.prefix, k.hash, k.tailnetId, k.userId, k.reusable, k.ephemeral, k.tags, k.expiresAt.toISOString()],
    );
    return mapPreAuthKey(r.rows[0]!);
  }

  async preAuthKeyByPrefix(
    q: Queryable,
    prefix: string,
  ): Promise<(PreAuthKeyRecord & { hash: string }) | null> {
    const r = await q.query<PreAuthKeyRow>(`SELECT * FROM ${S}.preauth_keys WHERE prefix = $1`, [prefix]);
    return r.rows[0] ? { ...mapPreAuthKey(r.rows[0]), hash: r.rows[0].hash } : null;
  }

  /**
   * Consumes one use of a key atomically: a single-use key can be consumed once, even by concurrent
   * registrations (the row lock makes the second UPDATE re-check `used_count = 0` and match nothing).
   */
  async consumePreAuthKey(q: Queryable, id: number): Promise<boolean> {
    const r = await q.query(
      `UPDATE ${S}.preauth_keys SET used_count = used_count + 1
       WHERE id = $1 AND (reusable OR used_count = 0) AND expires_at > now()`,
      [id],
    );
    return r.rowCount > 0;
  }

  /** Counts a use of a reusable key (outside the registration transaction). */
  async countPreAuthKeyUse(q: Queryable, id: number, n: number): Promise<void> {
    await q.query(`UPDATE ${S}.preauth_keys SET used_count = used_count + $2 WHERE id = $1`, [id, n]);
  }

  /** Expires a user's keys (the user was removed); returns how many were still unexpired. */
  async expireUserPreAuthKeys(q: Queryable, userId: number): Promise<number> {
    const r = await q.query(
      `UPDATE ${S}.preauth_keys SET expires_at = now() WHERE user_id = $1 AND expires_at > now()`,
      [userId],
    );
    return r.rowCount;
  }

  async listPreAuthKeys(q: Queryable, userId?: number): Promise<PreAuthKeyRecord[]> {
    const r = await q.query<PreAuthKeyRow>(
      `SELECT * FROM ${S}.preauth_keys${userId !== undefined ? ' WHERE user_id = $1' : ''} ORDER BY id`,
      userId !== undefined ? [userId] : [],
    );
    return r.rows.map(mapPreAuthKey);
  }

  async expirePreAuthKey(
    q: Queryable,
    by: { id?: number; prefix?: string },
  ): Promise<PreAuthKeyRecord | null> {
    const r = await q.query<PreAuthKeyRow>(
      `UPDATE ${S}.preauth_keys SET expires_at = LEAST(expires_at, now())
       WHERE ${by.id !== undefined ? 'id = $1' : 'prefix = $1'} RETURNING *`,
      [by.id ?? by.prefix],
    );
    return r.rows[0] ? mapPreAuthKey(r.rows[0]) : null;
  }
}

interface PreAuthKeyRow {
  id: number | string;
  prefix: string;
  hash: string;
  tailnet_id: number;
  user_id: number | string;
  reusable: boolean;
  ephemeral: boolean;
  tags: string[];
  created_at: Date | string;
  expires_at: Date | string;
  used_count: number;
}

function mapPreAuthKey(r: PreAuthKeyRow): PreAuthKeyRecord {
  const expiresAt = iso(r.expires_at);
  const used = Number(r.used_count);
  return {
    id: Number(r.id),
    prefix: `sbkey-${r.prefix}`,
    tailnetId: Number(r.tailnet_id),
    userId: Number(r.user_id),
    reusable: r.reusable,
    ephemeral: r.ephemeral,
    tags: r.tags,
    createdAt: iso(r.created_at),
    expiresAt,
    usedCount: used,
    usable: Date.parse(expiresAt) > Date.now() && (r.reusable || used === 0),
  };
}
