/** The login flow's door to Postgres: users by (provider, subject), login sessions, confirmations. */
import type { Queryable } from '@switchboard/db';
import type { UserRecord } from '@switchboard/contracts';
import { mapUser, type UserRow } from '../identity.repository.js';

const S = 'identity';

export interface UserProfileFields {
  loginName: string;
  displayName: string;
  email: string | null;
  pictureUrl: string | null;
  groups: string[];
}

export interface Confirmation {
  id: string;
  loginId: string;
  userId: number;
  browserHash: string;
  csrf: string;
  expiresAt: string;
  completedAt: string | null;
  nodeId: number | null;
}

interface ConfirmationRow {
  id: string;
  login_id: string;
  user_id: number | string;
  browser_hash: string;
  csrf: string;
  expires_at: Date | string;
  completed_at: Date | string | null;
  node_id: number | string | null;
}

const iso = (v: Date | string): string => new Date(v).toISOString();

function mapConfirmation(r: ConfirmationRow): Confirmation {
  return {
    id: r.id,
    loginId: r.login_id,
    userId: Number(r.user_id),
    browserHash: r.browser_hash,
    csrf: r.csrf,
    expiresAt: iso(r.expires_at),
    completedAt: r.completed_at === null ? null : iso(r.completed_at),
    nodeId: r.node_id === null ? null : Number(r.node_id),
  };
}

export class LoginRepository {
  async userBySubject(q: Queryable, providerId: string, subject: string): Promise<UserRecord | null> {
    const r = await q.query<UserRow>(
      `SELECT * FROM ${S}.users WHERE provider_id = $1 AND subject = $2 FOR UPDATE`,
      [providerId, subject],
    );
    return r.rows[0] ? mapUser(r.rows[0]) : null;
  }

  /** An invited user: created by an administrator, not linked to a provider, matching by login or email. */
  async invitedUser(q: Queryable, loginName: string, email: string | null): Promise<UserRecord | null> {
    const r = await q.query<UserRow>(
      `SELECT * FROM ${S}.users WHERE provider_id IS NULL AND (login_name = $1 OR name = $1 OR ($2::text IS NOT NULL AND email = $2))
       ORDER BY id LIMIT 1 FOR UPDATE`,
      [loginName, email],
    );
    return r.rows[0] ? mapUser(r.rows[0]) : null;
  }

  async nameTaken(q: Queryable, tailnetId: number, name: string): Promise<boolean> {
    const r = await q.query(`SELECT 1 FROM ${S}.users WHERE tailnet_id = $1 AND name = $2`, [
      tailnetId,
      name,
    ]);
    return r.rowCount > 0;
  }

  async insertLoginUser(
    q: Queryable,
    u: UserProfileFields & { tailnetId: number; name: string; providerId: string; subject: string },
  ): Promise<UserRecord> {
    const r = await q.query<UserRow>(
      `INSERT INTO ${S}.users (tailnet_id, name, login_name, display_name, email, profile_pic_url, provider, groups, provider_id, subject)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text[], $7, $9) RETURNING *`,
      [
        u.tailnetId,
        u.name,
        u.loginName,
        u.displayName,
        u.email,
        u.pictureUrl,
        u.providerId,
        u.groups,
        u.subject,
      ],
    );
    return mapUser(r.rows[0]!);
  }

  /** Refreshes the profile and replaces the groups (and links the provider); null when nothing changed. */
  async updateFromLogin(
    q: Queryable,
    id: number,
    u: UserProfileFields & { providerId: string; subject: string },
  ): Promise<UserRecord | null> {
    const r = await q.query<UserRow>(
      `UPDATE ${S}.users SET login_name = $2, display_name = $3, email = $4, profile_pic_url = $5, groups = $6::text[],
         provider = $7, provider_id = $7, subject = $8, version = version + 1
       WHERE id = $1 AND (login_name, display_name, email, profile_pic_url, groups, provider_id, subject)
         IS DISTINCT FROM ($2, $3, $4, $5, $6::text[], $7, $8) RETURNING *`,
      [id, u.loginName, u.displayName, u.email, u.pictureUrl, u.groups, u.providerId, u.subject],
    );
    return r.rows[0] ? mapUser(r.rows[0]) : null;
  }

  async setDisabled(q: Queryable, id: number, disabled: boolean): Promise<UserRecord | null> {
    const r = await q.query<UserRow>(
      `UPDATE ${S}.users SET disabled = $2, version = version + 1 WHERE id = $1 AND disabled <> $2 RETURNING *`,
      [id, disabled],
    );
    return r.rows[0] ? mapUser(r.rows[0]) : null;
  }

  async insertSession(
    q: Queryable,
    s: { id: string; loginId: string; browserHash: string; expiresAt: Date },
  ) {
    await q.query(
      `INSERT INTO ${S}.login_sessions (id, login_id, browser_hash, expires_at) VALUES ($1, $2, $3, $4::timestamptz)`,
      [s.id, s.loginId, s.browserHash, s.expiresAt.toISOString()],
    );
  }

  async sessionFor(q: Queryable, loginId: string, browserHash: string): Promise<boolean> {
    const r = await q.query(
      `SELECT 1 FROM ${S}.login_sessions WHERE login_id = $1 AND browser_hash = $2 AND expires_at > now()`,
      [loginId, browserHash],
    );
    return r.rowCount > 0;
  }

  async confirmationByCallback(q: Queryable, callbackHash: string): Promise<Confirmation | null> {
    const r = await q.query<ConfirmationRow>(
      `SELECT * FROM ${S}.login_confirmations WHERE callback_hash = $1`,
      [callbackHash],
    );
    return r.rows[0] ? mapConfirmation(r.rows[0]) : null;
  }

  async insertConfirmation(
    q: Queryable,
    c: {
      id: string;
      loginId: string;
      userId: number;
      browserHash: string;
      csrf: string;
      callbackHash: string;
      expiresAt: Date;
    },
  ): Promise<void> {
    await q.query(
      `INSERT INTO ${S}.login_confirmations (id, login_id, user_id, browser_hash, csrf, callback_hash, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz)`,
      [c.id, c.loginId, c.userId, c.browserHash, c.csrf, c.callbackHash, c.expiresAt.toISOString()],
    );
  }

  async confirmation(q: Queryable, id: string): Promise<Confirmation | null> {
    const r = await q.query<ConfirmationRow>(`SELECT * FROM ${S}.login_confirmations WHERE id = $1`, [id]);
    return r.rows[0] ? mapConfirmation(r.rows[0]) : null;
  }

  async markConfirmed(q: Queryable, id: string, nodeId: number): Promise<void> {
    await q.query(
      `UPDATE ${S}.login_confirmations SET completed_at = COALESCE(completed_at, now()), node_id = $2 WHERE id = $1`,
      [id, nodeId],
    );
  }

  async purge(q: Queryable): Promise<void> {
    await q.query(`DELETE FROM ${S}.oidc_attempts WHERE expires_at < now() - interval '1 day'`);
    await q.query(`DELETE FROM ${S}.login_sessions WHERE expires_at < now() - interval '1 day'`);
    await q.query(`DELETE FROM ${S}.login_confirmations WHERE expires_at < now() - interval '1 day'`);
  }
}
