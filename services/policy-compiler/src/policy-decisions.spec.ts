import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextPolicyVersion, tagsWithoutPolicy } from './policy-decisions.js';

test('the same text is no new version; another text is the next version', () => {
  const cur = { tailnetId: 1, version: 3, text: '{}' };
  assert.deepEqual(nextPolicyVersion(cur, '{}'), { unchanged: true });
  assert.deepEqual(nextPolicyVersion(cur, '{"acls":[]}'), {
    unchanged: false,
    next: { tailnetId: 1, version: 4, text: '{"acls":[]}' },
  });
  assert.deepEqual(nextPolicyVersion({ tailnetId: 1, version: 0, text: null }, '{}'), {
    unchanged: false,
    next: { tailnetId: 1, version: 1, text: '{}' },
  });
});

test('without a policy no tag is owned', () => {
  assert.deepEqual(tagsWithoutPolicy([]), { ok: true, denied: [] });
  assert.deepEqual(tagsWithoutPolicy(['tag:a']), { ok: false, denied: ['tag:a'] });
});
