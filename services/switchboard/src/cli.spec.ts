import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SwitchboardError } from '@switchboard/common';
import { AdminApiError } from './admin-client.js';
import { describeCliError, runAdminCli, USAGE, type CliIO } from './cli.js';
import { parseCliArgs } from './cli-args.js';

function captureIO(): CliIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (s) => stdout.push(s), err: (s) => stderr.push(s), env: {} };
}

describe('runAdminCli (no admin API reached)', () => {
  test('--help prints the usage text and succeeds', async () => {
    const io = captureIO();
    assert.equal(await runAdminCli(['--help'], io), 0);
    assert.deepEqual(io.stdout, [USAGE]);
  });

  test('usage errors come before any call: an unknown flag, a missing ID, a missing name', async () => {
    const io = captureIO();
    // A socket that does not exist: reaching the admin API would fail differently.
    const socket = ['--socket', '/nonexistent/admin.sock'];
    await assert.rejects(
      runAdminCli(['nodes', 'delete', '1', '--force', ...socket], io),
      /unknown option --force/,
    );
    await assert.rejects(runAdminCli(['nodes', 'delete', ...socket], io), /nodes delete needs an ID/);
    await assert.rejects(runAdminCli(['users', 'create', ...socket], io), /users create needs a NAME/);
    await assert.rejects(runAdminCli(['nodes', 'tag', '1', ...socket], io), /nodes tag needs --tags/);
    await assert.rejects(runAdminCli(['preauthkeys', 'create', ...socket], io), /needs --user NAME/);
    await assert.rejects(
      runAdminCli(['policy', 'rollback', '--version', '0', ...socket], io),
      /needs --version N/,
    );
    assert.deepEqual(io.stdout, []);
  });
});

describe('describeCliError', () => {
  test('admin API errors carry their code and hint', () => {
    assert.equal(
      describeCliError(new AdminApiError(404, 'not-found', 'node 7 not found', 'list nodes')),
      'error: node 7 not found (not-found)\nhint: list nodes\n',
    );
    assert.equal(describeCliError(new AdminApiError(500, 'error', 'boom')), 'error: boom\n');
  });

  test('usage errors point at --help', () => {
    let err: unknown;
    try {
      parseCliArgs(['users', 'list', '--bogus']);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof SwitchboardError);
    assert.match(
      describeCliError(err),
      /^error: unknown option --bogus for "users list"; .*\nhint: run "switchboard --help"\n$/,
    );
  });

  test('node:util parse errors point at --help; anything else is its message', () => {
    const parseError = Object.assign(new TypeError("Option '--user <value>' argument missing"), {
      code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
    });
    assert.equal(
      describeCliError(parseError),
      `error: Option '--user <value>' argument missing\nhint: run "switchboard --help"\n`,
    );
    assert.equal(describeCliError(new Error('x')), 'error: x\n');
    assert.equal(describeCliError('plain'), 'error: plain\n');
  });
});
