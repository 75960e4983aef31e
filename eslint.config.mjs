// One lint config for the whole workspace: type-checked typescript-eslint rules, zero warnings, and
// the architecture's boundaries (ARCHITECTURE.md, "Packages"), which services/switchboard/test/
// lint-rules.test.ts proves by linting small fixtures:
//   - libs never import services;
//   - a service never imports another service: only services/switchboard (the composition root),
//     test/ and bench/ import services;
//   - packages import each other only through their public entry (`@switchboard/x`): no deep
//     `@switchboard/x/...` paths and no relative paths that leave the package's directory;
//   - only libs/contracts names NATS subjects: a string that looks like one (`keyreg.v1.register`,
//     `events.v1.>`) anywhere else is an error; import the contract instead.
// The boundaries use core `no-restricted-imports` and `no-restricted-syntax` on import specifiers,
// so they need no module resolution and hold before anything is built. Flat config replaces (does not
// merge) a rule's options when several objects match a file, so each package directory and depth
// gets exactly one object with every pattern that applies to it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import tseslint from 'typescript-eslint';

const root = import.meta.dirname;
const SOURCE = '*.{ts,mts,cts,js,mjs,cjs}';

/** Workspace packages: directory (relative to the root), package name, role. */
const packages = ['libs', 'services']
  .flatMap((group) =>
    existsSync(join(root, group))
      ? readdirSync(join(root, group), { withFileTypes: true })
          .filter((e) => e.isDirectory() && existsSync(join(root, group, e.name, 'package.json')))
          .map((e) => `${group}/${e.name}`)
      : [],
  )
  .concat(['test', 'bench'].filter((d) => existsSync(join(root, d, 'package.json'))))
  .map((dir) => {
    const { name } = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
    const role = dir.startsWith('libs/')
      ? 'lib'
      : dir === 'services/switchboard'
        ? 'composition-root'
        : dir.startsWith('services/')
          ? 'service'
          : 'top'; // test/, bench/
    return { dir, name, role };
  });

const serviceNames = packages
  .filter((p) => p.role !== 'lib' && p.dir.startsWith('services/'))
  .map((p) => p.name);

/** A string that looks like a NATS subject of ours: `<context>.v<N>.<rest>`. */
const SUBJECT_RE = '^[a-z][a-z0-9-]*\\.v\\d+\\.';
const NOT_AN_IMPORT =
  ':not(ImportDeclaration > Literal, ExportNamedDeclaration > Literal, ExportAllDeclaration > Literal, ImportExpression > Literal, TSExternalModuleReference > Literal)';
const SUBJECT_MESSAGE =
  'NATS subjects are named only in libs/contracts: import the contract (or its constant) instead of spelling the subject.';
const subjectSelectors = [
  { selector: `Literal[value=/${SUBJECT_RE}/]${NOT_AN_IMPORT}`, message: SUBJECT_MESSAGE },
  { selector: `TemplateElement[value.raw=/${SUBJECT_RE}/]`, message: SUBJECT_MESSAGE },
];

/**
 * Files allowed to spell subjects although outside libs/contracts:
 * - the transport libraries' tests (libs/bus, libs/db sit below libs/contracts and exercise subject
 *   handling with example subjects);
 * - known violations, listed one by one until their owners fix them (then delete the line).
 */
const subjectExempt = [
  'libs/contracts/**',
  'libs/bus/**/*.spec.ts',
  'libs/bus/test/**',
  'libs/db/**/*.spec.ts',
  'libs/db/test/**',
  // Known violation (fix: use ALL_EVENTS_FILTER from @switchboard/contracts):
  'services/key-registry/test/key-registry.test.ts',
];

/**
 * The import rules for a file of `pkg` at `depth` directories below its root: `regex` for
 * `no-restricted-imports`, `esquery` (the same test; esquery regexes cannot contain "/") for `import()`.
 */
function importRules(pkg, depth) {
  const rules = [
    {
      regex: '^@switchboard/[a-z0-9-]+/',
      esquery: '^@switchboard.[a-z0-9-]+[^a-z0-9-]',
      message: 'Import a workspace package through its public entry (`@switchboard/x`), not a deep path.',
    },
    {
      regex: `^(\\./)?(\\.\\./){${depth + 1},}`,
      esquery: `^([.].)?([.][.].){${depth + 1},}`,
      message: `This relative import leaves ${pkg.dir}/: import the other package as \`@switchboard/x\`.`,
    },
  ];
  const banned =
    pkg.role === 'lib'
      ? {
          names: serviceNames,
          message:
            'Libraries never import services (dependencies point one way: libs <- services <- switchboard).',
        }
      : pkg.role === 'service'
        ? {
            names: serviceNames.filter((n) => n !== pkg.name),
            message:
              'A service never imports another service: talk to it over the bus through libs/contracts. Only services/switchboard (the composition root), test/ and bench/ import services.',
          }
        : undefined;
  if (banned && banned.names.length > 0) {
    const alternatives = banned.names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    rules.push({
      regex: `^(${alternatives.join('|')})$`,
      esquery: `^(${alternatives.map((a) => a.replaceAll('/', '.')).join('|')})$`,
      message: banned.message,
    });
  }
  return rules;
}

const MAX_DEPTH = 9;
const DEPTHS = [MAX_DEPTH + 1, ...Array.from({ length: MAX_DEPTH + 1 }, (_, d) => d)];
const exempt = `{${subjectExempt.join(',')}}`;

/**
 * Per package and depth (0 = files in the package root; the first object, for any depth, catches
 * files deeper than MAX_DEPTH): the import rules, plus the subject rule except where it is exempt.
 */
const boundaries = packages.flatMap((pkg) =>
  DEPTHS.flatMap((depth) => {
    const glob = depth > MAX_DEPTH ? `${pkg.dir}/**/${SOURCE}` : `${pkg.dir}/${'*/'.repeat(depth)}${SOURCE}`;
    const rules = importRules(pkg, depth);
    const imports = ['error', { patterns: rules.map(({ regex, message }) => ({ regex, message })) }];
    const dynamicImports = rules.map(({ esquery, message }) => ({
      selector: `ImportExpression[source.value=/${esquery}/]`,
      message,
    }));
    return [
      {
        name: `switchboard/boundaries/${pkg.dir}/depth-${depth}`,
        files: [glob],
        rules: {
          'no-restricted-imports': imports,
          'no-restricted-syntax': ['error', ...dynamicImports, ...subjectSelectors],
        },
      },
      {
        name: `switchboard/boundaries/${pkg.dir}/depth-${depth}/subject-exempt`,
        files: [[glob, exempt]],
        rules: { 'no-restricted-syntax': ['error', ...dynamicImports] },
      },
    ];
  }),
);

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'scripts/**', 'bin/**', 'eslint.config.mjs', 'deploy/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-extraneous-class': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['**/*.spec.ts', '**/test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  ...boundaries,
);
