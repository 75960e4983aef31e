/**
 * VersionedMap: the state of an event-fed view, keyed by entity id. Records carry a `version` that
 * grows with each change; an upsert or removal whose version is not newer than what the map holds
 * is ignored, and removals leave a tombstone (the removal's version), so replayed or overlapping
 * events — the snapshot and the log overlap by design — are harmless. Pure, no I/O.
 */
export class VersionedMap<K, V extends { version: number }> {
  private readonly live = new Map<K, V>();
  private readonly tombstones = new Map<K, number>();

  /** Applies a record; returns true if it changed the map. */
  upsert(key: K, value: V): boolean {
    const held = this.live.get(key)?.version ?? this.tombstones.get(key) ?? -1;
    if (value.version <= held) return false;
    this.tombstones.delete(key);
    this.live.set(key, value);
    return true;
  }

  /** Applies a removal at `version` (the removal's own version); returns the removed value, if any. */
  remove(key: K, version: number): V | undefined {
    const cur = this.live.get(key);
    const held = cur?.version ?? this.tombstones.get(key) ?? -1;
    if (version <= held) return undefined;
    this.live.delete(key);
    this.tombstones.set(key, version);
    return cur;
  }

  /** Replaces everything with a snapshot (tombstones of the previous state are dropped). */
  replace(entries: Iterable<readonly [K, V]>): void {
    this.live.clear();
    this.tombstones.clear();
    for (const [k, v] of entries) this.live.set(k, v);
  }

  get(key: K): V | undefined {
    return this.live.get(key);
  }

  values(): IterableIterator<V> {
    return this.live.values();
  }

  get size(): number {
    return this.live.size;
  }
}
