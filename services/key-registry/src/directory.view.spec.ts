import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pendingRoutes, withAutoApproved } from './directory.view.js';

test('auto-approval only adds announced routes, keeps existing approvals, sorts and dedupes', () => {
  assert.deepEqual(
    withAutoApproved(['10.2.0.0/16'], ['10.1.0.0/16', '10.2.0.0/16'], ['10.1.0.0/16', '10.9.0.0/16']),
    ['10.1.0.0/16', '10.2.0.0/16'],
  );
  assert.deepEqual(withAutoApproved(['10.5.0.0/16'], [], ['10.5.0.0/16']), ['10.5.0.0/16']);
});

test('pending routes are the announced ones not approved', () => {
  assert.deepEqual(pendingRoutes({ routableIPs: ['a', 'b'], approvedRoutes: ['b', 'c'] }), ['a']);
});
