import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SwitchboardError } from '@switchboard/common';
import {
  adminTarget,
  COMMANDS,
  formatCell,
  formatOutput,
  formatTable,
  parseCliArgs,
  parseServeArgs,
  serveEnv,
  splitList,
  withNewline,
} from './cli-args.js';

/** Asserts `fn` throws the CLI's usage error with a message matching `message`. */
function assertUsage(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SwitchboardError, `not a SwitchboardError: ${String(err)}`);
    assert.equal(err.code, 'usage');
    assert.match(err.message, message);
    assert.equal(err.hint, 'run "switchboard --help"');
    return true;
  });
}

describe('parseCliArgs', () => {
  test('no arguments, --help and -h anywhere ask for the usage text', () => {
    for (const argv of [[], ['--help'], ['-h'], ['nodes', 'list', '--help'], ['bogus', '-h']])
      assert.equal(parseCliArgs(argv).command, undefined, argv.join(' '));
  });

  test('the command is the first two words; the rest are its arguments', () => {
    const a = parseCliArgs(['nodes', 'delete', '7', '--socket', '/run/admin.sock']);
    assert.equal(a.command, 'nodes delete');
    assert.deepEqual(a.rest, ['7']);
    assert.equal(a.values.socket, '/run/admin.sock');
    assert.equal(a.output, 'table');
  });

  test('flags before, between and after the words, long and short forms', () => {
    const a = parseCliArgs([
      '-o',
      'json',
      'preauthkeys',
      '-u',
      'alice',
      'create',
      '--reusable',
      '--tags=tag:a,tag:b',
    ]);
    assert.equal(a.command, 'preauthkeys create');
    assert.equal(a.output, 'json');
    assert.equal(a.values.user, 'alice');
    assert.equal(a.values.reusable, true);
    assert.equal(a.values.ephemeral, false);
    assert.equal(a.values.tags, 'tag:a,tag:b');
  });

  test('--output is json or table', () => {
    assert.equal(parseCliArgs(['users', 'list', '--output', 'json']).output, 'json');
    assert.equal(parseCliArgs(['users', 'list', '--output=table']).output, 'table');
    assertUsage(
      () => parseCliArgs(['users', 'list', '-o', 'yaml']),
      /--output must be json or table, not "yaml"/,
    );
  });

  test('an empty value is a value (--routes= clears the routes)', () => {
    assert.equal(parseCliArgs(['nodes', 'approve-routes', '3', '--routes=']).values.routes, '');
  });

  test('an unknown command is a usage error naming it', () => {
    assertUsage(() => parseCliArgs(['nodes', 'frobnicate', '1']), /unknown command "nodes frobnicate 1"/);
    assertUsage(() => parseCliArgs(['users']), /unknown command "users"/);
  });

  test('a flag the command does not take is an error naming the flag and the valid ones', () => {
    // Known bug: `nodes delete --force` was accepted and ignored.
    assertUsage(
      () => parseCliArgs(['nodes', 'delete', '1', '--force']),
      /^unknown option --force for "nodes delete"; valid options: --identifier\/-i, --output\/-o, --socket, --server, --api-key, --help\/-h$/,
    );
    // A flag another command takes is still unknown here.
    assertUsage(
      () => parseCliArgs(['users', 'list', '--reusable']),
      /unknown option --reusable for "users list"/,
    );
    assertUsage(() => parseCliArgs(['apikeys', 'list', '-u', 'bob']), /unknown option -u for "apikeys list"/);
    assertUsage(
      () => parseCliArgs(['--listen', ':8080']),
      /unknown option --listen; valid options: --output\/-o/,
    );
  });

  test('a flag that needs a value and has none is an error', () => {
    assert.throws(() => parseCliArgs(['preauthkeys', 'list', '--user']), /--user/);
  });

  test('every command takes only flags the parser knows, and takes them', () => {
    for (const [command, flags] of Object.entries(COMMANDS)) {
      for (const flag of flags) {
        const argv = [...command.split(' '), `--${flag}`];
        const isBoolean = flag === 'reusable' || flag === 'ephemeral';
        if (!isBoolean) argv.push('x');
        assert.equal(parseCliArgs(argv).command, command, argv.join(' '));
      }
    }
  });
});

describe('parseServeArgs', () => {
  test('--in-memory, or nothing', () => {
    assert.deepEqual(parseServeArgs([]), { inMemory: false });
    assert.deepEqual(parseServeArgs(['--in-memory']), { inMemory: true });
  });

  test('--listen and --data-dir override LISTEN_ADDR and DATA_DIR (they were silently ignored)', () => {
    const args = parseServeArgs(['--listen', '127.0.0.1:18081', '--data-dir=/tmp/sb']);
    assert.deepEqual(args, { inMemory: false, listen: '127.0.0.1:18081', dataDir: '/tmp/sb' });
    const env = serveEnv(args, { LISTEN_ADDR: '0.0.0.0:8080', OTHER: 'x' });
    assert.deepEqual(env, { LISTEN_ADDR: '127.0.0.1:18081', DATA_DIR: '/tmp/sb', OTHER: 'x' });
    assert.deepEqual(serveEnv(parseServeArgs([]), { LISTEN_ADDR: 'a' }), { LISTEN_ADDR: 'a' });
  });

  test('an unknown flag, a missing value or an argument is an error', () => {
    assertUsage(
      () => parseServeArgs(['--port', '8080']),
      /unknown option --port for "serve"; valid options: --in-memory, --listen ADDR, --data-dir DIR/,
    );
    assertUsage(() => parseServeArgs(['--listen']), /--listen needs a value/);
    assertUsage(() => parseServeArgs(['extra']), /serve takes no arguments, got "extra"/);
  });
});

describe('adminTarget', () => {
  const none = { server: undefined, 'api-key': undefined, socket: undefined };

  test('--server with --api-key, else the environment', () => {
    assert.deepEqual(adminTarget({ ...none, server: 'https://sb', 'api-key': 'k' }, {}, '/home/a'), {
      server: 'https://sb',
      apiKey: 'k',
    });
    assert.deepEqual(
      adminTarget(none, { SWITCHBOARD_SERVER: 'http://x', SWITCHBOARD_API_KEY: 'e' }, '/home/a'),
      { server: 'http://x', apiKey: 'e' },
    );
    assert.deepEqual(adminTarget({ ...none, server: 'http://x' }, {}, '/home/a'), {
      server: 'http://x',
      apiKey: '',
    });
  });

  test('otherwise the unix socket: --socket, ADMIN_SOCKET, DATA_DIR, XDG_DATA_HOME, home', () => {
    const env = { ADMIN_SOCKET: '/e.sock', DATA_DIR: '/data', XDG_DATA_HOME: '/xdg' };
    assert.deepEqual(adminTarget({ ...none, socket: '/s.sock' }, env, '/home/a'), { socketPath: '/s.sock' });
    assert.deepEqual(adminTarget(none, env, '/home/a'), { socketPath: '/e.sock' });
    assert.deepEqual(adminTarget(none, { DATA_DIR: '/data', XDG_DATA_HOME: '/xdg' }, '/home/a'), {
      socketPath: '/data/admin.sock',
    });
    assert.deepEqual(adminTarget(none, { XDG_DATA_HOME: '/xdg' }, '/home/a'), {
      socketPath: '/xdg/switchboard/admin.sock',
    });
    assert.deepEqual(adminTarget(none, {}, '/home/a'), {
      socketPath: '/home/a/.local/share/switchboard/admin.sock',
    });
  });
});

describe('output formatting', () => {
  test('cells: nothing is "-", lists comma-joined, booleans yes/no, objects as JSON', () => {
    assert.equal(formatCell(null), '-');
    assert.equal(formatCell(undefined), '-');
    assert.equal(formatCell([]), '-');
    assert.equal(formatCell(['tag:a', 'tag:b']), 'tag:a,tag:b');
    assert.equal(formatCell(true), 'yes');
    assert.equal(formatCell(false), 'no');
    assert.equal(formatCell(0), '0');
    assert.equal(formatCell(12n), '12');
    assert.equal(formatCell('x'), 'x');
    assert.equal(formatCell({ a: 1 }), '{"a":1}');
  });

  test('tables: columns as wide as their widest cell, two spaces apart, no trailing blanks', () => {
    const rows = [
      { id: 1, name: 'alice', tags: ['tag:a'] },
      { id: 10, name: 'bo', tags: [] },
    ];
    const out = formatTable(rows, [
      ['ID', (r) => r.id],
      ['Name', (r) => r.name],
      ['Tags', (r) => r.tags],
    ]);
    assert.equal(out, 'ID  Name   Tags\n1   alice  tag:a\n10  bo     -\n');
  });

  test('an empty table is its header line', () => {
    assert.equal(formatTable([], [['ID', (r) => r.id]]), 'ID\n');
  });

  test('--output json prints the data, indented; table prints the rendering', () => {
    const data = { key: 'sbkey-1' };
    assert.equal(
      formatOutput('json', data, () => 'unused'),
      '{\n  "key": "sbkey-1"\n}\n',
    );
    assert.equal(
      formatOutput('table', data, () => 'sbkey-1\n'),
      'sbkey-1\n',
    );
  });

  test('splitList trims and drops empty items', () => {
    assert.deepEqual(splitList(' tag:a, ,tag:b,'), ['tag:a', 'tag:b']);
    assert.deepEqual(splitList(''), []);
    assert.deepEqual(splitList(undefined), []);
  });

  test('withNewline adds the final newline only when missing', () => {
    assert.equal(withNewline('a'), 'a\n');
    assert.equal(withNewline('a\n'), 'a\n');
  });
});
