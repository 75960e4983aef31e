/**
 * The replica's in-memory read model of the tailnets: nodes, users, tailnets and policies, rebuilt
 * from snapshots and kept current by events. Applying an event is idempotent: a record whose version
 * is not newer than the one held is ignored. Each apply returns what changed, for the fan-out.
 */
import type {
  NodeRecord,
  PolicyRecord,
  TailnetDnsRecord,
  TailnetRecord,
  UserRecord,
} from '@switchboard/contracts';

/** What a policy engine reported after a node, user or policy change (derived, not stored). */
export interface PolicyEffects {
  kind: 'policy-effects';
  tailnetId: number;
  filterChanged: ReadonlySet<number>;
  peersChanged: ReadonlySet<number>;
  sshChanged: ReadonlySet<number>;
  capsChanged: ReadonlySet<number>;
  /** Per node, peers added/removed; absent = recompute the peer sets of `peersChanged` fully. */
  peerDelta: ReadonlyMap<number, { added: readonly number[]; removed: readonly number[] }> | undefined;
}

export type ModelChange =
  | PolicyEffects
  | {
      kind: 'node';
      nodeId: number;
      tailnetId: number;
      before: NodeRecord | undefined;
      after: NodeRecord | undefined;
    }
  | { kind: 'user'; userId: number; after: UserRecord | undefined }
  | { kind: 'tailnet'; tailnetId: number }
  | { kind: 'policy'; tailnetId: number }
  | { kind: 'presence'; nodeId: number; tailnetId: number; online: boolean; at: string };

/** The read model without its mutators: what code outside the ViewIngress may use. */
export interface ReadModelReader {
  readonly nodes: ReadonlyMap<number, NodeRecord>;
  readonly users: ReadonlyMap<number, UserRecord>;
  readonly tailnets: ReadonlyMap<number, TailnetRecord>;
  readonly policies: ReadonlyMap<number, PolicyRecord>;
  /** DNS set through the admin API, per tailnet (absent: the DNS settings of the config). */
  readonly dns: ReadonlyMap<number, TailnetDnsRecord>;
  readonly online: ReadonlySet<number>;
  nodeByKey(nodeKey: string): NodeRecord | undefined;
}

/** The model itself; written only through the ViewIngress (view-ingress.ts). */
export class ReadModel implements ReadModelReader {
  readonly nodes = new Map<number, NodeRecord>();
  private readonly byNodeKey = new Map<string, number>();
  readonly users = new Map<number, UserRecord>();
  readonly tailnets = new Map<number, TailnetRecord>();
  readonly policies = new Map<number, PolicyRecord>();
  readonly dns = new Map<number, TailnetDnsRecord>();
  /** Nodes with a live stream on any replica. */
  readonly online = new Set<number>();
  /** Versions of removed nodes/users, so a late upsert of an older version is not resurrected. */
  private readonly tombstones = new Map<string, number>();

  nodeByKey(nodeKey: string): NodeRecord | undefined {
    const id = this.byNodeKey.get(nodeKey);
    return id === undefined ? undefined : this.nodes.get(id);
  }

  upsertNode(node: NodeRecord): ModelChange | null {
    const before = this.nodes.get(node.id);
    if (before && before.version >= node.version) return null;
    const tomb = this.tombstones.get(`n${node.id}`);
    if (tomb !== undefined && tomb >= node.version) return null;
    if (before && before.nodeKey !== node.nodeKey) this.byNodeKey.delete(before.nodeKey);
    this.nodes.set(node.id, node);
    this.byNodeKey.set(node.nodeKey, node.id);
    return { kind: 'node', nodeId: node.id, tailnetId: node.tailnetId, before, after: node };
  }

  removeNode(nodeId: number, version: number): ModelChange | null {
    const prevTomb = this.tombstones.get(`n${nodeId}`) ?? -1;
    this.tombstones.set(`n${nodeId}`, Math.max(prevTomb, version));
    const before = this.nodes.get(nodeId);
    if (!before || before.version >= version) return null;
    this.nodes.delete(nodeId);
    this.byNodeKey.delete(before.nodeKey);
    this.online.delete(nodeId);
    return { kind: 'node', nodeId, tailnetId: before.tailnetId, before, after: undefined };
  }

  upsertUser(user: UserRecord): ModelChange | null {
    const before = this.users.get(user.id);
    if (before && before.version >= user.version) return null;
    const tomb = this.tombstones.get(`u${user.id}`);
    if (tomb !== undefined && tomb >= user.version) return null;
    this.users.set(user.id, user);
    return { kind: 'user', userId: user.id, after: user };
  }

  removeUser(userId: number, version: number): ModelChange | null {
    this.tombstones.set(`u${userId}`, Math.max(this.tombstones.get(`u${userId}`) ?? -1, version));
    const before = this.users.get(userId);
    if (!before || before.version >= version) return null;
    this.users.delete(userId);
    return { kind: 'user', userId, after: undefined };
  }

  /** A tailnet's DNS changed: every map of the tailnet gets the new DNSConfig (a `tailnet` change). */
  setDns(d: TailnetDnsRecord): ModelChange | null {
    const before = this.dns.get(d.tailnetId);
    if (before && before.version >= d.version) return null;
    this.dns.set(d.tailnetId, d);
    return { kind: 'tailnet', tailnetId: d.tailnetId };
  }

  upsertTailnet(t: TailnetRecord): ModelChange | null {
    const before = this.tailnets.get(t.id);
    if (before && before.domain === t.domain && before.name === t.name) return null;
    this.tailnets.set(t.id, t);
    return { kind: 'tailnet', tailnetId: t.id };
  }

  setPolicy(p: PolicyRecord): ModelChange | null {
    const before = this.policies.get(p.tailnetId);
    if (before && before.version >= p.version) return null;
    this.policies.set(p.tailnetId, p);
    return { kind: 'policy', tailnetId: p.tailnetId };
  }

  setOnline(nodeId: number, online: boolean, at: string): ModelChange | null {
    const node = this.nodes.get(nodeId);
    if (!node) return null;
    if (online === this.online.has(nodeId)) return null;
    if (online) this.online.add(nodeId);
    else this.online.delete(nodeId);
    return { kind: 'presence', nodeId, tailnetId: node.tailnetId, online, at };
  }

  /** Replaces everything from a snapshot; returns the changes relative to the previous state. */
  replaceNodes(tailnets: TailnetRecord[], nodes: NodeRecord[]): ModelChange[] {
    const changes: ModelChange[] = [];
    for (const t of tailnets) {
      const c = this.upsertTailnet(t);
      if (c) changes.push(c);
    }
    const seen = new Set<number>();
    for (const n of nodes) {
      seen.add(n.id);
      const c = this.upsertNode(n);
      if (c) changes.push(c);
    }
    for (const [id, before] of [...this.nodes]) {
      if (seen.has(id)) continue;
      this.nodes.delete(id);
      this.byNodeKey.delete(before.nodeKey);
      this.online.delete(id);
      changes.push({ kind: 'node', nodeId: id, tailnetId: before.tailnetId, before, after: undefined });
    }
    return changes;
  }

  replaceUsers(users: UserRecord[]): ModelChange[] {
    const changes: ModelChange[] = [];
    const seen = new Set<number>();
    for (const u of users) {
      seen.add(u.id);
      const c = this.upsertUser(u);
      if (c) changes.push(c);
    }
    for (const id of [...this.users.keys()]) {
      if (seen.has(id)) continue;
      this.users.delete(id);
      changes.push({ kind: 'user', userId: id, after: undefined });
    }
    return changes;
  }
}
