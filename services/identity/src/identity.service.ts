/**
 * identity domain logic: users and admin API keys. API keys read `sbapi-<prefix>-<secret>` and are
 * stored as HMAC-SHA256 under a pepper (fast keyed hash; secrets are 192-bit random).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db, Queryable } from '@switchboard/db';
import { appendOutbox } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import {
  UserRemoved,
  UserUpserted,
  callRpc,
  keyRegistry,
  type ApiKeyRecord,
  type UserRecord,
} from '@switchboard/contracts';
import type { Bus } from '@switchboard/bus';
import { IdentityError } from './identity.errors.js';
import { IdentityRepository } from './identity.repository.js';

export const IDENTITY_SCHEMA = 'identity';
const API_KEY_RE = /^sbapi-([0-9a-f]{16})-([A-Za-z0-9_-]{32})$/;

export interface IdentityDeps {
  db: Db;
  bus: Bus;
  logger: Logger;
  kickOutbox: () => void;
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

  private async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    const out = await this.deps.db.transaction(fn);
    this.deps.kickOutbox();
    return out;
  }

  async createUser(req: {
    name: string;
    displayName?: string | undefined;
    email?: string | undefined;
    tailnetId?: number | undefined;
  }): Promise<UserRecord> {
    return this.tx(async (q) => {
      const user = await this.repo.insertUser(q, {
        tailnetId: req.tailnetId ?? 1,
        name: req.name,
        loginName: req.email ?? req.name,
        displayName: req.displayName ?? req.name,
        email: req.email ?? null,
      });
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

  async deleteUser(id: number): Promise<UserRecord> {
    const { nodes } = await callRpc(this.deps.bus, keyRegistry.ListNodes, { userId: id });
    if (nodes.length > 0)
      throw new IdentityError(
        'user_has_nodes',
        `user ${id} still owns ${nodes.length} node(s)`,
        'delete them first with "switchboard nodes delete ID"',
      );
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

  private hash(secret: string): string {
    return createHmac('sha256', this.pepper).update(secret).digest('hex');
  }

  async createApiKey(expiresAt: string): Promise<{ key: string; record: ApiKeyRecord }> {
    const prefix = randomBytes(8).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const record = await this.repo.insertApiKey(this.deps.db, {
      prefix,
      hash: this.hash(secret),
      expiresAt: new Date(expiresAt),
    });
    this.deps.logger.info('api key created', { prefix: record.prefix });
    return { key: `sbapi-${prefix}-${secret}`, record };
  }

  async verifyApiKey(key: string): Promise<{ valid: boolean; id: number | null }> {
    const m = API_KEY_RE.exec(key);
    if (!m) return { valid: false, id: null };
    const rec = await this.repo.apiKeyByPrefix(this.deps.db, m[1]!);
    if (!rec) return { valid: false, id: null };
    const a = Buffer.from(this.hash(m[2]!), 'hex');
    const b = Buffer.from(rec.hash, 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b) || !rec.usable) return { valid: false, id: null };
    await this.repo.touchApiKey(this.deps.db, rec.id);
    return { valid: true, id: rec.id };
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return this.repo.apiKeys(this.deps.db);
  }

  async expireApiKey(prefix: string): Promise<ApiKeyRecord> {
    const p = prefix.replace(/^sbapi-/, '').split('-')[0] ?? '';
    const rec = await this.repo.expireApiKey(this.deps.db, p);
    if (!rec)
      throw new IdentityError(
        'api_key_not_found',
        `no API key ${prefix}`,
        'list keys with "switchboard apikeys list"',
      );
    return rec;
  }
}
