import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from './errors.js';
import { findDepthExcess, parseJsonLimited, type JsonLimits } from './json-limits.js';

const limits: JsonLimits = { maxDepth: 64, maxBytes: 1 << 20, what: 'register request' };

function nested(depth: number, open = '[', close = ']'): string {
  return open.repeat(depth) + close.repeat(depth);
}

function refused(fn: () => unknown, re: RegExp, limit: string): ValidationError {
  let caught: unknown;
  assert.throws(fn, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof ValidationError, `expected ValidationError, got ${String(caught)}`);
  assert.equal(caught.code, 'invalid_input');
  assert.match(caught.message, re);
  assert.equal(caught.details?.limit, limit);
  assert.doesNotMatch(caught.message, /call stack|RangeError|\n\s+at /);
  return caught;
}

void describe('parseJsonLimited', () => {
  void test('parses JSON text and UTF-8 bytes alike', () => {
    const text = '{"a":[1,{"b":"ü[{"}],"c":null}';
    const want = { a: [1, { b: 'ü[{' }], c: null };
    assert.deepEqual(parseJsonLimited(text, limits), want);
    assert.deepEqual(parseJsonLimited(Buffer.from(text), limits), want);
    const inArray = new Uint8Array(Buffer.from(`xx${text}`)).subarray(2);
    assert.deepEqual(parseJsonLimited(inArray, limits), want);
    assert.equal(parseJsonLimited('7', limits), 7);
  });

  void test('accepts nesting exactly at the limit and refuses one level more, naming the limit', () => {
    assert.ok(Array.isArray(parseJsonLimited(nested(64), limits)));
    const objects = '{"a":'.repeat(63) + '{}' + '}'.repeat(63);
    assert.ok(parseJsonLimited(Buffer.from(objects), limits));
    refused(() => parseJsonLimited(`[${objects}]`, limits), /deeper than 64 levels/, 'depth');
    refused(
      () => parseJsonLimited(nested(65), limits),
      /^register request: JSON nested deeper than 64 levels/,
      'depth',
    );
    refused(
      () => parseJsonLimited(Buffer.from(nested(65)), limits),
      /^register request: JSON nested deeper than 64 levels/,
      'depth',
    );
  });

  void test('objects and arrays count alike; brackets inside strings and escaped quotes do not count', () => {
    const mixed = '{"a":'.repeat(40) + '[[],[],[]]' + '}'.repeat(40);
    assert.ok(parseJsonLimited(mixed, { ...limits, maxDepth: 42 }));
    refused(() => parseJsonLimited(mixed, { ...limits, maxDepth: 41 }), /deeper than 41 levels/, 'depth');
    const inString = JSON.stringify({ s: nested(1000), t: 'a\\"[[[[', u: '\\' });
    assert.deepEqual(Object.keys(parseJsonLimited(inString, { ...limits, maxDepth: 1 }) as object), [
      's',
      't',
      'u',
    ]);
    assert.deepEqual(
      parseJsonLimited(Buffer.from(inString), { ...limits, maxDepth: 1 }),
      JSON.parse(inString),
    );
  });

  void test('20,000 levels deep is refused quickly, before JSON.parse and without a stack overflow', () => {
    const deep = `{"Hostinfo":{"X":${nested(20_000)}}}`;
    const t0 = performance.now();
    refused(() => parseJsonLimited(deep, limits), /JSON nested deeper than 64 levels/, 'depth');
    refused(() => parseJsonLimited(Buffer.from(deep), limits), /JSON nested deeper than 64 levels/, 'depth');
    assert.ok(performance.now() - t0 < 200, 'the pre-scan is linear and stops at the first excess');
  });

  void test('refuses input over maxBytes, counting UTF-8 bytes of text', () => {
    refused(
      () => parseJsonLimited(JSON.stringify('ü'.repeat(600)), { ...limits, maxBytes: 1000 }),
      /^register request: 1202 bytes is over the limit of 1000 bytes/,
      'bytes',
    );
    refused(
      () => parseJsonLimited(Buffer.alloc(1001, 0x20), { ...limits, maxBytes: 1000 }),
      /1001 bytes is over the limit of 1000 bytes/,
      'bytes',
    );
  });

  void test('refuses what is not JSON, including unbalanced brackets that fool the depth count', () => {
    refused(
      () => parseJsonLimited('{"Version":', limits),
      /^register request: body is not valid JSON/,
      'syntax',
    );
    refused(() => parseJsonLimited(']]]]' + nested(64), limits), /body is not valid JSON/, 'syntax');
    refused(() => parseJsonLimited('', limits), /body is not valid JSON/, 'syntax');
  });
});

void describe('findDepthExcess', () => {
  void test('gives the offset of the first bracket past the limit', () => {
    assert.equal(findDepthExcess('[[[]]]', 3), -1);
    assert.equal(findDepthExcess('[[[]]]', 2), 2);
    assert.equal(findDepthExcess(' {"a":[{}]}', 2), 7);
    assert.equal(findDepthExcess(Buffer.from(' {"a":[{}]}'), 2), 7);
  });
});
