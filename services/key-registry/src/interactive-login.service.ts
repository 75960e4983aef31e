/**
 * Interactive (browser) registration, the protocol's general case: a RegisterRequest with no auth
 * key for an unknown node gets an `AuthURL` on the public URL, backed by a pending login in
 * Postgres (shared by every replica, kept across restarts). The client's follow-up (`Followup` =
 * that URL) is answered `login-pending` while the person signs in — the edge holds it and asks
 * again when `login-settled` arrives or its poll fires. Completing the login (the person confirmed
 * the device in the browser, or an admin ran `nodes register`) attaches the device to the user in
 * one transaction with one `node-upserted` event, exactly like a pre-auth key registration.
 */
import { randomBytes } from 'node:crypto';
import type { Bus } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import {
  keyRegistry,
  publishBroadcast,
  type NodeRecord,
  type PendingLoginRecord,
  type RegisterInput,
  type RegisterResult,
} from '@switchboard/contracts';
import type { DirectoryView } from './directory.view.js';
import type { NodeOwner } from './key-registry.repository.js';
import {
  PendingLoginRepository,
  toPendingLoginRecord,
  type PendingLogin,
} from './pending-login.repository.js';
import type { RegistrationService } from './registration.service.js';
import type { RegistryStore } from './registry.store.js';

export interface InteractiveLoginConfig {
  /** Public base URL of the login pages (no trailing slash); null = browser login off. */
  publicUrl: () => string | null;
  /** How long a login URL stays valid. */
  ttlMs: number;
}

export type CompleteLoginResult =
  | { kind: 'ok'; node: NodeRecord; already: boolean }
  | { kind: 'not-found' }
  | { kind: 'expired' }
  | { kind: 'refused'; message: string };

/** The login id in a Followup URL (`<public>/login/<id>`), or null when it names none. */
export function loginIdFromUrl(followup: string): string | null {
  let path: string;
  try {
    path = new URL(followup).pathname;
  } catch {
    return null;
  }
  const m = /\/login\/([A-Za-z0-9_-]{16,64})$/.exec(path);
  return m ? m[1]! : null;
}

export class InteractiveLoginService {
  private readonly pending = new PendingLoginRepository();

  constructor(
    private readonly store: RegistryStore,
    private readonly directory: DirectoryView,
    private readonly registration: RegistrationService,
    private readonly bus: Bus,
    private readonly config: InteractiveLoginConfig,
    private readonly log: Logger,
    private readonly now: () => Date,
  ) {}

  enabled(): boolean {
    return this.config.publicUrl() !== null;
  }

  private urlFor(id: string): string {
    return `${this.config.publicUrl()}/login/${id}`;
  }

  /**
   * A request with no credentials for a node key this server does not know: a follow-up of a
   * login in progress is held; anything else gets a login URL (an unknown or expired follow-up a
   * fresh one, so the client never needs a restart).
   */
  async begin(input: RegisterInput): Promise<RegisterResult> {
    const now = this.now();
    if (input.followup !== '') {
      const id = loginIdFromUrl(input.followup);
      const p = id === null ? null : await this.pending.byId(this.store.db, id);
      if (p && p.machineKey === input.machineKey && p.nodeKey === input.nodeKey) {
        if (p.status === 'pending' && Date.parse(p.expiresAt) > now.getTime())
          return { kind: 'login-pending', loginId: p.id, expiresAt: p.expiresAt };
        if (p.status === 'completed' && p.nodeId !== null) {
          const node = await this.store.repo.nodeById(this.store.db, p.nodeId);
          if (node && node.nodeKey === input.nodeKey && node.machineKey === input.machineKey)
            return this.registration.okFor(node);
        }
      } else if (p) {
        this.log.warn('follow-up refused: the login URL belongs to another machine or node key', {
          loginId: p.id,
          machineKey: input.machineKey,
        });
      }
    }
    const open = await this.pending.openFor(this.store.db, input.machineKey, input.nodeKey, now);
    if (open && input.followup === '')
      return { kind: 'auth-url', url: this.urlFor(open.id), loginId: open.id };
    const created = await this.pending.insert(this.store.db, {
      id: randomBytes(24).toString('base64url'),
      machineKey: input.machineKey,
      nodeKey: input.nodeKey,
      oldNodeKey: input.oldNodeKey,
      hostinfo: input.hostinfo,
      ephemeral: input.ephemeral,
      capVersion: input.capVersion,
      expiresAt: new Date(now.getTime() + this.config.ttlMs),
    });
    this.log.info('browser login started', {
      loginId: created.id,
      hostname: created.hostname,
      machineKey: created.machineKey,
      expiresAt: created.expiresAt,
    });
    return { kind: 'auth-url', url: this.urlFor(created.id), loginId: created.id };
  }

  async get(loginId: string): Promise<PendingLoginRecord | null> {
    const p = await this.pending.byId(this.store.db, loginId);
    return p ? toPendingLoginRecord(p) : null;
  }

  /** Attaches the pending login's device to the user; a second call reports the first result. */
  async complete(loginId: string, userId: number): Promise<CompleteLoginResult> {
    let user = await this.directory.user(userId);
    if (user?.disabled) {
      // Refusals are confirmed against the log's head (the user may have been enabled a moment ago).
      await this.directory.catchUp();
      user = this.directory.userNow(userId);
    }
    if (!user) return { kind: 'refused', message: `no user with id ${userId}` };
    if (user.disabled) return { kind: 'refused', message: `user ${user.name} is disabled` };
    const first = await this.pending.byId(this.store.db, loginId);
    if (!first) return { kind: 'not-found' };
    const result = await this.store.tx((q) => this.completeInTx(q, loginId, user, first));
    if (result.kind === 'ok' && !result.already) {
      this.log.info('browser login completed', { loginId, userId, nodeId: result.node.id });
      publishBroadcast(this.bus, keyRegistry.LoginSettled, { loginId });
    }
    return result;
  }

  private async completeInTx(
    q: Parameters<Parameters<RegistryStore['tx']>[0]>[0],
    loginId: string,
    user: { id: number; tailnetId: number },
    first: PendingLogin,
  ): Promise<CompleteLoginResult> {
    const repo = this.store.repo;
    await repo.lockMachine(q, first.machineKey);
    const p = await this.pending.byId(q, loginId, true);
    if (!p) return { kind: 'not-found' };
    if (p.status === 'completed') {
      const node = p.nodeId === null ? null : await repo.nodeById(q, p.nodeId);
      if (node && node.userId === user.id) return { kind: 'ok', node, already: true };
      return { kind: 'refused', message: 'this login was already completed for another user' };
    }
    if (Date.parse(p.expiresAt) <= this.now().getTime()) return { kind: 'expired' };
    const current = await repo.nodeByKey(q, p.nodeKey, true);
    if (current && current.machineKey !== p.machineKey)
      return { kind: 'refused', message: 'node key is registered to another machine' };
    const owner: NodeOwner = { userId: user.id, ownerKey: `user:${user.id}` };
    const old = p.oldNodeKey !== null ? await repo.nodeByKey(q, p.oldNodeKey, true) : null;
    const sameMachine =
      (await repo.nodeByMachineOwner(q, user.tailnetId, p.machineKey, owner.ownerKey)) ??
      current ??
      (old && old.machineKey === p.machineKey ? old : null);
    if (current && sameMachine && current.id !== sameMachine.id)
      return { kind: 'refused', message: 'node key is already used by another node of this machine' };
    const input: RegisterInput = {
      machineKey: p.machineKey,
      capVersion: p.capVersion,
      nodeKey: p.nodeKey,
      oldNodeKey: p.oldNodeKey,
      authKey: null,
      expiry: null,
      followup: '',
      hostinfo: p.hostinfo,
      ephemeral: p.ephemeral,
    };
    const r = await this.registration.attachInTx(
      q,
      input,
      {
        tailnetId: user.tailnetId,
        tags: [],
        ephemeral: false,
        authKeyId: null,
        via: 'browser login',
        logFields: { loginId },
      },
      owner,
      sameMachine,
    );
    if (r.kind !== 'ok') return { kind: 'refused', message: r.kind === 'error' ? r.message : r.kind };
    await this.pending.complete(q, loginId, user.id, r.node.id);
    return { kind: 'ok', node: r.node, already: false };
  }

  /** Drops logins that expired more than an hour ago. */
  async purgeExpired(): Promise<number> {
    return this.pending.purge(this.store.db, new Date(this.now().getTime() - 3_600_000));
  }
}
