/** key-registry's door to `key_registry.pending_logins`: interactive logins in progress. */
import type { Queryable } from '@switchboard/db';
import type { PendingLoginRecord } from '@switchboard/contracts';
import { hostnameOf } from './hostinfo.js';

const S = 'key_registry';

interface PendingRow {
  id: string;
  tailnet_id: number;
  machine_key: string;
  node_key: string;
  old_node_key: string | null;
  hostinfo: Record<string, unknown> | null;
  ephemeral: boolean;
  cap_version: number;
  created_at: Date | string;
  expires_at: Date | string;
  status: 'pending' | 'completed';
  user_id: number | string | null;
  node_id: number | string | null;
}

/** A pending login with the fields registration needs. */
export interface PendingLogin extends PendingLoginRecord {
  tailnetId: number;
  oldNodeKey: string | null;
  hostinfo: Record<string, unknown> | null;
  ephemeral: boolean;
  capVersion: number;
}

const iso = (v: Date | string): string => new Date(v).toISOString();

function mapPending(r: PendingRow): PendingLogin {
  const os = r.hostinfo && typeof r.hostinfo.OS === 'string' ? r.hostinfo.OS : '';
  return {
    id: r.id,
    tailnetId: Number(r.tailnet_id),
    machineKey: r.machine_key,
    nodeKey: r.node_key,
    oldNodeKey: r.old_node_key,
    hostinfo: r.hostinfo,
    ephemeral: r.ephemeral,
    capVersion: Number(r.cap_version),
    hostname: hostnameOf(r.hostinfo),
    os,
    createdAt: iso(r.created_at),
    expiresAt: iso(r.expires_at),
    status: r.status,
    userId: r.user_id === null ? null : Number(r.user_id),
    nodeId: r.node_id === null ? null : Number(r.node_id),
  };
}

export function toPendingLoginRecord(p: PendingLogin): PendingLoginRecord {
  return {
    id: p.id,
    machineKey: p.machineKey,
    nodeKey: p.nodeKey,
    hostname: p.hostname,
    os: p.os,
    createdAt: p.createdAt,
    expiresAt: p.expiresAt,
    status: p.status,
    userId: p.userId,
    nodeId: p.nodeId,
  };
}

export class PendingLoginRepository {
  async insert(
    q: Queryable,
    p: {
      id: string;
      machineKey: string;
      nodeKey: string;
      oldNodeKey: string | null;
      hostinfo: Record<string, unknown> | null;
      ephemeral: boolean;
      capVersion: number;
      expiresAt: Date;
    },
  ): Promise<PendingLogin> {
    const r = await q.query<PendingRow>(
      `INSERT INTO ${S}.pending_logins (id, machine_key, node_key, old_node_key, hostinfo, ephemeral, cap_version, expires_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8::timestamptz) RETURNING *`,
      [
        p.id,
        p.machineKey,
        p.nodeKey,
        p.oldNodeKey,
        p.hostinfo === null ? null : JSON.stringify(p.hostinfo),
        p.ephemeral,
        p.capVersion,
        p.expiresAt.toISOString(),
      ],
    );
    return mapPending(r.rows[0]!);
  }

  async byId(q: Queryable, id: string, forUpdate = false): Promise<PendingLogin | null> {
    const r = await q.query<PendingRow>(
      `SELECT * FROM ${S}.pending_logins WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return r.rows[0] ? mapPending(r.rows[0]) : null;
  }

  /** The newest unexpired pending login of this machine and node key (a client asking again). */
  async openFor(q: Queryable, machineKey: string, nodeKey: string, now: Date): Promise<PendingLogin | null> {
    const r = await q.query<PendingRow>(
      `SELECT * FROM ${S}.pending_logins WHERE machine_key = $1 AND node_key = $2 AND status = 'pending'
         AND expires_at > $3::timestamptz ORDER BY created_at DESC LIMIT 1`,
      [machineKey, nodeKey, now.toISOString()],
    );
    return r.rows[0] ? mapPending(r.rows[0]) : null;
  }

  async complete(q: Queryable, id: string, userId: number, nodeId: number): Promise<void> {
    await q.query(
      `UPDATE ${S}.pending_logins SET status = 'completed', user_id = $2, node_id = $3, completed_at = now() WHERE id = $1`,
      [id, userId, nodeId],
    );
  }

  /** Removes entries that expired more than `graceMs` ago (completed ones are kept as long). */
  async purge(q: Queryable, before: Date): Promise<number> {
    const r = await q.query(`DELETE FROM ${S}.pending_logins WHERE expires_at < $1::timestamptz`, [
      before.toISOString(),
    ]);
    return r.rowCount;
  }
}
