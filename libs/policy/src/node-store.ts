/**
 * The engine's node table: every node gets a small integer slot (reused after removal) so that
 * principal sets can be bit sets. Besides the records it keeps the indexes the other parts read —
 * canonical id order, addresses sorted as strings and their owners, served route counts, each
 * user's nodes — and the group memberships (policy `groups` and identity-provider groups) that
 * identity selectors are matched against.
 *
 * Invariant: the indexes always describe exactly the live records; `add`/`replace`/`remove`
 * keep them in step. Nothing here knows about rules.
 */
import { BitSet } from './bitset.js';
import type { IdentAlias, SelectorSpec } from './compile.js';
import { makeNodeRec, type NodeRec } from './node-state.js';
import type { PolicyNode } from './types.js';

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

export function loginDomain(login: string): string {
  const at = login.lastIndexOf('@');
  return at < 0 ? '' : login.slice(at + 1).toLowerCase();
}

/** True if the set `a` holds exactly the strings of `b` (undefined = empty). */
export function sameSet(a: ReadonlySet<string> | undefined, b: readonly string[]): boolean {
  if (a === undefined) return b.length === 0;
  if (a.size !== new Set(b).size) return false;
  for (const x of b) if (!a.has(x)) return false;
  return true;
}

export class NodeStore {
  readonly nodes: (NodeRec | undefined)[] = [];
  readonly idToSlot = new Map<string, number>();
  private readonly freeSlots: number[] = [];
  /** Slots in canonical id order. */
  readonly order: number[] = [];
  /** Every node address as a string with its slot, sorted by (string, slot). */
  readonly sortedIps: { ip: string; slot: number }[] = [];
  readonly ipOwners = new Map<string, Set<number>>();
  /** Served subnet routes (text) and how many nodes serve each. */
  readonly routeCount = new Map<string, number>();
  /** Untagged nodes per user login. */
  readonly userNodes = new Map<string, BitSet>();
  readonly allBits = new BitSet();
  private readonly externalGroups = new Map<string, Set<string>>();
  private policyGroupsByUser = new Map<string, Set<string>>();
  private readonly groupCache = new Map<string, ReadonlySet<string> | undefined>();
  /** True while the constructor loads nodes: sorted indexes are built once at the end. */
  private bulkLoading = false;
  /** Position of each slot in canonical id order (rebuilt lazily after joins/leaves). */
  private rank: Int32Array | null = null;
  private sortedRoutes: readonly string[] | null = null;

  /** Loads the initial nodes and identity-provider groups (sorted indexes built once). */
  load(nodes: Iterable<PolicyNode>, userGroups: Iterable<readonly [string, ReadonlySet<string>]>): void {
    for (const [login, groups] of userGroups) this.externalGroups.set(login, new Set(groups));
    this.bulkLoading = true;
    for (const n of nodes) this.add(n);
    this.bulkLoading = false;
    this.sortedIps.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.slot - b.slot));
    this.order.sort((a, b) => compareNodeIds(this.nodes[a]?.id ?? '', this.nodes[b]?.id ?? ''));
  }

  /** Bit set capacity that fits every slot. */
  capacity(): number {
    return Math.max(64, this.nodes.length);
  }

  /** The live record of `id`, if any. */
  get(id: string): NodeRec | undefined {
    const slot = this.idToSlot.get(id);
    return slot === undefined ? undefined : this.nodes[slot];
  }

  /** The live record of `id`; throws for unknown ids. */
  node(id: string): NodeRec {
    const n = this.get(id);
    if (n === undefined) throw new Error(`unknown node ${JSON.stringify(id)}`);
    return n;
  }

  /** Live records (slot order). */
  live(): NodeRec[] {
    const out: NodeRec[] = [];
    for (const n of this.nodes) if (n !== undefined) out.push(n);
    return out;
  }

  /** Registers a new node in a free slot. */
  add(input: PolicyNode): NodeRec {
    if (this.idToSlot.has(input.id)) throw new Error(`duplicate node id ${JSON.stringify(input.id)}`);
    const slot = this.freeSlots.pop() ?? this.nodes.length;
    const rec = makeNodeRec(input, slot);
    this.nodes[slot] = rec;
    this.idToSlot.set(rec.id, slot);
    if (rec.groups !== undefined && rec.user !== null) this.setExternalGroups(rec.user, rec.groups);
    this.index(rec, true);
    return rec;
  }

  /** Replaces a node's record in place (same slot). */
  replace(old: NodeRec, input: PolicyNode): void {
    this.index(old, false);
    const rec = makeNodeRec(input, old.slot);
    this.nodes[old.slot] = rec;
    if (rec.groups !== undefined && rec.user !== null) this.setExternalGroups(rec.user, rec.groups);
    this.index(rec, true);
  }

  /** Unregisters a node; its slot stays reserved until `releaseSlot`. */
  remove(old: NodeRec): void {
    this.index(old, false);
    this.nodes[old.slot] = undefined;
    this.idToSlot.delete(old.id);
  }

  /** Makes a removed node's slot reusable (after the change has been computed). */
  releaseSlot(slot: number): void {
    this.freeSlots.push(slot);
  }

  externalGroupsOf(login: string): ReadonlySet<string> | undefined {
    return this.externalGroups.get(login);
  }

  setExternalGroups(login: string, groups: readonly string[]): void {
    this.externalGroups.set(login, new Set(groups));
    this.groupCache.delete(login);
  }

  /** Installs the policy's `groups` (group name → member logins). */
  setPolicyGroups(policyGroups: ReadonlyMap<string, Iterable<string>>): void {
    this.policyGroupsByUser = new Map();
    this.groupCache.clear();
    for (const [g, members] of policyGroups) {
      for (const login of members) {
        let s = this.policyGroupsByUser.get(login);
        if (s === undefined) {
          s = new Set();
          this.policyGroupsByUser.set(login, s);
        }
        s.add(g);
      }
    }
  }

  /** Policy and identity-provider groups of a user. */
  groupsOf(login: string): ReadonlySet<string> | undefined {
    if (this.groupCache.has(login)) return this.groupCache.get(login);
    const pol = this.policyGroupsByUser.get(login);
    const ext = this.externalGroups.get(login);
    const merged = pol === undefined ? ext : ext === undefined ? pol : new Set([...pol, ...ext]);
    this.groupCache.set(login, merged);
    return merged;
  }

  /** Does the node match the identity part of a selector spec? */
  identMatch(n: NodeRec, spec: SelectorSpec): boolean {
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

  /** Does the node match one identity selector? */
  identAliasMatch(n: NodeRec, a: IdentAlias): boolean {
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

  /** Same-user untagged nodes of `login`, in canonical order. */
  userNodeList(login: string): NodeRec[] {
    const b = this.userNodes.get(login);
    if (b === undefined) return [];
    const out: NodeRec[] = [];
    b.forEach((slot) => {
      const n = this.nodes[slot];
      if (n !== undefined) out.push(n);
    });
    return out.sort((a, c) => compareNodeIds(a.id, c.id));
  }

  /** Position of each slot in canonical id order. */
  rankOf(): Int32Array {
    if (this.rank === null || this.rank.length < this.nodes.length) {
      const rank = new Int32Array(this.nodes.length);
      this.order.forEach((slot, i) => {
        rank[slot] = i;
      });
      this.rank = rank;
    }
    return this.rank;
  }

  /** Served subnet routes, sorted as strings. */
  routeStrings(): readonly string[] {
    this.sortedRoutes ??= [...this.routeCount.keys()].sort();
    return this.sortedRoutes;
  }

  private index(rec: NodeRec, on: boolean): void {
    const s = rec.slot;
    this.allBits.put(s, on);
    if (rec.user !== null) {
      let b = this.userNodes.get(rec.user);
      if (b === undefined) {
        b = new BitSet();
        this.userNodes.set(rec.user, b);
      }
      b.put(s, on);
    }
    for (const ip of rec.ipStrings) this.indexIp(ip, s, on);
    for (const r of rec.routeStrings) {
      const c = (this.routeCount.get(r) ?? 0) + (on ? 1 : -1);
      if (c <= 0) this.routeCount.delete(r);
      else this.routeCount.set(r, c);
      if ((on && c === 1) || (!on && c <= 0)) this.sortedRoutes = null;
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

  private indexIp(ip: string, s: number, on: boolean): void {
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
      return;
    }
    const i = lowerBound(this.sortedIps, ip, s);
    if (on) this.sortedIps.splice(i, 0, { ip, slot: s });
    else if (this.sortedIps[i]?.slot === s && this.sortedIps[i]?.ip === ip) this.sortedIps.splice(i, 1);
  }
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
