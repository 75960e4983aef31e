import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isRetryable, isUniqueViolation, retryDelayMs, sqlState } from './retry.js';

void describe('retry rules', () => {
  void it('retries serialization failures and deadlocks only', () => {
    assert.equal(isRetryable({ code: '40001' }), true);
    assert.equal(isRetryable({ code: '40P01' }), true);
    for (const other of [{ code: '23505' }, { code: 'ECONNREFUSED' }, new Error('x'), null, 'x']) {
      assert.equal(isRetryable(other), false);
    }
    assert.equal(isUniqueViolation({ code: '23505' }), true);
    assert.equal(sqlState({ code: 'ECONNRESET' }), undefined);
  });
  void it('backs off with bounded jitter', () => {
    assert.equal(
      retryDelayMs(0, () => 0),
      1,
    );
    assert.equal(
      retryDelayMs(0, () => 1),
      2,
    );
    assert.equal(
      retryDelayMs(3, () => 1),
      16,
    );
    assert.equal(
      retryDelayMs(30, () => 1),
      250,
    );
    assert.equal(
      retryDelayMs(30, () => 0),
      125,
    );
  });
});
