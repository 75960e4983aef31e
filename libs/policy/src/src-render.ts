/**
 * SrcIPs rendering. A source set renders once (SaaS order: its strings sorted) and the result is
 * shared by every rule and node that uses it; `autogroup:self` sources render per user.
 *
 * Each source set also carries an order-independent content hash of the strings it would render
 * (`PSet.content`), kept in step by `sourceChanges` in O(1) per changed string, so merge keys and
 * "did this rendering change" never need a render of a large set.
 *
 * Invariant: `set.render` is null or equals a fresh render; `set.content` always equals the hash
 * of a fresh render.
 */
import { contentKeyOf, strHash } from './content-hash.js';
import { popcount } from './bitset.js';
import { formatRange, WILDCARD_SET } from './ip.js';
import { selfSrcHas, type MembershipIndex, type PSet, type Render } from './membership.js';
import type { NodeRec } from './node-state.js';
import type { NodeStore } from './node-store.js';

export const WILDCARD_TEXTS: readonly string[] = WILDCARD_SET.ranges.map(formatRange);

export function makeRender(strings: readonly string[], key: string = contentKeyOf(strings)): Render {
  return { strings, json: `[${strings.map((x) => `"${x}"`).join(',')}]`, key };
}

/** A touched node before a change: its record and the source sets it was an identity member of. */
export interface SourceMemberBefore {
  readonly rec: NodeRec;
  readonly identSrc: ReadonlySet<PSet>;
}

export class SrcRenderer {
  private readonly selfRenders = new Map<string, Map<number, Render>>();

  constructor(
    private readonly store: NodeStore,
    private readonly sets: MembershipIndex,
  ) {}

  /** After a rebuild: recompute every source set's content hash and forget per-user renders. */
  reset(): void {
    for (const s of this.sets.srcSets) this.computeContent(s);
    this.selfRenders.clear();
  }

  renderSet(set: PSet): Render {
    if (set.render !== null) return set.render;
    const spec = set.spec;
    let strings: string[];
    if (spec.dangerAll) strings = ['*'];
    else {
      const parts: string[] = [...spec.literalTexts];
      if (spec.wildcard) parts.push(...WILDCARD_TEXTS, ...this.store.routeStrings());
      const members = popcount(set.ident);
      if (members > 0) {
        if (members * 16 < this.store.sortedIps.length) {
          set.ident.forEach((slot) => {
            const n = this.store.nodes[slot];
            if (n !== undefined) parts.push(...n.ipStrings);
          });
        } else {
          for (const e of this.store.sortedIps) if (set.ident.has(e.slot)) parts.push(e.ip);
        }
      }
      parts.sort();
      strings = [];
      for (const p of parts) if (strings[strings.length - 1] !== p) strings.push(p);
    }
    set.render = makeRender(strings, set.content.key());
    return set.render;
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
      for (const r of this.store.routeCount.keys()) seen.add(r);
    }
    for (const l of spec.literalTexts) seen.add(l);
    for (const s of seen) h.add(strHash(s));
    set.ident.forEach((slot) => {
      const n = this.store.nodes[slot];
      if (n === undefined) return;
      n.ipStrings.forEach((ip, i) => {
        const owners = this.store.ipOwners.get(ip);
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

  /**
   * After the touched nodes' membership bits were refreshed: updates the content hash of every
   * source set whose rendering changed (served routes that appeared or vanished change every
   * `*` set; a touched node's addresses change the sets it joined or left) and drops their
   * renders. Returns those sets.
   */
  sourceChanges(
    touchedSets: ReadonlySet<PSet>,
    before: Iterable<SourceMemberBefore>,
    after: Iterable<NodeRec>,
    routeKeysBefore: ReadonlySet<string>,
  ): Set<PSet> {
    const changedSets = new Set<PSet>();
    this.routeChanges(routeKeysBefore, changedSets);
    const was = [...before];
    const is = [...after];
    const touchedSlots = new Set<number>();
    for (const b of was) touchedSlots.add(b.rec.slot);
    for (const a of is) touchedSlots.add(a.slot);
    for (const set of touchedSets) {
      if (set.role !== 'src' || set.spec.dangerAll) continue;
      if (this.memberChanges(set, was, is, touchedSlots)) changedSets.add(set);
    }
    for (const s of changedSets) s.render = null;
    return changedSets;
  }

  private routeChanges(routeKeysBefore: ReadonlySet<string>, changedSets: Set<PSet>): void {
    const routesAfter = new Set(this.store.routeCount.keys());
    const routeFlips: [string, 1 | -1][] = [];
    for (const r of routeKeysBefore) if (!routesAfter.has(r)) routeFlips.push([r, -1]);
    for (const r of routesAfter) if (!routeKeysBefore.has(r)) routeFlips.push([r, 1]);
    if (routeFlips.length === 0) return;
    for (const s of this.sets.srcSets) {
      if (!s.spec.wildcard || s.spec.dangerAll) continue;
      changedSets.add(s);
      for (const [r, sign] of routeFlips) if (!s.spec.literalTexts.has(r)) s.content.add(strHash(r), sign);
    }
  }

  /**
   * Strings the touched nodes contributed to `set` before and after; a difference changes the
   * rendering unless a literal or an untouched member provides the same string.
   */
  private memberChanges(
    set: PSet,
    before: readonly SourceMemberBefore[],
    after: readonly NodeRec[],
    touchedSlots: ReadonlySet<number>,
  ): boolean {
    const was = new Set<string>();
    const is = new Set<string>();
    for (const b of before) if (b.identSrc.has(set)) for (const ip of b.rec.ipStrings) was.add(ip);
    for (const a of after) if (set.ident.has(a.slot)) for (const ip of a.ipStrings) is.add(ip);
    if (was.size === 0 && is.size === 0) return false;
    let changed = false;
    for (const ip of was) {
      if (is.has(ip) || this.renderHasOther(set, ip, touchedSlots)) continue;
      set.content.add(strHash(ip), -1);
      changed = true;
    }
    for (const ip of is) {
      if (was.has(ip) || this.renderHasOther(set, ip, touchedSlots)) continue;
      set.content.add(strHash(ip), 1);
      changed = true;
    }
    return changed;
  }

  /** Is `ip` rendered in `set` by a literal or by a node outside `except`? */
  private renderHasOther(set: PSet, ip: string, except: ReadonlySet<number>): boolean {
    if (set.spec.literalTexts.has(ip)) return true;
    for (const s of this.store.ipOwners.get(ip) ?? []) if (!except.has(s) && set.ident.has(s)) return true;
    return false;
  }

  /** SrcIPs of a self rule for `login`: IPs of the user's nodes that match the sources. */
  selfRender(unitOrder: number, set: PSet, login: string, all: boolean): Render {
    const key = all ? -1 - unitOrder : unitOrder;
    let m = this.selfRenders.get(login);
    if (m === undefined) this.selfRenders.set(login, (m = new Map<number, Render>()));
    const hit = m.get(key);
    if (hit !== undefined) return hit;
    const strings: string[] = [];
    for (const n of this.store.userNodeList(login))
      if (all || selfSrcHas(set, n)) strings.push(...n.ipStrings);
    strings.sort();
    const r = makeRender(strings);
    m.set(key, r);
    return r;
  }

  /** A user's self SrcIPs per self unit (companions keyed by -1-order): what self rules depend on. */
  selfSnapshot(login: string): Map<number, string> {
    const out = new Map<number, string>();
    const units = this.sets.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const set = this.sets.unitSets[i]?.src;
      if (u === undefined || set == null) continue;
      if (u.kind === 'self-ip' || u.kind === 'self-cap')
        out.set(i, this.selfRender(u.order, set, login, false).json);
      else if (u.kind === 'self-companion') out.set(-1 - i, this.selfRender(u.order, set, login, true).json);
    }
    return out;
  }

  dropSelfRenders(login: string): void {
    this.selfRenders.delete(login);
  }
}
