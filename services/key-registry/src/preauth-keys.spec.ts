import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKey, hashSecret, parseKey, verifySecret } from './preauth-keys.js';

describe('pre-auth keys', () => {
  test('generated keys parse back', () => {
    const k = generateKey();
    assert.deepEqual(parseKey(k.key), { prefix: k.prefix, secret: k.secret });
  });
  test('malformed keys are rejected', () => {
    for (const bad of [
      '',
      'sbkey-',
      'tskey-auth-abc',
      'sbkey-0123456789abcdef-short',
      'sbkey-XYZ-' + 'a'.repeat(32),
    ])
      assert.equal(parseKey(bad), null, bad);
  });
  test('verification needs the right secret and pepper', () => {
    const h = hashSecret('pepper', 'secret');
    assert.ok(verifySecret('pepper', 'secret', h));
    assert.ok(!verifySecret('pepper', 'secreT', h));
    assert.ok(!verifySecret('other', 'secret', h));
    assert.ok(!verifySecret('pepper', 'secret', 'abcd'));
  });
});
