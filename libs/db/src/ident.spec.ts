import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '@switchboard/common';
import { advisoryKey, assertSchemaName, qualified, quoteIdent } from './ident.js';

void describe('schema names', () => {
  void it('accepts plain lower-case identifiers', () => {
    for (const ok of ['keyreg', 'identity', 'policy_compiler', '_x', 't_0123abcd']) assertSchemaName(ok);
  });
  void it('refuses anything that would need escaping or is a system schema', () => {
    for (const bad of [
      '',
      'KeyReg',
      '1abc',
      'a-b',
      'a b',
      'a"b',
      'a;drop',
      'pg_catalog',
      'information_schema',
      'x'.repeat(64),
    ]) {
      assert.throws(() => assertSchemaName(bad), ValidationError, bad);
    }
  });
  void it('quotes identifiers', () => {
    assert.equal(quoteIdent('a"b'), '"a""b"');
    assert.equal(qualified('keyreg', 'nodes'), '"keyreg"."nodes"');
    assert.throws(() => qualified('Bad', 'nodes'), ValidationError);
  });
});

void describe('advisoryKey', () => {
  void it('is a stable signed 64-bit decimal, distinct per purpose and schema', () => {
    const k = advisoryKey('migrate', 'keyreg');
    assert.equal(k, advisoryKey('migrate', 'keyreg'));
    assert.match(k, /^-?\d+$/);
    const n = BigInt(k);
    assert.ok(n >= -(2n ** 63n) && n < 2n ** 63n);
    const keys = new Set([
      k,
      advisoryKey('migrate', 'identity'),
      advisoryKey('outbox-relay', 'keyreg'),
      advisoryKey('outbox-append', 'keyreg'),
    ]);
    assert.equal(keys.size, 4);
  });
});
