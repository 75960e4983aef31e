/**
 * Peer visibility: which nodes a node sees (either may reach the other).
 *
 * A node's peers are the union of the `reach` bits of the sets it is a source or destination of
 * (membership.ts keeps those unions), plus same-user peers of `autogroup:self` rules and the
 * sources/routers of via grants. Computed per node on demand and cached as a bit set and as an
 * id list in canonical order.
 *
 * Visibility of a pair depends only on the two nodes, so after a change every flipped pair
 * involves a touched node: `changes` compares the touched nodes' old and new peer sets.
 */
import { BitSet } from './bitset.js';
import { INTERNET_SET } from './ip.js';
import { selfSrcHas, viaHosts, type MembershipIndex, type ViaUnit } from './membership.js';
import { nodeIpIn, nodeRoutesOverlap, type NodeRec } from './node-state.js';
import type { NodeStore } from './node-store.js';
import type { PeerFlips } from './policy-change.js';

/** A touched node's peers before a change. */
export interface PeersBefore {
  readonly peers: BitSet;
}

export class PeerVisibility {
  private readonly bitsCache = new Map<number, BitSet>();
  private readonly listCache = new Map<number, string[]>();

  constructor(
    private readonly store: NodeStore,
    private readonly sets: MembershipIndex,
  ) {}

  clear(): void {
    this.bitsCache.clear();
    this.listCache.clear();
  }

  drop(slot: number): void {
    this.bitsCache.delete(slot);
    this.listCache.delete(slot);
  }

  /** The slots `n` sees (cached; do not modify). */
  peerBits(n: NodeRec): BitSet {
    let b = this.bitsCache.get(n.slot);
    if (b === undefined) {
      b = this.computePeerBits(n);
      this.bitsCache.set(n.slot, b);
    }
    return b;
  }

  /** Ids of the nodes `n` sees, in canonical id order. */
  peersOf(n: NodeRec): string[] {
    let list = this.listCache.get(n.slot);
    if (list === undefined) {
      const slots = this.peerBits(n).toArray();
      const rank = this.store.rankOf();
      slots.sort((a, b) => (rank[a] ?? 0) - (rank[b] ?? 0));
      list = slots.map((s) => this.store.nodes[s]?.id ?? '');
      this.listCache.set(n.slot, list);
    }
    return list;
  }

  private computePeerBits(n: NodeRec): BitSet {
    const acc = new BitSet(this.store.capacity());
    const slot = n.slot;
    let ors = 0;
    const all = this.store.allBits;
    const full = (): boolean => ++ors % 8 === 0 && acc.containsAll(all);
    for (const s of this.sets.edgeSrcSets) {
      if (s.peer.has(slot)) {
        acc.or(s.reach);
        if (full()) break;
      }
    }
    for (const d of this.sets.edgeDstSets) {
      if (d.dpeer.has(slot)) {
        acc.or(d.reach);
        if (full()) break;
      }
    }
    const compiled = this.sets.compiled;
    if (compiled.hasSelf && !n.tagged && n.user !== null) this.addSelfPeers(n, acc);
    if (compiled.hasVia) this.addViaPeers(n, acc);
    acc.put(slot, false);
    return acc;
  }

  private addSelfPeers(n: NodeRec, acc: BitSet): void {
    if (n.user === null) return;
    const same = this.store.userNodeList(n.user);
    const units = this.sets.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const set = this.sets.unitSets[i]?.src;
      if (u === undefined || set === undefined || set === null) continue;
      if (u.kind !== 'self-ip' && u.kind !== 'self-cap') continue;
      if (selfSrcHas(set, n)) for (const m of same) acc.put(m.slot, true);
      else for (const m of same) if (selfSrcHas(set, m)) acc.put(m.slot, true);
    }
  }

  /** Is `a` a destination of via unit `u` as hosted by `host`? */
  private viaDstHas(u: ViaUnit, host: NodeRec, a: NodeRec): boolean {
    for (const p of u.prefixes) {
      if (!nodeRoutesOverlap(host, p.prefix)) continue;
      if (nodeIpIn(a, p.prefix) || nodeRoutesOverlap(a, p.prefix)) return true;
    }
    if (u.internet && host.isExit) {
      if (a.isExit) return true;
      if (INTERNET_SET.ranges.some((r) => nodeRoutesOverlap(a, r) || nodeIpIn(a, r))) return true;
    }
    return false;
  }

  private addViaPeers(a: NodeRec, acc: BitSet): void {
    const units = this.sets.compiled.units;
    const nodes = this.store.nodes;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const set = this.sets.unitSets[i]?.src;
      if (u === undefined || u.kind !== 'via' || set === undefined || set === null) continue;
      const aIsSrc = set.peer.has(a.slot);
      if (viaHosts(u, a)) {
        acc.or(set.peer);
        if (aIsSrc) {
          for (const b of nodes) if (b !== undefined && this.viaDstHas(u, a, b)) acc.put(b.slot, true);
        }
      }
      for (const t of u.viaTags) {
        for (const b of nodes) {
          if (b === undefined || !b.tags.has(t) || !viaHosts(u, b)) continue;
          if (aIsSrc || (set.peer.has(b.slot) && this.viaDstHas(u, b, a))) acc.put(b.slot, true);
        }
      }
    }
  }

  /**
   * Peers after a mutation (the touched nodes' caches already dropped): every flipped pair
   * involves a touched node. Returns the nodes whose peer set changed and each touched node's
   * flips, and drops the cached peers of the other side of every flipped pair.
   */
  changes(
    touchedIds: ReadonlySet<string>,
    before: ReadonlyMap<string, PeersBefore>,
    after: ReadonlyMap<string, NodeRec>,
  ): { peersChanged: Set<string>; flips: PeerFlips[] } {
    const peersChanged = new Set<string>();
    const flips: PeerFlips[] = [];
    const empty = new BitSet(32);
    for (const id of touchedIds) {
      const b = before.get(id);
      const a = after.get(id);
      const oldBits = b?.peers ?? empty;
      const newBits = a === undefined ? empty : this.peerBits(a);
      const gained = newBits.clone();
      gained.andNot(oldBits);
      const lost = oldBits.clone();
      lost.andNot(newBits);
      const f: PeerFlips = { id, present: a !== undefined, gained: [], lost: [] };
      const visit = (slot: number, list: string[]): void => {
        const other = this.store.nodes[slot];
        if (other === undefined) return;
        peersChanged.add(other.id);
        this.drop(slot);
        list.push(other.id);
      };
      gained.forEach((slot) => visit(slot, f.gained));
      lost.forEach((slot) => visit(slot, f.lost));
      flips.push(f);
      if (a !== undefined && (b === undefined || f.gained.length > 0 || f.lost.length > 0))
        peersChanged.add(id);
    }
    return { peersChanged, flips };
  }
}
