import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiKeyPrefixOf, assertRemovable, newUserFields, parseApiKey } from './identity.domain.js';

test('API keys parse only in their exact format', () => {
  const key = `sbapi-0123456789abcdef-${'A'.repeat(32)}`;
  assert.deepEqual(parseApiKey(key), { prefix: '0123456789abcdef', secret: 'A'.repeat(32) });
  assert.equal(parseApiKey(key + 'x'), null);
  assert.equal(parseApiKey('sbkey-0123456789abcdef-' + 'A'.repeat(32)), null);
  assert.equal(parseApiKey(` ${key}`), null);
});

test('a key is named by the full key, sbapi-<prefix> or the bare prefix', () => {
  assert.equal(apiKeyPrefixOf(`sbapi-0123456789abcdef-${'A'.repeat(32)}`), '0123456789abcdef');
  assert.equal(apiKeyPrefixOf('sbapi-0123456789abcdef'), '0123456789abcdef');
  assert.equal(apiKeyPrefixOf('0123456789abcdef'), '0123456789abcdef');
});

test('a new user logs in by e-mail when given, else by name', () => {
  assert.deepEqual(newUserFields({ name: 'alice' }), {
    tailnetId: 1,
    name: 'alice',
    loginName: 'alice',
    displayName: 'alice',
    email: null,
  });
  const u = newUserFields({ name: 'bob', email: 'bob@example.com', displayName: 'Bob', tailnetId: 2 });
  assert.equal(u.loginName, 'bob@example.com');
  assert.equal(u.displayName, 'Bob');
  assert.equal(u.tailnetId, 2);
});

test('a user that owns nodes is not removable', () => {
  assert.doesNotThrow(() => assertRemovable(1, 0));
  assert.throws(
    () => assertRemovable(1, 2),
    (err: Error & { code?: string }) => err.code === 'user_has_nodes' && /2 node/.test(err.message),
  );
});
