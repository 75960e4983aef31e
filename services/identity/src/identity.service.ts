/**
 * identity domain logic: users and admin API keys. API keys read `sbapi-<prefix>-<secret>` and are
 * stored as HMAC-SHA256 under a pepper (fast keyed hash; secrets are 192-bit random).
 *
 * Other services keep local views of the users (fed by `user-upserted`/`user-removed`), so a user
 * change replies only once its event is in the log: any request made after the reply — a pre-auth
 * key for a user just created — finds it there (ARCHITECTURE.md, "Stale views"). Removing a user
 * asks no other service: the node owners come from a local view of key-registry's node events.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db, Queryable } from '@switchboard/db';
import { appendOutbox } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import { UserRemoved, UserUpserted, type ApiKeyRecord, type UserRecord } from '@switchboard/contracts';
import {
  apiKeyPrefixOf,
  assertRemovable,
  newUserFields,
  parseApiKey,
  type NewUserRequest,
} from './identity.domain.js';
import { IdentityError } from './identity.errors.js';
import { IdentityRepository } from './identity.repository.js';
import { LoginRepository } from './login/login.repository.js';
import type { NodeOwnersView } from './node-owners.view.js';

export const IDENTITY_SCHEMA = 'identity';

/** How long a user change waits for its event to reach the log before replying anyway. */
const PUBLISH_WAIT_MS = 2000;

export interface IdentityDeps {
  db: Db;
  logger: Logger;
  kickOutbox: () => void;
  /** Resolves once the outbox is published (rejects after the timeout). */
  waitPublished: (timeoutMs: number) => Promise<void>;
  nodeOwners: NodeOwnersView;
}

export class IdentityService {
  private readonly repo = new IdentityRepository();
  private pepper = '';

  constructor(private readonly deps: IdentityDeps) {}

  async init(): Promise<void> {
    this.pepper = await this.repo.setting(this.deps.db, 'api_key_pepper', () =>
      randomBytes(32).toString('hex'),
    );
  }

  /** Commits, then waits (bounded) until the change's event is in the log. */
  private async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    const out = await this.deps.db.transaction(fn);
    this.deps.kickOutbox();
    try {
      await this.deps.waitPublished(PUBLISH_WAIT_MS);
    } catch (err) {
      // Committed all the same; other services' views see it once the relay gets through.
      this.deps.logger.warn('user change committed but its event is not in the log yet', { err });
    }
    return out;
  }

  async createUser(req: NewUserRequest): Promise<UserRecord> {
    return this.tx(async (q) => {
      const user = await this.repo.insertUser(q, newUserFields(req));
      if (!user)
        throw new IdentityError(
          'user_exists',
          `user "${req.name}" already exists`,
          'pick another name or use the existing user',
        );
      await appendOutbox(q, IDENTITY_SCHEMA, UserUpserted.subject, { user });
      this.deps.logger.info('user created', { userId: user.id, name: user.name });
      return user;
    });
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.repo.users(this.deps.db);
  }

  async getUser(by: { id?: number | undefined; name?: string | undefined }): Promise<UserRecord | null> {
    if (by.id !== undefined) return this.repo.userById(this.deps.db, by.id);
    if (by.name !== undefined) return this.repo.userByName(this.deps.db, by.name);
    return null;
  }

  /** The user as seen inside transaction `q`. */
  async getUserIn(q: Queryable, id: number): Promise<UserRecord | null> {
    return this.repo.userById(q, id);
  }

  /** Sets a user's role; the change reaches the policy views as `user-upserted` (role autogroups). */
  async setUserRole(
    id: number,
    role: NonNullable<UserRecord['role']>,
    inTx?: (q: Queryable, before: UserRecord, after: UserRecord) => Promise<void>,
  ): Promise<UserRecord> {
    return this.tx(async (q) => {
      const before = await this.repo.userById(q, id);
      if (!before)
        throw new IdentityError(
          'user_not_found',
          `no user with id ${id}`,
          'list users with "switchboard users list"',
        );
      await q.query(`UPDATE identity.users SET role = $2, version = version + 1 WHERE id = $1`, [id, role]);
      const after = (await this.repo.userById(q, id))!;
      await appendOutbox(q, IDENTITY_SCHEMA, UserUpserted.subject, { user: after });
      await inTx?.(q, before, after);
      this.deps.logger.info('user role changed', { userId: id, from: before.role, to: role });
      return after;
    });
  }

  async deleteUser(id: number): Promise<UserRecord> {
    assertRemovable(id, await this.deps.nodeOwners.ownedBy(id));
    return this.tx(async (q) => {
      const user = await this.repo.deleteUser(q, id);
      if (!user)
        throw new IdentityError(
          'user_not_found',
          `no user with id ${id}`,
          'list users with "switchboard users list"',
        );
      await appendOutbox(q, IDENTITY_SCHEMA, UserRemoved.subject, {
        userId: user.id,
        tailnetId: user.tailnetId,
        version: user.version + 1,
      });
      return user;
    });
  }

  /** Disables or enables a user (one `user-upserted` event); a disabled user's nodes lose every peer. */
  async setUserDisabled(id: number, disabled: boolean): Promise<UserRecord> {
    return this.tx(async (q) => {
      const changed = await new LoginRepository().setDisabled(q, id, disabled);
      if (changed) {
        await appendOutbox(q, IDENTITY_SCHEMA, UserUpserted.subject, { user: changed });
        this.deps.logger.info(disabled ? 'user disabled' : 'user enabled', {
          userId: id,
          name: changed.name,
        });
        return changed;
      }
      const user = await this.repo.userById(q, id);
      if (!user)
        throw new IdentityError(
          'user_not_found',
          `no user with id ${id}`,
          'list users with "switchboard users list"',
        );
      return user;
    });
  }

  /** The stored form of a credential secret (HMAC-SHA256 under the deployment's pepper). */
  hashSecret(secret: string): string {
    return this.hash(secret);
  }

  private hash(secret: string): string {
    return createHmac('sha256', this.pepper).update(secret).digest('hex');
  }

  /** A new API access token; `userId` is its owner (it acts with the owner's role), none = the host's (owner). */
  async createApiKey(
    expiresAt: string,
    userId: number | null = null,
  ): Promise<{ key: string; record: ApiKeyRecord }> {
    const prefix = randomBytes(8).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    let tailnetId = 1;
    if (userId !== null) {
      const u = await this.repo.userById(this.deps.db, userId);
      if (!u)
        throw new IdentityError(
          'user_not_found',
          `no user with id ${userId}`,
          'list users with "switchboard users list"',
        );
      tailnetId = u.tailnetId;
    }
    const record = await this.repo.insertApiKey(this.deps.db, {
      prefix,
      hash: this.hash(secret),
      expiresAt: new Date(expiresAt),
      userId,
      tailnetId,
    });
    this.deps.logger.info('api key created', { prefix: record.prefix });
    return { key: `sbapi-${prefix}-${secret}`, record };
  }

  async verifyApiKey(key: string): Promise<{ valid: boolean; id: number | null }> {
    const parsed = parseApiKey(key);
    if (!parsed) return { valid: false, id: null };
    const rec = await this.repo.apiKeyByPrefix(this.deps.db, parsed.prefix);
    if (!rec) return { valid: false, id: null };
    const a = Buffer.from(this.hash(parsed.secret), 'hex');
    const b = Buffer.from(rec.hash, 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b) || !rec.usable) return { valid: false, id: null };
    await this.repo.touchApiKey(this.deps.db, rec.id);
    return { valid: true, id: rec.id };
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return this.repo.apiKeys(this.deps.db);
  }

  async expireApiKey(prefix: string): Promise<ApiKeyRecord> {
    const rec = await this.repo.expireApiKey(this.deps.db, apiKeyPrefixOf(prefix));
    if (!rec)
      throw new IdentityError(
        'api_key_not_found',
        `no API key ${prefix}`,
        'list keys with "switchboard apikeys list"',
      );
    return rec;
  }
}
