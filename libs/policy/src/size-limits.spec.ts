/**
 * The size rule holds itself: no source file in libs/policy/src over 800 lines and no function
 * over 150 (measured with the TypeScript compiler API by scripts/check-size.mjs).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

interface Violation {
  readonly file: string;
  readonly kind: 'file' | 'function';
  readonly name: string;
  readonly line: number;
  readonly lines: number;
  readonly limit: number;
}

interface SizeChecker {
  checkSizes(
    paths: readonly string[],
    options?: { maxFileLines?: number; maxFunctionLines?: number; root?: string },
  ): Violation[];
  checkSource(
    file: string,
    text: string,
    limits?: { maxFileLines?: number; maxFunctionLines?: number },
  ): Violation[];
  formatViolation: (v: Violation) => string;
}

// Compiled to libs/policy/dist/src/: the repository root is four levels up, the sources two.
const root = fileURLToPath(new URL('../../../../', import.meta.url));
const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));
const checker = (await import(
  new URL('../../../../scripts/check-size.mjs', import.meta.url).href
)) as SizeChecker;

test('libs/policy/src: no file over 800 lines, no function over 150', () => {
  const violations = checker.checkSizes([srcDir], { maxFileLines: 800, maxFunctionLines: 150, root });
  assert.deepEqual(violations.map(checker.formatViolation), []);
});

test('the checker names long files and functions, including methods and arrows', () => {
  const body = (n: number): string => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
  const text = [
    `export class Engine {`,
    `  mutate(): void {`,
    `    let x = 0;`,
    body(10),
    `  }`,
    `}`,
    `const step = (): void => {`,
    `  let x = 0;`,
    body(3),
    `};`,
    `function short(): void {}`,
  ].join('\n');
  const v = checker.checkSource('engine.ts', text, { maxFileLines: 15, maxFunctionLines: 6 });
  assert.deepEqual(v.map(checker.formatViolation), [
    `engine.ts: ${text.split('\n').length} lines (limit 15)`,
    'engine.ts:2: function Engine.mutate is 13 lines (limit 6)',
  ]);
  const w = checker.checkSource('engine.ts', text, { maxFunctionLines: 5 });
  assert.deepEqual(
    w.map((x) => x.name),
    ['Engine.mutate', 'step'],
  );
});
