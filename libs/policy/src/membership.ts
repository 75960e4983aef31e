/**
 * The membership index: the compiled policy's principal sets over node slots.
 *
 * Every distinct selector spec (per role) becomes one `PSet` holding bit sets over slots — who
 * matches by identity, who by address, who is a source or destination for peer visibility, who
 * receives `ip` and CapGrant rules — and every unit points at its sets (`unitSets[i]`). A
 * selector index (user, domain, group, tag, member, tagged → sets; sets with address parts are
 * always checked) tells which sets one node can belong to, so a node change re-evaluates that
 * node against those sets only (`refreshMember`, `refreshReach`), never a pair scan.
 *
 * Invariant: after `rebuild` and after each `refreshMember`/`refreshReach` of the touched nodes,
 * every bit equals what a fresh build over the current nodes would give. The sets' content hashes
 * (`PSet.content`) are kept by `src-render.ts`.
 */
import { BitSet, popcount } from './bitset.js';
import { ContentHash } from './content-hash.js';
import { isSingle, SpecFactory, type CompiledPolicy, type SelectorSpec, type Unit } from './compile.js';
import {
  ALL4,
  ALL6,
  CGNAT,
  INTERNET_SET,
  rangeContains,
  rangesOverlap,
  TAILSCALE_ULA,
  WILDCARD_SET,
} from './ip.js';
import { nodeIpIn, nodeIsOdd, nodeRoutesOverlap, type NodeRec } from './node-state.js';
import { loginDomain, type NodeStore } from './node-store.js';
import type { Alias, Policy } from './types.js';

/** Rendered SrcIPs of a principal set. */
export interface Render {
  readonly strings: readonly string[];
  readonly json: string;
  /** Content key (order-independent hash of the strings). */
  readonly key: string;
}

export type Role = 'src' | 'dst';

export class PSet {
  readonly ident: BitSet;
  /** src role: a node address is inside the set's literals/wildcard ranges. */
  readonly addrIp: BitSet;
  /** src role: a node's subnet route overlaps the set's literals/wildcard ranges. */
  readonly addrRoute: BitSet;
  /** src role: sources for peer visibility (ident ∪ addr ∪ routers when `*`). */
  readonly peer: BitSet;
  /** dst role: destinations for peer visibility. */
  readonly dpeer: BitSet;
  /** dst role: receivers of `ip` rules. */
  readonly recv: BitSet;
  /** dst role: receivers of CapGrant rules. */
  readonly capRecv: BitSet;
  /** src role: union of partners' dpeer; dst role: union of partners' peer. */
  readonly reach: BitSet;
  readonly partners: PSet[] = [];
  render: Render | null = null;
  /** src role: content hash of the rendered SrcIPs, maintained without rendering. */
  readonly content = new ContentHash();
  /** Number of identity members (kept in step with `ident`). */
  identCount = 0;

  constructor(
    readonly id: number,
    readonly spec: SelectorSpec,
    readonly role: Role,
    capacity: number,
  ) {
    const big = (): BitSet => new BitSet(capacity);
    const small = (): BitSet => new BitSet(32);
    this.ident = big();
    this.addrIp = role === 'src' && spec.hasAddr ? big() : small();
    this.addrRoute = role === 'src' && spec.hasAddr ? big() : small();
    this.peer = role === 'src' ? big() : small();
    this.dpeer = role === 'dst' ? big() : small();
    this.recv = role === 'dst' ? big() : small();
    this.capRecv = role === 'dst' ? big() : small();
    this.reach = big();
  }
}

/** The sets one unit uses. */
export interface UnitSets {
  readonly src: PSet | null;
  readonly dst: PSet | null;
  /** companion: the rendered sources (original destinations). */
  readonly from: PSet | null;
}

export type ViaUnit = Extract<Unit, { kind: 'via' }>;

/** autogroup:self: does node `n` (same user) count as a source of `set`? */
export function selfSrcHas(set: PSet, n: NodeRec): boolean {
  return set.ident.has(n.slot) || set.addrIp.has(n.slot);
}

/** Does node `n` host via unit `u` (one of its tags, serving one of its routes)? */
export function viaHosts(u: ViaUnit, n: NodeRec): boolean {
  if (!u.viaTags.some((t) => n.tags.has(t))) return false;
  if (u.internet && n.isExit) return true;
  return u.prefixes.some((p) => nodeRoutesOverlap(n, p.prefix));
}

export class MembershipIndex {
  policy: Policy;
  compiled: CompiledPolicy;
  srcSets: PSet[] = [];
  dstSets: PSet[] = [];
  /** Sets that take part in some ip/cap unit (the ones peer visibility reads). */
  edgeSrcSets: PSet[] = [];
  edgeDstSets: PSet[] = [];
  /** Per compiled unit, the sets it uses. */
  unitSets: UnitSets[] = [];
  private setIndex = new Map<string, PSet>();
  /** Sets by the identity selectors they contain; sets with address parts are always checked. */
  private setsBySelector = new Map<string, PSet[]>();
  private addrSets: PSet[] = [];

  constructor(
    private readonly store: NodeStore,
    policy: Policy,
    compiled: CompiledPolicy,
  ) {
    this.policy = policy;
    this.compiled = compiled;
  }

  /**
   * Builds all sets for a policy and fills their bits for every node. `extraSets` creates sets
   * outside the units (SSH rules) through `setFor` before the bits are filled.
   */
  rebuild(policy: Policy, compiled: CompiledPolicy, extraSets: (factory: SpecFactory) => void): void {
    this.policy = policy;
    this.compiled = compiled;
    this.setIndex = new Map();
    this.setsBySelector = new Map();
    this.addrSets = [];
    this.srcSets = [];
    this.dstSets = [];
    this.unitSets = [];
    this.store.setPolicyGroups(compiled.policyGroups);
    const factory = new SpecFactory(policy);
    for (const u of compiled.units) this.unitSets.push(this.setsForUnit(factory, u));
    extraSets(factory);
    this.edgeSrcSets = this.srcSets.filter((s) => s.partners.length > 0);
    this.edgeDstSets = this.dstSets.filter((s) => s.partners.length > 0);
    this.fillAllSets();
  }

  private setsForUnit(factory: SpecFactory, u: Unit): UnitSets {
    switch (u.kind) {
      case 'ip':
      case 'cap': {
        const src = this.setFor(factory, u.src, 'src');
        const dst = this.setFor(factory, u.dst, 'dst');
        if (!src.partners.includes(dst)) src.partners.push(dst);
        if (!dst.partners.includes(src)) dst.partners.push(src);
        return { src, dst, from: null };
      }
      case 'companion':
        return {
          src: this.setFor(factory, u.to, 'src'),
          dst: null,
          from: this.setFor(factory, u.from, 'src'),
        };
      case 'self-ip':
      case 'self-cap':
      case 'self-companion':
      case 'via':
        return { src: this.setFor(factory, u.src, 'src'), dst: null, from: null };
    }
  }

  /** The shared set for a selector list (or spec) in a role, created on first use. */
  setFor(factory: SpecFactory, aliases: readonly Alias[] | SelectorSpec, role: Role): PSet {
    const spec = 'key' in aliases ? aliases : factory.spec(aliases);
    const key = `${role}\u0002${spec.key}`;
    const hit = this.setIndex.get(key);
    if (hit !== undefined) return hit;
    const s = new PSet(this.setIndex.size, spec, role, this.store.capacity());
    this.setIndex.set(key, s);
    this.indexSet(s);
    (role === 'src' ? this.srcSets : this.dstSets).push(s);
    return s;
  }

  private indexSet(set: PSet): void {
    const spec = set.spec;
    const keys = [
      ...spec.users.map((u) => `u:${u}`),
      ...spec.userDomains.map((d) => `d:${d}`),
      ...spec.groups.map((g) => `g:${g}`),
      ...spec.tags.map((t) => `t:${t}`),
      ...(spec.member ? ['member'] : []),
      ...(spec.tagged ? ['tagged'] : []),
    ];
    for (const k of keys) {
      const list = this.setsBySelector.get(k);
      if (list === undefined) this.setsBySelector.set(k, [set]);
      else list.push(set);
    }
    if (spec.hasAddr) this.addrSets.push(set);
  }

  /** The sets a node can belong to (by identity or address), given current group memberships. */
  relevantSets(n: NodeRec): Set<PSet> {
    const out = new Set<PSet>(this.addrSets);
    const add = (k: string): void => {
      for (const s of this.setsBySelector.get(k) ?? []) out.add(s);
    };
    if (n.tagged) {
      add('tagged');
      for (const t of n.tags) add(`t:${t}`);
    } else if (n.user !== null) {
      add('member');
      add(`u:${n.user}`);
      add(`d:${loginDomain(n.user)}`);
      for (const g of this.store.groupsOf(n.user) ?? []) add(`g:${g}`);
    }
    return out;
  }

  /** Recomputes one node's bits in one set. Returns true if its identity bit flipped. */
  refreshMember(set: PSet, n: NodeRec, present: boolean): boolean {
    const s = n.slot;
    const ident = present && this.store.identMatch(n, set.spec);
    const identFlip = set.ident.put(s, ident);
    if (identFlip) set.identCount += ident ? 1 : -1;
    if (set.role === 'src') refreshSrcBits(set, n, present, ident);
    else refreshDstBits(set, n, present, ident);
    return identFlip;
  }

  /** Recomputes the reach bit of `slot` in every set with partners. */
  refreshReach(slot: number): void {
    for (const s of this.edgeSrcSets) {
      let on = false;
      for (const d of s.partners) if (d.dpeer.has(slot)) on = true;
      s.reach.put(slot, on);
    }
    for (const d of this.edgeDstSets) {
      let on = false;
      for (const s of d.partners) if (s.peer.has(slot)) on = true;
      d.reach.put(slot, on);
    }
  }

  /** Fills every set from scratch: identity bits by union of per-selector bit sets, then addresses. */
  private fillAllSets(): void {
    const live = this.store.live();
    const bits = this.selectorBits(live);
    // Nodes that can match an address outside the Tailscale ranges: routers, exit nodes and
    // nodes with addresses of their own outside 100.64.0.0/10 and fd7a:115c:a1e0::/48.
    const special = live.filter((n) => n.subnetRoutes.length > 0 || n.isExit || nodeIsOdd(n));
    for (const set of [...this.srcSets, ...this.dstSets]) {
      const spec = set.spec;
      set.ident.clearAll();
      for (const u of spec.users) {
        const b = this.store.userNodes.get(u);
        if (b !== undefined) set.ident.or(b);
      }
      for (const d of spec.userDomains) {
        for (const [login, b] of this.store.userNodes) if (loginDomain(login) === d) set.ident.or(b);
      }
      for (const g of spec.groups) {
        const b = bits.groups.get(g);
        if (b !== undefined) set.ident.or(b);
      }
      for (const t of spec.tags) {
        const b = bits.tags.get(t);
        if (b !== undefined) set.ident.or(b);
      }
      if (spec.member) set.ident.or(bits.member);
      if (spec.tagged) set.ident.or(bits.tagged);
      set.identCount = popcount(set.ident);
      if (set.role === 'src') {
        set.peer.clearAll();
        set.peer.or(set.ident);
      } else {
        set.dpeer.clearAll();
        set.dpeer.or(set.ident);
        set.recv.clearAll();
        set.recv.or(set.ident);
        set.capRecv.clearAll();
        set.capRecv.or(set.ident);
      }
      if (spec.hasAddr)
        for (const n of this.addrCandidates(spec, live, special)) this.refreshMember(set, n, true);
    }
    for (const s of this.edgeSrcSets) {
      s.reach.clearAll();
      for (const d of s.partners) s.reach.or(d.dpeer);
    }
    for (const d of this.edgeDstSets) {
      d.reach.clearAll();
      for (const s of d.partners) d.reach.or(s.peer);
    }
  }

  /** Nodes per tag, per group, all untagged members and all tagged nodes. */
  private selectorBits(live: readonly NodeRec[]): {
    tags: Map<string, BitSet>;
    groups: Map<string, BitSet>;
    member: BitSet;
    tagged: BitSet;
  } {
    const cap = this.store.capacity();
    const tags = new Map<string, BitSet>();
    const groups = new Map<string, BitSet>();
    const member = new BitSet(cap);
    const tagged = new BitSet(cap);
    for (const n of live) {
      if (n.tagged) {
        tagged.put(n.slot, true);
        for (const t of n.tags) {
          let b = tags.get(t);
          if (b === undefined) tags.set(t, (b = new BitSet(cap)));
          b.put(n.slot, true);
        }
      } else if (n.user !== null) {
        member.put(n.slot, true);
        for (const g of this.store.groupsOf(n.user) ?? []) {
          let b = groups.get(g);
          if (b === undefined) groups.set(g, (b = new BitSet(cap)));
          b.put(n.slot, true);
        }
      }
    }
    return { tags, groups, member, tagged };
  }

  /** Nodes whose address bits in a set with address parts may be set (a superset). */
  private addrCandidates(
    spec: SelectorSpec,
    live: readonly NodeRec[],
    special: readonly NodeRec[],
  ): Iterable<NodeRec> {
    if (spec.wildcard || spec.dangerAll) return live;
    const inside = spec.literals.filter(
      (l) => rangesOverlap(l.prefix, CGNAT) || rangesOverlap(l.prefix, TAILSCALE_ULA),
    );
    if (inside.length === 0) return special;
    if (inside.some((l) => !isSingle(l.prefix))) return live;
    const out = new Set(special);
    for (const l of inside) {
      for (const slot of this.store.ipOwners.get(l.text) ?? []) {
        const n = this.store.nodes[slot];
        if (n !== undefined) out.add(n);
      }
    }
    return out;
  }
}

function refreshSrcBits(set: PSet, n: NodeRec, present: boolean, ident: boolean): void {
  const s = n.slot;
  const spec = set.spec;
  let ip = false;
  let route = false;
  if (present && spec.hasAddr) {
    if (spec.dangerAll) {
      ip = true;
      route = n.subnetRoutes.length > 0;
    } else {
      if (spec.wildcard) {
        ip = n.addrs.some((a) => WILDCARD_SET.containsAddr(a));
        route = n.subnetRoutes.some((r) => WILDCARD_SET.overlaps(r));
      }
      for (const l of spec.literals) {
        if (!ip && nodeIpIn(n, l.prefix)) ip = true;
        if (!route && nodeRoutesOverlap(n, l.prefix)) route = true;
      }
    }
    set.addrIp.put(s, ip);
    set.addrRoute.put(s, route);
  }
  set.peer.put(s, ident || ip || route || (present && spec.wildcard && n.subnetRoutes.length > 0));
}

function refreshDstBits(set: PSet, n: NodeRec, present: boolean, ident: boolean): void {
  const s = n.slot;
  const spec = set.spec;
  let dpeer = ident;
  let recv = ident;
  let capRecv = ident;
  if (present && !ident && spec.hasAddr) {
    if (spec.wildcard) {
      dpeer = true;
      recv = true;
      capRecv =
        n.addrs.some((a) => WILDCARD_SET.containsAddr(a)) ||
        n.subnetRoutes.some((r) => WILDCARD_SET.overlaps(r));
    }
    for (const l of spec.literals) {
      const hit = nodeIpIn(n, l.prefix) || nodeRoutesOverlap(n, l.prefix);
      if (hit) {
        dpeer = true;
        recv = true;
        capRecv = true;
      } else if (n.isExit && rangeContains(l.prefix.family === 4 ? ALL4 : ALL6, l.prefix)) {
        if (INTERNET_SET.containsRange(l.prefix)) recv = true;
      }
    }
    if (spec.internet) {
      const hit = n.isExit || INTERNET_SET.ranges.some((r) => nodeIpIn(n, r) || nodeRoutesOverlap(n, r));
      if (hit) recv = true;
      if (INTERNET_SET.ranges.some((r) => nodeIpIn(n, r) || nodeRoutesOverlap(n, r))) dpeer = true;
    }
    if (n.isExit && spec.dstIsInternet) dpeer = true;
  }
  set.dpeer.put(s, dpeer);
  set.recv.put(s, recv);
  set.capRecv.put(s, capRecv);
}
