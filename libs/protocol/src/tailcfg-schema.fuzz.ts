/**
 * Fuzz tier (fast-check) for the boundary parsers of client bodies, parseRegisterRequest and
 * parseMapRequest: arbitrary JSON values and texts, arbitrary bytes, mutated valid requests (the Go
 * fixtures in testdata/go-messages.json with fields changed, removed or replaced), deep nesting,
 * huge numbers and unicode. Property: the parser returns a validated object (its invariants hold)
 * or throws ValidationError (code invalid_input), never any other error.
 *
 * Deeply nested bodies: today they parse or fail like any other; a JSON depth limit is being added
 * to the parsers, after which they must fail with ValidationError, which this property accepts too.
 *
 * Runs: FUZZ_RUNS (per property, default 100), FUZZ_SEED / FUZZ_PATH to replay a failure.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SwitchboardError, ValidationError } from '@switchboard/common';
import { fuzzParams } from '@switchboard/testing';
import samples from '../testdata/go-messages.json' with { type: 'json' };
import { LIMITS, parseMapRequest, parseRegisterRequest } from './tailcfg-schema.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const parsers = {
  RegisterRequest: parseRegisterRequest,
  MapRequest: parseMapRequest,
} as const;
type Which = keyof typeof parsers;

const fixtures: Record<Which, Json[]> = {
  RegisterRequest: [
    samples.register,
    samples.registerRotate,
    samples.registerLogout,
    samples.registerPre166,
  ] as Json[],
  MapRequest: [samples.mapStream, samples.mapLite] as Json[],
};

const KEY_TEXT = /^(nodekey|discokey|nlpub):[0-9a-f]{64}$/;

/** Runs one parser: a validated result whose invariants hold, or a ValidationError. */
function check(which: Which, input: unknown): 'valid' | 'invalid' {
  let result: unknown;
  try {
    result = parsers[which](input);
  } catch (err) {
    if (err instanceof ValidationError && err.code === 'invalid_input') {
      assert.ok(err.message.length > 0);
      return 'invalid';
    }
    const what = err instanceof SwitchboardError ? `${err.name}(${err.code})` : String(err);
    assert.fail(
      `${which}: expected a result or ValidationError, got ${what}: ${(err as Error)?.stack ?? ''}`,
    );
  }
  const r = result as Record<string, unknown>;
  assert.equal(typeof r, 'object');
  assert.ok(Number.isInteger(r.Version) && (r.Version as number) >= 0 && (r.Version as number) <= 0xffff);
  const isKey = (v: unknown, kind: string): boolean =>
    typeof v === 'string' && KEY_TEXT.test(v) && v.startsWith(`${kind}:`);
  assert.ok(isKey(r.NodeKey, 'nodekey'), `NodeKey ${JSON.stringify(r.NodeKey)}`);
  if (which === 'MapRequest') {
    for (const k of ['Endpoints', 'EndpointTypes', 'DebugFlags'])
      assert.ok(Array.isArray(r[k]), `${k} defaults to []`);
    assert.ok((r.Endpoints as unknown[]).length <= LIMITS.endpoints);
    if (r.DiscoKey !== undefined)
      assert.ok(isKey(r.DiscoKey, 'discokey'), `DiscoKey ${JSON.stringify(r.DiscoKey)}`);
  } else {
    if (r.OldNodeKey !== undefined) assert.ok(isKey(r.OldNodeKey, 'nodekey'), 'OldNodeKey');
    if (r.NLKey !== undefined) assert.ok(isKey(r.NLKey, 'nlpub'), 'NLKey');
    if (r.Expiry !== undefined) assert.ok(r.Expiry instanceof Date && !Number.isNaN(r.Expiry.getTime()));
  }
  const h = r.Hostinfo as Record<string, unknown> | undefined;
  if (h !== undefined) {
    assert.equal(typeof h, 'object');
    if (typeof h.Hostname === 'string') assert.ok(h.Hostname.length <= LIMITS.hostname);
  }
  return 'valid';
}

/** Every way a body reaches the parser: the value, its JSON text, its UTF-8 bytes. */
function forms(value: unknown): unknown[] {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  return text === undefined ? [value] : [value, text, Buffer.from(text, 'utf8')];
}

// ---- generators ------------------------------------------------------------------------------

const unicodeString = fc.string({ unit: 'binary', maxLength: 40 });
const hugeNumber = fc.oneof(
  fc.constantFrom(1e308, -1e308, 2 ** 53, 2 ** 53 + 1, -(2 ** 63), 2 ** 64, 0.5, -0, 65535, 65536, -1, 113),
  fc.double(),
);
/** Values that are JSON and more: fc.anything() reduced to what JSON.stringify keeps. */
const anythingJson: fc.Arbitrary<unknown> = fc
  .anything({ maxDepth: 3, withBigInt: false, withDate: true, withTypedArray: true })
  .map((v): unknown => {
    try {
      return JSON.parse(JSON.stringify(v) ?? 'null') as unknown;
    } catch {
      return null;
    }
  });
const leafArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  hugeNumber,
  unicodeString,
  fc.constantFrom(
    'nodekey:' + 'ab'.repeat(32),
    'nodekey:' + '00'.repeat(32),
    'NODEKEY:' + 'AB'.repeat(32),
    'nodekey:' + 'ab'.repeat(31),
    'discokey:' + '12'.repeat(32),
    'nlpub:' + '34'.repeat(32),
    '0001-01-01T00:00:00Z',
    '2026-13-45T25:61:61Z',
    '1970-01-01T00:02:03Z',
    '10.0.0.0/24',
    '1.2.3.4:41641',
    '[fd7a::1%eth0]:1',
    '[::1]:99999',
    'x'.repeat(LIMITS.string + 1),
  ),
);
const jsonArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<Json> },
  { weight: 1, arbitrary: leafArb },
  { weight: 1, arbitrary: fc.array(leafArb, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(unicodeString, leafArb, { maxKeys: 5 }) },
);

/** A value nested `depth` times in arrays or objects (up to where V8 still parses and prints it). */
const deepArb: fc.Arbitrary<{ depth: number; kind: 'array' | 'object' }> = fc.record({
  depth: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1000, max: 5000 })),
  kind: fc.constantFrom('array' as const, 'object' as const),
});
function deepText(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? '['.repeat(depth) + ']'.repeat(depth)
    : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** Paths into a JSON value: each step picks a child by index modulo the children present. */
type Mutation =
  | { op: 'set'; path: number[]; value: Json }
  | { op: 'delete'; path: number[] }
  | { op: 'deep'; path: number[]; depth: number; kind: 'array' | 'object' }
  | { op: 'rename'; path: number[]; name: string };
const pathArb = fc.array(fc.nat(), { minLength: 1, maxLength: 4 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), path: pathArb, value: jsonArb }),
  fc.record({ op: fc.constant('delete' as const), path: pathArb }),
  fc.record({
    op: fc.constant('deep' as const),
    path: pathArb,
    depth: fc.integer({ min: 1, max: 2000 }),
    kind: fc.constantFrom('array' as const, 'object' as const),
  }),
  fc.record({
    op: fc.constant('rename' as const),
    path: pathArb,
    name: fc.oneof(
      unicodeString,
      fc.constantFrom('__proto__', 'constructor', 'toString', 'nodekey', 'hostinfo'),
    ),
  }),
);

function nested(depth: number, kind: 'array' | 'object'): Json {
  let v: Json = 1;
  for (let i = 0; i < depth; i++) v = kind === 'array' ? [v] : { a: v };
  return v;
}

/** Applies a mutation to a deep copy; stops where the path leaves the tree. */
function mutate(root: Json, m: Mutation): Json {
  const copy = JSON.parse(JSON.stringify(root)) as Json;
  let parent: Json = copy;
  for (let i = 0; i < m.path.length; i++) {
    if (parent === null || typeof parent !== 'object') return copy;
    const keys: Array<string | number> = Array.isArray(parent)
      ? parent.map((_, j) => j)
      : Object.keys(parent);
    if (keys.length === 0) return copy;
    const key = keys[m.path[i]! % keys.length]!;
    const last = i === m.path.length - 1;
    const container = parent as Record<string | number, Json>;
    if (!last && container[key] !== null && typeof container[key] === 'object') {
      parent = container[key]!;
      continue;
    }
    switch (m.op) {
      case 'set':
        container[key] = m.value;
        break;
      case 'deep':
        container[key] = nested(m.depth, m.kind);
        break;
      case 'delete':
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete container[key];
        break;
      case 'rename':
        if (!Array.isArray(parent)) {
          const v = container[key]!;
          delete container[key];
          Object.defineProperty(container, m.name, {
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
  return copy;
}

const whichArb = fc.constantFrom<Which>('RegisterRequest', 'MapRequest');

void describe('fuzz: RegisterRequest / MapRequest parsers', () => {
  void test('arbitrary JSON values, texts and bytes: a validated object or ValidationError', () => {
    fc.assert(
      fc.property(whichArb, fc.oneof(jsonArb, anythingJson), (which, value) => {
        for (const input of forms(value)) void check(which, input);
      }),
      fuzzParams(),
    );
  });

  void test('arbitrary text and bytes (JSON-ish or not) as bodies', () => {
    fc.assert(
      fc.property(
        whichArb,
        fc.oneof(
          fc.json({ maxDepth: 3 }),
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.uint8Array({ maxLength: 200 }),
          deepArb.map((d) => deepText(d.depth, d.kind)),
        ),
        (which, body) => void check(which, body),
      ),
      fuzzParams(),
    );
  });

  void test('valid requests with fields changed, removed, renamed or nested deeply', () => {
    const seen = { valid: 0, invalid: 0 };
    const params = fuzzParams();
    fc.assert(
      fc.property(
        whichArb.chain((w) => fc.tuple(fc.constant(w), fc.constantFrom(...fixtures[w]))),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        ([which, fixture], mutations) => {
          const value = mutations.reduce(mutate, fixture);
          for (const input of forms(value)) seen[check(which, input)]++;
        },
      ),
      params,
    );
    // The mutations must land on both sides of the boundary, or the property tests little.
    if ((params.numRuns ?? 0) >= 50) assert.ok(seen.valid > 0 && seen.invalid > 0, JSON.stringify(seen));
  });

  void test('the unmutated fixtures parse (the mutation property starts from valid input)', () => {
    for (const which of ['RegisterRequest', 'MapRequest'] as const)
      for (const f of fixtures[which]) assert.doesNotThrow(() => parsers[which](f));
  });
});
