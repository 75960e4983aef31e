/** HuJSON parser: comments, trailing commas, strictness and error locations. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyError } from './errors.js';
import { parseHujson, toPlain } from './hujson.js';

function plain(text: string): unknown {
  const n = parseHujson(text);
  return n === null ? null : toPlain(n);
}

function failsAt(text: string, line: number, column: number, message: RegExp): void {
  assert.throws(
    () => parseHujson(text),
    (e: unknown) =>
      e instanceof PolicyError &&
      e.line === line &&
      e.column === column &&
      message.test(e.reason) &&
      e.reason.startsWith('parsing HuJSON: '),
  );
}

test('comments and trailing commas are accepted', () => {
  const text = `// leading
  {
    /* block
       comment */ "a": [1, 2, 3,], // trailing
    "b": {"c": "d",},
  }
  // end`;
  assert.deepEqual(plain(text), { a: [1, 2, 3], b: { c: 'd' } });
});

test('an empty document or only comments means no policy', () => {
  assert.equal(parseHujson(''), null);
  assert.equal(parseHujson('  // nothing\n /* here */ '), null);
});

test('plain JSON is HuJSON: escapes, numbers, literals', () => {
  assert.deepEqual(plain('{"s": "a\\"b\\\\c\\u0041\\n", "n": -1.5e2, "t": true, "f": false, "z": null}'), {
    s: 'a"b\\cA\n',
    n: -150,
    t: true,
    f: false,
    z: null,
  });
  assert.deepEqual(plain('"// not a comment"'), '// not a comment');
});

test('locations point at keys and values', () => {
  const n = parseHujson('{\n  "a":\n    [true]\n}');
  assert.ok(n?.kind === 'object');
  const m = n.members[0];
  assert.deepEqual({ line: m?.keyLoc.line, column: m?.keyLoc.column }, { line: 2, column: 3 });
  assert.deepEqual({ line: m?.value.loc.line, column: m?.value.loc.column }, { line: 3, column: 5 });
});

test('syntax errors carry line and column', () => {
  failsAt('{\n  "a": 1\n  "b": 2\n}', 3, 3, /after object value/);
  failsAt('{"a": [1,, 2]}', 1, 10, /beginning of value/);
  failsAt("{'a': 1}", 1, 2, /object key string/);
  failsAt('{a: 1}', 1, 2, /object key string/);
  failsAt('{"a": 1', 1, 1, /end of input/);
  failsAt('{"a": "x\n"}', 1, 7, /unterminated string/);
  failsAt('/* open', 1, 1, /unterminated block comment/);
  failsAt('{"a": 01}', 1, 7, /invalid number/);
  failsAt('{"a": tru}', 1, 7, /expected true/);
  failsAt('{"a": 1, "a": 2}', 1, 10, /duplicate object key "a"/);
  failsAt('[1] [2]', 1, 5, /after top-level value/);
  failsAt('{"a": "\\x"}', 1, 8, /invalid escape/);
  failsAt('{"a": 1} /', 1, 10, /comment starts with/);
});
