import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VersionedMap } from './versioned-map.js';

const rec = (version: number, name = `v${version}`) => ({ version, name });

test('newer versions replace older ones; replays and older versions are ignored', () => {
  const m = new VersionedMap<number, { version: number; name: string }>();
  assert.equal(m.upsert(1, rec(2)), true);
  assert.equal(m.upsert(1, rec(1)), false);
  assert.equal(m.upsert(1, rec(2, 'replay')), false);
  assert.equal(m.get(1)?.name, 'v2');
  assert.equal(m.upsert(1, rec(3)), true);
  assert.equal(m.get(1)?.name, 'v3');
});

test('a removal leaves a tombstone that outlives late upserts of older versions', () => {
  const m = new VersionedMap<number, { version: number; name: string }>();
  m.upsert(1, rec(1));
  assert.equal(m.remove(1, 2)?.name, 'v1');
  assert.equal(m.get(1), undefined);
  assert.equal(m.upsert(1, rec(1)), false, 'the snapshot overlap replays v1 after the removal');
  assert.equal(m.remove(1, 2), undefined, 'a replayed removal is a no-op');
  assert.equal(m.upsert(1, rec(3)), true, 'a newer record (re-creation) is applied');
  assert.equal(m.size, 1);
});

test('a removal older than the held record is ignored', () => {
  const m = new VersionedMap<string, { version: number; name: string }>();
  m.upsert('a', rec(5));
  assert.equal(m.remove('a', 4), undefined);
  assert.equal(m.get('a')?.version, 5);
});

test('replace swaps in a snapshot and forgets tombstones', () => {
  const m = new VersionedMap<number, { version: number; name: string }>();
  m.upsert(1, rec(1));
  m.remove(1, 2);
  m.replace([
    [2, rec(1)],
    [3, rec(4)],
  ]);
  assert.deepEqual(
    [...m.values()].map((v) => v.version),
    [1, 4],
  );
  assert.equal(m.upsert(1, rec(1)), true);
});
