/**
 * Batching: read-model changes are queued and, once per tick (flushes at least `minFlushIntervalMs`
 * apart), routed to the streams they concern and merged into each stream's `Pending` — what that
 * stream must be told, not how. Who sees a node comes from the policy (policy-effects changes and,
 * for a full recompute, the policy view); what a stream already holds from its bitset of sent peers.
 */
import type { NodeRecord } from '@switchboard/contracts';
import type { PeerChange } from '@switchboard/protocol';
import type { SlotMap } from './bitset.js';
import type { MapStream } from './fanout-delivery.js';
import { peerPatch } from './map-builder.js';
import type { PolicyView } from './map-renderer.js';
import type { ModelChange, ReadModelReader } from './read-model.js';

/** What one stream must be told at the next flush. */
export interface Pending {
  self: boolean;
  full: boolean;
  /** Re-send every visible peer entry (their rendering changed, e.g. the tailnet domain). */
  resendPeers: boolean;
  filter: boolean;
  ssh: boolean;
  deleted: boolean;
  changed: Set<number>;
  removed: Set<number>;
  patches: Map<number, PeerChange>;
  profiles: Set<number>;
}

export function emptyPending(): Pending {
  return {
    self: false,
    full: false,
    resendPeers: false,
    filter: false,
    ssh: false,
    deleted: false,
    changed: new Set(),
    removed: new Set(),
    patches: new Map(),
    profiles: new Set(),
  };
}

export interface ChangeBatcherOptions {
  model: ReadModelReader;
  policy: PolicyView;
  /** The current stream of each node. */
  streams: ReadonlyMap<number, MapStream>;
  slots: SlotMap;
  minFlushIntervalMs: number;
  now: () => number;
  /** Called once per tick with queued changes. */
  flush: () => void;
}

export class ChangeBatcher {
  private readonly queue: ModelChange[] = [];
  private scheduled = false;
  private lastFlush = 0;

  constructor(private readonly o: ChangeBatcherOptions) {}

  /** Queues changes; `flush` is called on the next tick (paced by the minimum flush interval). */
  push(changes: ModelChange[]): void {
    if (changes.length === 0) return;
    this.queue.push(...changes);
    if (!this.scheduled) {
      this.scheduled = true;
      const wait = this.lastFlush + this.o.minFlushIntervalMs - this.o.now();
      if (wait <= 0) setImmediate(() => this.o.flush());
      else setTimeout(() => this.o.flush(), wait);
    }
  }

  /** Takes every queued change (a flush starts); empty if there was nothing. */
  take(): ModelChange[] {
    this.scheduled = false;
    const changes = this.queue.splice(0);
    if (changes.length > 0) this.lastFlush = this.o.now();
    return changes;
  }

  pendingOf(s: MapStream): Pending {
    return (s.pending ??= emptyPending());
  }

  /** Merges one change into the pending state of every stream it concerns. */
  route(c: ModelChange): void {
    switch (c.kind) {
      case 'node':
        return this.routeNode(c);
      case 'presence':
        return this.routePresence(c);
      case 'user': {
        for (const s of this.o.streams.values())
          if (s.sentUsers.has(c.userId)) this.pendingOf(s).profiles.add(c.userId);
        return;
      }
      case 'tailnet': {
        for (const s of this.o.streams.values()) {
          if (s.tailnetId !== c.tailnetId) continue;
          const p = this.pendingOf(s);
          p.full = true;
          p.resendPeers = true;
        }
        return;
      }
      case 'policy': {
        for (const s of this.o.streams.values())
          if (s.tailnetId === c.tailnetId) this.pendingOf(s).full = true;
        return;
      }
      case 'policy-effects':
        return this.routePolicyEffects(c);
    }
  }

  private routeNode(c: Extract<ModelChange, { kind: 'node' }>): void {
    const now = this.o.now();
    const self = this.o.streams.get(c.nodeId);
    if (self) {
      const p = this.pendingOf(self);
      if (!c.after) p.deleted = true;
      else if (c.before && c.before.machineAuthorized !== c.after.machineAuthorized) p.full = true;
      else p.self = true;
    }
    // Who newly sees or stops seeing this node comes from the policy engine (policy-effects);
    // here, streams that hold the node get its update or its removal.
    const slot = this.o.slots.peek(c.nodeId);
    if (slot === undefined) return;
    for (const s of this.o.streams.values()) {
      if (s.nodeId === c.nodeId || s.tailnetId !== c.tailnetId || !s.sentPeers.has(slot)) continue;
      const p = this.pendingOf(s);
      if (!c.after) {
        p.changed.delete(c.nodeId);
        p.patches.delete(c.nodeId);
        p.removed.add(c.nodeId);
        continue;
      }
      if (p.changed.has(c.nodeId)) continue;
      const patch = c.before ? peerPatch(c.before, c.after, now) : null;
      if (patch) p.patches.set(c.nodeId, { ...p.patches.get(c.nodeId), ...patch });
      else {
        p.patches.delete(c.nodeId);
        p.changed.add(c.nodeId);
      }
    }
  }

  private routePresence(c: Extract<ModelChange, { kind: 'presence' }>): void {
    const slot = this.o.slots.peek(c.nodeId);
    if (slot === undefined) return;
    const node = this.o.model.nodes.get(c.nodeId);
    for (const s of this.o.streams.values()) {
      if (s.tailnetId !== c.tailnetId || !s.sentPeers.has(slot)) continue;
      const p = this.pendingOf(s);
      if (p.changed.has(c.nodeId)) continue;
      const patch: PeerChange = { NodeID: c.nodeId, Online: c.online };
      if (!c.online) patch.LastSeen = c.at;
      else if (node?.lastSeen) patch.LastSeen = node.lastSeen;
      p.patches.set(c.nodeId, { ...p.patches.get(c.nodeId), ...patch });
    }
  }

  private routePolicyEffects(c: Extract<ModelChange, { kind: 'policy-effects' }>): void {
    const streams = this.o.streams;
    for (const id of c.filterChanged) {
      const s = streams.get(id);
      if (s) this.pendingOf(s).filter = true;
    }
    for (const id of c.sshChanged) {
      const s = streams.get(id);
      if (s) this.pendingOf(s).ssh = true;
    }
    for (const id of c.capsChanged) {
      const s = streams.get(id);
      if (s) this.pendingOf(s).self = true;
    }
    if (c.peerDelta) {
      for (const [viewerId, d] of c.peerDelta) {
        const s = streams.get(viewerId);
        if (!s) continue;
        const p = this.pendingOf(s);
        for (const id of d.added) {
          p.removed.delete(id);
          p.changed.add(id);
        }
        for (const id of d.removed) {
          p.changed.delete(id);
          p.patches.delete(id);
          const slot = this.o.slots.peek(id);
          if (slot !== undefined && s.sentPeers.has(slot)) p.removed.add(id);
        }
      }
    } else {
      for (const id of c.peersChanged) {
        const s = streams.get(id);
        if (s) this.pendingOf(s).full = true;
      }
    }
  }

  /**
   * Settles a stream's pending state before rendering: a full recompute becomes the exact peer
   * additions and removals against what the stream holds; an unapproved machine sees nobody.
   */
  resolve(s: MapStream, self: NodeRecord, p: Pending): void {
    if (p.full) {
      const visible = new Set<number>(self.machineAuthorized ? this.o.policy.peerIds(self) : []);
      for (const peer of this.o.model.nodes.values()) {
        if (peer.id === s.nodeId || peer.tailnetId !== s.tailnetId) continue;
        const slot = this.o.slots.peek(peer.id);
        const had = slot !== undefined && s.sentPeers.has(slot);
        const sees = visible.has(peer.id);
        if (sees && !had) p.changed.add(peer.id);
        else if (!sees && had) p.removed.add(peer.id);
        else if (sees && had && p.resendPeers) p.changed.add(peer.id);
      }
      p.self = true;
    }
    if (!self.machineAuthorized) {
      // An unapproved machine sees nobody, whatever the deltas said.
      p.changed.clear();
      p.patches.clear();
    }
  }
}
