/**
 * The pure half of the `switchboard` command line: which flags each command takes, argument parsing
 * (an unknown flag is a usage error naming the flag and the valid ones), where the admin API is, and
 * output formatting (tables, `--output json`). No I/O: cli.ts does the calls and the printing.
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { SwitchboardError } from '@switchboard/common';
import type { AdminTarget } from './admin-client.js';

/** Every flag of the admin CLI. Which command takes which is COMMANDS' business. */
export const CLI_OPTIONS = {
  output: { type: 'string', short: 'o', default: 'table' },
  socket: { type: 'string' },
  server: { type: 'string' },
  'api-key': { type: 'string' },
  user: { type: 'string', short: 'u' },
  reusable: { type: 'boolean', default: false },
  ephemeral: { type: 'boolean', default: false },
  tags: { type: 'string' },
  expiration: { type: 'string', short: 'e' },
  identifier: { type: 'string', short: 'i' },
  'display-name': { type: 'string' },
  email: { type: 'string' },
  prefix: { type: 'string' },
  version: { type: 'string' },
  file: { type: 'string', short: 'f' },
  policy: { type: 'string' },
  nodes: { type: 'string' },
  node: { type: 'string' },
  limit: { type: 'string' },
  routes: { type: 'string', short: 'r' },
  key: { type: 'string', short: 'k' },
  role: { type: 'string' },
  actor: { type: 'string' },
  action: { type: 'string' },
  target: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export type CliOption = keyof typeof CLI_OPTIONS;

/** Flags every admin command takes: output format and where the admin API is. */
export const GLOBAL_OPTIONS: readonly CliOption[] = ['output', 'socket', 'server', 'api-key', 'help'];

/** Each admin command ("group verb") and the flags it takes besides GLOBAL_OPTIONS. */
export const COMMANDS: Readonly<Record<string, readonly CliOption[]>> = {
  'users create': ['display-name', 'email'],
  'users list': [],
  'users delete': ['identifier'],
  'users destroy': ['identifier'],
  'users disable': ['identifier'],
  'users enable': ['identifier'],
  'preauthkeys create': ['user', 'reusable', 'ephemeral', 'tags', 'expiration'],
  'preauthkeys list': ['user'],
  'preauthkeys expire': ['prefix'],
  'nodes list': ['user'],
  'nodes ls': ['user'],
  'nodes delete': ['identifier'],
  'nodes expire': ['identifier'],
  'nodes approve': ['identifier'],
  'nodes tag': ['identifier', 'tags'],
  'nodes approve-routes': ['identifier', 'routes'],
  'nodes register': ['user', 'key'],
  'policy get': ['version'],
  'policy set': ['file'],
  'policy check': ['file'],
  'policy history': ['limit'],
  'policy rollback': ['version'],
  'policy compile': ['policy', 'nodes', 'node'],
  'apikeys create': ['expiration', 'user'],
  'users set-role': ['identifier', 'role'],
  'audit list': ['actor', 'action', 'target', 'since', 'until', 'limit'],
  'audit export': ['actor', 'action', 'target', 'since', 'until', 'limit'],
  'audit verify': [],
  'apikeys list': [],
  'apikeys expire': ['prefix'],
};

export type OutputFormat = 'json' | 'table';

type Values = ReturnType<typeof parseStrict>['values'];

/** A parsed admin command line. `command` is undefined when the usage text should be printed. */
export interface CliArgs {
  command: string | undefined;
  /** Positionals after the command's two words (IDs, names, files). */
  rest: string[];
  values: Values;
  output: OutputFormat;
}

export function usageError(msg: string): SwitchboardError {
  return new SwitchboardError('usage', msg, 'run "switchboard --help"');
}

function parseStrict(argv: string[]) {
  return parseArgs({ args: argv, allowPositionals: true, strict: true, options: CLI_OPTIONS });
}

/** `--name` (and `-x` where the flag has a short form), for messages. */
export function describeFlag(name: CliOption): string {
  const short = (CLI_OPTIONS[name] as { short?: string }).short;
  return short ? `--${name}/-${short}` : `--${name}`;
}

/**
 * Parses an admin command line. Throws a usage error for an unknown command, a flag the command
 * does not take (naming the flag and the valid ones), a flag without its value, or a bad --output.
 */
export function parseCliArgs(argv: string[]): CliArgs {
  // First pass, lenient: find the command and every flag as written, known or not.
  const loose = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    tokens: true,
    options: CLI_OPTIONS,
  });
  const usage: CliArgs = { command: undefined, rest: [], values: parseStrict([]).values, output: 'table' };
  if (loose.values.help === true) return usage;
  const [group, verb, ...rest] = loose.positionals;
  const command = group === undefined ? undefined : `${group} ${verb ?? ''}`.trim();
  const own = command === undefined ? [] : COMMANDS[command];
  const unknownFlag = (rawName: string): SwitchboardError => {
    const valid = [...(own ?? []), ...GLOBAL_OPTIONS].map(describeFlag).join(', ');
    const where = command && own ? ` for "${command}"` : '';
    return usageError(`unknown option ${rawName}${where}; valid options: ${valid}`);
  };
  // A flag no command takes first: its value may have been taken for the command ("--listen :80").
  for (const token of loose.tokens)
    if (token.kind === 'option' && !Object.hasOwn(CLI_OPTIONS, token.name)) throw unknownFlag(token.rawName);
  if (own === undefined) throw usageError(`unknown command "${loose.positionals.join(' ')}"`);
  const allowed = new Set<string>([...own, ...GLOBAL_OPTIONS]);
  for (const token of loose.tokens)
    if (token.kind === 'option' && !allowed.has(token.name)) throw unknownFlag(token.rawName);
  if (command === undefined) return usage;
  // Second pass, strict: typed values, and a missing value is an error.
  const { values } = parseStrict(argv);
  if (values.output !== 'json' && values.output !== 'table')
    throw usageError(`--output must be json or table, not "${values.output}"`);
  return { command, rest, values, output: values.output };
}

/** `switchboard serve` flags: `--in-memory` only. */
export interface ServeArgs {
  inMemory: boolean;
  /** --listen ADDR: overrides LISTEN_ADDR. */
  listen?: string;
  /** --data-dir DIR: overrides DATA_DIR. */
  dataDir?: string;
}

const SERVE_OPTIONS = ['--in-memory', '--listen ADDR', '--data-dir DIR'];

export function parseServeArgs(argv: string[]): ServeArgs {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    tokens: true,
    options: {
      'in-memory': { type: 'boolean', default: false },
      listen: { type: 'string' },
      'data-dir': { type: 'string' },
    },
  });
  const known = new Set(['in-memory', 'listen', 'data-dir']);
  const unknown = tokens.find((t) => t.kind === 'option' && !known.has(t.name));
  if (unknown?.kind === 'option')
    throw usageError(
      `unknown option ${unknown.rawName} for "serve"; valid options: ${SERVE_OPTIONS.join(', ')}`,
    );
  for (const name of ['listen', 'data-dir'] as const) {
    const v = values[name];
    if (v !== undefined && (typeof v !== 'string' || v === ''))
      throw usageError(
        `--${name} needs a value, e.g. ${name === 'listen' ? '--listen 0.0.0.0:8080' : '--data-dir /var/lib/switchboard'}`,
      );
  }
  if (positionals.length > 0) throw usageError(`serve takes no arguments, got "${positionals.join(' ')}"`);
  const out: ServeArgs = { inMemory: values['in-memory'] === true };
  if (typeof values.listen === 'string') out.listen = values.listen;
  if (typeof values['data-dir'] === 'string') out.dataDir = values['data-dir'];
  return out;
}

/** The environment `serve` runs with: the process's, with the flags' overrides. */
export function serveEnv(
  args: ServeArgs,
  env: Record<string, string | undefined>,
): Record<string, string | undefined> {
  return {
    ...env,
    ...(args.listen !== undefined ? { LISTEN_ADDR: args.listen } : {}),
    ...(args.dataDir !== undefined ? { DATA_DIR: args.dataDir } : {}),
  };
}

/**
 * Where the admin API is: --server (or SWITCHBOARD_SERVER) with --api-key (or SWITCHBOARD_API_KEY)
 * over the network; otherwise the unix socket: --socket, ADMIN_SOCKET, or admin.sock in the data
 * directory (DATA_DIR, else $XDG_DATA_HOME/switchboard, else ~/.local/share/switchboard).
 */
export function adminTarget(
  values: Pick<Values, 'server' | 'api-key' | 'socket'>,
  env: Record<string, string | undefined>,
  homeDir: string,
): AdminTarget {
  const server = values.server ?? env.SWITCHBOARD_SERVER;
  if (server) return { server, apiKey: values['api-key'] ?? env.SWITCHBOARD_API_KEY ?? '' };
  const dataDir = env.DATA_DIR ?? join(env.XDG_DATA_HOME ?? join(homeDir, '.local', 'share'), 'switchboard');
  return { socketPath: values.socket ?? env.ADMIN_SOCKET ?? join(dataDir, 'admin.sock') };
}

/** A comma-separated flag value as a list: trimmed, empty items dropped; undefined is empty. */
export function splitList(value: string | undefined): string[] {
  return value
    ? value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
}

/** One table cell: `-` for nothing, lists comma-joined, booleans as yes/no. */
export function formatCell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.length ? v.join(',') : '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return v.toString();
  return JSON.stringify(v) ?? '-';
}

export type Row = Record<string, unknown>;

/** A left-aligned table: a header line, one line per row, columns two spaces apart, no trailing blanks. */
export function formatTable(rows: Row[], cols: [header: string, cell: (r: Row) => unknown][]): string {
  const cells = rows.map((r) => cols.map(([, f]) => formatCell(f(r))));
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (vals: string[]): string =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(cols.map(([h]) => h)), ...cells.map(line)].join('\n') + '\n';
}

/** What a command prints: the data as indented JSON, or the human rendering. */
export function formatOutput(output: OutputFormat, data: unknown, render: () => string): string {
  return output === 'json' ? JSON.stringify(data, null, 2) + '\n' : render();
}

/** Text as printed: ends with exactly the newline it may lack. */
export function withNewline(text: string): string {
  return text.endsWith('\n') ? text : text + '\n';
}
