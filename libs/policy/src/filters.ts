/**
 * Filter compilation: a node's packet filter, computed on demand and cached as a plan.
 *
 * A plan is every unit whose receivers include the node, reduced to the node's own destination
 * entries, merged by identical rendered SrcIPs + IPProto (the merge key, a content hash) and
 * ordered by the key's first position in the unreduced tailnet list — SaaS merges first, then
 * reduces (capture acl-at06). Plans render to `FilterRule[]` and to tailcfg JSON lazily, with the
 * sources' JSON fragments shared.
 *
 * `changes` works out, after the membership index and source hashes were brought up to date,
 * exactly which nodes' filters a change affected (see its steps), and drops their cached plans.
 */
import { BitSet } from './bitset.js';
import type { CapSpec, Unit } from './compile.js';
import { capDstsForItem, dstEntries, INTERNET_RANGES, srcCapDsts, type DstEntry } from './dst-reduce.js';
import {
  selfSrcHas,
  viaHosts,
  type MembershipIndex,
  type PSet,
  type Render,
  type ViaUnit,
} from './membership.js';
import { nodeRoutesOverlap, type NodeRec } from './node-state.js';
import type { NodeStore } from './node-store.js';
import type { SrcRenderer } from './src-render.js';
import type { FilterRule, NetPortRange } from './types.js';

interface CapOut {
  readonly dsts: readonly string[];
  readonly cap: CapSpec;
}

export interface PlanRule {
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

/** A touched node's filter plan before a change. */
export interface PlanBefore {
  readonly plan: readonly PlanRule[];
}

/** What `FilterCompiler.changes` needs to know about one mutation. */
export interface FilterChangeInput {
  readonly touchedIds: ReadonlySet<string>;
  readonly before: ReadonlyMap<string, PlanBefore>;
  readonly after: ReadonlyMap<string, NodeRec>;
  /** Source sets whose rendered SrcIPs changed. */
  readonly changedSets: ReadonlySet<PSet>;
  /** Destination sets the touched nodes were refreshed in, and whether they had members before. */
  readonly dstWasNonEmpty: ReadonlyMap<PSet, boolean>;
  /** First positions of the merge keys before the change. */
  readonly firstPosBefore: ReadonlyMap<string, number>;
  /** Self SrcIPs per affected user before the change (`SrcRenderer.selfSnapshot`). */
  readonly selfBefore: ReadonlyMap<string, ReadonlyMap<number, string>>;
  readonly affectedUsers: ReadonlySet<string>;
}

function protoKey(p: readonly number[] | null): string {
  return p === null ? '' : p.join(',');
}

function entryJson(e: DstEntry): string {
  return `{"IP":"${e.ip}","Ports":{"First":${e.first},"Last":${e.last}}}`;
}

/**
 * Merge key of a port rule: identical rendered SrcIPs and IPProto (capture acl-mr04 merges a
 * group with the user it contains). Global (and via) rules of one key share a position: the
 * first unit of that key that yields a rule anywhere in the tailnet (headscale/SaaS merge the
 * unreduced list, then reduce per node).
 */
function mergeKey(contentKey: string, proto: readonly number[] | null): string {
  return `${contentKey}|${protoKey(proto)}`;
}

function companionCapSpec(capName: string): CapSpec {
  return { names: [capName], json: `{${JSON.stringify(capName)}:null}`, map: { [capName]: null } };
}

/** Do two plans render the same filter? */
export function planEquals(a: readonly PlanRule[] | undefined, b: readonly PlanRule[] | undefined): boolean {
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

/** One plan under construction: rules in unit order, port rules merged by key. */
class PlanAcc {
  readonly out: PlanRule[] = [];
  private readonly byKey = new Map<string, PlanRule>();

  constructor(private readonly firstPos: ReadonlyMap<string, number>) {}

  merge(key: string, order: number, src: Render, proto: readonly number[] | null, entries: DstEntry[]): void {
    const hit = this.byKey.get(key);
    if (hit !== undefined) {
      hit.dst.push(...entries);
      return;
    }
    const pos = Math.min(order, this.firstPos.get(key) ?? order);
    const rule: PlanRule = { pos, src, proto, dst: entries, caps: null };
    this.byKey.set(key, rule);
    this.out.push(rule);
  }

  capRule(pos: number, src: Render, caps: readonly CapOut[]): void {
    this.out.push({ pos, src, proto: null, dst: [], caps });
  }
}

export class FilterCompiler {
  private readonly cache = new Map<number, CachedFilter>();
  private firstPositions: Map<string, number> | null = null;
  private unitKeys: [string, string][] = [];

  constructor(
    private readonly store: NodeStore,
    private readonly sets: MembershipIndex,
    private readonly renderer: SrcRenderer,
  ) {}

  /** After a rebuild: forget every plan and key. */
  reset(): void {
    this.cache.clear();
    this.firstPositions = null;
    this.unitKeys = [];
  }

  drop(slot: number): void {
    this.cache.delete(slot);
  }

  /** The node's current plan (cached). */
  plan(n: NodeRec): readonly PlanRule[] {
    return this.cached(n).plan;
  }

  private cached(n: NodeRec): CachedFilter {
    let c = this.cache.get(n.slot);
    if (c === undefined) {
      c = { plan: this.computePlan(n), rules: null, json: null };
      this.cache.set(n.slot, c);
    }
    return c;
  }

  /** The packet filter for a node: every rule whose destination covers it, reduced and merged. */
  filterFor(n: NodeRec): FilterRule[] {
    const c = this.cached(n);
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
  filterJsonFor(n: NodeRec): string {
    const c = this.cached(n);
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
  // Merge keys and first positions

  /** Merge key of unit `i` (cached while its sources' content is unchanged). */
  private unitKey(i: number, src: PSet, proto: readonly number[] | null): string {
    const ck = src.content.key();
    const cached = this.unitKeys[i];
    if (cached !== undefined && cached[0] === ck) return cached[1];
    const key = mergeKey(ck, proto);
    this.unitKeys[i] = [ck, key];
    return key;
  }

  /** A unit's dst resolves to at least one address somewhere (so its global rule exists). */
  private unitActive(i: number): boolean {
    const sets = this.sets.unitSets[i];
    if (sets?.src == null || sets.dst === null) return false;
    const d = sets.dst;
    const dstNonEmpty = d.spec.hasAddr || d.identCount > 0;
    return dstNonEmpty && sets.src.content.count > 0;
  }

  /** First global position of every port-rule merge key. */
  private computeFirstPositions(): Map<string, number> {
    const out = new Map<string, number>();
    const units = this.sets.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.sets.unitSets[i];
      if (u?.kind !== 'ip' || sets?.src == null) continue;
      const key = this.unitKey(i, sets.src, u.proto.numbers);
      if (!out.has(key) && this.unitActive(i)) out.set(key, u.order);
    }
    return out;
  }

  /** First global position of every port-rule merge key (cached until a change invalidates it). */
  firstPositionsNow(): Map<string, number> {
    if (this.firstPositions === null) this.firstPositions = this.computeFirstPositions();
    return this.firstPositions;
  }

  // -------------------------------------------------------------------------------------------
  // Plans

  private computePlan(
    n: NodeRec,
    firstPos: ReadonlyMap<string, number> = this.firstPositionsNow(),
  ): PlanRule[] {
    const acc = new PlanAcc(firstPos);
    const units = this.sets.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.sets.unitSets[i];
      if (u === undefined || sets === undefined) continue;
      switch (u.kind) {
        case 'ip': {
          if (sets.dst === null || sets.src === null || !sets.dst.recv.has(n.slot)) break;
          const r = this.renderer.renderSet(sets.src);
          if (r.strings.length === 0) break;
          const entries = dstEntries(this.store, u.items, u.ports, n);
          if (entries.length > 0)
            acc.merge(this.unitKey(i, sets.src, u.proto.numbers), u.order, r, u.proto.numbers, entries);
          break;
        }
        case 'cap':
          if (sets.dst === null || sets.src === null || !sets.dst.capRecv.has(n.slot)) break;
          this.planCap(acc, u, sets.src, n);
          break;
        case 'companion':
          if (sets.src === null || sets.from === null) break;
          this.planCompanion(acc, u, sets.src, sets.from, n);
          break;
        case 'self-ip':
        case 'self-cap':
        case 'self-companion':
          if (n.tagged || n.user === null || sets.src === null) break;
          this.planSelf(acc, u, sets.src, n, n.user);
          break;
        case 'via':
          if (sets.src === null || !viaHosts(u, n)) break;
          this.planVia(acc, i, u, sets.src, n);
          break;
      }
    }
    return acc.out.sort((a, b) => a.pos - b.pos);
  }

  private planCap(acc: PlanAcc, u: Extract<Unit, { kind: 'cap' }>, src: PSet, n: NodeRec): void {
    const caps: CapOut[] = [];
    for (const item of u.items) {
      const dsts = capDstsForItem(this.store, item, n);
      if (dsts.length > 0) caps.push({ dsts, cap: u.cap });
    }
    if (caps.length > 0) acc.capRule(u.order, this.renderer.renderSet(src), caps);
  }

  private planCompanion(
    acc: PlanAcc,
    u: Extract<Unit, { kind: 'companion' }>,
    to: PSet,
    from: PSet,
    n: NodeRec,
  ): void {
    const slot = n.slot;
    if (!(to.ident.has(slot) || to.addrIp.has(slot) || to.addrRoute.has(slot))) return;
    const dsts = srcCapDsts(to, n);
    if (dsts.length === 0) return;
    acc.capRule(u.order, this.renderer.renderSet(from), [{ dsts, cap: companionCapSpec(u.capName) }]);
  }

  private planSelf(
    acc: PlanAcc,
    u: Extract<Unit, { kind: 'self-ip' | 'self-cap' | 'self-companion' }>,
    src: PSet,
    n: NodeRec,
    user: string,
  ): void {
    switch (u.kind) {
      case 'self-ip': {
        const r = this.renderer.selfRender(u.order, src, user, false);
        if (r.strings.length === 0) return;
        const entries: DstEntry[] = [];
        for (const ip of n.ipStrings)
          for (const p of u.ports) entries.push({ ip, first: p.first, last: p.last });
        // Self rules merge with global rules of equal SrcIPs too (capture acl-d08).
        acc.merge(mergeKey(r.key, u.proto.numbers), u.order, r, u.proto.numbers, entries);
        return;
      }
      case 'self-cap': {
        const r = this.renderer.selfRender(u.order, src, user, false);
        if (r.strings.length === 0) return;
        acc.capRule(u.order, r, [{ dsts: [...n.hostPrefixes], cap: u.cap }]);
        return;
      }
      case 'self-companion': {
        if (!selfSrcHas(src, n)) return;
        const r = this.renderer.selfRender(u.order, src, user, true);
        acc.capRule(u.order, r, [{ dsts: [...n.hostPrefixes], cap: companionCapSpec(u.capName) }]);
        return;
      }
    }
  }

  private planVia(acc: PlanAcc, i: number, u: ViaUnit, src: PSet, n: NodeRec): void {
    const r = this.renderer.renderSet(src);
    if (r.strings.length === 0) return;
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
      acc.merge(this.unitKey(i, src, u.proto.numbers), u.order, r, u.proto.numbers, entries);
  }

  // -------------------------------------------------------------------------------------------
  // Change detection

  /**
   * Which nodes' filters a mutation changed (exact), dropping their cached plans. Steps:
   * units whose merge key or activeness moved; receivers of rules whose SrcIPs changed; the
   * touched nodes (recomputed and compared); same-user nodes whose self SrcIPs changed; holders
   * of a merge key whose first position moved (`reorderedByFirstPositions`).
   */
  changes(input: FilterChangeInput): Set<string> {
    const { keyUnits, keysToCheck } = this.unitsWithMovedKeys(input.changedSets, input.dstWasNonEmpty);
    this.firstPositions = null;
    const filterChanged = new Set<string>();
    this.receiversOfChangedSources(input.changedSets, input.touchedIds, filterChanged);
    for (const [id, rec] of input.after) {
      const b = input.before.get(id);
      if (b === undefined || !planEquals(b.plan, this.cached(rec).plan)) filterChanged.add(id);
    }
    if (this.sets.compiled.hasSelf) this.selfRulesChanged(input, filterChanged);
    this.reorderedByFirstPositions(input, filterChanged, keyUnits, keysToCheck);
    return filterChanged;
  }

  /** Rules whose merge key or activeness may have moved; their old keys are remembered now. */
  private unitsWithMovedKeys(
    changedSets: ReadonlySet<PSet>,
    dstWasNonEmpty: ReadonlyMap<PSet, boolean>,
  ): { keyUnits: number[]; keysToCheck: Set<string> } {
    const keyUnits: number[] = [];
    const keysToCheck = new Set<string>();
    this.sets.compiled.units.forEach((u, i) => {
      const sets = this.sets.unitSets[i];
      if (u.kind !== 'ip' || sets?.src == null || sets.dst === null) return;
      const flipped =
        dstWasNonEmpty.has(sets.dst) && dstWasNonEmpty.get(sets.dst) !== sets.dst.identCount > 0;
      if (!changedSets.has(sets.src) && !flipped) return;
      keyUnits.push(i);
      const old = this.unitKeys[i]?.[1];
      if (old !== undefined) keysToCheck.add(old);
    });
    return { keyUnits, keysToCheck };
  }

  /** Every receiver (other than the touched nodes) of a rule whose rendered sources changed. */
  private receiversOfChangedSources(
    changedSets: ReadonlySet<PSet>,
    touchedIds: ReadonlySet<string>,
    filterChanged: Set<string>,
  ): void {
    const receivers = new BitSet(this.store.capacity());
    const units = this.sets.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.sets.unitSets[i];
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
            for (const n of this.store.nodes)
              if (n !== undefined && viaHosts(u, n)) receivers.put(n.slot, true);
          }
          break;
        case 'self-ip':
        case 'self-cap':
        case 'self-companion':
          break;
      }
    }
    receivers.forEach((slot) => {
      const n = this.store.nodes[slot];
      if (n === undefined || touchedIds.has(n.id)) return;
      filterChanged.add(n.id);
      this.cache.delete(slot);
    });
  }

  /** Same-user nodes: their self rules changed exactly when the user's self SrcIPs did. */
  private selfRulesChanged(input: FilterChangeInput, filterChanged: Set<string>): void {
    for (const user of input.affectedUsers) {
      const old = input.selfBefore.get(user) ?? new Map<number, string>();
      const now = this.renderer.selfSnapshot(user);
      const moved = [...now.keys()].filter((k) => old.get(k) !== now.get(k));
      if (moved.length === 0) continue;
      const ipOrCap = moved.some((k) => k >= 0);
      const companions = moved.filter((k) => k < 0).map((k) => this.sets.unitSets[-1 - k]?.src ?? null);
      for (const m of this.store.userNodeList(user)) {
        if (input.touchedIds.has(m.id) || filterChanged.has(m.id)) continue;
        if (ipOrCap || companions.some((s) => s !== null && selfSrcHas(s, m))) {
          filterChanged.add(m.id);
          this.cache.delete(m.slot);
        }
      }
    }
  }

  /**
   * A merge key's first global position moved (a rule of that key started or stopped resolving
   * to any destination): nodes holding that key may see their rules reordered. Compares their
   * plans under the old and new positions; everything else about them is unchanged.
   */
  private reorderedByFirstPositions(
    input: FilterChangeInput,
    filterChanged: Set<string>,
    keyUnits: readonly number[],
    keysToCheck: Set<string>,
  ): void {
    if (keyUnits.length === 0) return;
    const units = this.sets.compiled.units;
    for (const i of keyUnits) {
      const u = units[i];
      const src = this.sets.unitSets[i]?.src;
      if (u?.kind === 'ip' && src != null) keysToCheck.add(this.unitKey(i, src, u.proto.numbers));
    }
    const before = input.firstPosBefore;
    const after = this.firstPositionsNow();
    const moved = new Set<string>();
    for (const key of keysToCheck) {
      // A key without an active global rule still exists on via routers and self rules
      // (position = their own order), hence Infinity.
      const p1 = before.get(key) ?? Infinity;
      const p2 = after.get(key) ?? Infinity;
      if (p1 !== p2 && Math.abs(p1 - p2) > 1) moved.add(key);
    }
    if (moved.size === 0) return;
    const candidates = this.holdersOfMovedKeys(moved, input.changedSets, input.affectedUsers);
    candidates.forEach((slot) => {
      const m = this.store.nodes[slot];
      if (m === undefined || input.touchedIds.has(m.id) || filterChanged.has(m.id)) return;
      if (!planEquals(this.computePlan(m, before), this.computePlan(m, after))) {
        filterChanged.add(m.id);
        this.cache.delete(slot);
      }
    });
  }

  /**
   * Who holds a moved key now. Receivers of rules with changed sources are flagged already;
   * everyone else holds the same keys as before.
   */
  private holdersOfMovedKeys(
    moved: ReadonlySet<string>,
    changedSets: ReadonlySet<PSet>,
    affectedUsers: ReadonlySet<string>,
  ): BitSet {
    const candidates = new BitSet(this.store.capacity());
    const units = this.sets.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.sets.unitSets[i];
      if (u === undefined || sets?.src == null) continue;
      // Self rules render per user, so a changed source set does not flag their holders.
      if (u.kind !== 'self-ip' && changedSets.has(sets.src)) continue;
      if (u.kind === 'ip' && sets.dst !== null) {
        if (moved.has(this.unitKey(i, sets.src, u.proto.numbers))) candidates.or(sets.dst.recv);
      } else if (u.kind === 'via') {
        if (!moved.has(this.unitKey(i, sets.src, u.proto.numbers))) continue;
        for (const n of this.store.nodes) if (n !== undefined && viaHosts(u, n)) candidates.put(n.slot, true);
      } else if (u.kind === 'self-ip') {
        for (const [login, bits] of this.store.userNodes) {
          if (bits.isEmpty() || affectedUsers.has(login)) continue;
          const r = this.renderer.selfRender(u.order, sets.src, login, false);
          if (r.strings.length > 0 && moved.has(mergeKey(r.key, u.proto.numbers))) candidates.or(bits);
        }
      }
    }
    return candidates;
  }
}
