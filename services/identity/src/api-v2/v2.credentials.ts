/**
 * Credentials of the admin API v2: API access tokens (`sbapi-…`, sent as Basic username or Bearer),
 * OAuth clients (`keyType: client`; secret `tskey-client-<id>-<secret>`, the id embedded so a caller
 * that sends only the secret is understood) and their one-hour access tokens (`sboat-…`).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Db } from '@switchboard/db';
import type { Principal } from '../roles/roles.js';
import { V2Repository, type CredentialRow } from './v2.repository.js';

export const ACCESS_TOKEN_TTL_S = 3600;
const API_KEY_RE = /^sbapi-([0-9a-f]{16})-([A-Za-z0-9_-]{32})$/;
const ACCESS_RE = /^sboat-([0-9a-f]{16})-([A-Za-z0-9_-]{32})$/;
const CLIENT_SECRET_RE = /^tskey-client-(kc[0-9a-f]{16})-([A-Za-z0-9_-]{32})$/;

/** The public id of an OAuth client (`Key.id`). */
export const clientKeyId = (prefix: string): string => `kc${prefix}`;

export type AuthOutcome =
  { ok: true; principal: Principal } | { ok: false; reason: 'missing' | 'invalid' | 'expired' };

export class Credentials {
  private readonly repo = new V2Repository();

  constructor(
    private readonly db: Db,
    private readonly hash: (secret: string) => string,
  ) {}

  private matches(secret: string, hash: string): boolean {
    const a = Buffer.from(this.hash(secret), 'hex');
    const b = Buffer.from(hash, 'hex');
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** The token in `Authorization`: Bearer, or Basic with the token as user name (empty password). */
  static tokenOf(headers: IncomingHttpHeaders): string | null {
    const h = headers.authorization;
    if (!h) return null;
    if (h.startsWith('Bearer ')) return h.slice(7).trim();
    if (h.startsWith('Basic ')) {
      const text = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
      const i = text.indexOf(':');
      const user = i < 0 ? text : text.slice(0, i);
      return user || (i < 0 ? '' : text.slice(i + 1));
    }
    return null;
  }

  async authenticate(headers: IncomingHttpHeaders): Promise<AuthOutcome> {
    const token = Credentials.tokenOf(headers);
    if (!token) return { ok: false, reason: 'missing' };
    const api = API_KEY_RE.exec(token);
    if (api) {
      const row = await this.repo.credentialByPrefix(this.db, api[1]!);
      if (!row || row.kind !== 'api' || !this.matches(api[2]!, row.hash))
        return { ok: false, reason: 'invalid' };
      if (row.revokedAt !== null || Date.parse(row.expiresAt) <= Date.now())
        return { ok: false, reason: 'expired' };
      const role = row.userId === null ? 'owner' : await this.repo.userRole(this.db, row.userId);
      if (!role) return { ok: false, reason: 'invalid' };
      return {
        ok: true,
        principal: {
          kind: 'role',
          role,
          actor: row.userId === null ? `api-key:${row.id}` : `user:${row.userId} (api-key:${row.id})`,
          userId: row.userId,
          tailnetId: row.tailnetId,
        },
      };
    }
    const at = ACCESS_RE.exec(token);
    if (at) {
      const t = await this.repo.accessToken(this.db, at[1]!);
      if (!t || !this.matches(at[2]!, t.hash)) return { ok: false, reason: 'invalid' };
      if (Date.parse(t.expiresAt) <= Date.now()) return { ok: false, reason: 'expired' };
      const client = await this.repo.credentialById(this.db, t.clientId);
      if (!client || client.revokedAt !== null) return { ok: false, reason: 'invalid' };
      return {
        ok: true,
        principal: {
          kind: 'scopes',
          scopes: t.scopes,
          tags: client.tags,
          actor: `oauth-client:${clientKeyId(client.prefix)}`,
          clientId: client.id,
          tailnetId: client.tailnetId,
        },
      };
    }
    return { ok: false, reason: 'invalid' };
  }

  /** Checks client credentials; the client row, or null. `clientId` may be omitted (it is in the secret). */
  async client(clientId: string | undefined, secret: string): Promise<CredentialRow | null> {
    const m = CLIENT_SECRET_RE.exec(secret);
    if (!m) return null;
    if (clientId !== undefined && clientId !== '' && clientId !== m[1]) return null;
    const row = await this.repo.credentialByPrefix(this.db, m[1]!.slice(2));
    if (!row || row.kind !== 'client' || row.revokedAt !== null || !this.matches(m[2]!, row.hash))
      return null;
    if (Date.parse(row.expiresAt) <= Date.now()) return null;
    return row;
  }

  async issueAccessToken(
    clientRowId: number,
    scopes: string[],
  ): Promise<{ token: string; expiresIn: number }> {
    const prefix = randomBytes(8).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    await this.repo.insertAccessToken(this.db, {
      prefix,
      hash: this.hash(secret),
      clientId: clientRowId,
      scopes,
      expiresAt: new Date(Date.now() + ACCESS_TOKEN_TTL_S * 1000).toISOString(),
    });
    return { token: `sboat-${prefix}-${secret}`, expiresIn: ACCESS_TOKEN_TTL_S };
  }

  /** A new OAuth client: the row and its secret (shown once). */
  newClientSecret(): { prefix: string; secret: string; hash: string; full: string } {
    const prefix = randomBytes(8).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    return { prefix, secret, hash: this.hash(secret), full: `tskey-client-${clientKeyId(prefix)}-${secret}` };
  }
}
