/**
 * PolicyEngine: compiles a policy for a changing set of nodes, incrementally.
 *
 * Rules are units over principal sets (compile.ts). Each distinct selector set becomes a `PSet`
 * holding bit sets over node slots: who matches by identity, who matches by address, who is a
 * source for peer visibility, who receives the rule. A node change re-evaluates that one node
 * against every set (no pair scan), then works out exactly which nodes' outputs changed:
 *  - packet filters: the touched nodes (recomputed and compared), every receiver of a rule whose
 *    rendered SrcIPs changed, and same-user nodes when `autogroup:self` rules exist;
 *  - peers: the touched nodes' old and new peer sets are compared; any difference is a pair that
 *    involves a touched node, so the other side of every flipped pair changed too.
 * Filters, peer lists, SSH policies and node caps are computed lazily per node and cached;
 * SrcIPs are rendered once per principal set and shared by every node that receives them.
 *
 * Known simplification (documented in README): subnet routes that overlap the Tailscale address
 * ranges are not matched against other nodes' addresses.
 */
import { BitSet } from './bitset.js';
import { ContentHash, contentKeyOf, strHash } from './content-hash.js';
import {
  compilePolicy,
  type CapSpec,
  type CompiledPolicy,
  type DstItem,
  type IdentAlias,
  type Literal,
  type SelectorSpec,
  SpecFactory,
  type Unit,
  isSingle,
  userDomainOf,
} from './compile.js';
import {
  ALL4,
  ALL6,
  CGNAT,
  TAILSCALE_ULA,
  rangesOverlap,
  formatPrefix,
  formatRange,
  parsePrefix,
  parseRangeText,
  INTERNET_SET,
  rangeContains,
  rangeContainsAddr,
  WILDCARD_SET,
  type Addr,
  type Prefix,
  type Range,
} from './ip.js';
import {
  groupName,
  makeNodeRec,
  nodeIpIn,
  nodeIsOdd,
  nodeRoutesOverlap,
  type NodeRec,
} from './node-state.js';
import { EMPTY_POLICY } from './policy.js';
import { normalizeLogin } from './syntax.js';
import type {
  Alias,
  FilterRule,
  NetPortRange,
  NodeCapMap,
  Policy,
  PolicyNode,
  PortRange,
  SshPolicy,
  SshPolicyRule,
  SshRule,
} from './types.js';

// ---------------------------------------------------------------------------------------------
// Public result types

/** Peers that appeared or disappeared for one node. */
export interface PeerDelta {
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

/** What a mutation changed. Ids are of nodes that exist after the change. */
export interface PolicyChange {
  /** Nodes whose packet filter or peer set changed (union of the two sets below). */
  readonly changed: ReadonlySet<string>;
  readonly filterChanged: ReadonlySet<string>;
  readonly peersChanged: ReadonlySet<string>;
  /** Nodes whose SSH policy may have changed (structural, may over-approximate). */
  readonly sshChanged: ReadonlySet<string>;
  /** Nodes whose nodeAttrs capabilities changed. */
  readonly capsChanged: ReadonlySet<string>;
  /** Per node, peers added/removed. Present for node and group changes, absent after setPolicy. */
  readonly peerDelta?: ReadonlyMap<string, PeerDelta>;
}

export interface PolicyEngineOptions {
  readonly nodes?: Iterable<PolicyNode>;
  /** Identity-provider groups per user login (names with or without `group:`). */
  readonly userGroups?: Iterable<readonly [string, readonly string[]]>;
  /** Base URL for SSH `check` actions (`<base>/machine/ssh/action/...`). */
  readonly sshCheckUrlBase?: string;
}

/** Result of a tagOwners check. */
export interface TagCheck {
  readonly ok: boolean;
  /** Tags the owner may not apply (undefined in tagOwners or not owned). */
  readonly denied: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// Internals

const WILDCARD_TEXTS: readonly string[] = WILDCARD_SET.ranges.map(formatRange);
const WILDCARD_PREFIXES: readonly Prefix[] = WILDCARD_SET.prefixes();
/** SaaS writes every autogroup:internet piece as an `a-b` range, even 2000::/3 (capture routes-b17). */
const INTERNET_RANGES: readonly { range: Range; text: string }[] = INTERNET_SET.ranges.map((r) => ({
  range: r,
  text: `${formatRange({ ...r, last: r.first })}-${formatRange({ ...r, first: r.last })}`,
}));

interface Render {
  readonly strings: readonly string[];
  readonly json: string;
  /** Content key (order-independent hash of the strings). */
  readonly key: string;
}

interface DstEntry {
  readonly ip: string;
  readonly first: number;
  readonly last: number;
}

interface CapOut {
  readonly dsts: readonly string[];
  readonly cap: CapSpec;
}

interface PlanRule {
  /** Sort position: the unit order where this (merged) rule first appears in the unreduced list. */
  readonly pos: number;
  readonly src: Render;
  readonly proto: readonly number[] | null;
  readonly dst: DstEntry[];
  readonly caps: readonly CapOut[] | null;
}

interface CachedFilter {
  readonly plan: readonly PlanRule[];
  rules: FilterRule[] | null;
  json: string | null;
}

type Role = 'src' | 'dst';

class PSet {
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

interface UnitSets {
  readonly src: PSet | null;
  readonly dst: PSet | null;
  /** companion: the rendered sources (original destinations). */
  readonly from: PSet | null;
}

interface SshCompiled {
  readonly rule: SshRule;
  readonly src: PSet;
  readonly dst: PSet | null;
  readonly hasSelf: boolean;
  readonly sshUsers: Readonly<Record<string, string>>;
  readonly localpartDomains: readonly string[];
}

function protoKey(p: readonly number[] | null): string {
  return p === null ? '' : p.join(',');
}

function comparePrefixText(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.first !== b.first) return a.first < b.first ? -1 : 1;
  return a.bits - b.bits;
}

function hostPrefix(a: Addr): Prefix {
  return { family: a.family, first: a.value, last: a.value, bits: a.family === 4 ? 32 : 128 };
}

/** Natural order for node ids: numeric ids numerically, then others lexicographically. */
export function compareNodeIds(a: string, b: string): number {
  const na = isDigits(a);
  const nb = isDigits(b);
  if (na && nb) return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function popcount(b: BitSet): number {
  let n = 0;
  for (const w of b.words) {
    let x = w - ((w >>> 1) & 0x55555555);
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    n += (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  }
  return n;
}

function planEquals(a: readonly PlanRule[] | undefined, b: readonly PlanRule[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined) return false;
    if ((x.src !== y.src && x.src.json !== y.src.json) || protoKey(x.proto) !== protoKey(y.proto))
      return false;
    if (x.dst.length !== y.dst.length) return false;
    for (let j = 0; j < x.dst.length; j++) {
      const p = x.dst[j];
      const r = y.dst[j];
      if (p === undefined || r === undefined || p.ip !== r.ip || p.first !== r.first || p.last !== r.last)
        return false;
    }
    if ((x.caps === null) !== (y.caps === null)) return false;
    if (x.caps !== null && y.caps !== null) {
      if (x.caps.length !== y.caps.length) return false;
      for (let j = 0; j < x.caps.length; j++) {
        const p = x.caps[j];
        const r = y.caps[j];
        if (p === undefined || r === undefined || p.cap.json !== r.cap.json) return false;
        if (p.dsts.join(',') !== r.dsts.join(',')) return false;
      }
    }
  }
  return true;
}

function entryJson(e: DstEntry): string {
  return `{"IP":"${e.ip}","Ports":{"First":${e.first},"Last":${e.last}}}`;
}

export class PolicyEngine {
  private policy: Policy;
  private compiled: CompiledPolicy;
  private readonly sshCheckUrlBase: string;

  // nodes
  private readonly nodes: (NodeRec | undefined)[] = [];
  private readonly idToSlot = new Map<string, number>();
  private readonly freeSlots: number[] = [];
  /** Slots in canonical id order. */
  private order: number[] = [];
  private readonly sortedIps: { ip: string; slot: number }[] = [];
  private readonly ipOwners = new Map<string, Set<number>>();
  private readonly routeCount = new Map<string, number>();
  private readonly userNodes = new Map<string, BitSet>();
  private readonly externalGroups = new Map<string, Set<string>>();
  private policyGroupsByUser = new Map<string, Set<string>>();
  private readonly allBits = new BitSet();
  private readonly routerBits = new BitSet();
  private readonly exitBits = new BitSet();

  // sets
  private srcSets: PSet[] = [];
  private dstSets: PSet[] = [];
  private edgeSrcSets: PSet[] = [];
  private edgeDstSets: PSet[] = [];
  private unitSets: UnitSets[] = [];
  private sshRules: SshCompiled[] = [];
  private routeRender: Render | null = null;

  // caches
  private readonly filterCache = new Map<number, CachedFilter>();
  private readonly peerCache = new Map<number, BitSet>();
  private readonly peerListCache = new Map<number, string[]>();
  private readonly sshCache = new Map<number, SshPolicy | null>();
  private readonly capsCache = new Map<number, NodeCapMap>();
  private readonly selfRenders = new Map<string, Map<number, Render>>();

  /** `policy` null means the default policy: allow all, everyone sees everyone. */
  constructor(policy: Policy | null, options: PolicyEngineOptions = {}) {
    this.policy = policy ?? EMPTY_POLICY;
    this.compiled = compilePolicy(policy);
    this.sshCheckUrlBase = options.sshCheckUrlBase ?? '';
    for (const [login, groups] of options.userGroups ?? []) {
      this.externalGroups.set(normalizeLogin(login), new Set(groups.map(groupName)));
    }
    this.bulkLoading = true;
    for (const n of options.nodes ?? []) this.addNodeRecord(n);
    this.bulkLoading = false;
    this.sortedIps.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.slot - b.slot));
    this.order.sort((a, b) => compareNodeIds(this.nodes[a]?.id ?? '', this.nodes[b]?.id ?? ''));
    this.rebuildSets();
  }

  // -------------------------------------------------------------------------------------------
  // Node bookkeeping

  private capacity(): number {
    return Math.max(64, this.nodes.length);
  }

  /** Registers a node without touching sets (bulk load and mutation helper). */
  private addNodeRecord(input: PolicyNode): NodeRec {
    if (this.idToSlot.has(input.id)) throw new Error(`duplicate node id ${JSON.stringify(input.id)}`);
    const slot = this.freeSlots.pop() ?? this.nodes.length;
    const rec = makeNodeRec(input, slot);
    this.nodes[slot] = rec;
    this.idToSlot.set(rec.id, slot);
    if (rec.groups !== undefined && rec.user !== null) this.setExternalGroups(rec.user, rec.groups);
    this.indexNode(rec, true);
    return rec;
  }

  private setExternalGroups(login: string, groups: readonly string[]): void {
    this.externalGroups.set(login, new Set(groups));
    this.groupCache.delete(login);
  }

  private indexNode(rec: NodeRec, on: boolean): void {
    const s = rec.slot;
    this.allBits.put(s, on);
    this.routerBits.put(s, on && rec.subnetRoutes.length > 0);
    this.exitBits.put(s, on && rec.isExit);
    if (rec.user !== null) {
      let b = this.userNodes.get(rec.user);
      if (b === undefined) {
        b = new BitSet();
        this.userNodes.set(rec.user, b);
      }
      b.put(s, on);
    }
    for (const ip of rec.ipStrings) {
      let owners = this.ipOwners.get(ip);
      if (owners === undefined) {
        owners = new Set();
        this.ipOwners.set(ip, owners);
      }
      if (on) owners.add(s);
      else owners.delete(s);
      if (owners.size === 0) this.ipOwners.delete(ip);
      if (on && this.bulkLoading) {
        this.sortedIps.push({ ip, slot: s });
        continue;
      }
      const i = lowerBound(this.sortedIps, ip, s);
      if (on) this.sortedIps.splice(i, 0, { ip, slot: s });
      else if (this.sortedIps[i]?.slot === s && this.sortedIps[i]?.ip === ip) this.sortedIps.splice(i, 1);
    }
    for (const r of rec.routeStrings) {
      const c = (this.routeCount.get(r) ?? 0) + (on ? 1 : -1);
      if (c <= 0) this.routeCount.delete(r);
      else this.routeCount.set(r, c);
      if ((on && c === 1) || (!on && c <= 0)) this.routeRender = null;
    }
    this.rank = null;
    if (on && this.bulkLoading) {
      this.order.push(s);
      return;
    }
    const pos = lowerBoundOrder(this.order, rec.id, (slot) => this.nodes[slot]?.id ?? '');
    if (on) this.order.splice(pos, 0, s);
    else if (this.order[pos] === s) this.order.splice(pos, 1);
  }

  /** True while the constructor loads nodes: sorted indexes are built once at the end. */
  private bulkLoading = false;
  private readonly groupCache = new Map<string, ReadonlySet<string> | undefined>();

  private groupsOf(login: string): ReadonlySet<string> | undefined {
    if (this.groupCache.has(login)) return this.groupCache.get(login);
    const pol = this.policyGroupsByUser.get(login);
    const ext = this.externalGroups.get(login);
    const merged = pol === undefined ? ext : ext === undefined ? pol : new Set([...pol, ...ext]);
    this.groupCache.set(login, merged);
    return merged;
  }

  private identMatch(n: NodeRec, spec: SelectorSpec): boolean {
    if (n.tagged) {
      if (spec.tagged) return true;
      for (const t of spec.tags) if (n.tags.has(t)) return true;
      return false;
    }
    if (n.user === null) return false;
    if (spec.member) return true;
    if (spec.users.includes(n.user)) return true;
    for (const d of spec.userDomains) if (loginDomain(n.user) === d) return true;
    if (spec.groups.length > 0) {
      const gs = this.groupsOf(n.user);
      if (gs !== undefined) for (const g of spec.groups) if (gs.has(g)) return true;
    }
    return false;
  }

  private identAliasMatch(n: NodeRec, a: IdentAlias): boolean {
    switch (a.kind) {
      case 'tag':
        return n.tags.has(a.name);
      case 'tagged':
        return n.tagged;
      case 'member':
        return !n.tagged && n.user !== null;
      case 'user':
        return !n.tagged && n.user === a.login;
      case 'userDomain':
        return !n.tagged && n.user !== null && loginDomain(n.user) === a.domain;
      case 'group':
        return !n.tagged && n.user !== null && (this.groupsOf(n.user)?.has(a.name) ?? false);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Set membership

  private setFor(factory: SpecFactory, aliases: readonly Alias[] | SelectorSpec, role: Role): PSet {
    const spec = 'key' in aliases ? aliases : factory.spec(aliases);
    const key = `${role}\u0002${spec.key}`;
    const hit = this.setIndex.get(key);
    if (hit !== undefined) return hit;
    const s = new PSet(this.setIndex.size, spec, role, this.capacity());
    this.setIndex.set(key, s);
    this.indexSet(s);
    (role === 'src' ? this.srcSets : this.dstSets).push(s);
    return s;
  }

  private setIndex = new Map<string, PSet>();
  /** Sets by the identity selectors they contain; sets with address parts are always checked. */
  private setsBySelector = new Map<string, PSet[]>();
  private addrSets: PSet[] = [];

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
  private relevantSets(n: NodeRec): Set<PSet> {
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
      for (const g of this.groupsOf(n.user) ?? []) add(`g:${g}`);
    }
    return out;
  }

  /** Recomputes one node's bits in one set. Returns true if its identity bit flipped. */
  private refreshMember(set: PSet, n: NodeRec, present: boolean): boolean {
    const s = n.slot;
    const spec = set.spec;
    const ident = present && this.identMatch(n, spec);
    const identFlip = set.ident.put(s, ident);
    if (identFlip) set.identCount += ident ? 1 : -1;
    if (set.role === 'src') {
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
    } else {
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
    return identFlip;
  }

  /** Recomputes the reach bit of `slot` in every set with partners. */
  private refreshReach(slot: number): void {
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

  /** Builds all sets from the compiled policy and fills their bits for every node. */
  private rebuildSets(): void {
    this.setIndex = new Map();
    this.setsBySelector = new Map();
    this.addrSets = [];
    this.srcSets = [];
    this.dstSets = [];
    this.unitSets = [];
    this.sshRules = [];
    this.policyGroupsByUser = new Map();
    this.groupCache.clear();
    for (const [g, members] of this.compiled.policyGroups) {
      for (const login of members) {
        let s = this.policyGroupsByUser.get(login);
        if (s === undefined) {
          s = new Set();
          this.policyGroupsByUser.set(login, s);
        }
        s.add(g);
      }
    }
    const factory = new SpecFactory(this.policy);
    for (const u of this.compiled.units) {
      switch (u.kind) {
        case 'ip':
        case 'cap': {
          const src = this.setFor(factory, u.src, 'src');
          const dst = this.setFor(factory, u.dst, 'dst');
          if (!src.partners.includes(dst)) src.partners.push(dst);
          if (!dst.partners.includes(src)) dst.partners.push(src);
          this.unitSets.push({ src, dst, from: null });
          break;
        }
        case 'companion':
          this.unitSets.push({
            src: this.setFor(factory, u.to, 'src'),
            dst: null,
            from: this.setFor(factory, u.from, 'src'),
          });
          break;
        case 'self-ip':
        case 'self-cap':
        case 'self-companion':
        case 'via':
          this.unitSets.push({ src: this.setFor(factory, u.src, 'src'), dst: null, from: null });
          break;
      }
    }
    for (const rule of this.policy.ssh ?? []) this.sshRules.push(this.compileSshRule(factory, rule));
    this.edgeSrcSets = this.srcSets.filter((s) => s.partners.length > 0);
    this.edgeDstSets = this.dstSets.filter((s) => s.partners.length > 0);
    this.fillAllSets();
    this.selfRenders.clear();
    this.routeRender = null;
    this.firstPositions = null;
    this.unitKeys = [];
  }

  private fillAllSets(): void {
    const live: NodeRec[] = [];
    for (const n of this.nodes) if (n !== undefined) live.push(n);
    const userBits = this.userNodes;
    const tagBits = new Map<string, BitSet>();
    const memberBits = new BitSet(this.capacity());
    const taggedBits = new BitSet(this.capacity());
    const groupBits = new Map<string, BitSet>();
    for (const n of live) {
      if (n.tagged) {
        taggedBits.put(n.slot, true);
        for (const t of n.tags) {
          let b = tagBits.get(t);
          if (b === undefined) tagBits.set(t, (b = new BitSet(this.capacity())));
          b.put(n.slot, true);
        }
      } else if (n.user !== null) {
        memberBits.put(n.slot, true);
        for (const g of this.groupsOf(n.user) ?? []) {
          let b = groupBits.get(g);
          if (b === undefined) groupBits.set(g, (b = new BitSet(this.capacity())));
          b.put(n.slot, true);
        }
      }
    }
    // Nodes that can match an address outside the Tailscale ranges: routers, exit nodes and
    // nodes with addresses of their own outside 100.64.0.0/10 and fd7a:115c:a1e0::/48.
    const special = live.filter((n) => n.subnetRoutes.length > 0 || n.isExit || nodeIsOdd(n));
    for (const set of [...this.srcSets, ...this.dstSets]) {
      const spec = set.spec;
      set.ident.clearAll();
      for (const u of spec.users) {
        const b = userBits.get(u);
        if (b !== undefined) set.ident.or(b);
      }
      for (const d of spec.userDomains) {
        for (const [login, b] of userBits) if (loginDomain(login) === d) set.ident.or(b);
      }
      for (const g of spec.groups) {
        const b = groupBits.get(g);
        if (b !== undefined) set.ident.or(b);
      }
      for (const t of spec.tags) {
        const b = tagBits.get(t);
        if (b !== undefined) set.ident.or(b);
      }
      if (spec.member) set.ident.or(memberBits);
      if (spec.tagged) set.ident.or(taggedBits);
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
    for (const s of this.srcSets) this.computeContent(s);
    for (const s of this.edgeSrcSets) {
      s.reach.clearAll();
      for (const d of s.partners) s.reach.or(d.dpeer);
    }
    for (const d of this.edgeDstSets) {
      d.reach.clearAll();
      for (const s of d.partners) d.reach.or(s.peer);
    }
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
      for (const slot of this.ipOwners.get(l.text) ?? []) {
        const n = this.nodes[slot];
        if (n !== undefined) out.add(n);
      }
    }
    return out;
  }

  private compileSshRule(factory: SpecFactory, rule: SshRule): SshCompiled {
    const src = this.setFor(
      factory,
      rule.src.map((r) => r.alias),
      'src',
    );
    const others = rule.dst.filter(
      (d) => !(d.alias.kind === 'autogroup' && d.alias.name === 'autogroup:self'),
    );
    const dst =
      others.length > 0
        ? this.setFor(
            factory,
            others.map((r) => r.alias),
            'src',
          )
        : null;
    const names = rule.users.map((u) => u.name);
    const localpartDomains: string[] = [];
    const normal: string[] = [];
    for (const n of names) {
      const m = /^localpart:\*@(.+)$/.exec(n);
      if (m?.[1] !== undefined) localpartDomains.push(m[1]);
      else if (n !== 'root' && n !== 'autogroup:nonroot') normal.push(n);
    }
    const map = new Map<string, string>();
    if (names.includes('autogroup:nonroot')) map.set('*', '=');
    map.set('root', names.includes('root') ? 'root' : '');
    for (const n of normal) map.set(n, n);
    const sshUsers: Record<string, string> = {};
    for (const k of [...map.keys()].sort()) sshUsers[k] = map.get(k) ?? '';
    return {
      rule,
      src,
      dst,
      hasSelf: others.length !== rule.dst.length,
      sshUsers,
      localpartDomains,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Rendering SrcIPs

  private makeRender(strings: readonly string[], key: string = contentKeyOf(strings)): Render {
    return { strings, json: `[${strings.map((x) => `"${x}"`).join(',')}]`, key };
  }

  private routeStrings(): readonly string[] {
    if (this.routeRender === null) {
      this.routeRender = { strings: [...this.routeCount.keys()].sort(), json: '', key: '' };
    }
    return this.routeRender.strings;
  }

  private renderSet(set: PSet): Render {
    if (set.render !== null) return set.render;
    const spec = set.spec;
    let strings: string[];
    if (spec.dangerAll) strings = ['*'];
    else {
      const parts: string[] = [...spec.literalTexts];
      if (spec.wildcard) parts.push(...WILDCARD_TEXTS, ...this.routeStrings());
      const members = popcount(set.ident);
      if (members > 0) {
        if (members * 16 < this.sortedIps.length) {
          set.ident.forEach((slot) => {
            const n = this.nodes[slot];
            if (n !== undefined) parts.push(...n.ipStrings);
          });
        } else {
          for (const e of this.sortedIps) if (set.ident.has(e.slot)) parts.push(e.ip);
        }
      }
      parts.sort();
      strings = [];
      for (const p of parts) if (strings[strings.length - 1] !== p) strings.push(p);
    }
    set.render = this.makeRender(strings, set.content.key());
    return set.render;
  }

  private invalidateRender(set: PSet): void {
    set.render = null;
  }

  /** Recomputes a src set's content hash from scratch (the same strings renderSet would list). */
  private computeContent(set: PSet): void {
    const h = set.content;
    h.reset();
    const spec = set.spec;
    if (spec.dangerAll) {
      h.add(strHash('*'));
      return;
    }
    const seen = new Set<string>();
    if (spec.wildcard) {
      for (const t of WILDCARD_TEXTS) seen.add(t);
      for (const r of this.routeCount.keys()) seen.add(r);
    }
    for (const l of spec.literalTexts) seen.add(l);
    for (const s of seen) h.add(strHash(s));
    set.ident.forEach((slot) => {
      const n = this.nodes[slot];
      if (n === undefined) return;
      n.ipStrings.forEach((ip, i) => {
        const owners = this.ipOwners.get(ip);
        if (seen.has(ip)) return;
        if (owners !== undefined && owners.size > 1) {
          // Shared address: count it once, for its lowest member slot.
          for (const o of owners) if (o < slot && set.ident.has(o)) return;
        }
        const hh = n.ipHashes[i];
        if (hh !== undefined) h.add(hh);
      });
    });
  }

  /** Same-user untagged nodes of `login`, in canonical order. */
  private userNodeList(login: string): NodeRec[] {
    const b = this.userNodes.get(login);
    if (b === undefined) return [];
    const out: NodeRec[] = [];
    b.forEach((slot) => {
      const n = this.nodes[slot];
      if (n !== undefined) out.push(n);
    });
    return out.sort((a, c) => compareNodeIds(a.id, c.id));
  }

  /** autogroup:self: does node `n` (same user) count as a source of `set`? */
  private selfSrcHas(set: PSet, n: NodeRec): boolean {
    return set.ident.has(n.slot) || set.addrIp.has(n.slot);
  }

  /** SrcIPs of a self rule for `login`: IPs of the user's nodes that match the sources. */
  private selfRender(unitOrder: number, set: PSet, login: string, all: boolean): Render {
    const key = all ? -1 - unitOrder : unitOrder;
    let m = this.selfRenders.get(login);
    if (m === undefined) this.selfRenders.set(login, (m = new Map<number, Render>()));
    const hit = m.get(key);
    if (hit !== undefined) return hit;
    const strings: string[] = [];
    for (const n of this.userNodeList(login))
      if (all || this.selfSrcHas(set, n)) strings.push(...n.ipStrings);
    strings.sort();
    const r = this.makeRender(strings);
    m.set(key, r);
    return r;
  }

  /** A user's self SrcIPs per self unit (companions keyed by -1-order): what self rules depend on. */
  private selfSnapshot(login: string): Map<number, string> {
    const out = new Map<number, string>();
    const units = this.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const set = this.unitSets[i]?.src;
      if (u === undefined || set == null) continue;
      if (u.kind === 'self-ip' || u.kind === 'self-cap')
        out.set(i, this.selfRender(u.order, set, login, false).json);
      else if (u.kind === 'self-companion') out.set(-1 - i, this.selfRender(u.order, set, login, true).json);
    }
    return out;
  }

  private dropSelfRenders(login: string): void {
    this.selfRenders.delete(login);
  }

  // -------------------------------------------------------------------------------------------
  // Filter plans

  private literalCovers(n: NodeRec, l: Literal): boolean {
    return (
      nodeIpIn(n, l.prefix) ||
      nodeRoutesOverlap(n, l.prefix) ||
      (n.isExit && INTERNET_SET.containsRange(l.prefix))
    );
  }

  private dstEntries(items: readonly DstItem[], ports: readonly PortRange[], n: NodeRec): DstEntry[] {
    const out: DstEntry[] = [];
    const push = (ip: string): void => {
      for (const p of ports) out.push({ ip, first: p.first, last: p.last });
    };
    for (const item of items) {
      switch (item.kind) {
        case 'wildcard':
          push('*');
          break;
        case 'ident':
          if (this.identAliasMatch(n, item.alias)) for (const ip of n.ipStrings) push(ip);
          break;
        case 'literal':
          if (this.literalCovers(n, item.literal)) push(item.literal.text);
          break;
        case 'internet':
          for (const r of INTERNET_RANGES) {
            if (n.isExit || nodeIpIn(n, r.range) || nodeRoutesOverlap(n, r.range)) push(r.text);
          }
          break;
      }
    }
    return out;
  }

  /** Reduces CapGrant destinations for node `n` (headscale ReduceFilterRules semantics). */
  private reduceCapDsts(prefixes: readonly Prefix[], n: NodeRec, out: Prefix[]): void {
    for (const p of prefixes) {
      for (const a of n.addrs) if (rangeContainsAddr(p, a)) out.push(hostPrefix(a));
      if (nodeRoutesOverlap(n, p)) out.push(p);
    }
  }

  private finishCapDsts(list: Prefix[]): string[] {
    list.sort(comparePrefixText);
    const out: string[] = [];
    for (const p of list) {
      const t = formatPrefix(p);
      if (out[out.length - 1] !== t) out.push(t);
    }
    return out;
  }

  private capDstsForItem(item: DstItem, n: NodeRec): string[] {
    const list: Prefix[] = [];
    switch (item.kind) {
      case 'wildcard':
        this.reduceCapDsts(WILDCARD_PREFIXES, n, list);
        break;
      case 'ident':
        if (this.identAliasMatch(n, item.alias)) for (const a of n.addrs) list.push(hostPrefix(a));
        break;
      case 'literal':
        this.reduceCapDsts([item.literal.prefix], n, list);
        break;
      case 'internet':
        break;
    }
    return this.finishCapDsts(list);
  }

  /** Companion CapGrant destinations: the original sources, reduced for `n`. */
  private srcCapDsts(set: PSet, n: NodeRec): string[] {
    const spec = set.spec;
    const list: Prefix[] = [];
    if (set.ident.has(n.slot)) for (const a of n.addrs) list.push(hostPrefix(a));
    if (spec.dangerAll) this.reduceCapDsts([ALL4, ALL6], n, list);
    if (spec.wildcard) this.reduceCapDsts(WILDCARD_PREFIXES, n, list);
    this.reduceCapDsts(
      spec.literals.map((l) => l.prefix),
      n,
      list,
    );
    return this.finishCapDsts(list);
  }

  private viaHosts(u: Extract<Unit, { kind: 'via' }>, n: NodeRec): boolean {
    if (!u.viaTags.some((t) => n.tags.has(t))) return false;
    if (u.internet && n.isExit) return true;
    return u.prefixes.some((p) => nodeRoutesOverlap(n, p.prefix));
  }

  /**
   * Merge key of a port rule: identical rendered SrcIPs and IPProto (capture acl-mr04 merges a
   * group with the user it contains). Global (and via) rules of one
   * key share a position: the first unit of that key that yields a rule anywhere in the tailnet
   * (headscale/SaaS merge the unreduced list, then reduce per node).
   */
  private mergeKey(contentKey: string, proto: readonly number[] | null): string {
    return `${contentKey}|${protoKey(proto)}`;
  }

  /** A unit's dst resolves to at least one address somewhere (so its global rule exists). */
  private unitActive(i: number): boolean {
    const sets = this.unitSets[i];
    if (sets?.src == null || sets.dst === null) return false;
    const d = sets.dst;
    const dstNonEmpty = d.spec.hasAddr || d.identCount > 0;
    return dstNonEmpty && sets.src.content.count > 0;
  }

  /** First global position of every port-rule merge key. */
  private computeFirstPositions(): Map<string, number> {
    const out = new Map<string, number>();
    const units = this.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.unitSets[i];
      if (u?.kind !== 'ip' || sets?.src == null) continue;
      const key = this.unitKey(i, sets.src, u.proto.numbers);
      if (!out.has(key) && this.unitActive(i)) out.set(key, u.order);
    }
    return out;
  }

  private firstPositions: Map<string, number> | null = null;

  private gfp(): Map<string, number> {
    if (this.firstPositions === null) this.firstPositions = this.computeFirstPositions();
    return this.firstPositions;
  }

  private computePlan(n: NodeRec, firstPos: ReadonlyMap<string, number> = this.gfp()): PlanRule[] {
    const out: PlanRule[] = [];
    const byKey = new Map<string, PlanRule>();
    const merge = (
      key: string,
      order: number,
      src: Render,
      proto: readonly number[] | null,
      entries: DstEntry[],
    ): void => {
      const hit = byKey.get(key);
      if (hit !== undefined) {
        hit.dst.push(...entries);
        return;
      }
      const pos = Math.min(order, firstPos.get(key) ?? order);
      const rule: PlanRule = { pos, src, proto, dst: entries, caps: null };
      byKey.set(key, rule);
      out.push(rule);
    };
    const slot = n.slot;
    const units = this.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.unitSets[i];
      if (u === undefined || sets === undefined) continue;
      switch (u.kind) {
        case 'ip': {
          if (sets.dst === null || sets.src === null || !sets.dst.recv.has(slot)) break;
          const r = this.renderSet(sets.src);
          if (r.strings.length === 0) break;
          const entries = this.dstEntries(u.items, u.ports, n);
          if (entries.length > 0)
            merge(this.unitKey(i, sets.src, u.proto.numbers), u.order, r, u.proto.numbers, entries);
          break;
        }
        case 'cap': {
          if (sets.dst === null || sets.src === null || !sets.dst.capRecv.has(slot)) break;
          const caps: CapOut[] = [];
          for (const item of u.items) {
            const dsts = this.capDstsForItem(item, n);
            if (dsts.length > 0) caps.push({ dsts, cap: u.cap });
          }
          if (caps.length > 0)
            out.push({ pos: u.order, src: this.renderSet(sets.src), proto: null, dst: [], caps });
          break;
        }
        case 'companion': {
          const to = sets.src;
          if (to === null || sets.from === null) break;
          if (!(to.ident.has(slot) || to.addrIp.has(slot) || to.addrRoute.has(slot))) break;
          const dsts = this.srcCapDsts(to, n);
          if (dsts.length === 0) break;
          const cap: CapSpec = {
            names: [u.capName],
            json: `{${JSON.stringify(u.capName)}:null}`,
            map: { [u.capName]: null },
          };
          out.push({
            pos: u.order,
            src: this.renderSet(sets.from),
            proto: null,
            dst: [],
            caps: [{ dsts, cap }],
          });
          break;
        }
        case 'self-ip': {
          if (n.tagged || n.user === null || sets.src === null) break;
          const r = this.selfRender(u.order, sets.src, n.user, false);
          if (r.strings.length === 0) break;
          const entries: DstEntry[] = [];
          for (const ip of n.ipStrings)
            for (const p of u.ports) entries.push({ ip, first: p.first, last: p.last });
          // Self rules merge with global rules of equal SrcIPs too (capture acl-d08).
          merge(this.mergeKey(r.key, u.proto.numbers), u.order, r, u.proto.numbers, entries);
          break;
        }
        case 'self-cap': {
          if (n.tagged || n.user === null || sets.src === null) break;
          const r = this.selfRender(u.order, sets.src, n.user, false);
          if (r.strings.length === 0) break;
          out.push({
            pos: u.order,
            src: r,
            proto: null,
            dst: [],
            caps: [{ dsts: [...n.hostPrefixes], cap: u.cap }],
          });
          break;
        }
        case 'self-companion': {
          if (n.tagged || n.user === null || sets.src === null) break;
          if (!this.selfSrcHas(sets.src, n)) break;
          const r = this.selfRender(u.order, sets.src, n.user, true);
          const cap: CapSpec = {
            names: [u.capName],
            json: `{${JSON.stringify(u.capName)}:null}`,
            map: { [u.capName]: null },
          };
          out.push({
            pos: u.order,
            src: r,
            proto: null,
            dst: [],
            caps: [{ dsts: [...n.hostPrefixes], cap }],
          });
          break;
        }
        case 'via': {
          if (sets.src === null || !this.viaHosts(u, n)) break;
          const r = this.renderSet(sets.src);
          if (r.strings.length === 0) break;
          const entries: DstEntry[] = [];
          for (const p of u.prefixes) {
            if (!nodeRoutesOverlap(n, p.prefix)) continue;
            for (const pr of u.ports) entries.push({ ip: p.text, first: pr.first, last: pr.last });
          }
          if (u.internet && n.isExit) {
            for (const ir of INTERNET_RANGES) {
              for (const pr of u.ports) entries.push({ ip: ir.text, first: pr.first, last: pr.last });
            }
          }
          if (entries.length > 0)
            merge(this.unitKey(i, sets.src, u.proto.numbers), u.order, r, u.proto.numbers, entries);
          break;
        }
      }
    }
    return out.sort((a, b) => a.pos - b.pos);
  }

  private cachedFilter(n: NodeRec): CachedFilter {
    let c = this.filterCache.get(n.slot);
    if (c === undefined) {
      c = { plan: this.computePlan(n), rules: null, json: null };
      this.filterCache.set(n.slot, c);
    }
    return c;
  }

  private node(id: string): NodeRec {
    const slot = this.idToSlot.get(id);
    const n = slot === undefined ? undefined : this.nodes[slot];
    if (n === undefined) throw new Error(`unknown node ${JSON.stringify(id)}`);
    return n;
  }

  /** The packet filter for a node: every rule whose destination covers it, reduced and merged. */
  filterFor(id: string): FilterRule[] {
    const c = this.cachedFilter(this.node(id));
    if (c.rules === null) {
      c.rules = c.plan.map((r): FilterRule => {
        if (r.caps !== null) {
          return {
            SrcIPs: r.src.strings,
            CapGrant: r.caps.map((g) => ({ Dsts: g.dsts, CapMap: g.cap.map })),
          };
        }
        const DstPorts: NetPortRange[] = r.dst.map((e) => ({
          IP: e.ip,
          Ports: { First: e.first, Last: e.last },
        }));
        return r.proto === null
          ? { SrcIPs: r.src.strings, DstPorts }
          : { SrcIPs: r.src.strings, DstPorts, IPProto: r.proto };
      });
    }
    return c.rules;
  }

  /** The packet filter serialized as tailcfg JSON (cached; SrcIPs fragments are shared). */
  filterJsonFor(id: string): string {
    const c = this.cachedFilter(this.node(id));
    if (c.json === null) {
      const parts = c.plan.map((r) => {
        if (r.caps !== null) {
          const grants = r.caps
            .map((g) => `{"Dsts":${JSON.stringify(g.dsts)},"CapMap":${g.cap.json}}`)
            .join(',');
          return `{"SrcIPs":${r.src.json},"CapGrant":[${grants}]}`;
        }
        const dst = r.dst.map(entryJson).join(',');
        const proto = r.proto === null ? '' : `,"IPProto":[${r.proto.join(',')}]`;
        return `{"SrcIPs":${r.src.json},"DstPorts":[${dst}]${proto}}`;
      });
      c.json = `[${parts.join(',')}]`;
    }
    return c.json;
  }

  // -------------------------------------------------------------------------------------------
  // Peers

  private computePeerBits(n: NodeRec): BitSet {
    const acc = new BitSet(this.capacity());
    const slot = n.slot;
    let ors = 0;
    const full = (): boolean => ++ors % 8 === 0 && acc.containsAll(this.allBits);
    for (const s of this.edgeSrcSets) {
      if (s.peer.has(slot)) {
        acc.or(s.reach);
        if (full()) break;
      }
    }
    for (const d of this.edgeDstSets) {
      if (d.dpeer.has(slot)) {
        acc.or(d.reach);
        if (full()) break;
      }
    }
    if (this.compiled.hasSelf && !n.tagged && n.user !== null) this.addSelfPeers(n, acc);
    if (this.compiled.hasVia) this.addViaPeers(n, acc);
    acc.put(slot, false);
    return acc;
  }

  private addSelfPeers(n: NodeRec, acc: BitSet): void {
    if (n.user === null) return;
    const same = this.userNodeList(n.user);
    const units = this.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const set = this.unitSets[i]?.src;
      if (u === undefined || set === undefined || set === null) continue;
      if (u.kind !== 'self-ip' && u.kind !== 'self-cap') continue;
      if (this.selfSrcHas(set, n)) for (const m of same) acc.put(m.slot, true);
      else for (const m of same) if (this.selfSrcHas(set, m)) acc.put(m.slot, true);
    }
  }

  /** Nodes B whose via rule (for unit u) has `a` as destination. */
  private viaDstHas(u: Extract<Unit, { kind: 'via' }>, host: NodeRec, a: NodeRec): boolean {
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
    const units = this.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const set = this.unitSets[i]?.src;
      if (u === undefined || u.kind !== 'via' || set === undefined || set === null) continue;
      const aIsSrc = set.peer.has(a.slot);
      if (this.viaHosts(u, a)) {
        acc.or(set.peer);
        if (aIsSrc) {
          for (const b of this.nodes) if (b !== undefined && this.viaDstHas(u, a, b)) acc.put(b.slot, true);
        }
      }
      for (const t of u.viaTags) {
        for (const b of this.nodes) {
          if (b === undefined || !b.tags.has(t) || !this.viaHosts(u, b)) continue;
          if (aIsSrc || (set.peer.has(b.slot) && this.viaDstHas(u, b, a))) acc.put(b.slot, true);
        }
      }
    }
  }

  private peerBits(n: NodeRec): BitSet {
    let b = this.peerCache.get(n.slot);
    if (b === undefined) {
      b = this.computePeerBits(n);
      this.peerCache.set(n.slot, b);
    }
    return b;
  }

  /** Position of each slot in canonical id order (rebuilt lazily after joins/leaves). */
  private rank: Int32Array | null = null;

  private rankOf(): Int32Array {
    if (this.rank === null || this.rank.length < this.nodes.length) {
      const rank = new Int32Array(this.nodes.length);
      this.order.forEach((slot, i) => {
        rank[slot] = i;
      });
      this.rank = rank;
    }
    return this.rank;
  }

  /** Ids of the nodes `id` sees (either may reach the other), in canonical id order. */
  peersOf(id: string): string[] {
    const n = this.node(id);
    let list = this.peerListCache.get(n.slot);
    if (list === undefined) {
      const slots = this.peerBits(n).toArray();
      const rank = this.rankOf();
      slots.sort((a, b) => (rank[a] ?? 0) - (rank[b] ?? 0));
      list = slots.map((s) => this.nodes[s]?.id ?? '');
      this.peerListCache.set(n.slot, list);
    }
    return list;
  }

  /** True if `a` and `b` see each other. */
  canSee(a: string, b: string): boolean {
    if (a === b) return false;
    return this.peerBits(this.node(a)).has(this.node(b).slot);
  }

  // -------------------------------------------------------------------------------------------
  // Route visibility

  /** Do a src set's addresses overlap `r` (node addresses of members are ignored, see README)? */
  private srcOverlaps(set: PSet, r: Range): boolean {
    const spec = set.spec;
    if (spec.dangerAll) return true;
    if (spec.literals.some((l) => rangesOverlap(l.prefix, r))) return true;
    if (spec.wildcard) {
      if (WILDCARD_SET.overlaps(r)) return true;
      for (const text of this.routeCount.keys()) {
        const p = parsePrefix(text);
        if (p !== null && rangesOverlap(p, r)) return true;
      }
    }
    return false;
  }

  private dstOverlaps(set: PSet, r: Range): boolean {
    const spec = set.spec;
    if (spec.wildcard) return true;
    if (spec.internet && INTERNET_SET.overlaps(r)) return true;
    return spec.literals.some((l) => rangesOverlap(l.prefix, r));
  }

  /** Does a dst set contain one of the node's addresses? */
  private dstHasIp(set: PSet, n: NodeRec): boolean {
    if (set.ident.has(n.slot) || set.spec.wildcard) return true;
    return (
      set.spec.literals.some((l) => nodeIpIn(n, l.prefix)) ||
      (set.spec.internet && n.addrs.some((a) => INTERNET_SET.containsAddr(a)))
    );
  }

  /**
   * The peer's approved subnet routes the viewer may use (for the peer's AllowedIPs as seen by
   * the viewer; headscale CanAccessRoute semantics, including via grants). Exit routes are not
   * included (they are always offered) and primary-router election is left to the caller.
   */
  routesVisibleTo(viewerId: string, peerId: string): string[] {
    const viewer = this.node(viewerId);
    const peer = this.node(peerId);
    const out: string[] = [];
    const units = this.compiled.units;
    const peers = this.peerBits(viewer).has(peer.slot);
    for (const route of peer.subnetRoutes) {
      // Routers serving the same route see each other's copy (HA pairs; captures grant-p10-2,
      // via-grant-v38), but not a merely overlapping one (routes-a2).
      let visible =
        peers &&
        viewer.subnetRoutes.some(
          (vr) => vr.first === route.first && vr.bits === route.bits && vr.family === route.family,
        );
      for (let i = 0; i < units.length && !visible; i++) {
        const u = units[i];
        const sets = this.unitSets[i];
        if (u === undefined || sets?.src == null) continue;
        const src = sets.src;
        if ((u.kind === 'ip' || u.kind === 'cap') && sets.dst !== null) {
          if (src.content.count === 0 && u.kind === 'ip') continue;
          const dst = sets.dst;
          const viewerIsSrc = src.ident.has(viewer.slot) || src.addrIp.has(viewer.slot);
          const viewerRoutesInSrc = viewer.subnetRoutes.some((vr) => this.srcOverlaps(src, vr));
          const dstHitsRoute = this.dstOverlaps(dst, route);
          const srcHitsRoute = this.srcOverlaps(src, route);
          visible =
            ((viewerIsSrc || viewerRoutesInSrc) && dstHitsRoute) ||
            (srcHitsRoute &&
              (this.dstHasIp(dst, viewer) || viewer.subnetRoutes.some((vr) => this.dstOverlaps(dst, vr))));
        } else if (u.kind === 'via' && this.viaHosts(u, peer)) {
          const viewerIsSrc = src.ident.has(viewer.slot) || src.addrIp.has(viewer.slot);
          visible =
            viewerIsSrc &&
            u.prefixes.some((p) => nodeRoutesOverlap(peer, p.prefix) && rangesOverlap(p.prefix, route));
        }
      }
      if (visible) out.push(formatPrefix(route));
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // SSH

  /** Tailscale SSH policy for a node; null when the policy has no `ssh` section. */
  sshPolicyFor(id: string): SshPolicy | null {
    const n = this.node(id);
    if (this.sshCache.has(n.slot)) return this.sshCache.get(n.slot) ?? null;
    const p = this.computeSsh(n);
    this.sshCache.set(n.slot, p);
    return p;
  }

  private computeSsh(m: NodeRec): SshPolicy | null {
    if (this.policy.ssh === null || this.policy.ssh.length === 0) return null;
    const rules: SshPolicyRule[] = [];
    for (const c of this.sshRules) {
      if (c.src.ident.isEmpty()) continue;
      const isCheck = c.rule.action === 'check';
      const action = isCheck
        ? {
            holdAndDelegate: `${this.sshCheckUrlBase}/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER`,
          }
        : {
            accept: true,
            allowAgentForwarding: true,
            allowLocalPortForwarding: true,
            allowRemotePortForwarding: true,
          };
      const env =
        c.rule.acceptEnv !== null && c.rule.acceptEnv.length > 0 ? { acceptEnv: c.rule.acceptEnv } : {};
      // Group source nodes by user; tagged nodes repeat once per tag (SaaS wire format).
      // Users are ordered by their oldest node (lowest id), standing in for SaaS's user-id order.
      const byUser = new Map<string, Addr[]>();
      const tagged: Addr[] = [];
      for (const slot of this.order) {
        const n = this.nodes[slot];
        if (n === undefined || !c.src.ident.has(slot)) continue;
        if (n.tagged) {
          for (let i = 0; i < n.tags.size; i++) tagged.push(...n.addrs);
        } else if (n.user !== null) {
          const list = byUser.get(n.user) ?? [];
          list.push(...n.addrs);
          byUser.set(n.user, list);
        }
      }
      const principals = (addrs: readonly Addr[]) =>
        [...addrs]
          .sort((x, y) => (x.family !== y.family ? x.family - y.family : x.value < y.value ? -1 : 1))
          .map((a) => ({ nodeIP: formatRange({ family: a.family, first: a.value, last: a.value }) }));
      const users = [...byUser.keys()];
      const localpart = (login: string): string | null => {
        const at = login.lastIndexOf('@');
        if (at < 0) return null;
        const domain = login.slice(at + 1).toLowerCase();
        return c.localpartDomains.some((d) => d.toLowerCase() === domain) ? login.slice(0, at) : null;
      };
      const append = (ps: { nodeIP: string }[], login: string | null): void => {
        rules.push({ principals: ps, sshUsers: c.sshUsers, action, ...env });
        if (login !== null && c.localpartDomains.length > 0) {
          const lp = localpart(login);
          if (lp !== null) rules.push({ principals: ps, sshUsers: { [lp]: lp }, action, ...env });
        }
      };
      if (c.hasSelf && !m.tagged && m.user !== null) {
        const mine = byUser.get(m.user);
        if (mine !== undefined && mine.length > 0) append(principals(mine), m.user);
      }
      if (c.dst !== null) {
        if (c.dst.ident.has(m.slot)) {
          if (c.localpartDomains.length > 0) {
            for (const u of users) append(principals(byUser.get(u) ?? []), u);
            if (tagged.length > 0) append(principals(tagged).slice(), null);
          } else {
            const all = [
              ...users.flatMap((u) => principals(byUser.get(u) ?? [])),
              ...taggedPrincipals(tagged),
            ];
            if (all.length > 0) append(all, null);
          }
        } else if (c.localpartDomains.length > 0 && c.src.ident.has(m.slot)) {
          if (m.tagged) append(principals(m.addrs), null);
          else if (m.user !== null) append(principals(byUser.get(m.user) ?? []), m.user);
        }
      }
    }
    const checks = rules.filter((r) => r.action.holdAndDelegate !== undefined);
    const accepts = rules.filter((r) => r.action.holdAndDelegate === undefined);
    return { rules: [...checks, ...accepts] };
  }

  // -------------------------------------------------------------------------------------------
  // nodeAttrs, autoApprovers, tagOwners

  private nodeAttrTargetHas(targets: readonly Alias[], n: NodeRec): boolean {
    for (const a of targets) {
      switch (a.kind) {
        case 'wildcard':
          if (n.addrs.some((x) => WILDCARD_SET.containsAddr(x))) return true;
          break;
        case 'prefix':
          if (nodeIpIn(n, a.prefix)) return true;
          break;
        case 'host': {
          const h = this.policy.hosts.get(a.name);
          if (h !== undefined && nodeIpIn(n, h.prefix)) return true;
          break;
        }
        case 'user': {
          const domain = userDomainOf(a.login);
          const alias: IdentAlias =
            domain !== null
              ? { kind: 'userDomain', domain }
              : { kind: 'user', login: normalizeLogin(a.login) };
          if (this.identAliasMatch(n, alias)) return true;
          break;
        }
        case 'group':
          if (this.identAliasMatch(n, { kind: 'group', name: a.name })) return true;
          break;
        case 'tag':
          if (n.tags.has(a.name)) return true;
          break;
        case 'autogroup':
          if (a.name === 'autogroup:member' && this.identAliasMatch(n, { kind: 'member' })) return true;
          if (a.name === 'autogroup:tagged' && n.tagged) return true;
          break;
      }
    }
    return false;
  }

  private computeCaps(n: NodeRec): NodeCapMap {
    const caps: Record<string, null> = {};
    if (this.policy.randomizeClientPort) caps['randomize-client-port'] = null;
    for (const na of this.policy.nodeAttrs) {
      if (na.attr.length === 0) continue;
      if (
        !this.nodeAttrTargetHas(
          na.target.map((t) => t.alias),
          n,
        )
      )
        continue;
      for (const a of na.attr) caps[a.name] = null;
    }
    return caps;
  }

  /** Node capabilities granted by `nodeAttrs` (and `randomizeClientPort`). */
  nodeCapsFor(id: string): NodeCapMap {
    const n = this.node(id);
    let c = this.capsCache.get(n.slot);
    if (c === undefined) {
      c = this.computeCaps(n);
      this.capsCache.set(n.slot, c);
    }
    return c;
  }

  private ownerMatches(owner: Alias, user: string | null, tags: ReadonlySet<string>): boolean {
    const tagged = tags.size > 0;
    switch (owner.kind) {
      case 'user':
        return !tagged && user !== null && user === normalizeLogin(owner.login);
      case 'group':
        return !tagged && user !== null && (this.groupsOf(user)?.has(owner.name) ?? false);
      case 'tag':
        return tags.has(owner.name);
      case 'autogroup':
      case 'host':
      case 'prefix':
      case 'wildcard':
        return false;
    }
  }

  /**
   * Routes from `node.routableIPs` that autoApprovers allow this node to have approved
   * (subnet routes via `routes` with a covering prefix; exit routes only via `exitNode`).
   */
  autoApprovedRoutes(node: PolicyNode): string[] {
    const rec = makeNodeRec({ ...node, approvedRoutes: [] }, -1);
    const out: string[] = [];
    const matches = (owners: readonly { alias: Alias }[]): boolean =>
      owners.some((o) => this.ownerMatches(o.alias, rec.user, rec.tags));
    for (const text of node.routableIPs) {
      const r = parseRoute(text);
      if (r === null) continue;
      const approved =
        r.bits === 0
          ? matches(this.policy.autoApprovers.exitNode)
          : this.policy.autoApprovers.routes.some(
              (e) => e.prefix.bits <= r.bits && rangeContains(e.prefix, r) && matches(e.owners),
            );
      if (approved) out.push(formatPrefix(r));
    }
    return out;
  }

  /** Owners a tag flattens to (users and groups), following tag→tag ownership. */
  private flatOwners(tag: string, seen = new Set<string>()): Alias[] {
    if (seen.has(tag)) return [];
    seen.add(tag);
    const def = this.policy.tagOwners.get(tag);
    if (def === undefined) return [];
    return def.owners.flatMap((o) =>
      o.alias.kind === 'tag' ? this.flatOwners(o.alias.name, seen) : [o.alias],
    );
  }

  /**
   * tagOwners check for tags requested by a user (e.g. on a pre-auth key): each tag must be
   * defined and the user must own it directly, through a group, or through a tag that owns it.
   */
  tagsAllowedFor(ownerLogin: string, tags: readonly string[]): TagCheck {
    const login = normalizeLogin(ownerLogin);
    const denied = tags.filter(
      (t) =>
        !this.policy.tagOwners.has(t) ||
        !this.flatOwners(t).some((o) => this.ownerMatches(o, login, new Set())),
    );
    return { ok: denied.length === 0, denied };
  }

  /** tagOwners check for a credential that itself carries tags (tag→tag ownership, transitively). */
  tagsAllowedForTags(ownerTags: readonly string[], tags: readonly string[]): TagCheck {
    const owned = new Set(ownerTags);
    const walk = (t: string, seen: Set<string>): boolean => {
      if (seen.has(t)) return false;
      seen.add(t);
      for (const o of this.policy.tagOwners.get(t)?.owners ?? []) {
        if (o.alias.kind === 'tag' && (owned.has(o.alias.name) || walk(o.alias.name, seen))) return true;
      }
      return false;
    };
    const denied = tags.filter(
      (t) => !this.policy.tagOwners.has(t) || (!owned.has(t) && !walk(t, new Set())),
    );
    return { ok: denied.length === 0, denied };
  }

  // -------------------------------------------------------------------------------------------
  // Mutations

  hasNode(id: string): boolean {
    return this.idToSlot.has(id);
  }

  nodeIds(): string[] {
    return this.order.map((s) => this.nodes[s]?.id ?? '');
  }

  /** The node as last given to the engine. */
  getNode(id: string): PolicyNode | undefined {
    const slot = this.idToSlot.get(id);
    return slot === undefined ? undefined : this.nodes[slot]?.input;
  }

  /** The current policy (null-policy engines report the empty allow-all policy). */
  currentPolicy(): Policy {
    return this.policy;
  }

  /** Adds a node or replaces it (tags, routes, user, addresses, groups). */
  upsertNode(node: PolicyNode): PolicyChange {
    const slot = this.idToSlot.get(node.id);
    const old = slot === undefined ? undefined : this.nodes[slot];
    const probe = makeNodeRec(node, old?.slot ?? 0);
    if (old !== undefined && old.fingerprint === probe.fingerprint) return emptyChange();
    const touched = new Set<string>([node.id]);
    const users = new Set<string>();
    if (probe.user !== null) users.add(probe.user);
    const groupsChange =
      probe.user !== null &&
      probe.groups !== undefined &&
      !sameSet(this.externalGroups.get(probe.user), probe.groups);
    if (groupsChange && probe.user !== null) for (const m of this.userNodeList(probe.user)) touched.add(m.id);
    return this.mutate(touched, users, () => {
      if (old === undefined) {
        this.addNodeRecord(node);
        return;
      }
      this.indexNode(old, false);
      const rec = makeNodeRec(node, old.slot);
      this.nodes[old.slot] = rec;
      if (rec.groups !== undefined && rec.user !== null) this.setExternalGroups(rec.user, rec.groups);
      this.indexNode(rec, true);
    });
  }

  /** Removes a node. Unknown ids are ignored. */
  removeNode(id: string): PolicyChange {
    const slot = this.idToSlot.get(id);
    const old = slot === undefined ? undefined : this.nodes[slot];
    if (old === undefined) return emptyChange();
    const change = this.mutate(new Set([id]), new Set(), () => {
      this.indexNode(old, false);
      this.nodes[old.slot] = undefined;
      this.idToSlot.delete(old.id);
    });
    this.freeSlots.push(old.slot);
    return change;
  }

  /** Sets a user's identity-provider groups; affects that user's untagged nodes. */
  setUserGroups(login: string, groups: readonly string[]): PolicyChange {
    const user = normalizeLogin(login);
    const next = new Set(groups.map(groupName));
    if (sameSet(this.externalGroups.get(user), [...next])) return emptyChange();
    const touched = new Set(this.userNodeList(user).map((n) => n.id));
    return this.mutate(touched, new Set([user]), () => {
      this.setExternalGroups(user, [...next]);
    });
  }

  private dropCaches(slot: number): void {
    this.filterCache.delete(slot);
    this.peerCache.delete(slot);
    this.peerListCache.delete(slot);
    this.sshCache.delete(slot);
    this.capsCache.delete(slot);
  }

  /**
   * Applies a change to the touched nodes (whose slots stay stable) and computes exactly which
   * outputs changed. `users` names users whose `autogroup:self` rules may change besides the
   * touched nodes' current users.
   */
  private mutate(
    touchedIds: ReadonlySet<string>,
    users: ReadonlySet<string>,
    apply: () => void,
  ): PolicyChange {
    interface Before {
      readonly rec: NodeRec;
      readonly plan: readonly PlanRule[];
      readonly peers: BitSet;
      readonly caps: string;
      readonly identSrc: ReadonlySet<PSet>;
      readonly relevant: ReadonlySet<PSet>;
      readonly sshRules: ReadonlySet<number>;
    }
    const before = new Map<string, Before>();
    const affectedUsers = new Set(users);
    for (const id of touchedIds) {
      const slot = this.idToSlot.get(id);
      const rec = slot === undefined ? undefined : this.nodes[slot];
      if (rec === undefined) continue;
      if (rec.user !== null) affectedUsers.add(rec.user);
      const relevant = this.relevantSets(rec);
      before.set(id, {
        rec,
        plan: this.cachedFilter(rec).plan,
        peers: this.peerBits(rec).clone(),
        caps: JSON.stringify(this.nodeCapsFor(id)),
        identSrc: new Set([...relevant].filter((s) => s.role === 'src' && s.ident.has(rec.slot))),
        relevant,
        sshRules: this.sshRulesMatching(rec),
      });
    }
    const selfBefore = new Map<string, Map<number, string>>();
    if (this.compiled.hasSelf) for (const u of affectedUsers) selfBefore.set(u, this.selfSnapshot(u));
    const routeKeysBefore = new Set(this.routeCount.keys());
    const firstPosBefore = this.gfp();

    apply();

    const after = new Map<string, NodeRec>();
    for (const id of touchedIds) {
      const slot = this.idToSlot.get(id);
      const rec = slot === undefined ? undefined : this.nodes[slot];
      if (rec === undefined) continue;
      after.set(id, rec);
      if (rec.user !== null) affectedUsers.add(rec.user);
    }
    const touchedSets = new Set<PSet>();
    const dstWasNonEmpty = new Map<PSet, boolean>();
    for (const id of touchedIds) {
      const rec = after.get(id) ?? before.get(id)?.rec;
      if (rec === undefined) continue;
      const present = after.has(id);
      const sets = new Set(before.get(id)?.relevant ?? []);
      if (present) for (const s of this.relevantSets(rec)) sets.add(s);
      for (const set of sets) {
        if (set.role === 'dst' && !dstWasNonEmpty.has(set)) dstWasNonEmpty.set(set, set.identCount > 0);
        this.refreshMember(set, rec, present);
        touchedSets.add(set);
      }
      this.refreshReach(rec.slot);
      this.dropCaches(rec.slot);
    }

    // Which rendered SrcIPs changed? Keep each set's content hash in step.
    const changedSets = new Set<PSet>();
    const routesAfter = new Set(this.routeCount.keys());
    const routeFlips: [string, 1 | -1][] = [];
    for (const r of routeKeysBefore) if (!routesAfter.has(r)) routeFlips.push([r, -1]);
    for (const r of routesAfter) if (!routeKeysBefore.has(r)) routeFlips.push([r, 1]);
    if (routeFlips.length > 0) {
      for (const s of this.srcSets) {
        if (!s.spec.wildcard || s.spec.dangerAll) continue;
        changedSets.add(s);
        for (const [r, sign] of routeFlips) if (!s.spec.literalTexts.has(r)) s.content.add(strHash(r), sign);
      }
    }
    const touchedSlots = new Set<number>();
    for (const b of before.values()) touchedSlots.add(b.rec.slot);
    for (const a of after.values()) touchedSlots.add(a.slot);
    for (const set of touchedSets) {
      if (set.role !== 'src' || set.spec.dangerAll) continue;
      // Strings the touched nodes contributed before and after; a difference changes the
      // rendering unless a literal or an untouched member provides the same string.
      const was = new Set<string>();
      const is = new Set<string>();
      for (const b of before.values()) if (b.identSrc.has(set)) for (const ip of b.rec.ipStrings) was.add(ip);
      for (const a of after.values()) if (set.ident.has(a.slot)) for (const ip of a.ipStrings) is.add(ip);
      if (was.size === 0 && is.size === 0) continue;
      for (const ip of was) {
        if (is.has(ip) || this.renderHasOther(set, ip, touchedSlots)) continue;
        set.content.add(strHash(ip), -1);
        changedSets.add(set);
      }
      for (const ip of is) {
        if (was.has(ip) || this.renderHasOther(set, ip, touchedSlots)) continue;
        set.content.add(strHash(ip), 1);
        changedSets.add(set);
      }
    }
    for (const s of changedSets) this.invalidateRender(s);
    for (const u of affectedUsers) this.dropSelfRenders(u);
    // Rules whose merge key or activeness may have moved; remember their old keys now.
    const keyUnits: number[] = [];
    const keysToCheck = new Set<string>();
    this.compiled.units.forEach((u, i) => {
      const sets = this.unitSets[i];
      if (u.kind !== 'ip' || sets?.src == null || sets.dst === null) return;
      const flipped =
        dstWasNonEmpty.has(sets.dst) && dstWasNonEmpty.get(sets.dst) !== sets.dst.identCount > 0;
      if (!changedSets.has(sets.src) && !flipped) return;
      keyUnits.push(i);
      const old = this.unitKeys[i]?.[1];
      if (old !== undefined) keysToCheck.add(old);
    });
    this.firstPositions = null;

    // Filters: receivers of rules whose SrcIPs changed, touched nodes, same-user nodes.
    const filterChanged = new Set<string>();
    const receivers = new BitSet(this.capacity());
    const units = this.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.unitSets[i];
      if (u === undefined || sets === undefined) continue;
      switch (u.kind) {
        case 'ip':
          if (sets.src !== null && sets.dst !== null && changedSets.has(sets.src))
            receivers.or(sets.dst.recv);
          break;
        case 'cap':
          if (sets.src !== null && sets.dst !== null && changedSets.has(sets.src))
            receivers.or(sets.dst.capRecv);
          break;
        case 'companion':
          if (sets.from !== null && sets.src !== null && changedSets.has(sets.from)) {
            receivers.or(sets.src.ident);
            receivers.or(sets.src.addrIp);
            receivers.or(sets.src.addrRoute);
          }
          break;
        case 'via':
          if (sets.src !== null && changedSets.has(sets.src)) {
            for (const n of this.nodes)
              if (n !== undefined && this.viaHosts(u, n)) receivers.put(n.slot, true);
          }
          break;
        case 'self-ip':
        case 'self-cap':
        case 'self-companion':
          break;
      }
    }
    receivers.forEach((slot) => {
      const n = this.nodes[slot];
      if (n === undefined || touchedIds.has(n.id)) return;
      filterChanged.add(n.id);
      this.filterCache.delete(slot);
    });
    for (const [id, rec] of after) {
      const b = before.get(id);
      if (b === undefined || !planEquals(b.plan, this.cachedFilter(rec).plan)) filterChanged.add(id);
    }
    // Same-user nodes: their self rules changed exactly when the user's self SrcIPs did.
    if (this.compiled.hasSelf) {
      for (const user of affectedUsers) {
        const old = selfBefore.get(user) ?? new Map<number, string>();
        const now = this.selfSnapshot(user);
        const moved = [...now.keys()].filter((k) => old.get(k) !== now.get(k));
        if (moved.length === 0) continue;
        const ipOrCap = moved.some((k) => k >= 0);
        const companions = moved.filter((k) => k < 0).map((k) => this.unitSets[-1 - k]?.src ?? null);
        for (const m of this.userNodeList(user)) {
          if (touchedIds.has(m.id) || filterChanged.has(m.id)) continue;
          if (ipOrCap || companions.some((s) => s !== null && this.selfSrcHas(s, m))) {
            filterChanged.add(m.id);
            this.filterCache.delete(m.slot);
          }
        }
      }
    }

    this.reorderedByFirstPositions(
      firstPosBefore,
      touchedIds,
      filterChanged,
      changedSets,
      keyUnits,
      keysToCheck,
      affectedUsers,
    );

    // Peers: every flipped pair involves a touched node.
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
        const other = this.nodes[slot];
        if (other === undefined) return;
        peersChanged.add(other.id);
        this.peerCache.delete(slot);
        this.peerListCache.delete(slot);
        list.push(other.id);
      };
      gained.forEach((slot) => visit(slot, f.gained));
      lost.forEach((slot) => visit(slot, f.lost));
      flips.push(f);
      if (a !== undefined && (b === undefined || f.gained.length > 0 || f.lost.length > 0))
        peersChanged.add(id);
    }

    // SSH (structural over-approximation) and caps (exact for touched nodes).
    const sshChanged = new Set<string>();
    if (this.policy.ssh !== null) {
      const rulesHit = new Set<number>();
      for (const b of before.values()) for (const r of b.sshRules) rulesHit.add(r);
      for (const a of after.values()) for (const r of this.sshRulesMatching(a)) rulesHit.add(r);
      const add = (slot: number): void => {
        const n = this.nodes[slot];
        if (n !== undefined) sshChanged.add(n.id);
      };
      for (const i of rulesHit) {
        const c = this.sshRules[i];
        if (c === undefined) continue;
        c.dst?.ident.forEach(add);
        if (c.hasSelf)
          for (const u of affectedUsers) for (const m of this.userNodeList(u)) sshChanged.add(m.id);
        if (c.localpartDomains.length > 0) c.src.ident.forEach(add);
      }
      for (const id of after.keys()) sshChanged.add(id);
      for (const id of sshChanged) {
        const s = this.idToSlot.get(id);
        if (s !== undefined) this.sshCache.delete(s);
      }
    }
    const capsChanged = new Set<string>();
    for (const id of after.keys()) {
      if (before.get(id)?.caps !== JSON.stringify(this.nodeCapsFor(id))) capsChanged.add(id);
    }

    return new ChangeResult(filterChanged, peersChanged, sshChanged, capsChanged, flips, (id) =>
      this.idToSlot.has(id),
    );
  }

  /**
   * A merge key's first global position moved (a rule of that key started or stopped resolving
   * to any destination): nodes holding that key may see their rules reordered. Compares their
   * plans under the old and new positions; everything else about them is unchanged.
   */
  private reorderedByFirstPositions(
    before: ReadonlyMap<string, number>,
    touched: ReadonlySet<string>,
    filterChanged: Set<string>,
    changedSets: ReadonlySet<PSet>,
    keyUnits: readonly number[],
    keysToCheck: Set<string>,
    affectedUsers: ReadonlySet<string>,
  ): void {
    if (keyUnits.length === 0) return;
    const units = this.compiled.units;
    for (const i of keyUnits) {
      const u = units[i];
      const src = this.unitSets[i]?.src;
      if (u?.kind === 'ip' && src != null) keysToCheck.add(this.unitKey(i, src, u.proto.numbers));
    }
    const after = this.gfp();
    const moved = new Set<string>();
    for (const key of keysToCheck) {
      // A key without an active global rule still exists on via routers and self rules
      // (position = their own order), hence Infinity.
      const p1 = before.get(key) ?? Infinity;
      const p2 = after.get(key) ?? Infinity;
      if (p1 !== p2 && Math.abs(p1 - p2) > 1) moved.add(key);
    }
    if (moved.size === 0) return;
    // Who holds a moved key now. Receivers of rules with changed sources are flagged already;
    // everyone else holds the same keys as before.
    const candidates = new BitSet(this.capacity());
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.unitSets[i];
      if (u === undefined || sets?.src == null) continue;
      // Self rules render per user, so a changed source set does not flag their holders.
      if (u.kind !== 'self-ip' && changedSets.has(sets.src)) continue;
      if (u.kind === 'ip' && sets.dst !== null) {
        if (moved.has(this.unitKey(i, sets.src, u.proto.numbers))) candidates.or(sets.dst.recv);
      } else if (u.kind === 'via') {
        if (!moved.has(this.unitKey(i, sets.src, u.proto.numbers))) continue;
        for (const n of this.nodes) if (n !== undefined && this.viaHosts(u, n)) candidates.put(n.slot, true);
      } else if (u.kind === 'self-ip') {
        for (const [login, bits] of this.userNodes) {
          if (bits.isEmpty() || affectedUsers.has(login)) continue;
          const r = this.selfRender(u.order, sets.src, login, false);
          if (r.strings.length > 0 && moved.has(this.mergeKey(r.key, u.proto.numbers))) candidates.or(bits);
        }
      }
    }
    candidates.forEach((slot) => {
      const m = this.nodes[slot];
      if (m === undefined || touched.has(m.id) || filterChanged.has(m.id)) return;
      if (!planEquals(this.computePlan(m, before), this.computePlan(m, after))) {
        filterChanged.add(m.id);
        this.filterCache.delete(slot);
      }
    });
  }

  /** Merge key of unit `i` (cached while its sources' content is unchanged). */
  private unitKey(i: number, src: PSet, proto: readonly number[] | null): string {
    const ck = src.content.key();
    const cached = this.unitKeys[i];
    if (cached !== undefined && cached[0] === ck) return cached[1];
    const key = this.mergeKey(ck, proto);
    this.unitKeys[i] = [ck, key];
    return key;
  }

  private unitKeys: [string, string][] = [];

  /** Is `ip` rendered in `set` by a literal or by a node outside `except`? */
  private renderHasOther(set: PSet, ip: string, except: ReadonlySet<number>): boolean {
    if (set.spec.literalTexts.has(ip)) return true;
    for (const s of this.ipOwners.get(ip) ?? []) if (!except.has(s) && set.ident.has(s)) return true;
    return false;
  }

  private sshRulesMatching(n: NodeRec): Set<number> {
    const out = new Set<number>();
    this.sshRules.forEach((c, i) => {
      if (c.src.ident.has(n.slot) || c.dst?.ident.has(n.slot) === true) out.add(i);
    });
    return out;
  }

  /** Replaces the policy (null: allow all). Returns the nodes whose outputs changed. */
  setPolicy(policy: Policy | null): PolicyChange {
    const live = this.order.map((s) => this.nodes[s]).filter((n): n is NodeRec => n !== undefined);
    const before = live.map((n) => ({
      id: n.id,
      plan: this.cachedFilter(n).plan,
      peers: this.peerBits(n),
      ssh: JSON.stringify(this.sshPolicyFor(n.id)),
      caps: JSON.stringify(this.nodeCapsFor(n.id)),
    }));
    this.policy = policy ?? EMPTY_POLICY;
    this.compiled = compilePolicy(policy);
    this.filterCache.clear();
    this.peerCache.clear();
    this.peerListCache.clear();
    this.sshCache.clear();
    this.capsCache.clear();
    this.rebuildSets();
    const filterChanged = new Set<string>();
    const peersChanged = new Set<string>();
    const sshChanged = new Set<string>();
    const capsChanged = new Set<string>();
    for (const b of before) {
      const n = this.node(b.id);
      if (!planEquals(b.plan, this.cachedFilter(n).plan)) filterChanged.add(b.id);
      if (!b.peers.equals(this.peerBits(n))) peersChanged.add(b.id);
      if (b.ssh !== JSON.stringify(this.sshPolicyFor(b.id))) sshChanged.add(b.id);
      if (b.caps !== JSON.stringify(this.nodeCapsFor(b.id))) capsChanged.add(b.id);
    }
    return new ChangeResult(filterChanged, peersChanged, sshChanged, capsChanged, null, () => true);
  }

  // -------------------------------------------------------------------------------------------
  // Support for policy tests (tests.ts)

  /** @internal Resolves a source/destination selector to the addresses it stands for now. */
  resolveAddrs(alias: Alias): Range[] {
    const factory = new SpecFactory(this.policy);
    const spec = factory.spec([alias]);
    const out: Range[] = [];
    if (spec.dangerAll) out.push(ALL4, ALL6);
    if (spec.wildcard) out.push(...WILDCARD_SET.ranges);
    if (spec.internet) out.push(...INTERNET_SET.ranges);
    for (const l of spec.literals) out.push(l.prefix);
    for (const n of this.nodes) {
      if (n !== undefined && this.identMatch(n, spec)) out.push(...n.addrs.map(hostPrefix));
    }
    return out;
  }

  /** @internal The unreduced global rules (no self/via), as address sets, for `tests`. */
  globalRules(): {
    src: Range[];
    proto: readonly number[] | null;
    dst: { ranges: Range[]; first: number; last: number }[];
  }[] {
    const out: ReturnType<PolicyEngine['globalRules']> = [];
    const units = this.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.unitSets[i];
      if (u === undefined || u.kind !== 'ip' || sets?.src === null || sets?.src === undefined) continue;
      const render = this.renderSet(sets.src);
      if (render.strings.length === 0) continue;
      const src: Range[] = [];
      for (const s of render.strings) {
        if (s === '*') src.push(ALL4, ALL6);
        else src.push(...(parseRangeText(s) ?? []));
      }
      const dst: { ranges: Range[]; first: number; last: number }[] = [];
      for (const item of u.items) {
        let ranges: Range[] = [];
        switch (item.kind) {
          case 'wildcard':
            ranges = [ALL4, ALL6];
            break;
          case 'internet':
            ranges = [...INTERNET_SET.ranges];
            break;
          case 'literal':
            ranges = [item.literal.prefix];
            break;
          case 'ident':
            for (const n of this.nodes) {
              if (n !== undefined && this.identAliasMatch(n, item.alias))
                ranges.push(...n.addrs.map(hostPrefix));
            }
            break;
        }
        for (const p of u.ports) if (ranges.length > 0) dst.push({ ranges, first: p.first, last: p.last });
      }
      if (dst.length > 0) out.push({ src, proto: u.proto.numbers, dst });
    }
    return out;
  }

  /** @internal Nodes matched by an SSH test destination (by identity or address). */
  nodesForAlias(alias: Alias): string[] {
    const ranges = this.resolveAddrs(alias);
    const out: string[] = [];
    for (const slot of this.order) {
      const n = this.nodes[slot];
      if (n !== undefined && n.addrs.some((a) => ranges.some((r) => rangeContainsAddr(r, a)))) out.push(n.id);
    }
    return out;
  }

  /** @internal Untagged nodes of a user. */
  userNodeIds(login: string): string[] {
    return this.userNodeList(normalizeLogin(login)).map((n) => n.id);
  }

  /** @internal The node's addresses. */
  nodeAddrs(id: string): readonly Addr[] {
    return this.node(id).addrs;
  }
}

function parseRoute(text: string): Prefix | null {
  return text.includes('/') ? parsePrefix(text) : null;
}

function lowerBound(arr: readonly { ip: string; slot: number }[], ip: string, slot: number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = arr[mid];
    if (e !== undefined && (e.ip < ip || (e.ip === ip && e.slot < slot))) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lowerBoundOrder(arr: readonly number[], id: string, idOf: (slot: number) => string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = arr[mid];
    if (e !== undefined && compareNodeIds(idOf(e), id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function loginDomain(login: string): string {
  const at = login.lastIndexOf('@');
  return at < 0 ? '' : login.slice(at + 1).toLowerCase();
}

function sameSet(a: ReadonlySet<string> | undefined, b: readonly string[]): boolean {
  if (a === undefined) return b.length === 0;
  if (a.size !== new Set(b).size) return false;
  for (const x of b) if (!a.has(x)) return false;
  return true;
}

function taggedPrincipals(addrs: readonly Addr[]): { nodeIP: string }[] {
  return addrs.map((a) => ({ nodeIP: formatRange({ family: a.family, first: a.value, last: a.value }) }));
}

function emptyChange(): PolicyChange {
  return new ChangeResult(new Set(), new Set(), new Set(), new Set(), [], () => true);
}

/** Peers one touched node gained and lost (ids of nodes that exist after the change). */
interface PeerFlips {
  readonly id: string;
  readonly present: boolean;
  readonly gained: string[];
  readonly lost: string[];
}

/** A PolicyChange whose union and per-node deltas are built only when read. */
class ChangeResult implements PolicyChange {
  private changedSet: Set<string> | null = null;
  private delta: Map<string, PeerDelta> | null = null;

  constructor(
    readonly filterChanged: ReadonlySet<string>,
    readonly peersChanged: ReadonlySet<string>,
    readonly sshChanged: ReadonlySet<string>,
    readonly capsChanged: ReadonlySet<string>,
    private readonly flips: readonly PeerFlips[] | null,
    private readonly exists: (id: string) => boolean,
  ) {}

  get changed(): ReadonlySet<string> {
    this.changedSet ??= new Set([...this.filterChanged, ...this.peersChanged]);
    return this.changedSet;
  }

  get peerDelta(): ReadonlyMap<string, PeerDelta> | undefined {
    if (this.flips === null) return undefined;
    if (this.delta === null) {
      const acc = new Map<string, { added: Set<string>; removed: Set<string> }>();
      const note = (id: string, other: string, added: boolean): void => {
        let d = acc.get(id);
        if (d === undefined) acc.set(id, (d = { added: new Set(), removed: new Set() }));
        (added ? d.added : d.removed).add(other);
      };
      for (const f of this.flips) {
        for (const x of f.gained) {
          note(x, f.id, true);
          if (f.present) note(f.id, x, true);
        }
        for (const x of f.lost) {
          note(x, f.id, false);
          if (f.present) note(f.id, x, false);
        }
      }
      this.delta = new Map();
      for (const [id, d] of acc) {
        if (!this.exists(id)) continue;
        this.delta.set(id, {
          added: [...d.added].filter(this.exists).sort(compareNodeIds),
          removed: [...d.removed].sort(compareNodeIds),
        });
      }
    }
    return this.delta;
  }
}
