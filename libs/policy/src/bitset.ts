/**
 * Growable bit sets over node slots. The engine gives every node a small integer slot and keeps
 * the members of each principal set as a bit set, so unions over thousands of nodes are a few
 * hundred word operations.
 */
export class BitSet {
  words: Uint32Array;

  constructor(capacityBits = 64) {
    this.words = new Uint32Array(Math.max(1, Math.ceil(capacityBits / 32)));
  }

  private ensure(word: number): void {
    if (word < this.words.length) return;
    const next = new Uint32Array(Math.max(word + 1, this.words.length * 2));
    next.set(this.words);
    this.words = next;
  }

  has(i: number): boolean {
    const w = i >>> 5;
    return w < this.words.length && ((this.words[w] ?? 0) & (1 << (i & 31))) !== 0;
  }

  /** Sets or clears bit `i`; returns true if the bit changed. */
  put(i: number, on: boolean): boolean {
    const w = i >>> 5;
    const mask = 1 << (i & 31);
    if (on) {
      this.ensure(w);
      const old = this.words[w] ?? 0;
      if ((old & mask) !== 0) return false;
      this.words[w] = old | mask;
      return true;
    }
    if (w >= this.words.length) return false;
    const old = this.words[w] ?? 0;
    if ((old & mask) === 0) return false;
    this.words[w] = old & ~mask;
    return true;
  }

  clearAll(): void {
    this.words.fill(0);
  }

  /** this |= other */
  or(other: BitSet): void {
    const o = other.words;
    let last = o.length - 1;
    while (last >= 0 && o[last] === 0) last--;
    if (last < 0) return;
    this.ensure(last);
    const w = this.words;
    for (let i = 0; i <= last; i++) w[i] = (w[i] ?? 0) | (o[i] ?? 0);
  }

  /** this &= ~other */
  andNot(other: BitSet): void {
    const o = other.words;
    const w = this.words;
    const n = Math.min(w.length, o.length);
    for (let i = 0; i < n; i++) w[i] = (w[i] ?? 0) & ~(o[i] ?? 0);
  }

  isEmpty(): boolean {
    for (const x of this.words) if (x !== 0) return false;
    return true;
  }

  equals(other: BitSet): boolean {
    const a = this.words;
    const b = other.words;
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return false;
    return true;
  }

  /** True if every bit of `other` is also set here. */
  containsAll(other: BitSet): boolean {
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < b.length; i++) {
      const bw = b[i] ?? 0;
      if (bw !== 0 && ((a[i] ?? 0) & bw) !== bw) return false;
    }
    return true;
  }

  clone(): BitSet {
    const c = new BitSet(32);
    c.words = this.words.slice();
    return c;
  }

  /** Calls `fn` for every set bit, in increasing order. */
  forEach(fn: (i: number) => void): void {
    const w = this.words;
    for (let i = 0; i < w.length; i++) {
      let x = w[i] ?? 0;
      while (x !== 0) {
        const low = x & -x;
        const bit = 31 - Math.clz32(low);
        fn(i * 32 + bit);
        x ^= low;
      }
    }
  }

  toArray(): number[] {
    const out: number[] = [];
    this.forEach((i) => out.push(i));
    return out;
  }
}

/** Number of set bits. */
export function popcount(b: BitSet): number {
  let n = 0;
  for (const w of b.words) {
    let x = w - ((w >>> 1) & 0x55555555);
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    n += (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  }
  return n;
}
