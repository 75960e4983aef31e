/**
 * Fuzz tier (fast-check) for the policy parser: HuJSON parse + decode + validate. Inputs are
 * arbitrary strings, token soups of HuJSON and policy vocabulary, and the valid and invalid
 * policies of testdata/ with text edits (deletions, insertions, duplicated and swapped slices) and
 * JSON-level edits (fields set, removed, renamed). Property: parsePolicy returns a policy, which
 * then compiles for a few nodes without throwing, or throws PolicyError (code invalid_policy)
 * whose every issue is located inside the text and whose message is `line:column: message`;
 * never any other error, and never slower than a generous bound (inputs are at most ~64 KiB).
 *
 * Runs: FUZZ_RUNS (per property, default 100), FUZZ_SEED / FUZZ_PATH to replay a failure.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fuzzParams } from '@switchboard/testing';
import { PolicyError, formatIssue } from './errors.js';
import { parsePolicy, parsePolicyUnchecked, type ParseOptions } from './policy.js';
import { PolicyEngine } from './engine.js';
import type { PolicyNode } from './types.js';
import { MAX_HUJSON_DEPTH, parseHujson, toPlain } from './hujson.js';
import { listTestdata, readTestdata } from './test-support.js';

/** Largest input, and how long parsing it may take on a loaded 2-core machine. */
const MAX_INPUT = 64 * 1024;
const TIME_BUDGET_MS = 2000;

/**
 * Deepest nest the generators build. parseHujson refuses anything past MAX_HUJSON_DEPTH (128) with a
 * located error, so nests go far beyond both that and the ~4,400 levels that used to overflow the
 * stack (see the regression test below); depths right around the limit are drawn often too.
 */
const SAFE_DEPTH = 20_000;

// ---- corpus ----------------------------------------------------------------------------------

/** The policies of the hand-written cases (the files wrap them with nodes and expectations). */
const goldenCases = listTestdata('golden/cases/')
  .filter((f) => f.endsWith('.hujson'))
  .map((f) => {
    const root = parseHujson(readTestdata(`golden/cases/${f}`));
    const policy = root === null ? null : (toPlain(root) as { policy?: unknown }).policy;
    // A comment and a trailing comma keep them HuJSON.
    return `// ${f}\n${JSON.stringify(policy ?? {}, null, 2).replace(/\n}$/, ',\n}')}`;
  });
const invalidCases = listTestdata('invalid/')
  .filter((f) => f.endsWith('.hujson'))
  .map((f) => readTestdata(`invalid/${f}`));
const capturedPolicies: unknown[] = listTestdata('golden/captures/')
  .filter((f) => f.endsWith('.jsonl'))
  .flatMap((f) =>
    readTestdata(`golden/captures/${f}`)
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => (JSON.parse(l) as { policy?: unknown }).policy)
      .filter((p) => p !== undefined),
  )
  .slice(0, 200);
const corpus = [...goldenCases, ...invalidCases, ...capturedPolicies.map((p) => JSON.stringify(p, null, 2))];

const nodes: PolicyNode[] = [
  {
    id: '1',
    user: 'odin@example.com',
    tags: [],
    ipv4: '100.64.0.1',
    ipv6: 'fd7a:115c:a1e0::1',
    routableIPs: [],
    approvedRoutes: [],
    groups: ['eng'],
  },
  {
    id: '2',
    user: 'thor@example.org',
    tags: [],
    ipv4: '100.64.0.2',
    ipv6: 'fd7a:115c:a1e0::2',
    routableIPs: [],
    approvedRoutes: [],
  },
  {
    id: '3',
    user: null,
    tags: ['tag:router', 'tag:exit'],
    ipv4: '100.64.0.3',
    ipv6: 'fd7a:115c:a1e0::3',
    routableIPs: ['10.33.0.0/16', '0.0.0.0/0', '::/0'],
    approvedRoutes: ['10.33.0.0/16'],
  },
];

// ---- the property ----------------------------------------------------------------------------

/** parsePolicy must return a policy that compiles, or a PolicyError located inside the text. */
function check(text: string, options: ParseOptions): void {
  const lines = text.split('\n');
  const started = performance.now();
  let policy: ReturnType<typeof parsePolicy> | undefined;
  try {
    policy = parsePolicy(text, options);
  } catch (err) {
    if (!(err instanceof PolicyError)) {
      const e = err as Error;
      assert.fail(`expected a policy or PolicyError, got ${e?.name}: ${e?.message}\n${e?.stack ?? ''}`);
    }
    assert.equal(err.code, 'invalid_policy');
    assert.ok(err.issues.length > 0);
    for (const issue of err.issues) {
      assert.ok(
        Number.isInteger(issue.line) && issue.line >= 1 && issue.line <= lines.length,
        `line ${issue.line}`,
      );
      const width = lines[issue.line - 1]!.length;
      assert.ok(
        Number.isInteger(issue.column) && issue.column >= 1 && issue.column <= width + 1,
        `column ${issue.column} of ${width}`,
      );
      assert.ok(issue.message.length > 0);
    }
    assert.equal(err.message, err.issues.map(formatIssue).join('\n'));
    assert.ok(err.message.startsWith(`${err.line}:${err.column}: `));
  }
  const elapsed = performance.now() - started;
  assert.ok(elapsed < TIME_BUDGET_MS, `parsing ${text.length} chars took ${Math.round(elapsed)} ms`);
  if (!policy) return;
  // An accepted policy is accepted without the semantic checks too, and compiles for every node.
  assert.doesNotThrow(() => parsePolicyUnchecked(text));
  const engine = new PolicyEngine(policy, { nodes, sshCheckUrlBase: 'https://sb.example' });
  for (const n of nodes) {
    assert.ok(Array.isArray(engine.filterFor(n.id)));
    JSON.parse(engine.filterJsonFor(n.id));
    assert.ok(Array.isArray(engine.peersOf(n.id)));
    engine.sshPolicyFor(n.id);
    engine.nodeCapsFor(n.id);
    engine.autoApprovedRoutes(n);
  }
}

const optionsArb: fc.Arbitrary<ParseOptions> = fc.record(
  {
    externalGroups: fc.constantFrom<ParseOptions['externalGroups']>('any', ['eng', 'ops']),
    tailnetDomains: fc.constant(['example.com']),
  },
  { requiredKeys: [] },
);

// ---- generators ------------------------------------------------------------------------------

const VOCAB = [
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  ' ',
  '\n',
  '\t',
  '// comment\n',
  '/* c */',
  '/*',
  '*/',
  '"',
  '\\',
  '\\u00e9',
  'true',
  'false',
  'null',
  '0',
  '-1',
  '1e999',
  '65535',
  '"acls"',
  '"grants"',
  '"ssh"',
  '"groups"',
  '"hosts"',
  '"tagOwners"',
  '"autoApprovers"',
  '"nodeAttrs"',
  '"tests"',
  '"sshTests"',
  '"action"',
  '"accept"',
  '"check"',
  '"src"',
  '"dst"',
  '"proto"',
  '"ip"',
  '"app"',
  '"via"',
  '"users"',
  '"routes"',
  '"exitNode"',
  '"target"',
  '"attr"',
  '"*"',
  '"*:*"',
  '"*:22"',
  '"group:eng"',
  '"tag:router"',
  '"autogroup:member"',
  '"autogroup:self"',
  '"autogroup:internet"',
  '"autogroup:tagged"',
  '"autogroup:nonroot"',
  '"odin@example.com"',
  '"10.0.0.0/8"',
  '"10.0.0.1:80-443"',
  '"[fd7a::1]:22"',
  '"tcp"',
  '"icmp"',
  '"host1"',
  '"host1:*"',
  '"randomizeClientPort"',
  '"checkPeriod"',
  '"12h"',
  '"accept": [',
  '"ü"',
  '"\u2028"',
  '"\uD800"',
];

/** A bounded nest of arrays or objects, optionally wrapped inside a policy field. */
const nestArb = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: 1, max: SAFE_DEPTH }),
      fc.integer({ min: MAX_HUJSON_DEPTH - 2, max: MAX_HUJSON_DEPTH + 1 }),
    ),
    fc.constantFrom('array', 'object'),
    fc.constantFrom('', '"acls":', '"groups":'),
  )
  .map(([d, kind, wrap]) => {
    const body = kind === 'array' ? '['.repeat(d) + ']'.repeat(d) : '{"a":'.repeat(d) + '1' + '}'.repeat(d);
    return wrap ? `{${wrap}${body}}` : body;
  });

type TextEdit =
  | { op: 'delete'; at: number; len: number }
  | { op: 'insert'; at: number; text: string }
  | { op: 'duplicate'; at: number; len: number; to: number }
  | { op: 'swap'; a: number; b: number; len: number };
const textEditArb: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.oneof(fc.constantFrom(...VOCAB), fc.string({ unit: 'binary', maxLength: 8 })),
  }),
  fc.record({
    op: fc.constant('duplicate' as const),
    at: fc.nat(),
    len: fc.integer({ min: 1, max: 200 }),
    to: fc.nat(),
  }),
  fc.record({
    op: fc.constant('swap' as const),
    a: fc.nat(),
    b: fc.nat(),
    len: fc.integer({ min: 1, max: 30 }),
  }),
);

function applyTextEdit(text: string, e: TextEdit): string {
  const n = text.length + 1;
  switch (e.op) {
    case 'delete': {
      const at = e.at % n;
      return text.slice(0, at) + text.slice(at + e.len);
    }
    case 'insert': {
      const at = e.at % n;
      return text.slice(0, at) + e.text + text.slice(at);
    }
    case 'duplicate': {
      const at = e.at % n;
      const to = e.to % n;
      return (text.slice(0, to) + text.slice(at, at + e.len) + text.slice(to)).slice(0, MAX_INPUT);
    }
    case 'swap': {
      const [a, b] = [e.a % n, e.b % n].sort((x, y) => x - y) as [number, number];
      const len = Math.min(e.len, b - a);
      return (
        text.slice(0, a) +
        text.slice(b, b + len) +
        text.slice(a + len, b) +
        text.slice(a, a + len) +
        text.slice(b + len)
      );
    }
  }
}

/** JSON-level edits on a captured policy: a field set to anything, removed, or renamed. */
type JsonEdit =
  | { path: number[]; op: 'set'; value: unknown }
  | { path: number[]; op: 'delete' }
  | { path: number[]; op: 'rename'; name: string };
const jsonEditArb: fc.Arbitrary<JsonEdit> = fc.oneof(
  fc.record({
    path: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
    op: fc.constant('set' as const),
    value: fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(...VOCAB.filter((v) => v.startsWith('"')).map((v) => v.slice(1, -1))),
    ),
  }),
  fc.record({ path: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), op: fc.constant('delete' as const) }),
  fc.record({
    path: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
    op: fc.constant('rename' as const),
    name: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('ACLs', 'Src', '#note', 'dst ', 'proto')),
  }),
);

function applyJsonEdit(root: unknown, e: JsonEdit): unknown {
  const copy = JSON.parse(JSON.stringify(root)) as unknown;
  let parent = copy;
  for (const [i, step] of e.path.entries()) {
    if (parent === null || typeof parent !== 'object') break;
    const obj = parent as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (keys.length === 0) break;
    const key = keys[step % keys.length]!;
    if (i < e.path.length - 1 && obj[key] !== null && typeof obj[key] === 'object') {
      parent = obj[key];
      continue;
    }
    if (e.op === 'set') obj[key] = e.value;
    else if (Array.isArray(obj)) obj.splice(Number(key), 1);
    else {
      const v = obj[key];
      delete obj[key];
      if (e.op === 'rename')
        Object.defineProperty(obj, e.name, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
    }
    break;
  }
  return copy;
}

const corpusArb = fc.constantFrom(...corpus);
const textArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.array(fc.constantFrom(...VOCAB), { maxLength: 120 }).map((t) => t.join('')),
  fc
    .tuple(corpusArb, fc.array(textEditArb, { minLength: 1, maxLength: 6 }))
    .map(([t, edits]) => edits.reduce(applyTextEdit, t)),
  fc
    .tuple(
      fc.constantFrom(...capturedPolicies),
      fc.array(jsonEditArb, { minLength: 1, maxLength: 4 }),
      fc.boolean(),
    )
    .map(([p, edits, pretty]) =>
      JSON.stringify(edits.reduce(applyJsonEdit, p), null, pretty ? 2 : undefined),
    ),
  nestArb,
);

void describe('fuzz: policy parser', () => {
  void test('the corpus is there (cases, invalid cases, captures)', () => {
    assert.ok(
      goldenCases.length >= 10 && invalidCases.length >= 30 && capturedPolicies.length >= 10,
      JSON.stringify([goldenCases.length, invalidCases.length, capturedPolicies.length]),
    );
  });

  void test('any text: a policy that compiles, or a located PolicyError; never another error, never slow', () => {
    fc.assert(
      fc.property(textArb, optionsArb, (text, options) => check(text.slice(0, MAX_INPUT), options)),
      fuzzParams(),
    );
  });

  void test('edited valid policies land on both sides: some still parse, some are refused', () => {
    const seen = { ok: 0, refused: 0 };
    const params = fuzzParams();
    const valid = goldenCases.filter((t) => {
      try {
        parsePolicy(t, { externalGroups: 'any', tailnetDomains: ['example.com'] });
        return true;
      } catch {
        return false;
      }
    });
    assert.ok(valid.length > 0);
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.array(textEditArb, { minLength: 1, maxLength: 2 }),
        (t, edits) => {
          const text = edits.reduce(applyTextEdit, t);
          check(text, { externalGroups: 'any', tailnetDomains: ['example.com'] });
          try {
            parsePolicy(text, { externalGroups: 'any', tailnetDomains: ['example.com'] });
            seen.ok++;
          } catch {
            seen.refused++;
          }
        },
      ),
      params,
    );
    if ((params.numRuns ?? 0) >= 50) assert.ok(seen.ok > 0 && seen.refused > 0, JSON.stringify(seen));
  });

  // Regression (found by this tier): parseHujson recursed once per nesting level with no limit, so
  // ~4,400 nested brackets (under 9 KiB of text) overflowed the stack and parsePolicy threw
  // RangeError instead of a located PolicyError. The parser now stops at MAX_HUJSON_DEPTH.
  void test('regression: 5,000 nested brackets give a located PolicyError, not a stack overflow', () => {
    // The error is at the first bracket past the limit: `{"acls":` is level 1 and 8 columns wide.
    for (const [text, column] of [
      ['['.repeat(5000) + ']'.repeat(5000), MAX_HUJSON_DEPTH + 1],
      ['{"acls":' + '['.repeat(20_000) + ']'.repeat(20_000) + '}', 8 + MAX_HUJSON_DEPTH],
    ] as const) {
      check(text, {});
      assert.throws(
        () => parsePolicy(text),
        (e: unknown) =>
          e instanceof PolicyError &&
          e.message.startsWith(`1:${column}: parsing HuJSON: nested deeper than ${MAX_HUJSON_DEPTH} levels`),
      );
    }
  });
});
