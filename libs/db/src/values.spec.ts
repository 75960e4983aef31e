import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SwitchboardError } from '@switchboard/common';
import { mapArray, parseInt8, parseTimestampUtc } from './values.js';

void describe('value parsers', () => {
  void it('parses int8 within the safe range as numbers', () => {
    assert.equal(parseInt8('0'), 0);
    assert.equal(parseInt8('-42'), -42);
    assert.equal(parseInt8('9007199254740991'), Number.MAX_SAFE_INTEGER);
    assert.equal(parseInt8('-9007199254740991'), Number.MIN_SAFE_INTEGER);
  });
  void it('refuses int8 values beyond it instead of rounding them', () => {
    for (const t of ['9007199254740992', '-9007199254740993', '9223372036854775807']) {
      assert.throws(
        () => parseInt8(t),
        (err: unknown) =>
          err instanceof SwitchboardError && err.code === 'int8_overflow' && err.message.includes(t),
      );
    }
  });
  void it('reads timestamps without zone as UTC and leaves infinity alone', () => {
    assert.deepEqual(parseTimestampUtc('2024-01-02 03:04:05.25'), new Date('2024-01-02T03:04:05.250Z'));
    assert.equal(parseTimestampUtc('infinity'), 'infinity');
  });
  void it('maps nested arrays, keeping nulls', () => {
    assert.deepEqual(mapArray([['1', null], ['2']], Number), [[1, null], [2]]);
  });
});
