import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeRecord, UpdateNodeInput } from '@switchboard/contracts';
import { updatePatch } from './node-lifecycle.service.js';

const node = {
  discoKey: 'discokey:a',
  endpoints: ['1.2.3.4:41641'],
  capVersion: 100,
  hostname: 'h',
  hostinfo: { Hostname: 'h' },
  homeDerp: 1,
  routableIPs: [],
} as unknown as NodeRecord;
const input = (over: Partial<UpdateNodeInput>): UpdateNodeInput =>
  ({ discoKey: null, endpoints: null, capVersion: 100, hostinfo: null, ...over }) as UpdateNodeInput;

test('a lite update patches only what differs', () => {
  assert.deepEqual(updatePatch(node, input({})), {});
  assert.deepEqual(updatePatch(node, input({ endpoints: ['1.2.3.4:41641'], discoKey: 'discokey:a' })), {});
  assert.deepEqual(updatePatch(node, input({ endpoints: ['5.6.7.8:1'] })), { endpoints: ['5.6.7.8:1'] });
  assert.deepEqual(updatePatch(node, input({ capVersion: 0 })), {}, 'capver 0 means unknown');
  const p = updatePatch(node, input({ hostinfo: { Hostname: 'h', RoutableIPs: ['10.0.0.0/24'] } }));
  assert.deepEqual(p.routableIPs, ['10.0.0.0/24']);
  assert.equal(p.hostname, undefined);
});
