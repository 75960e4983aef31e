/**
 * Malformed and contradictory policies (testdata/invalid/*.hujson). Each file names its source
 * and the first error it must produce: `// expect: <line>:<column>: <message>`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyError } from './errors.js';
import { parsePolicy } from './policy.js';
import { listTestdata, readTestdata } from './test-support.js';

const files = listTestdata('invalid/');

test('at least 30 invalid policies are covered', () => {
  assert.ok(files.length >= 30, `only ${files.length} cases`);
});

for (const file of files) {
  test(`invalid: ${file}`, () => {
    const text = readTestdata(`invalid/${file}`);
    const m = /^\/\/ expect: (\d+):(\d+): (.*)$/m.exec(text);
    assert.ok(m !== null, 'case file needs an "// expect: line:column: message" header');
    const [, line, column, message] = m;
    assert.throws(
      () => parsePolicy(text),
      (e: unknown) => {
        assert.ok(e instanceof PolicyError, 'throws PolicyError');
        assert.equal(e.code, 'invalid_policy');
        assert.deepEqual(
          { line: e.line, column: e.column, message: e.reason },
          {
            line: Number(line),
            column: Number(column),
            message,
          },
        );
        assert.ok(e.message.startsWith(`${line}:${column}: ${message}`), 'message carries the location');
        return true;
      },
    );
  });
}
