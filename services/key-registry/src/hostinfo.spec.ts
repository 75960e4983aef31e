import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeRecord } from '@switchboard/contracts';
import { hostinfoPatch, hostnameOf, preferredDerpOf, routableIPsOf, sameStrings } from './hostinfo.js';

const node = (over: Partial<NodeRecord> = {}): NodeRecord =>
  ({ hostname: 'old', hostinfo: { NetInfo: { PreferredDERP: 3 } }, ...over }) as NodeRecord;

test('hostname, routes and home DERP are read defensively', () => {
  assert.equal(hostnameOf({ Hostname: 'x'.repeat(300) }).length, 255);
  assert.equal(hostnameOf({ Hostname: 7 }), '');
  assert.deepEqual(routableIPsOf({ RoutableIPs: ['10.0.0.0/24', 5, null] }), ['10.0.0.0/24']);
  assert.deepEqual(routableIPsOf(null), []);
  assert.equal(preferredDerpOf({ NetInfo: { PreferredDERP: 2 } }), 2);
  assert.equal(preferredDerpOf({ NetInfo: { PreferredDERP: -1 } }), null);
});

test('a Hostinfo without NetInfo keeps the last one; hostname changes only when it differs', () => {
  const p = hostinfoPatch(node(), { Hostname: 'old', RoutableIPs: ['10.1.0.0/16'] });
  assert.deepEqual(p.hostinfo?.NetInfo, { PreferredDERP: 3 });
  assert.equal(p.hostname, undefined);
  assert.equal(p.homeDerp, 3);
  assert.deepEqual(p.routableIPs, ['10.1.0.0/16']);
  assert.equal(hostinfoPatch(node(), { Hostname: 'new' }).hostname, 'new');
  assert.deepEqual(hostinfoPatch(node(), null), {});
  assert.ok(sameStrings(['a', 'b'], ['a', 'b']) && !sameStrings(['a'], ['b']));
});
