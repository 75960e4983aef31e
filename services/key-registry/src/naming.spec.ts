import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sanitizeLabel, uniqueLabel } from './naming.js';

describe('naming', () => {
  test('sanitizes host names into DNS labels', () => {
    assert.equal(sanitizeLabel('My Laptop.local'), 'my-laptop-local');
    assert.equal(sanitizeLabel('---'), 'node');
    assert.equal(sanitizeLabel(''), 'node');
    assert.equal(sanitizeLabel('a'.repeat(80)).length, 63);
    assert.equal(sanitizeLabel('Ünïcode_host'), 'unicode-host');
  });
  test('adds a suffix when taken', () => {
    assert.equal(uniqueLabel('n1', new Set()), 'n1');
    assert.equal(uniqueLabel('n1', new Set(['n1'])), 'n1-1');
    assert.equal(uniqueLabel('n1', new Set(['n1', 'n1-1'])), 'n1-2');
    assert.equal(uniqueLabel('x'.repeat(63), new Set(['x'.repeat(63)])).length, 63);
  });
});
