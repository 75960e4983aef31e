/**
 * Order-independent content hashes for rendered SrcIPs. A principal set's rendering is a set of
 * strings; its hash is the sum (mod 2^32, twice, with two different string hashes) of the
 * strings' hashes plus their count, so adding or removing one node's addresses updates it in
 * O(1) and merge keys never require rendering a large set. Equal content always gives equal
 * keys; unequal content collides with probability around 2^-64.
 */
export type StrHash = readonly [number, number];

/** Two independent 32-bit hashes of a string (FNV-1a and a multiply-xorshift variant). */
export function strHash(s: string): StrHash {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35);
  return [(h1 ^ (h1 >>> 13)) >>> 0, (h2 ^ (h2 >>> 16)) >>> 0];
}

/** Mutable sum of string hashes. */
export class ContentHash {
  h1 = 0;
  h2 = 0;
  count = 0;
  private cached: string | null = null;

  add(h: StrHash, sign: 1 | -1 = 1): void {
    this.h1 = (this.h1 + sign * h[0]) >>> 0;
    this.h2 = (this.h2 + sign * h[1]) >>> 0;
    this.count += sign;
    this.cached = null;
  }

  reset(): void {
    this.h1 = 0;
    this.h2 = 0;
    this.count = 0;
    this.cached = null;
  }

  key(): string {
    this.cached ??= `${this.h1.toString(36)}.${this.h2.toString(36)}.${this.count}`;
    return this.cached;
  }
}

/** Content key of a list of distinct strings. */
export function contentKeyOf(strings: readonly string[]): string {
  const h = new ContentHash();
  for (const s of strings) h.add(strHash(s));
  return h.key();
}
