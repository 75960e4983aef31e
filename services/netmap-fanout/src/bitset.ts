/** A growable bitset over dense slot numbers: per-stream "which peers were sent" costs n/8 bytes. */
export class Bitset {
  private bits = new Uint8Array(16);

  has(i: number): boolean {
    const byte = i >>> 3;
    return byte < this.bits.length && (this.bits[byte]! & (1 << (i & 7))) !== 0;
  }

  add(i: number): void {
    const byte = i >>> 3;
    if (byte >= this.bits.length) {
      let n = this.bits.length;
      while (n <= byte) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(this.bits);
      this.bits = grown;
    }
    this.bits[byte]! |= 1 << (i & 7);
  }

  delete(i: number): void {
    const byte = i >>> 3;
    if (byte < this.bits.length) this.bits[byte]! &= ~(1 << (i & 7));
  }

  get byteLength(): number {
    return this.bits.length;
  }
}

/** Hands out dense slot numbers for ids, reusing freed slots. */
export class SlotMap {
  private readonly slots = new Map<number, number>();
  private readonly free: number[] = [];
  private next = 0;

  slot(id: number): number {
    let s = this.slots.get(id);
    if (s === undefined) {
      s = this.free.pop() ?? this.next++;
      this.slots.set(id, s);
    }
    return s;
  }

  peek(id: number): number | undefined {
    return this.slots.get(id);
  }

  /** Frees an id's slot; callers must first clear that slot in every bitset. */
  release(id: number): void {
    const s = this.slots.get(id);
    if (s === undefined) return;
    this.slots.delete(id);
    this.free.push(s);
  }
}
