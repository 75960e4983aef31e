import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sourceKey } from './source-key.js';

describe('sourceKey', () => {
  test('IPv4 as is, IPv4-mapped IPv6 as IPv4', () => {
    assert.equal(sourceKey('203.0.113.9'), '203.0.113.9');
    assert.equal(sourceKey('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(sourceKey('::FFFF:127.0.0.1'), '127.0.0.1');
  });

  test('IPv6 by /64, however it is written', () => {
    assert.equal(sourceKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:0db8:0001:0002:ffff::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(sourceKey('::1'), '0:0:0:0::/64');
    assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(sourceKey('64:ff9b::192.0.2.33'), '64:ff9b:0:0::/64');
  });

  test('unknown or unparseable addresses', () => {
    assert.equal(sourceKey(undefined), 'unknown');
    assert.equal(sourceKey(''), 'unknown');
    assert.equal(sourceKey('not-an-ip'), 'not-an-ip');
  });
});
