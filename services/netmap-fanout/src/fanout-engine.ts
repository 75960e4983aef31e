/**
 * The fan-out engine: holds this replica's map streams and turns read-model changes into per-stream
 * deltas. It separates what changed (ModelChange values, merged per stream until the next tick), who
 * gets it (visibility through the policy view, tracked per stream in a compact bitset of sent
 * peers), and how it is rendered (map-builder; identical frames are compressed once per tick and the
 * same bytes written to every stream that needs them).
 */
import type { Logger } from '@switchboard/common';
import type { NodeRecord, TailnetRecord } from '@switchboard/contracts';
import type { CapMap, FilterRule, Node, PeerChange, SSHPolicy } from '@switchboard/protocol';
import { Bitset, SlotMap } from './bitset.js';
import {
  dnsConfig,
  isExpired,
  MapResponseJson,
  peerPatch,
  PeerJsonCache,
  renderNode,
  TAGGED_USER_ID,
  toJson,
  userProfile,
  type DeepReadonly,
  type Json,
  type MapSettings,
} from './map-builder.js';
import type { ModelChange, ReadModelReader } from './read-model.js';

export interface StreamSink {
  /** Writes one encoded map frame. */
  write(frame: Buffer): void;
  /** Ends the stream (the client will reconnect or, for a deleted node, get 404 next time). */
  close(reason: string): void;
}

/** What the policy lets a viewer see and accept. */
export interface PolicyView {
  canSee(viewer: NodeRecord, peer: NodeRecord): boolean;
  /** Ids of every peer the viewer may see. */
  peerIds(viewer: NodeRecord): number[];
  /** JSON of the viewer's []FilterRule. */
  filterJson(viewer: NodeRecord): Json<FilterRule[]>;
  /** tailcfg.SSHPolicy for the viewer, or null when the policy has no SSH rules for it. */
  sshPolicy(viewer: NodeRecord): DeepReadonly<SSHPolicy> | null;
  /** Which of a router peer's served routes the viewer may use (for its AllowedIPs). */
  peerRoutes(viewer: NodeRecord, peer: NodeRecord): string[];
  /** Node attributes (nodeAttrs) for the viewer's self CapMap. */
  capMap(viewer: NodeRecord): Readonly<CapMap>;
}

/**
 * How map frames are built: `compress` makes one zstd frame of a text, `frame` adds the u32 LE length
 * prefix to a payload. A payload may be several concatenated zstd frames (RFC 8878; tailscale's
 * decoders read them as one), which lets full maps reuse compressed blocks of peer entries.
 */
export interface FrameEncoder {
  compress(text: string): Buffer;
  frame(payload: Buffer): Buffer;
  readonly keepAlive: Buffer;
}

/** The packet filter of a node that may not talk to anyone (unapproved machine). */
const DENY_ALL_FILTER = toJson<FilterRule[]>([]);

/** Peers per cached block of a full map (by node id range). */
const PEER_BLOCK = 256;
/** Upper bound of the compressed peer-block cache. */
const BLOCK_CACHE_BYTES = 64 << 20;

interface Pending {
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

export class MapStream {
  readonly sentPeers = new Bitset();
  readonly sentUsers = new Set<number>();
  pending: Pending | null = null;
  lastWrite = Date.now();
  closed = false;
  constructor(
    readonly id: string,
    readonly nodeId: number,
    readonly tailnetId: number,
    readonly sink: StreamSink,
    readonly keepAliveJitterMs: number,
  ) {}
}

export interface FanoutEngineOptions {
  model: ReadModelReader;
  settings: MapSettings;
  policy: PolicyView;
  encoder: FrameEncoder;
  logger: Logger;
  keepAliveMs?: number;
  /**
   * Flushes are at least this far apart (default 20 ms): a burst of changes (a reconnect storm, a
   * registration wave) is merged into one message per stream instead of one per change.
   */
  minFlushIntervalMs?: number;
  now?: () => number;
}

function emptyPending(): Pending {
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

export class FanoutEngine {
  private readonly streamsByNode = new Map<number, MapStream>();
  private readonly slots = new SlotMap();
  private readonly peerJson = new PeerJsonCache();
  private readonly blockCache = new Map<string, Buffer>();
  private blockCacheBytes = 0;
  private readonly queue: ModelChange[] = [];
  private scheduled = false;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private readonly keepAliveMs: number;
  private readonly minFlushMs: number;
  private lastFlush = 0;
  private readonly now: () => number;
  /** Frames written (all kinds) and bytes, for metrics. */
  stats = { frames: 0, bytes: 0, flushes: 0, encodes: 0, streamsOpened: 0 };

  constructor(private readonly o: FanoutEngineOptions) {
    this.keepAliveMs = o.keepAliveMs ?? 50_000;
    this.minFlushMs = o.minFlushIntervalMs ?? 20;
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.keepAliveTimer = setInterval(() => this.keepAlives(), Math.min(1000, this.keepAliveMs / 4));
    this.keepAliveTimer.unref();
  }

  stop(): void {
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    for (const s of [...this.streamsByNode.values()]) this.close(s, 'server shutting down');
  }

  get streamCount(): number {
    return this.streamsByNode.size;
  }

  streamFor(nodeId: number): MapStream | undefined {
    return this.streamsByNode.get(nodeId);
  }

  /** Opens a stream: writes the full map at once; a previous stream of the same node is closed. */
  open(id: string, node: NodeRecord, sink: StreamSink): MapStream {
    const old = this.streamsByNode.get(node.id);
    if (old) this.close(old, 'superseded by a newer stream of the same node');
    const s = new MapStream(id, node.id, node.tailnetId, sink, Math.floor(Math.random() * 9000));
    this.stats.streamsOpened++;
    this.streamsByNode.set(node.id, s);
    this.write(s, this.fullMapFrame(node, s));
    return s;
  }

  /** Closes a stream if it is still the node's current one. */
  close(s: MapStream, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    if (this.streamsByNode.get(s.nodeId) === s) this.streamsByNode.delete(s.nodeId);
    try {
      s.sink.close(reason);
    } catch (err) {
      this.o.logger.warn('closing a map stream failed', { nodeId: s.nodeId, err });
    }
  }

  /** Detaches a stream whose client went away (no close call on the sink). */
  detach(s: MapStream): void {
    s.closed = true;
    if (this.streamsByNode.get(s.nodeId) === s) this.streamsByNode.delete(s.nodeId);
  }

  /**
   * The parts of a node's full map: the object up to `"Peers":[`, the visible peers (each with a
   * signature naming exactly what its JSON depends on), and the closing text. With a stream, records
   * what was sent so later deltas are relative to it.
   */
  private fullMapParts(
    self: NodeRecord,
    s?: MapStream,
  ): { head: string; peers: { id: number; sig: string; json: Json<Node> }[]; tail: string } {
    const { model, settings, policy } = this.o;
    const now = this.now();
    const tailnet = model.tailnets.get(self.tailnetId);
    const authorized = self.machineAuthorized;
    const peers: NodeRecord[] = [];
    if (authorized) {
      for (const id of policy.peerIds(self)) {
        const p = model.nodes.get(id);
        if (p && p.id !== self.id && p.tailnetId === self.tailnetId) peers.push(p);
      }
      peers.sort((a, b) => a.id - b.id);
    }
    const users = new Set<number>([self.userId ?? TAGGED_USER_ID]);
    const entries: { id: number; sig: string; json: Json<Node> }[] = [];
    for (const p of peers) {
      s?.sentPeers.add(this.slots.slot(p.id));
      users.add(p.userId ?? TAGGED_USER_ID);
      const online = model.online.has(p.id);
      const routes = p.approvedRoutes.length > 0 ? policy.peerRoutes(self, p) : undefined;
      entries.push({
        id: p.id,
        sig: `${p.id}:${p.version}:${online ? 1 : 0}:${isExpired(p, now) ? 1 : 0}:${routes?.join('+') ?? ''}`,
        json: this.peerJson.get(p, tailnet, online, now, settings, routes),
      });
    }
    if (s) for (const u of users) s.sentUsers.add(u);
    const ssh = authorized ? policy.sshPolicy(self) : null;
    const msg = new MapResponseJson()
      .setJson('Node', this.selfJson(self, now))
      .set('DERPMap', settings.derpMap)
      .set('DNSConfig', dnsConfig(tailnet, settings))
      .set('Domain', tailnet?.domain ?? '')
      .setJson('PacketFilter', authorized ? policy.filterJson(self) : DENY_ALL_FILTER)
      .set(
        'UserProfiles',
        [...users].sort((a, b) => a - b).map((u) => userProfile(u, model.users)),
      )
      .set('ControlTime', new Date(now).toISOString());
    if (ssh) msg.set('SSHPolicy', ssh);
    if (entries.length === 0) return { head: msg.text(), peers: [], tail: '' };
    return { ...msg.splitAtNodes('Peers'), peers: entries };
  }

  /** Full map for one node as JSON (one-shot requests, tests). */
  fullMap(self: NodeRecord, s?: MapStream): string {
    const m = this.fullMapParts(self, s);
    return m.head + m.peers.map((p) => p.json).join(',') + m.tail;
  }

  /**
   * Full map for one node as a map frame. Peer entries are grouped by node-id range into blocks; a
   * block's compressed bytes are cached under the signatures of its entries, so viewers that see the
   * same peers (everyone, under most policies) share them and only the head, the block holding the
   * viewer itself and the last entry are compressed per stream.
   */
  fullMapFrame(self: NodeRecord, s?: MapStream): Buffer {
    const enc = this.o.encoder;
    const m = this.fullMapParts(self, s);
    if (m.peers.length === 0) return enc.frame(enc.compress(m.head));
    const domain = this.o.model.tailnets.get(self.tailnetId)?.domain ?? '';
    const chunks: Buffer[] = [enc.compress(m.head)];
    const last = m.peers.length - 1;
    let i = 0;
    while (i < last) {
      const block = Math.floor(m.peers[i]!.id / PEER_BLOCK);
      let j = i;
      while (j < last && Math.floor(m.peers[j]!.id / PEER_BLOCK) === block) j++;
      const group = m.peers.slice(i, j);
      const key = `${domain}|${group.map((p) => p.sig).join(',')}`;
      let bytes = this.blockCache.get(key);
      if (bytes) {
        this.blockCache.delete(key);
        this.blockCache.set(key, bytes);
      } else {
        bytes = enc.compress(group.map((p) => p.json + ',').join(''));
        this.stats.encodes++;
        this.blockCache.set(key, bytes);
        this.blockCacheBytes += bytes.length;
        for (const [k, v] of this.blockCache) {
          if (this.blockCacheBytes <= BLOCK_CACHE_BYTES) break;
          this.blockCache.delete(k);
          this.blockCacheBytes -= v.length;
        }
      }
      chunks.push(bytes);
      i = j;
    }
    chunks.push(enc.compress(m.peers[last]!.json + m.tail));
    return enc.frame(Buffer.concat(chunks));
  }

  /** A peer's entry as this viewer sees it: shared JSON unless the peer routes subnets. */
  private peerEntry(
    viewer: NodeRecord,
    peer: NodeRecord,
    tailnet: TailnetRecord | undefined,
    now: number,
  ): Json<Node> {
    const { model, settings, policy } = this.o;
    const online = model.online.has(peer.id);
    if (peer.approvedRoutes.length === 0) return this.peerJson.get(peer, tailnet, online, now, settings);
    return this.peerJson.get(peer, tailnet, online, now, settings, policy.peerRoutes(viewer, peer));
  }

  private selfJson(self: NodeRecord, now: number): Json<Node> {
    const { model, settings, policy } = this.o;
    const tailnet = model.tailnets.get(self.tailnetId);
    const node = renderNode(self, { tailnet, online: true, now, self: true, settings });
    node.CapMap = { ...policy.capMap(self), ...node.CapMap };
    return toJson(node);
  }

  /** Queues read-model changes; streams get their deltas on the next tick. */
  apply(changes: ModelChange[]): void {
    if (changes.length === 0) return;
    this.queue.push(...changes);
    if (!this.scheduled) {
      this.scheduled = true;
      const wait = this.lastFlush + this.minFlushMs - this.now();
      if (wait <= 0) setImmediate(() => this.flush());
      else setTimeout(() => this.flush(), wait);
    }
  }

  private pendingOf(s: MapStream): Pending {
    return (s.pending ??= emptyPending());
  }

  private route(c: ModelChange): void {
    const { model } = this.o;
    const now = this.now();
    switch (c.kind) {
      case 'node': {
        const self = this.streamsByNode.get(c.nodeId);
        if (self) {
          const p = this.pendingOf(self);
          if (!c.after) p.deleted = true;
          else if (c.before && c.before.machineAuthorized !== c.after.machineAuthorized) p.full = true;
          else p.self = true;
        }
        // Who newly sees or stops seeing this node comes from the policy engine (policy-effects);
        // here, streams that hold the node get its update or its removal.
        const slot = this.slots.peek(c.nodeId);
        if (slot === undefined) return;
        for (const s of this.streamsByNode.values()) {
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
        return;
      }
      case 'presence': {
        const slot = this.slots.peek(c.nodeId);
        if (slot === undefined) return;
        const node = model.nodes.get(c.nodeId);
        for (const s of this.streamsByNode.values()) {
          if (s.tailnetId !== c.tailnetId || !s.sentPeers.has(slot)) continue;
          const p = this.pendingOf(s);
          if (p.changed.has(c.nodeId)) continue;
          const patch: PeerChange = { NodeID: c.nodeId, Online: c.online };
          if (!c.online) patch.LastSeen = c.at;
          else if (node?.lastSeen) patch.LastSeen = node.lastSeen;
          p.patches.set(c.nodeId, { ...p.patches.get(c.nodeId), ...patch });
        }
        return;
      }
      case 'user': {
        for (const s of this.streamsByNode.values())
          if (s.sentUsers.has(c.userId)) this.pendingOf(s).profiles.add(c.userId);
        return;
      }
      case 'tailnet': {
        for (const s of this.streamsByNode.values()) {
          if (s.tailnetId !== c.tailnetId) continue;
          const p = this.pendingOf(s);
          p.full = true;
          p.resendPeers = true;
        }
        return;
      }
      case 'policy': {
        for (const s of this.streamsByNode.values())
          if (s.tailnetId === c.tailnetId) this.pendingOf(s).full = true;
        return;
      }
      case 'policy-effects': {
        for (const id of c.filterChanged) {
          const s = this.streamsByNode.get(id);
          if (s) this.pendingOf(s).filter = true;
        }
        for (const id of c.sshChanged) {
          const s = this.streamsByNode.get(id);
          if (s) this.pendingOf(s).ssh = true;
        }
        for (const id of c.capsChanged) {
          const s = this.streamsByNode.get(id);
          if (s) this.pendingOf(s).self = true;
        }
        if (c.peerDelta) {
          for (const [viewerId, d] of c.peerDelta) {
            const s = this.streamsByNode.get(viewerId);
            if (!s) continue;
            const p = this.pendingOf(s);
            for (const id of d.added) {
              p.removed.delete(id);
              p.changed.add(id);
            }
            for (const id of d.removed) {
              p.changed.delete(id);
              p.patches.delete(id);
              const slot = this.slots.peek(id);
              if (slot !== undefined && s.sentPeers.has(slot)) p.removed.add(id);
            }
          }
        } else {
          for (const id of c.peersChanged) {
            const s = this.streamsByNode.get(id);
            if (s) this.pendingOf(s).full = true;
          }
        }
        return;
      }
    }
  }

  /** Drains the queue: routes every change, then renders and writes one message per affected stream. */
  flush(): void {
    this.scheduled = false;
    const changes = this.queue.splice(0);
    if (changes.length === 0) return;
    this.lastFlush = this.now();
    this.stats.flushes++;
    const removedNodes: number[] = [];
    for (const c of changes) {
      try {
        this.route(c);
      } catch (err) {
        this.o.logger.error('could not route a change to streams; affected streams get a full map', {
          err,
          change: c.kind,
        });
        for (const s of this.streamsByNode.values()) this.pendingOf(s).full = true;
      }
      if (c.kind === 'node' && !c.after) removedNodes.push(c.nodeId);
    }
    const frames = new Map<string, Buffer>();
    for (const s of [...this.streamsByNode.values()]) {
      const p = s.pending;
      if (!p) continue;
      s.pending = null;
      try {
        this.deliver(s, p, frames);
      } catch (err) {
        this.o.logger.error('could not deliver a map delta; closing the stream so the client resyncs', {
          nodeId: s.nodeId,
          err,
        });
        this.close(s, 'internal error');
      }
    }
    for (const id of removedNodes) {
      if (this.o.model.nodes.has(id)) continue;
      const slot = this.slots.peek(id);
      if (slot !== undefined) for (const s of this.streamsByNode.values()) s.sentPeers.delete(slot);
      this.slots.release(id);
      this.peerJson.delete(id);
    }
  }

  private deliver(s: MapStream, p: Pending, frames: Map<string, Buffer>): void {
    const { model, settings, policy } = this.o;
    const self = model.nodes.get(s.nodeId);
    const now = this.now();
    if (p.deleted || !self) {
      this.close(s, 'node deleted');
      return;
    }
    const tailnet = model.tailnets.get(s.tailnetId);
    if (p.full) {
      // Recompute the whole peer set against what this stream holds.
      const visible = new Set<number>(self.machineAuthorized ? policy.peerIds(self) : []);
      for (const peer of model.nodes.values()) {
        if (peer.id === s.nodeId || peer.tailnetId !== s.tailnetId) continue;
        const slot = this.slots.peek(peer.id);
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
    const msg = new MapResponseJson();
    if (p.self) msg.setJson('Node', this.selfJson(self, now));
    if (p.full) {
      msg.set('DNSConfig', dnsConfig(tailnet, settings));
      msg.set('Domain', tailnet?.domain ?? '');
    }
    if (p.full || p.filter)
      msg.setJson('PacketFilter', self.machineAuthorized ? policy.filterJson(self) : DENY_ALL_FILTER);
    if (p.full || p.ssh) {
      const ssh = self.machineAuthorized ? policy.sshPolicy(self) : null;
      msg.set('SSHPolicy', ssh ?? { rules: [] });
    }
    if (p.removed.size > 0) {
      const ids = [...p.removed].sort((a, b) => a - b);
      for (const id of ids) {
        const slot = this.slots.peek(id);
        if (slot !== undefined) s.sentPeers.delete(slot);
      }
      msg.set('PeersRemoved', ids);
    }
    const newUsers: number[] = [];
    if (p.changed.size > 0) {
      const ids = [...p.changed].sort((a, b) => a - b);
      const entries: Json<Node>[] = [];
      for (const id of ids) {
        const peer = model.nodes.get(id);
        if (!peer) continue;
        s.sentPeers.add(this.slots.slot(id));
        const uid = peer.userId ?? TAGGED_USER_ID;
        if (!s.sentUsers.has(uid)) {
          s.sentUsers.add(uid);
          newUsers.push(uid);
        }
        entries.push(this.peerEntry(self, peer, tailnet, now));
      }
      if (entries.length > 0) msg.setNodes('PeersChanged', entries);
    }
    if (p.patches.size > 0) {
      const patches = [...p.patches.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
      msg.set('PeersChangedPatch', patches);
    }
    for (const u of p.profiles) newUsers.push(u);
    if (newUsers.length > 0) {
      const uniq = [...new Set(newUsers)].sort((a, b) => a - b);
      msg.set(
        'UserProfiles',
        uniq.map((u) => userProfile(u, model.users)),
      );
    }
    if (msg.empty) return;
    // Seconds resolution keeps frames identical across streams within a tick, so they compress once.
    msg.set('ControlTime', new Date(Math.floor(now / 1000) * 1000).toISOString());
    const json = msg.text();
    let frame = frames.get(json);
    if (!frame) {
      frame = this.o.encoder.frame(this.o.encoder.compress(json));
      this.stats.encodes++;
      frames.set(json, frame);
    }
    this.write(s, frame);
  }

  private write(s: MapStream, frame: Buffer): void {
    if (s.closed) return;
    s.lastWrite = this.now();
    this.stats.frames++;
    this.stats.bytes += frame.length;
    try {
      s.sink.write(frame);
    } catch (err) {
      this.o.logger.warn('writing to a map stream failed; closing it', { nodeId: s.nodeId, err });
      this.close(s, 'write failed');
    }
  }

  private keepAlives(): void {
    const now = this.now();
    for (const s of this.streamsByNode.values()) {
      if (now - s.lastWrite >= this.keepAliveMs + s.keepAliveJitterMs * (this.keepAliveMs / 50_000))
        this.write(s, this.o.encoder.keepAlive);
    }
  }
}
