/**
 * IP addresses, prefixes, ranges and sets, with the text forms Go's `net/netip` uses (RFC 5952 for
 * IPv6), because clients parse what we print. Addresses are bigints tagged with their family;
 * sets are sorted lists of disjoint inclusive ranges per family.
 */

export type Family = 4 | 6;

export interface Addr {
  readonly family: Family;
  readonly value: bigint;
}

/** An inclusive address range within one family. */
export interface Range {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

/** A CIDR prefix, always masked (`first` is the network address). */
export interface Prefix extends Range {
  readonly bits: number;
}

const MAX4 = (1n << 32n) - 1n;
const MAX6 = (1n << 128n) - 1n;

export function familyBits(f: Family): number {
  return f === 4 ? 32 : 128;
}

function maxOf(f: Family): bigint {
  return f === 4 ? MAX4 : MAX6;
}

// ---------------------------------------------------------------------------------------------
// Parsing

function parseV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  if (s.length === 0 || s.includes('%')) return null;
  let text = s;
  if (text.includes('.')) {
    // Embedded IPv4 tail (e.g. ::ffff:1.2.3.4): rewrite it as two hex groups.
    const lastColon = text.lastIndexOf(':');
    const v4 = parseV4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const parseGroups = (t: string): number[] | null => {
    if (t === '') return [];
    const out: number[] = [];
    for (const g of t.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const dbl = text.indexOf('::');
  let groups: number[];
  if (dbl >= 0) {
    if (text.indexOf('::', dbl + 1) >= 0) return null;
    const head = parseGroups(text.slice(0, dbl));
    const tail = parseGroups(text.slice(dbl + 2));
    if (head === null || tail === null) return null;
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    const g = parseGroups(text);
    if (g === null || g.length !== 8) return null;
    groups = g;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

/** Parses an IPv4 or IPv6 address (no zones). Returns null if it is not one. */
export function parseAddr(s: string): Addr | null {
  if (s.includes(':')) {
    const v = parseV6(s);
    return v === null ? null : { family: 6, value: v };
  }
  const v = parseV4(s);
  return v === null ? null : { family: 4, value: v };
}

function maskFor(f: Family, bits: number): bigint {
  const total = familyBits(f);
  return (maxOf(f) >> BigInt(total - bits)) << BigInt(total - bits);
}

/** Builds a masked prefix from an address and a length. */
export function makePrefix(a: Addr, bits: number): Prefix {
  const total = familyBits(a.family);
  const hostBits = BigInt(total - bits);
  const first = bits === 0 ? 0n : a.value & maskFor(a.family, bits);
  const last = first | ((1n << hostBits) - 1n);
  return { family: a.family, first, last, bits };
}

/**
 * Parses `addr` (a single-address prefix) or `addr/len`. Host bits are masked, as Tailscale does
 * (`100.100.101.100/24` becomes `100.100.101.0/24`). Returns null on any error.
 */
export function parsePrefix(s: string): Prefix | null {
  const slash = s.indexOf('/');
  if (slash < 0) {
    const a = parseAddr(s);
    return a === null ? null : makePrefix(a, familyBits(a.family));
  }
  const a = parseAddr(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (a === null || !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return null;
  const bits = Number(lenText);
  if (bits > familyBits(a.family)) return null;
  return makePrefix(a, bits);
}

/** Parses the range forms used in filter rules: `*`, address, CIDR, or `a-b`. */
export function parseRangeText(s: string): Range[] | null {
  if (s === '*') return [ALL4, ALL6];
  const dash = s.indexOf('-');
  if (dash > 0 && !s.includes('/')) {
    const a = parseAddr(s.slice(0, dash));
    const b = parseAddr(s.slice(dash + 1));
    if (a === null || b === null || a.family !== b.family || a.value > b.value) return null;
    return [{ family: a.family, first: a.value, last: b.value }];
  }
  const p = parsePrefix(s);
  return p === null ? null : [p];
}

// ---------------------------------------------------------------------------------------------
// Formatting

function formatV4(v: bigint): string {
  const n = Number(v);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function formatV6(v: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // IPv4-mapped addresses keep the dotted tail, as Go prints them.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatV4(v & MAX4)}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

export function formatAddr(a: Addr): string {
  return a.family === 4 ? formatV4(a.value) : formatV6(a.value);
}

function formatValue(f: Family, v: bigint): string {
  return f === 4 ? formatV4(v) : formatV6(v);
}

/** `a.b.c.d/n`, always with the length. */
export function formatPrefix(p: Prefix): string {
  return `${formatValue(p.family, p.first)}/${p.bits}`;
}

/** The form Tailscale uses in filters: a single address without length, otherwise CIDR. */
export function formatPrefixCompact(p: Prefix): string {
  return p.bits === familyBits(p.family) ? formatValue(p.family, p.first) : formatPrefix(p);
}

/** Renders a range as an address, a CIDR, or `a-b`. */
export function formatRange(r: Range): string {
  if (r.first === r.last) return formatValue(r.family, r.first);
  const p = rangeAsPrefix(r);
  if (p !== null) return formatPrefix(p);
  return `${formatValue(r.family, r.first)}-${formatValue(r.family, r.last)}`;
}

/** Canonical text of an address given as text, or null if it is not an address. */
export function canonicalAddr(s: string): string | null {
  const a = parseAddr(s.trim());
  return a === null ? null : formatAddr(a);
}

// ---------------------------------------------------------------------------------------------
// Range arithmetic

export function rangeAsPrefix(r: Range): Prefix | null {
  const size = r.last - r.first + 1n;
  if ((size & (size - 1n)) !== 0n) return null;
  if ((r.first & (size - 1n)) !== 0n) return null;
  let hostBits = 0;
  while (1n << BigInt(hostBits) < size) hostBits++;
  return { family: r.family, first: r.first, last: r.last, bits: familyBits(r.family) - hostBits };
}

export function rangeContainsAddr(r: Range, a: Addr): boolean {
  return r.family === a.family && r.first <= a.value && a.value <= r.last;
}

export function rangesOverlap(a: Range, b: Range): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

/** True if `outer` contains all of `inner`. */
export function rangeContains(outer: Range, inner: Range): boolean {
  return outer.family === inner.family && outer.first <= inner.first && inner.last <= outer.last;
}

/** Splits a range into the minimal list of CIDR prefixes covering it exactly. */
export function rangeToPrefixes(r: Range): Prefix[] {
  const out: Prefix[] = [];
  const total = familyBits(r.family);
  let cur = r.first;
  while (cur <= r.last) {
    let hostBits = 0;
    while (hostBits < total) {
      const size = 1n << BigInt(hostBits + 1);
      if ((cur & (size - 1n)) !== 0n || cur + size - 1n > r.last) break;
      hostBits++;
    }
    const size = 1n << BigInt(hostBits);
    out.push({ family: r.family, first: cur, last: cur + size - 1n, bits: total - hostBits });
    cur += size;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sets

/** An immutable set of addresses: sorted, disjoint, non-adjacent ranges (IPv4 first). */
export class IPSet {
  private constructor(readonly ranges: readonly Range[]) {}

  static readonly EMPTY = new IPSet([]);

  static of(ranges: Iterable<Range>): IPSet {
    const list = [...ranges].sort((a, b) =>
      a.family !== b.family ? a.family - b.family : a.first < b.first ? -1 : a.first > b.first ? 1 : 0,
    );
    const out: Range[] = [];
    for (const r of list) {
      const prev = out[out.length - 1];
      if (prev !== undefined && prev.family === r.family && r.first <= prev.last + 1n) {
        if (r.last > prev.last) out[out.length - 1] = { family: r.family, first: prev.first, last: r.last };
      } else {
        out.push({ family: r.family, first: r.first, last: r.last });
      }
    }
    return new IPSet(out);
  }

  isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  containsAddr(a: Addr): boolean {
    for (const r of this.ranges) if (rangeContainsAddr(r, a)) return true;
    return false;
  }

  overlaps(r: Range): boolean {
    for (const x of this.ranges) if (rangesOverlap(x, r)) return true;
    return false;
  }

  /** True if every address of `r` is in the set. */
  containsRange(r: Range): boolean {
    for (const x of this.ranges) if (rangeContains(x, r)) return true;
    return false;
  }

  /** True if every address of `other` is in this set. */
  containsSet(other: IPSet): boolean {
    return other.ranges.every((r) => this.containsRange(r));
  }

  union(other: IPSet): IPSet {
    return IPSet.of([...this.ranges, ...other.ranges]);
  }

  subtract(other: IPSet): IPSet {
    let cur: Range[] = [...this.ranges];
    for (const cut of other.ranges) {
      const next: Range[] = [];
      for (const r of cur) {
        if (!rangesOverlap(r, cut)) {
          next.push(r);
          continue;
        }
        if (r.first < cut.first) next.push({ family: r.family, first: r.first, last: cut.first - 1n });
        if (r.last > cut.last) next.push({ family: r.family, first: cut.last + 1n, last: r.last });
      }
      cur = next;
    }
    return IPSet.of(cur);
  }

  prefixes(): Prefix[] {
    return this.ranges.flatMap(rangeToPrefixes);
  }
}

function pfx(s: string): Prefix {
  const p = parsePrefix(s);
  if (p === null) throw new Error(`bad built-in prefix ${s}`);
  return p;
}

export const ALL4: Prefix = pfx('0.0.0.0/0');
export const ALL6: Prefix = pfx('::/0');
export const CGNAT: Prefix = pfx('100.64.0.0/10');
export const CHROMEOS_VM: Prefix = pfx('100.115.92.0/23');
export const TAILSCALE_ULA: Prefix = pfx('fd7a:115c:a1e0::/48');

/** What `*` means as a source: the Tailscale address space (CGNAT minus the ChromeOS range, plus ULA). */
export const WILDCARD_SET: IPSet = IPSet.of([CGNAT, TAILSCALE_ULA]).subtract(IPSet.of([CHROMEOS_VM]));

/** `autogroup:internet`: public IPv4 and 2000::/3 minus private and Tailscale ranges. */
export const INTERNET_SET: IPSet = IPSet.of([pfx('0.0.0.0/0'), pfx('2000::/3')]).subtract(
  IPSet.of(
    [
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '100.64.0.0/10',
      '169.254.0.0/16',
      'fc00::/7',
      'fd7a:115c:a1e0::/48',
      'fe80::/10',
    ].map(pfx),
  ),
);

/** True if `p` is an exit route (`0.0.0.0/0` or `::/0`). */
export function isExitRoute(p: Prefix): boolean {
  return p.bits === 0;
}

export function compareAddrValues(a: Range, b: Range): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.first < b.first ? -1 : a.first > b.first ? 1 : a.last < b.last ? -1 : a.last > b.last ? 1 : 0;
}
