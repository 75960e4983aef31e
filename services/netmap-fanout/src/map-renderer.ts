/**
 * Map building for the streams: full maps (with compressed blocks of peer entries cached and
 * shared across viewers) and delta messages from a stream's settled `Pending`. Rendering records
 * on the stream which peers and user profiles it has now been sent, so later deltas are relative
 * to it. The tailcfg values themselves come from map-builder.
 */
import type { NodeRecord, TailnetRecord } from '@switchboard/contracts';
import type { CapMap, FilterRule, MapResponse, Node, SSHPolicy } from '@switchboard/protocol';
import type { SlotMap } from './bitset.js';
import type { Pending } from './fanout-batcher.js';
import type { FanoutStats, MapStream } from './fanout-delivery.js';
import {
  dnsConfig,
  isExpired,
  MapResponseJson,
  PeerJsonCache,
  renderNode,
  TAGGED_USER_ID,
  toJson,
  userProfile,
  type DeepReadonly,
  type Json,
  type MapSettings,
} from './map-builder.js';
import type { ReadModelReader } from './read-model.js';

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

export interface MapRendererOptions {
  model: ReadModelReader;
  settings: MapSettings;
  policy: PolicyView;
  encoder: FrameEncoder;
  slots: SlotMap;
  now: () => number;
  stats: FanoutStats;
}

export class MapRenderer {
  private readonly peerJson = new PeerJsonCache();
  private readonly blockCache = new Map<string, Buffer>();
  private blockCacheBytes = 0;

  constructor(private readonly o: MapRendererOptions) {}

  /** Drops a removed node's cached entries. */
  forget(nodeId: number): void {
    this.peerJson.delete(nodeId);
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
    const now = this.o.now();
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
      s?.sentPeers.add(this.o.slots.slot(p.id));
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
      .set('DNSConfig', dnsConfig(tailnet, settings, model.dns.get(self.tailnetId)))
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
      chunks.push(this.peerBlock(`${domain}|${group.map((p) => p.sig).join(',')}`, group));
      i = j;
    }
    chunks.push(enc.compress(m.peers[last]!.json + m.tail));
    return enc.frame(Buffer.concat(chunks));
  }

  /** The compressed entries of one block (with their trailing commas), from the cache if present. */
  private peerBlock(key: string, group: { json: Json<Node> }[]): Buffer {
    let bytes = this.blockCache.get(key);
    if (bytes) {
      this.blockCache.delete(key);
      this.blockCache.set(key, bytes);
      return bytes;
    }
    bytes = this.o.encoder.compress(group.map((p) => p.json + ',').join(''));
    this.o.stats.encodes++;
    this.blockCache.set(key, bytes);
    this.blockCacheBytes += bytes.length;
    for (const [k, v] of this.blockCache) {
      if (this.blockCacheBytes <= BLOCK_CACHE_BYTES) break;
      this.blockCache.delete(k);
      this.blockCacheBytes -= v.length;
    }
    return bytes;
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

  /**
   * The delta message for a stream's settled pending state, or null when there is nothing to say.
   * Records the peers removed and sent, and the user profiles sent, on the stream.
   */
  delta(s: MapStream, self: NodeRecord, p: Pending): Json<MapResponse> | null {
    const { model, settings, policy } = this.o;
    const now = this.o.now();
    const tailnet = model.tailnets.get(s.tailnetId);
    const msg = new MapResponseJson();
    if (p.self) msg.setJson('Node', this.selfJson(self, now));
    if (p.full) {
      msg.set('DNSConfig', dnsConfig(tailnet, settings, model.dns.get(self.tailnetId)));
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
        const slot = this.o.slots.peek(id);
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
        s.sentPeers.add(this.o.slots.slot(id));
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
    if (msg.empty) return null;
    // Seconds resolution keeps frames identical across streams within a tick, so they compress once.
    msg.set('ControlTime', new Date(Math.floor(now / 1000) * 1000).toISOString());
    return msg.text();
  }

  /** One message as a map frame. */
  frame(json: string): Buffer {
    this.o.stats.encodes++;
    return this.o.encoder.frame(this.o.encoder.compress(json));
  }
}
