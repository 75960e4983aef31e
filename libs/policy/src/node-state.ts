/**
 * The engine's view of one node: normalised identity (tagged nodes have no user), parsed
 * addresses, served subnet routes (announced ∩ approved, exit routes excluded) and exit status.
 */
import { ValidationError } from '@switchboard/common';
import {
  CGNAT,
  formatAddr,
  formatPrefix,
  familyBits,
  isExitRoute,
  parseAddr,
  parsePrefix,
  rangeContainsAddr,
  rangesOverlap,
  TAILSCALE_ULA,
  type Addr,
  type Prefix,
  type Range,
} from './ip.js';
import { normalizeLogin } from './syntax.js';
import { strHash, type StrHash } from './content-hash.js';
import type { PolicyNode } from './types.js';

export interface NodeRec {
  readonly slot: number;
  readonly id: string;
  readonly input: PolicyNode;
  /** Stable text of the input, to detect no-op upserts. */
  readonly fingerprint: string;
  /** Login of the owning user for untagged nodes; null for tagged or ownerless nodes. */
  readonly user: string | null;
  readonly tags: ReadonlySet<string>;
  readonly tagged: boolean;
  /** IPv4 first, then IPv6. */
  readonly addrs: readonly Addr[];
  readonly ipStrings: readonly string[];
  /** Hashes of ipStrings (for rendering content keys). */
  readonly ipHashes: readonly StrHash[];
  /** `ip/32` and `ip/128` forms, same order as addrs. */
  readonly hostPrefixes: readonly string[];
  readonly subnetRoutes: readonly Prefix[];
  readonly routeStrings: readonly string[];
  readonly isExit: boolean;
  /** External (IdP) groups given on the node itself, normalised with `group:`; undefined if not given. */
  readonly groups: readonly string[] | undefined;
}

function fail(id: string, what: string): never {
  throw new ValidationError(
    `node ${JSON.stringify(id)}: ${what}`,
    'send addresses and routes in netip text form',
  );
}

/** Normalises an IdP group name to `group:<name>`. */
export function groupName(g: string): string {
  return g.startsWith('group:') ? g : `group:${g}`;
}

/** Validates and derives a node record. Throws ValidationError for unusable input. */
export function makeNodeRec(n: PolicyNode, slot: number): NodeRec {
  if (typeof n.id !== 'string' || n.id === '') fail(String(n.id), 'id must be a non-empty string');
  const tags = new Set<string>();
  for (const t of n.tags) {
    if (typeof t !== 'string' || !t.startsWith('tag:')) fail(n.id, `invalid tag ${JSON.stringify(t)}`);
    tags.add(t);
  }
  const tagged = tags.size > 0;
  const addrs: Addr[] = [];
  for (const [field, text] of [
    ['ipv4', n.ipv4],
    ['ipv6', n.ipv6],
  ] as const) {
    if (text === '' || text === null || text === undefined) continue;
    const a = parseAddr(text);
    if (a === null || a.family !== (field === 'ipv4' ? 4 : 6))
      fail(n.id, `invalid ${field} ${JSON.stringify(text)}`);
    addrs.push(a);
  }
  if (addrs.length === 0) fail(n.id, 'a node needs an ipv4 or ipv6 address');
  const announced = new Map<string, Prefix>();
  for (const r of n.routableIPs) {
    const p = parsePrefix(r);
    if (p === null || !r.includes('/')) fail(n.id, `invalid routable IP ${JSON.stringify(r)}`);
    announced.set(formatPrefix(p), p);
  }
  const approved = new Set<string>();
  for (const r of n.approvedRoutes) {
    const p = parsePrefix(r);
    if (p === null || !r.includes('/')) fail(n.id, `invalid approved route ${JSON.stringify(r)}`);
    approved.add(formatPrefix(p));
  }
  const subnetRoutes: Prefix[] = [];
  let isExit = false;
  for (const [text, p] of announced) {
    if (!approved.has(text)) continue;
    if (isExitRoute(p)) isExit = true;
    else subnetRoutes.push(p);
  }
  const user =
    tagged || n.user === null || n.user === undefined || n.user === '' ? null : normalizeLogin(n.user);
  const groups = n.groups === undefined ? undefined : [...new Set(n.groups.map(groupName))].sort();
  return {
    slot,
    id: n.id,
    input: n,
    fingerprint: JSON.stringify([
      n.id,
      n.user,
      [...tags].sort(),
      n.ipv4,
      n.ipv6,
      [...announced.keys()].sort(),
      [...approved].sort(),
      groups ?? null,
    ]),
    user,
    tags,
    tagged,
    addrs,
    ipStrings: addrs.map(formatAddr),
    ipHashes: addrs.map((a) => strHash(formatAddr(a))),
    hostPrefixes: addrs.map((a) => `${formatAddr(a)}/${familyBits(a.family)}`),
    subnetRoutes,
    routeStrings: subnetRoutes.map(formatPrefix),
    isExit,
    groups,
  };
}

export function nodeIpIn(n: NodeRec, r: Range): boolean {
  for (const a of n.addrs) if (rangeContainsAddr(r, a)) return true;
  return false;
}

export function nodeRoutesOverlap(n: NodeRec, r: Range): boolean {
  for (const p of n.subnetRoutes) if (rangesOverlap(p, r)) return true;
  return false;
}

/** True if the node has an address outside the Tailscale ranges (rare; makes literal checks needed). */
export function nodeIsOdd(n: NodeRec): boolean {
  return n.addrs.some((a) => !rangeContainsAddr(CGNAT, a) && !rangeContainsAddr(TAILSCALE_ULA, a));
}
