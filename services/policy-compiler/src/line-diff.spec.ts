import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lineDiff } from './line-diff.js';

describe('line diff', () => {
  test('identical texts have no diff', () => {
    assert.equal(lineDiff('a\nb', 'a\nb'), '');
  });
  test('shows removed and added lines with context', () => {
    const d = lineDiff('a\nb\nc\nd\ne\nf\ng', 'a\nb\nc\nX\ne\nf\ng');
    assert.equal(d, '@@ -2 +2 @@\n b\n c\n-d\n+X\n e\n f\n');
  });
  test('from nothing', () => {
    assert.equal(lineDiff('', '{\n}'), '@@ -1 +1 @@\n+{\n+}\n');
  });
  test('huge inputs are summarised', () => {
    const big = Array.from({ length: 3000 }, (_, i) => `line ${i}`).join('\n');
    assert.match(lineDiff(big, big + '\nmore'), /policy replaced/);
  });
});
