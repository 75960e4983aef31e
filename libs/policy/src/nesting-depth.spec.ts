/**
 * The HuJSON nesting limit: a document nested exactly MAX_HUJSON_DEPTH levels parses, one level
 * more is a located `PolicyError` at the first bracket past the limit, and even 100,000 levels
 * are refused quickly instead of overflowing the stack (RangeError). Brackets inside strings and
 * comments do not count. A grant's `app` value nested up to the limit parses, compiles and renders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyError } from './errors.js';
import { MAX_HUJSON_DEPTH, parseHujson, toPlain } from './hujson.js';
import { parsePolicy } from './policy.js';
import { PolicyEngine } from './engine.js';

const arrays = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
const objects = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

function refusedAt(run: () => unknown, line: number, column: number): void {
  assert.throws(run, (e: unknown) => {
    assert.ok(e instanceof PolicyError, `expected PolicyError, got ${String(e)}`);
    assert.equal(e.code, 'invalid_policy');
    assert.equal(
      e.message,
      `${line}:${column}: parsing HuJSON: nested deeper than ${MAX_HUJSON_DEPTH} levels (arrays and objects)`,
    );
    return true;
  });
}

test('the limit is well above real policies and far below the stack limit', () => {
  assert.equal(MAX_HUJSON_DEPTH, 128);
});

test('nesting exactly at the limit parses; one level deeper is refused at its bracket', () => {
  const a = parseHujson(arrays(MAX_HUJSON_DEPTH));
  assert.ok(a?.kind === 'array');
  let depth = 0;
  for (let v: unknown = toPlain(a); Array.isArray(v); v = (v as unknown[])[0]) depth++;
  assert.equal(depth, MAX_HUJSON_DEPTH);
  assert.ok(parseHujson(objects(MAX_HUJSON_DEPTH))?.kind === 'object');

  refusedAt(() => parseHujson(arrays(MAX_HUJSON_DEPTH + 1)), 1, MAX_HUJSON_DEPTH + 1);
  // '{"a":' is five columns wide: the 129th object starts at column 5 × 128 + 1.
  refusedAt(() => parseHujson(objects(MAX_HUJSON_DEPTH + 1)), 1, 5 * MAX_HUJSON_DEPTH + 1);
  // On another line, with whitespace: the location is that bracket's line and column.
  const text = `{\n  "acls": ${'['.repeat(MAX_HUJSON_DEPTH - 2)}\n    [[]]${']'.repeat(MAX_HUJSON_DEPTH - 2)}\n}`;
  refusedAt(() => parsePolicy(text), 3, 6);
});

test('brackets inside strings and comments do not count', () => {
  const noise = `"${'['.repeat(500)}" /* ${'{'.repeat(500)} */ // ${'['.repeat(500)}\n`;
  const text = '['.repeat(MAX_HUJSON_DEPTH - 1) + '[' + noise + ']' + ']'.repeat(MAX_HUJSON_DEPTH - 1);
  const n = parseHujson(text);
  assert.ok(n?.kind === 'array');
  const inner = toPlain(n);
  assert.ok(Array.isArray(inner));
});

test('100,000 levels are refused quickly with the located error, not a stack overflow', () => {
  for (const text of [arrays(100_000), objects(100_000), `{"grants": ${arrays(100_000)}}`]) {
    const started = performance.now();
    assert.throws(
      () => parsePolicy(text),
      (e: unknown) =>
        e instanceof PolicyError && /^1:\d+: parsing HuJSON: nested deeper than 128 levels/.test(e.message),
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 500, `took ${Math.round(elapsed)} ms`);
  }
});

test('a grant app value nested up to the limit parses, compiles and renders', () => {
  // root {, grants [, grant {, app {, capability values [ are five levels; the value gets the rest.
  const grant = (valueDepth: number): string =>
    `{"tagOwners": {"tag:fs": []}, "grants": [{"src": ["*"], "dst": ["tag:fs"], "app": {"example.com/cap/deep": [${objects(valueDepth)}]}}]}`;
  const deepest = MAX_HUJSON_DEPTH - 5;
  const policy = parsePolicy(grant(deepest));
  const engine = new PolicyEngine(policy, {
    nodes: [
      {
        id: '1',
        user: 'alice@example.com',
        tags: [],
        ipv4: '100.64.0.1',
        ipv6: 'fd7a:115c:a1e0::1',
        routableIPs: [],
        approvedRoutes: [],
      },
      {
        id: '2',
        user: null,
        tags: ['tag:fs'],
        ipv4: '100.64.0.2',
        ipv6: 'fd7a:115c:a1e0::2',
        routableIPs: [],
        approvedRoutes: [],
      },
    ],
  });
  const filter = JSON.parse(engine.filterJsonFor('2')) as {
    CapGrant?: { CapMap: Record<string, unknown> }[];
  }[];
  let v = filter.flatMap((r) => r.CapGrant ?? []).map((c) => c.CapMap['example.com/cap/deep'])[0];
  assert.ok(Array.isArray(v));
  v = v[0];
  let depth = 0;
  while (typeof v === 'object' && v !== null) {
    depth++;
    v = (v as { a: unknown }).a;
  }
  assert.equal(depth, deepest);
  assert.equal(v, 1);
  // One level more and the whole policy is refused at that object's brace.
  const over = grant(deepest + 1);
  refusedAt(() => parsePolicy(over), 1, over.indexOf('[{"a":') + 1 + 5 * deepest + 1);
});
