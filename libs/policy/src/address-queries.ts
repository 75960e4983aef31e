/**
 * Address-level queries for the policy's own `tests`/`sshTests` (policy-tests.ts): selectors
 * resolved to the addresses they stand for now, and the unreduced global rules as address sets.
 * Slow paths (scans over all nodes), used when a policy is checked, never per map.
 */
import { SpecFactory } from './compile.js';
import { hostPrefix } from './dst-reduce.js';
import {
  ALL4,
  ALL6,
  INTERNET_SET,
  parseRangeText,
  rangeContainsAddr,
  WILDCARD_SET,
  type Range,
} from './ip.js';
import type { MembershipIndex } from './membership.js';
import type { NodeStore } from './node-store.js';
import type { SrcRenderer } from './src-render.js';
import type { Alias } from './types.js';

/** One unreduced global rule as address sets. */
export interface GlobalRule {
  src: Range[];
  proto: readonly number[] | null;
  dst: { ranges: Range[]; first: number; last: number }[];
}

export class AddressQueries {
  constructor(
    private readonly store: NodeStore,
    private readonly sets: MembershipIndex,
    private readonly renderer: SrcRenderer,
  ) {}

  /** Resolves a source/destination selector to the addresses it stands for now. */
  resolveAddrs(alias: Alias): Range[] {
    const factory = new SpecFactory(this.sets.policy);
    const spec = factory.spec([alias]);
    const out: Range[] = [];
    if (spec.dangerAll) out.push(ALL4, ALL6);
    if (spec.wildcard) out.push(...WILDCARD_SET.ranges);
    if (spec.internet) out.push(...INTERNET_SET.ranges);
    for (const l of spec.literals) out.push(l.prefix);
    for (const n of this.store.nodes) {
      if (n !== undefined && this.store.identMatch(n, spec)) out.push(...n.addrs.map(hostPrefix));
    }
    return out;
  }

  /** The unreduced global rules (no self/via), as address sets. */
  globalRules(): GlobalRule[] {
    const out: GlobalRule[] = [];
    const units = this.sets.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.sets.unitSets[i];
      if (u === undefined || u.kind !== 'ip' || sets?.src === null || sets?.src === undefined) continue;
      const render = this.renderer.renderSet(sets.src);
      if (render.strings.length === 0) continue;
      const src: Range[] = [];
      for (const s of render.strings) {
        if (s === '*') src.push(ALL4, ALL6);
        else src.push(...(parseRangeText(s) ?? []));
      }
      const dst: GlobalRule['dst'] = [];
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
            for (const n of this.store.nodes) {
              if (n !== undefined && this.store.identAliasMatch(n, item.alias))
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

  /** Nodes matched by an SSH test destination (by identity or address), in canonical order. */
  nodesForAlias(alias: Alias): string[] {
    const ranges = this.resolveAddrs(alias);
    const out: string[] = [];
    for (const slot of this.store.order) {
      const n = this.store.nodes[slot];
      if (n !== undefined && n.addrs.some((a) => ranges.some((r) => rangeContainsAddr(r, a)))) out.push(n.id);
    }
    return out;
  }
}
