/** IP parsing and formatting (Go netip text forms), ranges and sets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalAddr,
  formatPrefix,
  formatPrefixCompact,
  formatRange,
  INTERNET_SET,
  IPSet,
  parseAddr,
  parsePrefix,
  parseRangeText,
  rangeToPrefixes,
  WILDCARD_SET,
} from './ip.js';

test('IPv4 parsing is strict', () => {
  assert.equal(canonicalAddr('100.64.0.1'), '100.64.0.1');
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', ''])
    assert.equal(parseAddr(bad), null, bad);
});

test('IPv6 formats like Go (RFC 5952)', () => {
  const cases: [string, string][] = [
    ['fd7a:115c:a1e0:0:0:0:0:1', 'fd7a:115c:a1e0::1'],
    ['FD7A:115C:A1E0::AB12:0:1', 'fd7a:115c:a1e0::ab12:0:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
  ];
  for (const [input, want] of cases) assert.equal(canonicalAddr(input), want, input);
  for (const bad of ['1::2::3', '12345::', 'fe80::1%eth0', ':1', 'g::1', '1:2:3:4:5:6:7:8:9']) {
    assert.equal(parseAddr(bad), null, bad);
  }
});

test('prefixes are masked; single addresses print without length in filters', () => {
  const p = parsePrefix('100.100.101.100/24');
  assert.ok(p !== null);
  assert.equal(formatPrefix(p), '100.100.101.0/24');
  const one = parsePrefix('100.64.0.1');
  assert.ok(one !== null);
  assert.equal(formatPrefixCompact(one), '100.64.0.1');
  assert.equal(formatPrefix(one), '100.64.0.1/32');
  assert.equal(parsePrefix('10.0.0.0/33'), null);
  assert.equal(parsePrefix('10.0.0.0/08'), null);
});

test('the wildcard and internet sets render as Tailscale does', () => {
  assert.deepEqual(WILDCARD_SET.ranges.map(formatRange), [
    '100.64.0.0-100.115.91.255',
    '100.115.94.0-100.127.255.255',
    'fd7a:115c:a1e0::/48',
  ]);
  assert.deepEqual(INTERNET_SET.ranges.map(formatRange), [
    '0.0.0.0-9.255.255.255',
    '11.0.0.0-100.63.255.255',
    '100.128.0.0-169.253.255.255',
    '169.255.0.0-172.15.255.255',
    '172.32.0.0-192.167.255.255',
    '192.169.0.0-255.255.255.255',
    '2000::/3',
  ]);
});

test('range text, sets and prefix decomposition', () => {
  const r = parseRangeText('100.64.0.0-100.115.91.255');
  assert.ok(r !== null && r[0] !== undefined);
  assert.deepEqual(rangeToPrefixes(r[0]).map(formatPrefix).slice(0, 3), [
    '100.64.0.0/11',
    '100.96.0.0/12',
    '100.112.0.0/15',
  ]);
  assert.equal(parseRangeText('*')?.length, 2);
  assert.equal(parseRangeText('10.0.0.9-10.0.0.1'), null);
  const set = IPSet.of(
    ['10.0.0.0/8', '10.1.0.0/16', '11.0.0.0/8'].map((s) => parsePrefix(s)).filter((p) => p !== null),
  );
  assert.deepEqual(set.ranges.map(formatRange), ['10.0.0.0/7']);
  const minus = set.subtract(IPSet.of([parsePrefix('10.128.0.0/9')].filter((p) => p !== null)));
  assert.deepEqual(minus.ranges.map(formatRange), ['10.0.0.0/9', '11.0.0.0/8']);
  assert.ok(set.containsSet(minus));
});
