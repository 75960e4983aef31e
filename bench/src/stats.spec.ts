/** Unit tests of the benchmark's statistics: nearest-rank percentiles, summaries, advantage ratios. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { advantage, median, percentile, percentileSorted, roundSig, sizeLabel, summarize } from './stats.js';

test('nearest-rank percentiles of 1..100 are the rank itself', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // unsorted on purpose
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile(xs, 1), 1);
  assert.equal(percentile(xs, 1.5), 2);
});

test('p99 of fewer than 100 samples is the maximum; p50 of an even count is the lower middle', () => {
  assert.equal(percentile([5, 1, 9, 3], 99), 9);
  assert.equal(percentile([5, 1, 9, 3], 50), 3);
  assert.equal(median([4, 2]), 2);
  assert.equal(median([7]), 7);
});

test('percentiles never interpolate and sort numerically, not as strings', () => {
  assert.equal(percentile([10, 9, 100, 2], 75), 10);
  assert.equal(percentileSorted([1, 2, 3, 1000], 90), 1000);
});

test('empty input gives NaN, a bad percentile throws', () => {
  assert.ok(Number.isNaN(percentile([], 50)));
  const s = summarize([]);
  assert.equal(s.count, 0);
  assert.ok(Number.isNaN(s.p99));
  assert.throws(() => percentile([1], 101), RangeError);
  assert.throws(() => percentile([1], -1), RangeError);
  assert.throws(() => percentile([1], NaN), RangeError);
});

test('summarize gives count, min, percentiles, max and mean', () => {
  const s = summarize([3, 1, 2, 4]);
  assert.deepEqual(s, { count: 4, min: 1, p50: 2, p90: 4, p99: 4, max: 4, mean: 2.5 });
});

test('advantage is above 1 when ours is better, in both directions', () => {
  assert.equal(advantage(10, 100, 'lower'), 10);
  assert.equal(advantage(100, 10, 'lower'), 0.1);
  assert.equal(advantage(2000, 500, 'higher'), 4);
  assert.equal(advantage(null, 5, 'lower'), null);
  assert.equal(advantage(0, 5, 'lower'), null);
  assert.equal(advantage(5, NaN, 'higher'), null);
});

test('roundSig keeps three significant digits and large integers whole', () => {
  assert.equal(roundSig(123.456), 123);
  assert.equal(roundSig(0.012345), 0.0123);
  assert.equal(roundSig(12345.6), 12346);
  assert.equal(roundSig(null), null);
  assert.equal(roundSig(Infinity), null);
});

test('size labels', () => {
  assert.equal(sizeLabel(1000), '1k');
  assert.equal(sizeLabel(10000), '10k');
  assert.equal(sizeLabel(2500), '2.5k');
  assert.equal(sizeLabel(500), '500');
  assert.equal(sizeLabel(1234), '1234');
});
