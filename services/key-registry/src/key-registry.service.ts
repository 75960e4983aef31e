/**
 * key-registry domain logic: registration (pre-auth keys, restarts, key rotation, logout), node
 * lifecycle (update, expire, approve, delete, ephemeral clean-up) and pre-auth keys. Every state
 * change and its outbox event are written in one transaction; the relay is kicked after commit.
 */
import type { Db, Queryable } from '@switchboard/db';
import { appendOutbox } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import {
  NodeRemoved,
  NodeUpserted,
  TailnetUpserted,
  callRpc,
  identity,
  policy,
  type NodeRecord,
  type PreAuthKeyRecord,
  type RegisterInput,
  type RegisterResult,
  type TailnetRecord,
  type UpdateNodeInput,
} from '@switchboard/contracts';
import type { Bus } from '@switchboard/bus';
import { randomBytes } from 'node:crypto';
import type { KeyRegistryConfig } from './key-registry.config.js';
import { KeyRegistryError } from './key-registry.errors.js';
import { KeyRegistryRepository, type NodeOwner, type NodePatch } from './key-registry.repository.js';
import { generateKey, hashSecret, parseKey, verifySecret } from './preauth-keys.js';
import { randomV4, v4ForCounter, v4ToString, v6For } from './ip-allocator.js';
import { sanitizeLabel, uniqueLabel } from './naming.js';

export const SCHEMA = 'key_registry';
const DEFAULT_TAILNET = 1;

export interface KeyRegistryDeps {
  db: Db;
  bus: Bus;
  config: KeyRegistryConfig;
  logger: Logger;
  /** Wakes the outbox relay after a commit. */
  kickOutbox: () => void;
  now?: () => Date;
}

type RemovalReason = 'deleted' | 'logout-ephemeral' | 'ephemeral-inactive' | 'user-deleted';

function pgCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

export class KeyRegistryService {
  private readonly repo = new KeyRegistryRepository();
  private pepper = '';
  private readonly log: Logger;
  private readonly now: () => Date;

  constructor(private readonly deps: KeyRegistryDeps) {
    this.log = deps.logger;
    this.now = deps.now ?? (() => new Date());
  }

  /** Loads the key pepper and applies the configured tailnet domain. */
  async init(): Promise<void> {
    this.pepper =
      this.deps.config.KEY_PEPPER ??
      (await this.repo.setting(this.deps.db, 'preauth_pepper', () => randomBytes(32).toString('hex')));
    await this.tx(async (q) => {
      if (await this.repo.setTailnetDomain(q, DEFAULT_TAILNET, this.deps.config.BASE_DOMAIN)) {
        const t = (await this.repo.tailnets(q)).find((x) => x.id === DEFAULT_TAILNET);
        if (t) await appendOutbox(q, SCHEMA, TailnetUpserted.subject, { tailnet: t });
      }
    });
  }

  private async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    // Unique violations from concurrent inserts (a name or address taken between read and insert)
    // are retried a few times with fresh reads.
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await this.deps.db.transaction(fn);
        this.deps.kickOutbox();
        return out;
      } catch (err) {
        if (pgCode(err) === '23505' && attempt < 20) continue;
        throw err;
      }
    }
  }

  private async emitUpsert(q: Queryable, node: NodeRecord): Promise<void> {
    // Node events carry versions and every node change holds the node's row lock (or the machine
    // lock for a new node), so per-node order is kept without serialising the whole schema.
    await appendOutbox(q, SCHEMA, NodeUpserted.subject, { node }, { order: 'entity-order' });
  }

  private async emitRemoved(q: Queryable, node: NodeRecord, reason: RemovalReason): Promise<void> {
    await appendOutbox(
      q,
      SCHEMA,
      NodeRemoved.subject,
      {
        nodeId: node.id,
        tailnetId: node.tailnetId,
        version: node.version + 1,
        reason,
      },
      { order: 'entity-order' },
    );
  }

  private isExpired(node: NodeRecord): boolean {
    return node.keyExpiry !== null && Date.parse(node.keyExpiry) <= this.now().getTime();
  }

  private userKeyExpiry(): Date | null {
    const ms = this.deps.config.NODE_KEY_EXPIRY;
    return ms === 0 ? null : new Date(this.now().getTime() + ms);
  }

  // ---------------------------------------------------------------- registration

  async register(input: RegisterInput): Promise<RegisterResult> {
    const r = await this.registerInner(input);
    if (r.kind === 'ok' && r.node.routableIPs.some((x) => !r.node.approvedRoutes.includes(x)))
      return { ...r, node: await this.autoApprove(r.node) };
    return r;
  }

  private async registerInner(input: RegisterInput): Promise<RegisterResult> {
    if (input.expiry !== null) {
      const at = new Date(input.expiry);
      if (at.getTime() <= this.now().getTime()) return this.logout(input);
      return this.shortenExpiry(input, at);
    }
    if (input.authKey !== null) return this.registerWithAuthKey(input, input.authKey);
    const existing = await this.repo.nodeByKey(this.deps.db, input.nodeKey);
    if (existing && existing.machineKey !== input.machineKey) {
      this.log.warn('registration refused: node key belongs to another machine', {
        nodeId: existing.id,
        machineKey: input.machineKey,
      });
      return { kind: 'error', message: 'node key is registered to another machine' };
    }
    if (existing) {
      if (this.isExpired(existing)) return { kind: 'node-key-expired' };
      return this.ok(existing);
    }
    if (input.oldNodeKey !== null) {
      const rotated = await this.rotateWithoutCredentials(input, input.oldNodeKey);
      if (rotated) return rotated;
    }
    return {
      kind: 'error',
      message:
        'this machine is not registered and browser login is not enabled on this server; ' +
        'log in with a pre-auth key: tailscale up --auth-key=<key> (create one with "switchboard preauthkeys create --user NAME")',
    };
  }

  private ok(node: NodeRecord): RegisterResult {
    return {
      kind: 'ok',
      node,
      nodeKeyExpired: this.isExpired(node),
      machineAuthorized: node.machineAuthorized,
    };
  }

  private async rotateWithoutCredentials(
    input: RegisterInput,
    oldNodeKey: string,
  ): Promise<RegisterResult | null> {
    return this.tx(async (q) => {
      await this.repo.lockMachine(q, input.machineKey);
      const old = await this.repo.nodeByKey(q, oldNodeKey, true);
      if (!old || old.machineKey !== input.machineKey || this.isExpired(old)) return null;
      const node = await this.repo.updateNode(q, old.id, {
        nodeKey: input.nodeKey,
        ...this.hostinfoPatch(old, input.hostinfo),
        capVersion: input.capVersion,
      });
      if (!node) return null;
      await this.emitUpsert(q, node);
      this.log.info('node key rotated', { nodeId: node.id });
      return this.ok(node);
    });
  }

  private async registerWithAuthKey(input: RegisterInput, authKey: string): Promise<RegisterResult> {
    const parsed = parseKey(authKey);
    if (!parsed)
      return { kind: 'error', message: 'invalid pre-auth key: it is not a Switchboard key (sbkey-…)' };
    const key = await this.preAuthKey(parsed.prefix);
    if (!key || !verifySecret(this.pepper, parsed.secret, key.hash)) {
      this.log.warn('registration refused: unknown pre-auth key', {
        prefix: parsed.prefix,
        machineKey: input.machineKey,
      });
      return { kind: 'error', message: 'invalid pre-auth key' };
    }

    const tagged = key.tags.length > 0;
    const owner: NodeOwner = tagged
      ? { userId: null, ownerKey: 'tagged' }
      : { userId: key.userId, ownerKey: `user:${key.userId}` };
    const ephemeral = key.ephemeral || input.ephemeral;

    const result = await this.tx(async (q) => {
      await this.repo.lockMachine(q, input.machineKey);
      const current = await this.repo.nodeByKey(q, input.nodeKey, true);
      if (current && current.machineKey !== input.machineKey) {
        this.log.warn('registration refused: node key belongs to another machine', {
          nodeId: current.id,
          machineKey: input.machineKey,
        });
        return { kind: 'error', message: 'node key is registered to another machine' } as const;
      }
      // Containers re-run `tailscale up --authkey` on every boot with a spent key: a node that
      // presents its current, unexpired key again is simply refreshed.
      if (current && !this.isExpired(current)) return this.ok(current);
      if (Date.parse(key.expiresAt) <= this.now().getTime())
        return { kind: 'error', message: 'pre-auth key expired' } as const;
      // A single-use key is consumed inside the transaction (the row lock makes concurrent uses
      // yield one node). A reusable key is only counted after commit: locking its row here would
      // serialise every registration that shares the key.
      if (!key.reusable && !(await this.repo.consumePreAuthKey(q, key.id))) {
        return { kind: 'error', message: 'pre-auth key already used' } as const;
      }
      const keyExpiry = tagged ? null : this.userKeyExpiry();
      const sameMachine =
        (await this.repo.nodeByMachineOwner(q, key.tailnetId, input.machineKey, owner.ownerKey)) ??
        (current && current.machineKey === input.machineKey ? current : null) ??
        (input.oldNodeKey !== null ? await this.ownedOldNode(q, input.oldNodeKey, input.machineKey) : null);
      if (sameMachine) {
        const patch: NodePatch = {
          nodeKey: input.nodeKey,
          ...this.hostinfoPatch(sameMachine, input.hostinfo),
          capVersion: input.capVersion,
          keyExpiry,
          ephemeral,
          userId: owner.userId,
          ownerKey: owner.ownerKey,
          authKeyId: key.id,
          // A node that re-registers with a tagged key takes the key's tags; tags it already had are kept.
          tags: tagged ? [...new Set([...sameMachine.tags, ...key.tags])].sort() : sameMachine.tags,
        };
        if (current && current.id !== sameMachine.id) {
          return {
            kind: 'error',
            message: 'node key is already used by another node of this machine',
          } as const;
        }
        const node = await this.repo.updateNode(q, sameMachine.id, patch);
        if (!node)
          throw new KeyRegistryError(
            'node_not_found',
            `node ${sameMachine.id} disappeared during registration`,
          );
        await this.emitUpsert(q, node);
        this.log.info('node re-registered with pre-auth key', { nodeId: node.id, keyPrefix: key.prefix });
        return this.ok(node);
      }
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
        tags: [...key.tags].sort(),
        ephemeral,
        keyExpiry,
        machineAuthorized: !this.deps.config.REQUIRE_MACHINE_APPROVAL,
        capVersion: input.capVersion,
        routableIPs: routableIPsOf(input.hostinfo),
        authKeyId: key.id,
      });
      await this.emitUpsert(q, node);
      this.log.info('node registered', {
        nodeId: node.id,
        name: node.givenName,
        ipv4: node.ipv4,
        keyPrefix: key.prefix,
        tags: node.tags,
      });
      return this.ok(node);
    });
    if (key.reusable && result.kind === 'ok') this.countKeyUse(key.id);
    return result;
  }

  /**
   * Pre-auth keys by prefix, cached for a moment: a fleet registering with one key would otherwise
   * read the same row for every node. Expiry by an admin drops the entry here at once and reaches
   * other replicas within the TTL; single-use keys are still consumed atomically in the transaction.
   */
  private readonly keyCache = new Map<
    string,
    { at: number; key: Awaited<ReturnType<KeyRegistryRepository['preAuthKeyByPrefix']>> }
  >();
  private static readonly KEY_CACHE_MS = 2000;

  private async preAuthKey(
    prefix: string,
  ): Promise<Awaited<ReturnType<KeyRegistryRepository['preAuthKeyByPrefix']>>> {
    const now = Date.now();
    const hit = this.keyCache.get(prefix);
    if (hit && now - hit.at < KeyRegistryService.KEY_CACHE_MS) return hit.key;
    const key = await this.repo.preAuthKeyByPrefix(this.deps.db, prefix);
    if (this.keyCache.size > 10_000) this.keyCache.clear();
    this.keyCache.set(prefix, { at: now, key });
    return key;
  }

  private readonly keyUses = new Map<number, number>();
  private keyUseTimer: NodeJS.Timeout | undefined;

  /** Reusable-key use counts are informational: batched and written once a second. */
  private countKeyUse(keyId: number): void {
    this.keyUses.set(keyId, (this.keyUses.get(keyId) ?? 0) + 1);
    this.keyUseTimer ??= setTimeout(() => {
      this.keyUseTimer = undefined;
      this.flushKeyUses().catch((err: unknown) =>
        this.log.warn('could not record pre-auth key uses', { err }),
      );
    }, 1000);
  }

  async flushKeyUses(): Promise<void> {
    if (this.keyUseTimer) clearTimeout(this.keyUseTimer);
    this.keyUseTimer = undefined;
    const uses = [...this.keyUses];
    this.keyUses.clear();
    for (const [id, n] of uses) await this.repo.countPreAuthKeyUse(this.deps.db, id, n);
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

  private hostinfoPatch(node: NodeRecord, hostinfo: Record<string, unknown> | null): NodePatch {
    if (hostinfo === null) return {};
    const merged: Record<string, unknown> = { ...hostinfo };
    // Keep the last NetInfo when a request leaves it out.
    if (merged.NetInfo === undefined && node.hostinfo?.NetInfo !== undefined)
      merged.NetInfo = node.hostinfo.NetInfo;
    const patch: NodePatch = { hostinfo: merged, routableIPs: routableIPsOf(merged) };
    const hn = hostnameOf(merged);
    if (hn !== node.hostname) patch.hostname = hn;
    const derp = preferredDerpOf(merged);
    if (derp !== null) patch.homeDerp = derp;
    return patch;
  }

  private async logout(input: RegisterInput): Promise<RegisterResult> {
    return this.tx(async (q) => {
      const node = await this.repo.nodeByKey(q, input.nodeKey, true);
      if (!node) return { kind: 'logged-out', nodeId: 0, deleted: false } as const;
      if (node.machineKey !== input.machineKey) {
        return { kind: 'error', message: 'node key is registered to another machine' } as const;
      }
      if (node.ephemeral) {
        await this.repo.deleteNode(q, node.id);
        await this.emitRemoved(q, node, 'logout-ephemeral');
        this.log.info('ephemeral node logged out and deleted', { nodeId: node.id });
        return { kind: 'logged-out', nodeId: node.id, deleted: true } as const;
      }
      const updated = await this.repo.updateNode(q, node.id, { keyExpiry: this.now() });
      if (updated) await this.emitUpsert(q, updated);
      this.log.info('node logged out; key expired', { nodeId: node.id });
      return { kind: 'logged-out', nodeId: node.id, deleted: false } as const;
    });
  }

  private async shortenExpiry(input: RegisterInput, at: Date): Promise<RegisterResult> {
    return this.tx(async (q) => {
      const node = await this.repo.nodeByKey(q, input.nodeKey, true);
      if (!node || node.machineKey !== input.machineKey)
        return { kind: 'error', message: 'node not found' } as const;
      if (node.keyExpiry !== null && Date.parse(node.keyExpiry) <= at.getTime())
        return { kind: 'error', message: 'extending key is not allowed' } as const;
      const updated = await this.repo.updateNode(q, node.id, { keyExpiry: at });
      if (!updated) return { kind: 'error', message: 'node not found' } as const;
      await this.emitUpsert(q, updated);
      return this.ok(updated);
    });
  }

  // ---------------------------------------------------------------- node lifecycle

  async getNodeByKey(
    machineKey: string,
    nodeKey: string,
  ): Promise<{ kind: 'found'; node: NodeRecord } | { kind: 'not-found' } | { kind: 'machine-mismatch' }> {
    const node = await this.repo.nodeByKey(this.deps.db, nodeKey);
    if (!node) return { kind: 'not-found' };
    if (node.machineKey !== machineKey) return { kind: 'machine-mismatch' };
    return { kind: 'found', node };
  }

  /**
   * Routes a node announces but has not had approved are offered to the policy's autoApprovers;
   * approvals only ever grow this way (an admin removes them with set-approved-routes).
   */
  private async autoApprove(node: NodeRecord): Promise<NodeRecord> {
    const pending = node.routableIPs.filter((r) => !node.approvedRoutes.includes(r));
    if (pending.length === 0) return node;
    let routes: string[];
    try {
      const login =
        node.userId === null || node.tags.length > 0
          ? null
          : ((await callRpc(this.deps.bus, identity.GetUser, { id: node.userId })).user?.loginName ?? null);
      routes = (
        await callRpc(this.deps.bus, policy.AutoApproveRoutes, {
          tailnetId: node.tailnetId,
          node: {
            id: String(node.id),
            user: login,
            tags: node.tags,
            ipv4: node.ipv4,
            ipv6: node.ipv6,
            routableIPs: node.routableIPs,
            approvedRoutes: node.approvedRoutes,
          },
        })
      ).routes;
    } catch (err) {
      this.log.warn('could not ask the policy about route auto-approval; routes stay unapproved', {
        nodeId: node.id,
        err,
      });
      return node;
    }
    const add = routes.filter((r) => pending.includes(r));
    if (add.length === 0) return node;
    return this.tx(async (q) => {
      const cur = await this.repo.nodeById(q, node.id, true);
      if (!cur) return node;
      const updated = await this.repo.updateNode(q, node.id, {
        approvedRoutes: [...new Set([...cur.approvedRoutes, ...add])].sort(),
      });
      if (!updated) return node;
      await this.emitUpsert(q, updated);
      this.log.info('routes auto-approved by policy', { nodeId: node.id, routes: add });
      return updated;
    });
  }

  async setApprovedRoutes(nodeId: number, routes: string[]): Promise<NodeRecord> {
    return this.tx(async (q) => {
      const node = await this.repo.updateNode(q, nodeId, { approvedRoutes: [...new Set(routes)].sort() });
      if (!node) throw nodeNotFound(nodeId);
      await this.emitUpsert(q, node);
      this.log.info('routes approved by admin', { nodeId, routes: node.approvedRoutes });
      return node;
    });
  }

  /** A lite map update (or the streaming request's fields): hostinfo, endpoints, disco key, capver. */
  async updateNode(input: UpdateNodeInput): Promise<{ node: NodeRecord; changed: boolean }> {
    const r = await this.applyUpdate(input);
    if (r.changed && r.node.routableIPs.some((x) => !r.node.approvedRoutes.includes(x)))
      return { node: await this.autoApprove(r.node), changed: true };
    return r;
  }

  private async applyUpdate(input: UpdateNodeInput): Promise<{ node: NodeRecord; changed: boolean }> {
    return this.tx(async (q) => {
      const node = await this.repo.nodeByKey(q, input.nodeKey, true);
      if (!node)
        throw new KeyRegistryError(
          'node_not_found',
          `no node with key ${input.nodeKey}`,
          'register the node first',
        );
      if (node.machineKey !== input.machineKey)
        throw new KeyRegistryError('machine_mismatch', `node ${node.id} belongs to another machine`);
      const patch: NodePatch = {};
      if (input.discoKey !== null && input.discoKey !== node.discoKey) patch.discoKey = input.discoKey;
      if (input.endpoints !== null && !sameStrings(input.endpoints, node.endpoints))
        patch.endpoints = input.endpoints;
      if (input.capVersion !== node.capVersion && input.capVersion > 0) patch.capVersion = input.capVersion;
      if (input.hostinfo !== null) {
        const hp = this.hostinfoPatch(node, input.hostinfo);
        if (JSON.stringify(hp.hostinfo) !== JSON.stringify(node.hostinfo))
          patch.hostinfo = hp.hostinfo ?? null;
        if (hp.routableIPs && !sameStrings(hp.routableIPs, node.routableIPs))
          patch.routableIPs = hp.routableIPs;
        if (hp.hostname !== undefined) patch.hostname = hp.hostname;
        if (hp.homeDerp !== undefined && hp.homeDerp !== node.homeDerp) patch.homeDerp = hp.homeDerp;
      }
      if (Object.keys(patch).length === 0) return { node, changed: false };
      const updated = await this.repo.updateNode(q, node.id, patch);
      if (!updated) throw new KeyRegistryError('node_not_found', `node ${node.id} disappeared`);
      await this.emitUpsert(q, updated);
      return { node: updated, changed: true };
    });
  }

  async listNodes(filter: { tailnetId?: number; userId?: number }): Promise<NodeRecord[]> {
    return this.repo.listNodes(this.deps.db, filter);
  }

  async deleteNode(nodeId: number, reason: RemovalReason = 'deleted'): Promise<NodeRecord> {
    return this.tx(async (q) => {
      const node = await this.repo.deleteNode(q, nodeId);
      if (!node) throw nodeNotFound(nodeId);
      await this.emitRemoved(q, node, reason);
      this.log.info('node deleted', { nodeId, reason });
      return node;
    });
  }

  async expireNode(nodeId: number, at?: string): Promise<NodeRecord> {
    return this.tx(async (q) => {
      const when = at ? new Date(at) : this.now();
      const node = await this.repo.updateNode(q, nodeId, { keyExpiry: when });
      if (!node) throw nodeNotFound(nodeId);
      await this.emitUpsert(q, node);
      this.log.info('node key expired by admin', { nodeId, at: when.toISOString() });
      return node;
    });
  }

  /** Admin tagging: the node becomes a tagged node carrying exactly `tags` (user identity dropped). */
  async tagNode(nodeId: number, tags: string[]): Promise<NodeRecord> {
    try {
      return await this.tx(async (q) => {
        const node = await this.repo.updateNode(q, nodeId, {
          tags: [...new Set(tags)].sort(),
          userId: null,
          ownerKey: 'tagged',
          keyExpiry: null,
        });
        if (!node) throw nodeNotFound(nodeId);
        await this.emitUpsert(q, node);
        this.deps.logger.info('node tagged by admin', { nodeId, tags: node.tags });
        return node;
      });
    } catch (err) {
      if (pgCode(err) === '23505')
        throw new KeyRegistryError(
          'conflict',
          `node ${nodeId}'s machine already has a tagged node`,
          'delete the other node first',
        );
      throw err;
    }
  }

  async approveNode(nodeId: number): Promise<NodeRecord> {
    return this.tx(async (q) => {
      const node = await this.repo.updateNode(q, nodeId, { machineAuthorized: true });
      if (!node) throw new KeyRegistryError('node_not_found', `no node with id ${nodeId}`);
      await this.emitUpsert(q, node);
      return node;
    });
  }

  /** A stream opened or closed: record last-seen (used for ephemeral clean-up and peers' LastSeen). */
  async recordPresence(nodeId: number, online: boolean, at: Date): Promise<void> {
    await this.tx(async (q) => {
      const node = await this.repo.nodeById(q, nodeId, true);
      if (!node) return;
      // Online nodes carry no last-seen; the time is written when the stream closes.
      const lastSeen = online ? null : at;
      if ((node.lastSeen === null) === (lastSeen === null) && lastSeen === null) return;
      await this.repo.updateNode(q, nodeId, { lastSeen });
    });
  }

  /** Deletes ephemeral nodes whose stream closed more than the configured timeout ago. */
  async collectInactiveEphemeral(): Promise<number> {
    const cutoff = new Date(this.now().getTime() - this.deps.config.EPHEMERAL_INACTIVITY_TIMEOUT);
    const ids = await this.repo.inactiveEphemeral(this.deps.db, cutoff);
    let n = 0;
    for (const id of ids) {
      try {
        await this.deleteNode(id, 'ephemeral-inactive');
        n++;
      } catch (err) {
        if (!(err instanceof KeyRegistryError && err.code === 'node_not_found')) throw err;
      }
    }
    return n;
  }

  async snapshot(): Promise<{ tailnets: TailnetRecord[]; nodes: NodeRecord[] }> {
    return this.deps.db.transaction(
      async (q) => ({ tailnets: await this.repo.tailnets(q), nodes: await this.repo.listNodes(q) }),
      { isolation: 'repeatable read' },
    );
  }

  // ---------------------------------------------------------------- pre-auth keys

  async createPreAuthKey(req: {
    userId: number;
    tailnetId?: number | undefined;
    reusable: boolean;
    ephemeral: boolean;
    tags: string[];
    expiresAt: string;
  }): Promise<{ key: string; record: PreAuthKeyRecord }> {
    const { user } = await callRpc(this.deps.bus, identity.GetUser, { id: req.userId });
    if (!user)
      throw new KeyRegistryError(
        'user_not_found',
        `no user with id ${req.userId}`,
        'create it with "switchboard users create NAME"',
      );
    if (req.tags.length > 0) {
      const check = await callRpc(this.deps.bus, policy.CheckTags, {
        tailnetId: req.tailnetId ?? user.tailnetId,
        ownerLogin: user.loginName,
        tags: req.tags,
      });
      if (!check.ok)
        throw new KeyRegistryError(
          'tags_not_allowed',
          `user "${user.name}" may not apply ${check.denied.join(', ')}`,
          'list the tags with their owners under "tagOwners" in the policy (switchboard policy set)',
        );
    }
    const k = generateKey();
    const record = await this.repo.insertPreAuthKey(this.deps.db, {
      prefix: k.prefix,
      hash: hashSecret(this.pepper, k.secret),
      tailnetId: req.tailnetId ?? user.tailnetId,
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

  async listPreAuthKeys(userId?: number): Promise<PreAuthKeyRecord[]> {
    return this.repo.listPreAuthKeys(this.deps.db, userId);
  }

  async expirePreAuthKey(by: {
    id?: number | undefined;
    prefix?: string | undefined;
  }): Promise<PreAuthKeyRecord> {
    const prefix = by.prefix?.replace(/^sbkey-/, '').split('-')[0];
    this.keyCache.clear();
    const rec = await this.repo.expirePreAuthKey(
      this.deps.db,
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
}

function nodeNotFound(nodeId: number): KeyRegistryError {
  return new KeyRegistryError(
    'node_not_found',
    `no node with id ${nodeId}`,
    'list nodes with "switchboard nodes list"',
  );
}

function hostnameOf(hostinfo: Record<string, unknown> | null): string {
  const h = hostinfo?.Hostname;
  return typeof h === 'string' ? h.slice(0, 255) : '';
}

function routableIPsOf(hostinfo: Record<string, unknown> | null): string[] {
  const r = hostinfo?.RoutableIPs;
  return Array.isArray(r) ? r.filter((x): x is string => typeof x === 'string').slice(0, 1000) : [];
}

function preferredDerpOf(hostinfo: Record<string, unknown>): number | null {
  const ni = hostinfo.NetInfo;
  if (ni && typeof ni === 'object') {
    const d = (ni as Record<string, unknown>).PreferredDERP;
    if (typeof d === 'number' && Number.isInteger(d) && d >= 0) return d;
  }
  return null;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
