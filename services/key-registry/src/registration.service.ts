/**
 * Registration (`/machine/register` forwarded by the edge): pre-auth key login, restart with the
 * current key, key rotation, logout and expiry shortening. A registration is ONE transaction and ONE
 * `node-upserted` event: the key is checked, the addresses allocated and the announced routes
 * auto-approved (from the local users+policy view, no call to another service) before the node row
 * and its outbox event are written together.
 */
import { processMetrics, type Histogram } from '@switchboard/metrics';
import type { Queryable } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import type { NodeRecord, RegisterInput, RegisterResult } from '@switchboard/contracts';
import type { DirectoryView } from './directory.view.js';
import { hostinfoPatch, hostnameOf, routableIPsOf, sameStrings } from './hostinfo.js';
import { randomV4, v4ForCounter, v4ToString, v6For } from './ip-allocator.js';
import type { KeyRegistryConfig } from './key-registry.config.js';
import { KeyRegistryError } from './key-registry.errors.js';
import type { NodeOwner, NodePatch } from './key-registry.repository.js';
import { sanitizeLabel, uniqueLabel } from './naming.js';
import type { PreAuthKeyService, StoredPreAuthKey } from './preauth-key.service.js';
import { parseKey, verifySecret } from './preauth-keys.js';
import type { RegistryStore } from './registry.store.js';
import type { InteractiveLoginService } from './interactive-login.service.js';

type Config = Pick<KeyRegistryConfig, 'NODE_KEY_EXPIRY' | 'REQUIRE_MACHINE_APPROVAL'>;

/** What admits a node: a pre-auth key, or a browser login completed for a user. */
export interface Grant {
  tailnetId: number;
  tags: string[];
  ephemeral: boolean;
  authKeyId: number | null;
  /** For log lines: "pre-auth key", "browser login". */
  via: string;
  logFields: Record<string, unknown>;
}

function keyGrant(key: StoredPreAuthKey): Grant {
  return {
    tailnetId: key.tailnetId,
    tags: key.tags,
    ephemeral: key.ephemeral,
    authKeyId: key.id,
    via: 'pre-auth key',
    logFields: { keyPrefix: key.prefix },
  };
}

export const OTHER_MACHINE = { kind: 'error', message: 'node key is registered to another machine' } as const;

export class RegistrationService {
  constructor(
    private readonly store: RegistryStore,
    private readonly directory: DirectoryView,
    private readonly keys: PreAuthKeyService,
    private readonly pepper: () => string,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly now: () => Date,
  ) {}

  private get repo() {
    return this.store.repo;
  }

  private isExpired(node: NodeRecord): boolean {
    return node.keyExpiry !== null && Date.parse(node.keyExpiry) <= this.now().getTime();
  }

  private userKeyExpiry(): Date | null {
    const ms = this.config.NODE_KEY_EXPIRY;
    return ms === 0 ? null : new Date(this.now().getTime() + ms);
  }

  /** Browser login, when the server has a public URL for it; set by the service after construction. */
  interactive: InteractiveLoginService | null = null;

  okFor(node: NodeRecord): RegisterResult {
    return this.ok(node);
  }

  private ok(node: NodeRecord): RegisterResult {
    return {
      kind: 'ok',
      node,
      nodeKeyExpired: this.isExpired(node),
      machineAuthorized: node.machineAuthorized,
    };
  }

  /** The node's approved routes after auto-approval, as a patch field (undefined when unchanged). */
  private approvals(node: NodeRecord, patch: NodePatch = {}): string[] | undefined {
    const next = this.directory.approvedRoutesNow({
      tailnetId: node.tailnetId,
      userId: patch.userId !== undefined ? patch.userId : node.userId,
      tags: patch.tags ?? node.tags,
      routableIPs: patch.routableIPs ?? node.routableIPs,
      approvedRoutes: node.approvedRoutes,
    });
    return sameStrings(next, node.approvedRoutes) ? undefined : next;
  }

  async register(input: RegisterInput): Promise<RegisterResult> {
    const method = input.expiry !== null ? 'expiry' : input.authKey !== null ? 'auth-key' : 'node-key';
    const end = registrationSeconds().startTimer({ method });
    try {
      const r = await this.registerOnce(input);
      end({ outcome: r.kind });
      return r;
    } catch (err) {
      end({ outcome: 'failed' });
      throw err;
    }
  }

  private async registerOnce(input: RegisterInput): Promise<RegisterResult> {
    if (input.expiry !== null) {
      const at = new Date(input.expiry);
      if (at.getTime() <= this.now().getTime()) return this.logout(input);
      return this.shortenExpiry(input, at);
    }
    if (input.authKey !== null) return this.registerWithAuthKey(input, input.authKey);
    const existing = await this.repo.nodeByKey(this.store.db, input.nodeKey);
    if (existing && existing.machineKey !== input.machineKey) {
      this.log.warn('registration refused: node key belongs to another machine', {
        nodeId: existing.id,
        machineKey: input.machineKey,
      });
      return OTHER_MACHINE;
    }
    if (existing) {
      if (this.isExpired(existing)) return { kind: 'node-key-expired' };
      return this.ok(await this.refreshApprovals(existing));
    }
    if (input.oldNodeKey !== null) {
      const rotated = await this.rotateWithoutCredentials(input, input.oldNodeKey);
      if (rotated) return rotated;
    }
    if (this.interactive?.enabled()) return this.interactive.begin(input);
    return {
      kind: 'error',
      message:
        'this machine is not registered and browser login is not enabled on this server (set PUBLIC_URL); ' +
        'log in with a pre-auth key: tailscale up --auth-key=<key> (create one with "switchboard preauthkeys create --user NAME")',
    };
  }

  /**
   * A restart with the current key: routes it announced before the policy approved them are
   * approved now if the policy has changed since (one transaction, only when something changes).
   */
  /** True when the view says the user is disabled, confirmed against the log's head. */
  private async userDisabled(userId: number): Promise<boolean> {
    if (!this.directory.userNow(userId)?.disabled) return false;
    await this.directory.catchUp();
    return this.directory.userNow(userId)?.disabled === true;
  }

  private async refreshApprovals(node: NodeRecord): Promise<NodeRecord> {
    if (node.routableIPs.length === 0) return node;
    await this.directory.settleApprovals(node);
    if (this.approvals(node) === undefined) return node;
    return this.store.tx(async (q) => {
      const cur = await this.repo.nodeById(q, node.id, true);
      return cur ? this.approveInTx(q, cur) : node;
    });
  }

  /** Writes the node's auto-approvals (and its event) when the policy approves more than it has. */
  private async approveInTx(q: Queryable, node: NodeRecord): Promise<NodeRecord> {
    const approvedRoutes = this.approvals(node);
    if (approvedRoutes === undefined) return node;
    const updated = await this.repo.updateNode(q, node.id, { approvedRoutes });
    if (!updated) return node;
    await this.store.emitUpsert(q, updated);
    this.log.info('routes auto-approved by policy', { nodeId: node.id, routes: approvedRoutes });
    return updated;
  }

  private async rotateWithoutCredentials(
    input: RegisterInput,
    oldNodeKey: string,
  ): Promise<RegisterResult | null> {
    const old = await this.repo.nodeByKey(this.store.db, oldNodeKey);
    if (old) await this.directory.settleApprovals({ ...old, routableIPs: routableIPsOf(input.hostinfo) });
    return this.store.tx(async (q) => {
      await this.repo.lockMachine(q, input.machineKey);
      const old = await this.repo.nodeByKey(q, oldNodeKey, true);
      if (!old || old.machineKey !== input.machineKey || this.isExpired(old)) return null;
      const patch: NodePatch = {
        nodeKey: input.nodeKey,
        ...hostinfoPatch(old, input.hostinfo),
        capVersion: input.capVersion,
      };
      patch.approvedRoutes = this.approvals(old, patch);
      const node = await this.repo.updateNode(q, old.id, patch);
      if (!node) return null;
      await this.store.emitUpsert(q, node);
      this.log.info('node key rotated', { nodeId: node.id });
      return this.ok(node);
    });
  }

  private async registerWithAuthKey(input: RegisterInput, authKey: string): Promise<RegisterResult> {
    const parsed = parseKey(authKey);
    if (!parsed)
      return { kind: 'error', message: 'invalid pre-auth key: it is not a Switchboard key (sbkey-…)' };
    const key = await this.keys.lookup(parsed.prefix);
    if (!key || !verifySecret(this.pepper(), parsed.secret, key.hash)) {
      this.log.warn('registration refused: unknown pre-auth key', {
        prefix: parsed.prefix,
        machineKey: input.machineKey,
      });
      return { kind: 'error', message: 'invalid pre-auth key' };
    }
    const tagged = key.tags.length > 0;
    if (!tagged && (await this.userDisabled(key.userId))) {
      this.log.warn('registration refused: the key belongs to a disabled user', { userId: key.userId });
      return { kind: 'error', message: 'the user of this pre-auth key is disabled; ask an administrator' };
    }
    const owner: NodeOwner = tagged
      ? { userId: null, ownerKey: 'tagged' }
      : { userId: key.userId, ownerKey: `user:${key.userId}` };
    // Outside the transaction: if the view would leave an announced route unapproved, let it catch
    // up with the log first (a policy set a moment ago), so no lock is held while waiting.
    await this.directory.settleApprovals({
      tailnetId: key.tailnetId,
      userId: owner.userId,
      tags: key.tags,
      routableIPs: routableIPsOf(input.hostinfo),
      approvedRoutes: [],
    });
    const result = await this.store.tx((q) => this.registerInTx(q, input, key, owner));
    if (key.reusable && result.kind === 'ok') this.keys.countUse(key.id);
    return result;
  }

  private async registerInTx(
    q: Queryable,
    input: RegisterInput,
    key: StoredPreAuthKey,
    owner: NodeOwner,
  ): Promise<RegisterResult> {
    await this.repo.lockMachine(q, input.machineKey);
    const current = await this.repo.nodeByKey(q, input.nodeKey, true);
    if (current && current.machineKey !== input.machineKey) {
      this.log.warn('registration refused: node key belongs to another machine', {
        nodeId: current.id,
        machineKey: input.machineKey,
      });
      return OTHER_MACHINE;
    }
    // Containers re-run `tailscale up --authkey` on every boot with a spent key: a node that
    // presents its current, unexpired key again is simply refreshed.
    if (current && !this.isExpired(current)) return this.ok(await this.approveInTx(q, current));
    if (Date.parse(key.expiresAt) <= this.now().getTime())
      return { kind: 'error', message: 'pre-auth key expired' };
    // A single-use key is consumed inside the transaction (the row lock makes concurrent uses
    // yield one node). A reusable key is only counted after commit: locking its row here would
    // serialise every registration that shares the key.
    if (!key.reusable && !(await this.repo.consumePreAuthKey(q, key.id)))
      return { kind: 'error', message: 'pre-auth key already used' };
    const sameMachine =
      (await this.repo.nodeByMachineOwner(q, key.tailnetId, input.machineKey, owner.ownerKey)) ??
      (current && current.machineKey === input.machineKey ? current : null) ??
      (input.oldNodeKey !== null ? await this.ownedOldNode(q, input.oldNodeKey, input.machineKey) : null);
    if (sameMachine) {
      if (current && current.id !== sameMachine.id)
        return { kind: 'error', message: 'node key is already used by another node of this machine' };
    }
    return this.attachInTx(q, input, keyGrant(key), owner, sameMachine);
  }

  /**
   * Writes the node a credential (pre-auth key or completed browser login) admits: the machine's
   * node is re-registered (same id and addresses) or a new one inserted, with its one event.
   */
  async attachInTx(
    q: Queryable,
    input: RegisterInput,
    grant: Grant,
    owner: NodeOwner,
    sameMachine: NodeRecord | null,
  ): Promise<RegisterResult> {
    return sameMachine
      ? this.reRegister(q, input, grant, owner, sameMachine)
      : this.insertNew(q, input, grant, owner);
  }

  private async reRegister(
    q: Queryable,
    input: RegisterInput,
    key: Grant,
    owner: NodeOwner,
    sameMachine: NodeRecord,
  ): Promise<RegisterResult> {
    const tagged = key.tags.length > 0;
    const patch: NodePatch = {
      nodeKey: input.nodeKey,
      ...hostinfoPatch(sameMachine, input.hostinfo),
      capVersion: input.capVersion,
      keyExpiry: tagged ? null : this.userKeyExpiry(),
      ephemeral: key.ephemeral || input.ephemeral,
      userId: owner.userId,
      ownerKey: owner.ownerKey,
      authKeyId: key.authKeyId,
      // A node that re-registers with a tagged key takes the key's tags; tags it already had are kept.
      tags: tagged ? [...new Set([...sameMachine.tags, ...key.tags])].sort() : sameMachine.tags,
    };
    patch.approvedRoutes = this.approvals(sameMachine, patch);
    const node = await this.repo.updateNode(q, sameMachine.id, patch);
    if (!node)
      throw new KeyRegistryError('node_not_found', `node ${sameMachine.id} disappeared during registration`);
    await this.store.emitUpsert(q, node);
    this.log.info(`node re-registered with ${key.via}`, { nodeId: node.id, ...key.logFields });
    return this.ok(node);
  }

  private async insertNew(
    q: Queryable,
    input: RegisterInput,
    key: Grant,
    owner: NodeOwner,
  ): Promise<RegisterResult> {
    const tags = [...key.tags].sort();
    const routableIPs = routableIPsOf(input.hostinfo);
    const hostname = hostnameOf(input.hostinfo);
    const base = sanitizeLabel(hostname);
    const givenName = uniqueLabel(base, await this.repo.takenNames(q, key.tailnetId, base));
    const ipv4 = await this.allocateIpv4(q, key.tailnetId);
    const node = await this.repo.insertNode(q, {
      tailnetId: key.tailnetId,
      owner,
      machineKey: input.machineKey,
      nodeKey: input.nodeKey,
      ipv4: v4ToString(ipv4),
      ipv6: v6For(ipv4),
      hostname,
      givenName,
      hostinfo: input.hostinfo,
      tags,
      ephemeral: key.ephemeral || input.ephemeral,
      keyExpiry: tags.length > 0 ? null : this.userKeyExpiry(),
      machineAuthorized: !this.config.REQUIRE_MACHINE_APPROVAL,
      capVersion: input.capVersion,
      routableIPs,
      approvedRoutes: this.directory.approvedRoutesNow({
        tailnetId: key.tailnetId,
        userId: owner.userId,
        tags,
        routableIPs,
        approvedRoutes: [],
      }),
      authKeyId: key.authKeyId,
    });
    await this.store.emitUpsert(q, node);
    this.log.info('node registered', {
      nodeId: node.id,
      name: node.givenName,
      ipv4: node.ipv4,
      via: key.via,
      ...key.logFields,
      tags: node.tags,
      approvedRoutes: node.approvedRoutes,
    });
    return this.ok(node);
  }

  private async ownedOldNode(
    q: Queryable,
    oldNodeKey: string,
    machineKey: string,
  ): Promise<NodeRecord | null> {
    const n = await this.repo.nodeByKey(q, oldNodeKey, true);
    return n && n.machineKey === machineKey ? n : null;
  }

  private async allocateIpv4(q: Queryable, tailnetId: number): Promise<number> {
    // The sequence hands each caller a distinct counter; addresses taken by other means (or after the
    // counter wrapped) are skipped. After the counter range is used up, random probing takes over.
    for (let i = 0; i < 64; i++) {
      const counter = await this.repo.nextIpv4Counter(q);
      const fromCounter = v4ForCounter(counter);
      // Counter addresses are distinct by construction (the unique constraint is the backstop: a
      // violation retries the transaction); random ones, after the range is used up, are probed.
      if (fromCounter !== null) return fromCounter;
      if (counter <= 4_194_302) continue;
      const addr = randomV4();
      if (!(await this.repo.ipv4Taken(q, tailnetId, v4ToString(addr)))) return addr;
    }
    throw new KeyRegistryError(
      'address_space_exhausted',
      'could not find a free address in 100.64.0.0/10 after 64 attempts',
      'delete unused nodes (switchboard nodes list / nodes delete)',
    );
  }

  private async logout(input: RegisterInput): Promise<RegisterResult> {
    return this.store.tx(async (q) => {
      const node = await this.repo.nodeByKey(q, input.nodeKey, true);
      if (!node) return { kind: 'logged-out', nodeId: 0, deleted: false } as const;
      if (node.machineKey !== input.machineKey) return OTHER_MACHINE;
      if (node.ephemeral) {
        await this.repo.deleteNode(q, node.id);
        await this.store.emitRemoved(q, node, 'logout-ephemeral');
        this.log.info('ephemeral node logged out and deleted', { nodeId: node.id });
        return { kind: 'logged-out', nodeId: node.id, deleted: true } as const;
      }
      const updated = await this.repo.updateNode(q, node.id, { keyExpiry: this.now() });
      if (updated) await this.store.emitUpsert(q, updated);
      this.log.info('node logged out; key expired', { nodeId: node.id });
      return { kind: 'logged-out', nodeId: node.id, deleted: false } as const;
    });
  }

  private async shortenExpiry(input: RegisterInput, at: Date): Promise<RegisterResult> {
    return this.store.tx(async (q) => {
      const node = await this.repo.nodeByKey(q, input.nodeKey, true);
      if (!node || node.machineKey !== input.machineKey)
        return { kind: 'error', message: 'node not found' } as const;
      if (node.keyExpiry !== null && Date.parse(node.keyExpiry) <= at.getTime())
        return { kind: 'error', message: 'extending key is not allowed' } as const;
      const updated = await this.repo.updateNode(q, node.id, {
        keyExpiry: at,
        approvedRoutes: this.approvals(node),
      });
      if (!updated) return { kind: 'error', message: 'node not found' } as const;
      await this.store.emitUpsert(q, updated);
      return this.ok(updated);
    });
  }
}

/**
 * Registrations (and logins: a known node key, a key rotation, a logout or expiry change) by method
 * (auth-key, node-key, expiry) and outcome (the result kind: ok, error, node-key-expired,
 * logged-out, …; "failed" when the request threw). The _count series counts them.
 */
function registrationSeconds(): Histogram<string> {
  return processMetrics().histogram(
    'switchboard_registration_duration_seconds',
    'Registration and login requests by method and outcome, and how long they took.',
    ['method', 'outcome'],
  );
}
