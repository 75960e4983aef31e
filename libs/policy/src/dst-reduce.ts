/**
 * Destination reduction (headscale ReduceFilterRules semantics): a rule's destinations cut down
 * to what one receiving node actually serves — its own addresses, the literals its addresses or
 * subnet routes cover, the internet ranges when it is an exit node. Pure functions of a node and
 * a unit's destination items.
 */
import type { DstItem, Literal } from './compile.js';
import {
  ALL4,
  ALL6,
  formatPrefix,
  formatRange,
  INTERNET_SET,
  rangeContainsAddr,
  WILDCARD_SET,
  type Addr,
  type Prefix,
  type Range,
} from './ip.js';
import type { PSet } from './membership.js';
import { nodeIpIn, nodeRoutesOverlap, type NodeRec } from './node-state.js';
import type { NodeStore } from './node-store.js';
import type { PortRange } from './types.js';

const WILDCARD_PREFIXES: readonly Prefix[] = WILDCARD_SET.prefixes();
/** SaaS writes every autogroup:internet piece as an `a-b` range, even 2000::/3 (capture routes-b17). */
export const INTERNET_RANGES: readonly { range: Range; text: string }[] = INTERNET_SET.ranges.map((r) => ({
  range: r,
  text: `${formatRange({ ...r, last: r.first })}-${formatRange({ ...r, first: r.last })}`,
}));

/** One DstPorts entry. */
export interface DstEntry {
  readonly ip: string;
  readonly first: number;
  readonly last: number;
}

function comparePrefixText(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.first !== b.first) return a.first < b.first ? -1 : 1;
  return a.bits - b.bits;
}

export function hostPrefix(a: Addr): Prefix {
  return { family: a.family, first: a.value, last: a.value, bits: a.family === 4 ? 32 : 128 };
}

function literalCovers(n: NodeRec, l: Literal): boolean {
  return (
    nodeIpIn(n, l.prefix) ||
    nodeRoutesOverlap(n, l.prefix) ||
    (n.isExit && INTERNET_SET.containsRange(l.prefix))
  );
}

/** Port-rule destinations of one unit reduced to node `n`'s entries, in policy order. */
export function dstEntries(
  store: NodeStore,
  items: readonly DstItem[],
  ports: readonly PortRange[],
  n: NodeRec,
): DstEntry[] {
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
        if (store.identAliasMatch(n, item.alias)) for (const ip of n.ipStrings) push(ip);
        break;
      case 'literal':
        if (literalCovers(n, item.literal)) push(item.literal.text);
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
function reduceCapDsts(prefixes: readonly Prefix[], n: NodeRec, out: Prefix[]): void {
  for (const p of prefixes) {
    for (const a of n.addrs) if (rangeContainsAddr(p, a)) out.push(hostPrefix(a));
    if (nodeRoutesOverlap(n, p)) out.push(p);
  }
}

function finishCapDsts(list: Prefix[]): string[] {
  list.sort(comparePrefixText);
  const out: string[] = [];
  for (const p of list) {
    const t = formatPrefix(p);
    if (out[out.length - 1] !== t) out.push(t);
  }
  return out;
}

/** CapGrant destinations of one destination item, reduced for `n`. */
export function capDstsForItem(store: NodeStore, item: DstItem, n: NodeRec): string[] {
  const list: Prefix[] = [];
  switch (item.kind) {
    case 'wildcard':
      reduceCapDsts(WILDCARD_PREFIXES, n, list);
      break;
    case 'ident':
      if (store.identAliasMatch(n, item.alias)) for (const a of n.addrs) list.push(hostPrefix(a));
      break;
    case 'literal':
      reduceCapDsts([item.literal.prefix], n, list);
      break;
    case 'internet':
      break;
  }
  return finishCapDsts(list);
}

/** Companion CapGrant destinations: the original sources, reduced for `n`. */
export function srcCapDsts(set: PSet, n: NodeRec): string[] {
  const spec = set.spec;
  const list: Prefix[] = [];
  if (set.ident.has(n.slot)) for (const a of n.addrs) list.push(hostPrefix(a));
  if (spec.dangerAll) reduceCapDsts([ALL4, ALL6], n, list);
  if (spec.wildcard) reduceCapDsts(WILDCARD_PREFIXES, n, list);
  reduceCapDsts(
    spec.literals.map((l) => l.prefix),
    n,
    list,
  );
  return finishCapDsts(list);
}
