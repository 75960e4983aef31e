/**
 * Pre-auth keys: creation (the owner must exist and own the key's tags under tagOwners — both
 * answered from the local users+policy view), listing, expiry, and the two things registration needs
 * fast: a short-lived lookup cache by prefix and batched use counts for reusable keys.
 */
import type { Logger } from '@switchboard/common';
import type { PreAuthKeyRecord } from '@switchboard/contracts';
import type { DirectoryView } from './directory.view.js';
import { KeyRegistryError } from './key-registry.errors.js';
import type { RegistryStore } from './registry.store.js';
import { generateKey, hashSecret } from './preauth-keys.js';

export type StoredPreAuthKey = PreAuthKeyRecord & { hash: string };

export interface CreatePreAuthKeyInput {
  userId: number;
  tailnetId?: number | undefined;
  reusable: boolean;
  ephemeral: boolean;
  tags: string[];
  expiresAt: string;
}

export class PreAuthKeyService {
  /**
   * Pre-auth keys by prefix, cached for a moment: a fleet registering with one key would otherwise
   * read the same row for every node. Expiry by an admin drops the entry here at once and reaches
   * other replicas within the TTL; single-use keys are still consumed atomically in the transaction.
   */
  private readonly cache = new Map<string, { at: number; key: StoredPreAuthKey | null }>();
  static readonly CACHE_MS = 2000;
  private readonly uses = new Map<number, number>();
  private useTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: RegistryStore,
    private readonly directory: DirectoryView,
    private readonly pepper: () => string,
    private readonly log: Logger,
  ) {}

  async create(req: CreatePreAuthKeyInput): Promise<{ key: string; record: PreAuthKeyRecord }> {
    const user = await this.directory.user(req.userId);
    if (!user)
      throw new KeyRegistryError(
        'user_not_found',
        `no user with id ${req.userId}`,
        'create it with "switchboard users create NAME"',
      );
    const tailnetId = req.tailnetId ?? user.tailnetId;
    if (req.tags.length > 0) {
      const check = await this.directory.checkTags(tailnetId, user.loginName, req.tags);
      if (!check.ok)
        throw new KeyRegistryError(
          'tags_not_allowed',
          `user "${user.name}" may not apply ${check.denied.join(', ')}`,
          'list the tags with their owners under "tagOwners" in the policy (switchboard policy set)',
        );
    }
    const k = generateKey();
    const record = await this.store.repo.insertPreAuthKey(this.store.db, {
      prefix: k.prefix,
      hash: hashSecret(this.pepper(), k.secret),
      tailnetId,
      userId: req.userId,
      reusable: req.reusable,
      ephemeral: req.ephemeral,
      tags: [...new Set(req.tags)].sort(),
      expiresAt: new Date(req.expiresAt),
    });
    this.log.info('pre-auth key created', {
      prefix: record.prefix,
      userId: req.userId,
      reusable: req.reusable,
      tags: record.tags,
    });
    return { key: k.key, record };
  }

  async list(userId?: number): Promise<PreAuthKeyRecord[]> {
    return this.store.repo.listPreAuthKeys(this.store.db, userId);
  }

  async expire(by: { id?: number | undefined; prefix?: string | undefined }): Promise<PreAuthKeyRecord> {
    const prefix = by.prefix?.replace(/^sbkey-/, '').split('-')[0];
    this.cache.clear();
    const rec = await this.store.repo.expirePreAuthKey(
      this.store.db,
      by.id !== undefined ? { id: by.id } : { prefix: prefix ?? '' },
    );
    if (!rec)
      throw new KeyRegistryError(
        'preauth_key_not_found',
        'no such pre-auth key',
        'list keys with "switchboard preauthkeys list"',
      );
    return rec;
  }

  /** Expires every key of a removed user; returns how many were still usable. */
  async expireForUser(userId: number): Promise<number> {
    this.cache.clear();
    return this.store.repo.expireUserPreAuthKeys(this.store.db, userId);
  }

  /** A key by prefix, from the cache when fresh. */
  async lookup(prefix: string): Promise<StoredPreAuthKey | null> {
    const now = Date.now();
    const hit = this.cache.get(prefix);
    if (hit && now - hit.at < PreAuthKeyService.CACHE_MS) return hit.key;
    const key = await this.store.repo.preAuthKeyByPrefix(this.store.db, prefix);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(prefix, { at: now, key });
    return key;
  }

  /** Reusable-key use counts are informational: batched and written once a second. */
  countUse(keyId: number): void {
    this.uses.set(keyId, (this.uses.get(keyId) ?? 0) + 1);
    this.useTimer ??= setTimeout(() => {
      this.useTimer = undefined;
      this.flushUses().catch((err: unknown) => this.log.warn('could not record pre-auth key uses', { err }));
    }, 1000);
  }

  async flushUses(): Promise<void> {
    if (this.useTimer) clearTimeout(this.useTimer);
    this.useTimer = undefined;
    const uses = [...this.uses];
    this.uses.clear();
    for (const [id, n] of uses) await this.store.repo.countPreAuthKeyUse(this.store.db, id, n);
  }
}
