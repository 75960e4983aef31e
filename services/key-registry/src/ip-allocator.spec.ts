import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isReservedV4, randomV4, v4ForCounter, v4FromString, v4ToString, v6For } from './ip-allocator.js';

describe('ip allocator', () => {
  test('first allocations are 100.64.0.1, .2 and their IPv6 partners', () => {
    assert.equal(v4ToString(v4ForCounter(1)!), '100.64.0.1');
    assert.equal(v4ToString(v4ForCounter(2)!), '100.64.0.2');
    assert.equal(v6For(v4ForCounter(1)!), 'fd7a:115c:a1e0::6440:1');
  });
  test('reserved addresses are never handed out', () => {
    for (const s of ['100.64.0.0', '100.127.255.255', '100.100.100.100', '100.115.92.0', '100.115.93.255'])
      assert.ok(isReservedV4(v4FromString(s)), s);
    assert.ok(!isReservedV4(v4FromString('100.115.94.0')));
    const quad = v4FromString('100.100.100.100') - v4FromString('100.64.0.0');
    assert.equal(v4ForCounter(quad), null);
  });
  test('counter beyond the range yields null', () => {
    assert.equal(v4ForCounter((1 << 22) - 1), null);
    assert.equal(v4ForCounter(0), null);
  });
  test('random addresses stay in range', () => {
    for (let i = 0; i < 1000; i++) {
      const a = randomV4();
      assert.ok(!isReservedV4(a));
    }
    assert.ok(!isReservedV4(randomV4(() => 0)));
    assert.ok(!isReservedV4(randomV4(() => 0.9999999999)));
  });
  test('round trip', () => {
    assert.equal(v4ToString(v4FromString('100.101.102.103')), '100.101.102.103');
    assert.throws(() => v4FromString('1.2.3'));
  });
});
