#!/usr/bin/env node
/**
 * Size limits for TypeScript sources: no file over `maxFileLines` lines, no function (declaration,
 * method, accessor, constructor, function expression or arrow function) over `maxFunctionLines`
 * lines. Functions are found with the TypeScript compiler API and measured from their first to
 * their last line, comments inside included; a nested function counts inside its parent too.
 *
 * Callbacks passed straight to `describe`/`suite` are containers of tests and are not measured
 * (the tests inside them are). Exempt a file (generated data, test tables) with a
 * `size-check: ignore-file` comment in its first 10 lines, or pass `ignore` patterns. `.d.ts`
 * files, `dist/` and `node_modules/` are skipped.
 *
 *   node scripts/check-size.mjs [--max-file 800] [--max-function 150] DIR...   (exit 1 on violations)
 *
 *   import { checkSizes, formatViolation } from '../scripts/check-size.mjs';
 *   const violations = checkSizes(['libs/policy/src'], { maxFileLines: 800, maxFunctionLines: 150 });
 *
 * libs/policy runs it as a unit test (`libs/policy/src/size-limits.spec.ts`).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

export const DEFAULT_LIMITS = { maxFileLines: 800, maxFunctionLines: 150 };
const IGNORE_MARKER = 'size-check: ignore-file';
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git']);
const SUITE_CALLEES = new Set([
  'describe',
  'suite',
  'describe.skip',
  'describe.only',
  'suite.skip',
  'suite.only',
]);

function isSuiteCallback(node) {
  const p = node.parent;
  return (
    (ts.isArrowFunction(node) || ts.isFunctionExpression(node)) &&
    ts.isCallExpression(p) &&
    p.arguments.includes(node) &&
    SUITE_CALLEES.has(p.expression.getText())
  );
}

/** Every `.ts`/`.mts`/`.cts`/`.tsx` file under `dir` (sorted), skipping declarations and build output. */
function listSources(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (!SKIP_DIRS.has(name)) listSources(p, out);
    } else if (/\.(m|c)?tsx?$/.test(name) && !/\.d\.(m|c)?ts$/.test(name)) {
      out.push(p);
    }
  }
  return out;
}

function propertyNameText(name) {
  if (name === undefined) return undefined;
  if (ts.isIdentifier(name) || ts.isPrivateIdentifier(name) || ts.isStringLiteral(name)) return name.text;
  if (ts.isNumericLiteral(name)) return name.text;
  return name.getText();
}

/** A readable name for a function node: its own name, the variable/property it is assigned to, or the test title. */
function functionName(node) {
  const own = propertyNameText(node.name);
  let name = own;
  if (ts.isConstructorDeclaration(node)) name = 'constructor';
  if (name === undefined) {
    const p = node.parent;
    if (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p))
      name = propertyNameText(p.name);
    else if (ts.isCallExpression(p)) {
      const callee = p.expression.getText();
      const title = p.arguments[0];
      name =
        title !== undefined && ts.isStringLiteralLike(title)
          ? `${callee}(${JSON.stringify(title.text)})`
          : `<callback of ${callee}>`;
    }
  }
  let cls = node.parent;
  while (cls !== undefined && !ts.isClassLike(cls) && !ts.isSourceFile(cls)) cls = cls.parent;
  const prefix =
    cls !== undefined && ts.isClassLike(cls) && cls.name !== undefined ? `${cls.name.text}.` : '';
  return `${prefix}${name ?? '<anonymous>'}`;
}

function isFunctionLike(node) {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node)
  );
}

/** Violations in one source text: `{ file, kind: 'file' | 'function', name, line, lines, limit }`. */
export function checkSource(file, text, limits = DEFAULT_LIMITS) {
  const { maxFileLines, maxFunctionLines } = { ...DEFAULT_LIMITS, ...limits };
  if (text.split('\n', 10).some((l) => l.includes(IGNORE_MARKER))) return [];
  const out = [];
  const fileLines = text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length;
  if (fileLines > maxFileLines)
    out.push({ file, kind: 'file', name: file, line: 1, lines: fileLines, limit: maxFileLines });
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (isFunctionLike(node) && node.body !== undefined && !isSuiteCallback(node)) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = last - first + 1;
      if (lines > maxFunctionLines)
        out.push({
          file,
          kind: 'function',
          name: functionName(node),
          line: first + 1,
          lines,
          limit: maxFunctionLines,
        });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/**
 * Checks every TypeScript source under the given directories (or files). `ignore` is a list of
 * RegExps or substrings matched against the path relative to `root` (default: the cwd).
 */
export function checkSizes(paths, options = {}) {
  const { ignore = [], root = process.cwd(), ...limits } = options;
  const skip = (rel) => ignore.some((p) => (typeof p === 'string' ? rel.includes(p) : p.test(rel)));
  const out = [];
  for (const p of paths) {
    const files = statSync(p).isDirectory() ? listSources(p) : [p];
    for (const f of files) {
      const rel = relative(root, f);
      if (skip(rel)) continue;
      out.push(...checkSource(rel, readFileSync(f, 'utf8'), limits));
    }
  }
  return out;
}

export function formatViolation(v) {
  return v.kind === 'file'
    ? `${v.file}: ${v.lines} lines (limit ${v.limit})`
    : `${v.file}:${v.line}: function ${v.name} is ${v.lines} lines (limit ${v.limit})`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'max-file': { type: 'string', default: String(DEFAULT_LIMITS.maxFileLines) },
      'max-function': { type: 'string', default: String(DEFAULT_LIMITS.maxFunctionLines) },
    },
  });
  if (positionals.length === 0) {
    console.error('usage: node scripts/check-size.mjs [--max-file N] [--max-function N] DIR...');
    process.exit(2);
  }
  const violations = checkSizes(positionals, {
    maxFileLines: Number(values['max-file']),
    maxFunctionLines: Number(values['max-function']),
  });
  for (const v of violations) console.error(formatViolation(v));
  if (violations.length > 0) process.exit(1);
  console.log(`size limits hold in ${positionals.join(', ')}`);
}
