/**
 * Node lifecycle after registration: lite map updates (Hostinfo, endpoints, disco key, capability
 * version — newly announced routes are auto-approved in the same transaction), admin actions
 * (approve routes, expire, tag, approve machine, delete), presence, clean-up of inactive ephemeral
 * nodes and of a removed user's nodes, and the reads (by key, list, snapshot).
 */
import type { Logger } from '@switchboard/common';
import type { NodeRecord, TailnetRecord, UpdateNodeInput } from '@switchboard/contracts';
import type { DirectoryView } from './directory.view.js';
import { hostinfoPatch, routableIPsOf, sameStrings } from './hostinfo.js';
import { KeyRegistryError, nodeNotFound } from './key-registry.errors.js';
import type { NodePatch } from './key-registry.repository.js';
import { sanitizeLabel, uniqueLabel } from './naming.js';
import { pgCode, type RegistryStore, type RemovalReason } from './registry.store.js';

export class NodeLifecycleService {
  constructor(
    private readonly store: RegistryStore,
    private readonly directory: DirectoryView,
    private readonly log: Logger,
    private readonly now: () => Date,
    private readonly ephemeralTimeoutMs: number,
  ) {}

  private get repo() {
    return this.store.repo;
  }

  async getNodeByKey(
    machineKey: string,
    nodeKey: string,
  ): Promise<{ kind: 'found'; node: NodeRecord } | { kind: 'not-found' } | { kind: 'machine-mismatch' }> {
    const node = await this.repo.nodeByKey(this.store.db, nodeKey);
    if (!node) return { kind: 'not-found' };
    if (node.machineKey !== machineKey) return { kind: 'machine-mismatch' };
    return { kind: 'found', node };
  }

  /** A lite map update (or the streaming request's fields): one transaction, one event if anything changed. */
  async updateNode(input: UpdateNodeInput): Promise<{ node: NodeRecord; changed: boolean }> {
    // Only routers (nodes announcing routes) pay for the read that lets a stale view catch up first.
    if (routableIPsOf(input.hostinfo).length > 0) {
      const before = await this.repo.nodeByKey(this.store.db, input.nodeKey);
      if (before)
        await this.directory.settleApprovals({ ...before, routableIPs: routableIPsOf(input.hostinfo) });
    }
    return this.store.tx(async (q) => {
      const node = await this.repo.nodeByKey(q, input.nodeKey, true);
      if (!node)
        throw new KeyRegistryError(
          'node_not_found',
          `no node with key ${input.nodeKey}`,
          'register the node first',
        );
      if (node.machineKey !== input.machineKey)
        throw new KeyRegistryError('machine_mismatch', `node ${node.id} belongs to another machine`);
      const patch = updatePatch(node, input);
      const routableIPs = patch.routableIPs ?? node.routableIPs;
      if (patch.routableIPs !== undefined || node.routableIPs.some((r) => !node.approvedRoutes.includes(r))) {
        const approved = this.directory.approvedRoutesNow({ ...node, routableIPs });
        if (!sameStrings(approved, node.approvedRoutes)) patch.approvedRoutes = approved;
      }
      if (Object.keys(patch).length === 0) return { node, changed: false };
      const updated = await this.repo.updateNode(q, node.id, patch);
      if (!updated) throw new KeyRegistryError('node_not_found', `node ${node.id} disappeared`);
      await this.store.emitUpsert(q, updated);
      if (patch.approvedRoutes)
        this.log.info('routes auto-approved by policy', { nodeId: node.id, routes: updated.approvedRoutes });
      return { node: updated, changed: true };
    });
  }

  async setApprovedRoutes(nodeId: number, routes: string[]): Promise<NodeRecord> {
    return this.store.tx(async (q) => {
      const node = await this.repo.updateNode(q, nodeId, { approvedRoutes: [...new Set(routes)].sort() });
      if (!node) throw nodeNotFound(nodeId);
      await this.store.emitUpsert(q, node);
      this.log.info('routes approved by admin', { nodeId, routes: node.approvedRoutes });
      return node;
    });
  }

  async listNodes(filter: { tailnetId?: number; userId?: number }): Promise<NodeRecord[]> {
    return this.repo.listNodes(this.store.db, filter);
  }

  async deleteNode(nodeId: number, reason: RemovalReason = 'deleted'): Promise<NodeRecord> {
    return this.store.tx(async (q) => {
      const node = await this.repo.deleteNode(q, nodeId);
      if (!node) throw nodeNotFound(nodeId);
      await this.store.emitRemoved(q, node, reason);
      this.log.info('node deleted', { nodeId, reason });
      return node;
    });
  }

  async expireNode(nodeId: number, at?: string): Promise<NodeRecord> {
    return this.store.tx(async (q) => {
      const when = at ? new Date(at) : this.now();
      const node = await this.repo.updateNode(q, nodeId, { keyExpiry: when });
      if (!node) throw nodeNotFound(nodeId);
      await this.store.emitUpsert(q, node);
      this.log.info('node key expired by admin', { nodeId, at: when.toISOString() });
      return node;
    });
  }

  /** Admin tagging: the node becomes a tagged node carrying exactly `tags` (user identity dropped). */
  async tagNode(nodeId: number, tags: string[]): Promise<NodeRecord> {
    try {
      return await this.store.tx(async (q) => {
        const node = await this.repo.updateNode(q, nodeId, {
          tags: [...new Set(tags)].sort(),
          userId: null,
          ownerKey: 'tagged',
          keyExpiry: null,
        });
        if (!node) throw nodeNotFound(nodeId);
        await this.store.emitUpsert(q, node);
        this.log.info('node tagged by admin', { nodeId, tags: node.tags });
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
    return this.store.tx(async (q) => {
      const node = await this.repo.updateNode(q, nodeId, { machineAuthorized: true });
      if (!node) throw new KeyRegistryError('node_not_found', `no node with id ${nodeId}`);
      await this.store.emitUpsert(q, node);
      return node;
    });
  }

  /** Admin edits from API v2: authorization, name (empty = the hostname's label), key expiry. */
  async setNodeFields(req: {
    nodeId: number;
    machineAuthorized?: boolean | undefined;
    givenName?: string | undefined;
    keyExpiry?: string | null | undefined;
  }): Promise<NodeRecord> {
    try {
      return await this.store.tx(async (q) => {
        const patch: NodePatch = {};
        if (req.machineAuthorized !== undefined) patch.machineAuthorized = req.machineAuthorized;
        if (req.keyExpiry !== undefined)
          patch.keyExpiry = req.keyExpiry === null ? null : new Date(req.keyExpiry);
        if (req.givenName !== undefined) {
          let name = req.givenName;
          if (name === '') {
            const cur = await this.repo.nodeById(q, req.nodeId, true);
            if (!cur) throw nodeNotFound(req.nodeId);
            const base = sanitizeLabel(cur.hostname);
            const taken = await this.repo.takenNames(q, cur.tailnetId, base);
            taken.delete(cur.givenName);
            name = uniqueLabel(base, taken);
          }
          patch.givenName = name;
        }
        const node = await this.repo.updateNode(q, req.nodeId, patch);
        if (!node) throw nodeNotFound(req.nodeId);
        await this.store.emitUpsert(q, node);
        this.log.info('node fields set by admin', { nodeId: req.nodeId, fields: Object.keys(patch) });
        return node;
      });
    } catch (err) {
      if (pgCode(err) === '23505')
        throw new KeyRegistryError(
          'conflict',
          `another node of the tailnet is already named "${req.givenName}"`,
          'pick another name or rename that node first',
        );
      throw err;
    }
  }

  /** A stream opened or closed: record last-seen (used for ephemeral clean-up and peers' LastSeen). */
  async recordPresence(nodeId: number, online: boolean, at: Date): Promise<void> {
    await this.store.tx(async (q) => {
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
    const cutoff = new Date(this.now().getTime() - this.ephemeralTimeoutMs);
    return this.deleteAll(await this.repo.inactiveEphemeral(this.store.db, cutoff), 'ephemeral-inactive');
  }

  /**
   * A user was removed (identity's event): its nodes go too. identity refuses to remove a user that
   * owns nodes as far as it knows; this catches a node registered while that news was in flight.
   */
  async removeUserNodes(userId: number): Promise<number> {
    const nodes = await this.repo.listNodes(this.store.db, { userId });
    return this.deleteAll(
      nodes.map((n) => n.id),
      'user-deleted',
    );
  }

  private async deleteAll(ids: number[], reason: RemovalReason): Promise<number> {
    let n = 0;
    for (const id of ids) {
      try {
        await this.deleteNode(id, reason);
        n++;
      } catch (err) {
        if (!(err instanceof KeyRegistryError && err.code === 'node_not_found')) throw err;
      }
    }
    return n;
  }

  async snapshot(): Promise<{ tailnets: TailnetRecord[]; nodes: NodeRecord[] }> {
    return this.store.db.transaction(
      async (q) => ({ tailnets: await this.repo.tailnets(q), nodes: await this.repo.listNodes(q) }),
      { isolation: 'repeatable read' },
    );
  }
}

/** The patch a lite update implies (pure): only fields that differ from the stored node. */
export function updatePatch(node: NodeRecord, input: UpdateNodeInput): NodePatch {
  const patch: NodePatch = {};
  if (input.discoKey !== null && input.discoKey !== node.discoKey) patch.discoKey = input.discoKey;
  if (input.endpoints !== null && !sameStrings(input.endpoints, node.endpoints))
    patch.endpoints = input.endpoints;
  if (input.capVersion !== node.capVersion && input.capVersion > 0) patch.capVersion = input.capVersion;
  if (input.hostinfo !== null) {
    const hp = hostinfoPatch(node, input.hostinfo);
    if (JSON.stringify(hp.hostinfo) !== JSON.stringify(node.hostinfo)) patch.hostinfo = hp.hostinfo ?? null;
    if (hp.routableIPs && !sameStrings(hp.routableIPs, node.routableIPs)) patch.routableIPs = hp.routableIPs;
    if (hp.hostname !== undefined) patch.hostname = hp.hostname;
    if (hp.homeDerp !== undefined && hp.homeDerp !== node.homeDerp) patch.homeDerp = hp.homeDerp;
  }
  return patch;
}
