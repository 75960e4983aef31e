/**
 * The architecture's boundaries hold themselves: the workspace lint config (eslint.config.mjs) fails
 * a service importing another service, a library importing a service, deep or package-escaping
 * imports and subject strings outside libs/contracts, and passes the legitimate shapes. Each case
 * lints a small fixture as if it were a file at the given path; only the boundary rules run, without
 * type information, so the fixtures need not exist on disk.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

const eslint = new ESLint({
  cwd: repoRoot,
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports' || ruleId === 'no-restricted-syntax',
});

async function lint(filePath: string, code: string): Promise<{ ruleId: string | null; message: string }[]> {
  const [result] = await eslint.lintText(code, { filePath });
  assert.ok(result, 'ESLint returned no result');
  const fatal = result.messages.filter((m) => m.fatal);
  assert.deepEqual(fatal, [], `fixture for ${filePath} did not parse`);
  return result.messages.map(({ ruleId, message }) => ({ ruleId, message }));
}

async function assertFlagged(filePath: string, code: string, ruleId: string, reason: RegExp): Promise<void> {
  const messages = await lint(filePath, code);
  assert.ok(
    messages.some((m) => m.ruleId === ruleId && reason.test(m.message)),
    `expected ${ruleId} matching ${String(reason)} for ${filePath}: ${code}\ngot ${JSON.stringify(messages)}`,
  );
}

async function assertClean(filePath: string, code: string): Promise<void> {
  assert.deepEqual(await lint(filePath, code), [], `expected no boundary errors for ${filePath}: ${code}`);
}

const ANOTHER_SERVICE = /A service never imports another service/;
const LIB_TO_SERVICE = /Libraries never import services/;
const DEEP = /through its public entry/;
const ESCAPE = /leaves services\/identity\//;
const SUBJECT = /NATS subjects are named only in libs\/contracts/;

describe('lint: dependency direction', () => {
  test('a service importing another service fails', async () => {
    await assertFlagged(
      'services/identity/src/x.ts',
      "import { KeyRegistryModule } from '@switchboard/key-registry';",
      'no-restricted-imports',
      ANOTHER_SERVICE,
    );
    await assertFlagged(
      'services/netmap-fanout/test/x.test.ts',
      "export { IdentityModule } from '@switchboard/identity';",
      'no-restricted-imports',
      ANOTHER_SERVICE,
    );
    await assertFlagged(
      'services/key-registry/src/deep/er/x.ts',
      "import type { RunningServer } from '@switchboard/switchboard';",
      'no-restricted-imports',
      ANOTHER_SERVICE,
    );
    await assertFlagged(
      'services/policy-compiler/src/x.ts',
      "const m = await import('@switchboard/netmap-fanout');",
      'no-restricted-syntax',
      ANOTHER_SERVICE,
    );
  });

  test('a library importing a service fails', async () => {
    await assertFlagged(
      'libs/policy/src/x.ts',
      "import { x } from '@switchboard/identity';",
      'no-restricted-imports',
      LIB_TO_SERVICE,
    );
    await assertFlagged(
      'libs/testing/src/x.ts',
      "import { serve } from '@switchboard/switchboard';",
      'no-restricted-imports',
      LIB_TO_SERVICE,
    );
  });

  test('imports that bypass a package’s public entry fail', async () => {
    await assertFlagged(
      'libs/db/src/x.ts',
      "import { x } from '@switchboard/common/src/errors.js';",
      'no-restricted-imports',
      DEEP,
    );
    await assertFlagged(
      'services/switchboard/src/x.ts',
      "import { x } from '@switchboard/identity/dist/src/admin/admin.server.js';",
      'no-restricted-imports',
      DEEP,
    );
    await assertFlagged(
      'services/identity/src/admin/x.ts',
      "import { x } from '../../../key-registry/src/index.js';",
      'no-restricted-imports',
      ESCAPE,
    );
    await assertFlagged(
      'services/identity/x.config.ts',
      "import pkg from '../key-registry/package.json' with { type: 'json' };",
      'no-restricted-imports',
      ESCAPE,
    );
    await assertFlagged(
      'services/identity/src/x.ts',
      "const m = await import('./../../../libs/db/src/index.js');",
      'no-restricted-syntax',
      ESCAPE,
    );
  });

  test('legitimate imports pass', async () => {
    await assertClean(
      'services/identity/src/admin/x.ts',
      [
        "import { ConflictError } from '@switchboard/common';",
        "import { Register } from '@switchboard/contracts';",
        "import { x } from '../identity.service.js';",
        "import fixture from '../../testdata/users.json' with { type: 'json' };",
        "import { join } from 'node:path';",
        "import express from 'express';",
      ].join('\n'),
    );
    await assertClean(
      'services/switchboard/src/x.ts',
      "import { KeyRegistryModule } from '@switchboard/key-registry';\nimport { IdentityModule } from '@switchboard/identity';",
    );
    await assertClean('test/test/integration/x.test.ts', "import { serve } from '@switchboard/switchboard';");
    await assertClean('bench/src/x.ts', "import { x } from '@switchboard/netmap-fanout';");
    await assertClean('libs/contracts/src/x.ts', "import { x } from '@switchboard/bus';");
  });
});

describe('lint: only libs/contracts names NATS subjects', () => {
  test('a subject literal outside libs/contracts fails', async () => {
    await assertFlagged(
      'services/netmap-fanout/src/x.ts',
      "await bus.request('keyreg.v1.register', input);",
      'no-restricted-syntax',
      SUBJECT,
    );
    await assertFlagged(
      'services/key-registry/test/x.test.ts',
      "bus.consumeEvents({ filter: 'events.v1.>' });",
      'no-restricted-syntax',
      SUBJECT,
    );
    await assertFlagged(
      'services/identity/src/x.ts',
      'const subject = `policy.v1.${verb}`;',
      'no-restricted-syntax',
      SUBJECT,
    );
    await assertFlagged(
      'libs/bus/src/x.ts',
      "const s = 'fanout.v1.presence';",
      'no-restricted-syntax',
      SUBJECT,
    );
  });

  test('subjects in libs/contracts, and strings that are not subjects, pass', async () => {
    await assertClean(
      'libs/contracts/src/x.contract.ts',
      "export const Register = defineRpc('keyreg.v1.register', In, Out);\nexport const ALL = 'events.v1.>';",
    );
    await assertClean(
      'services/key-registry/src/x.ts',
      "const queue = 'keyreg';\nconst url = 'https://example.com/v1.2';\nconst file = './x.v1.json';",
    );
    // The transport libraries sit below libs/contracts; their tests use example subjects.
    await assertClean('libs/bus/src/x.spec.ts', "assertSubject('keyreg.v1.register', false);");
  });
});
