/**
 * The `switchboard` command line. Admin verbs follow headscale's where they overlap (users,
 * preauthkeys, nodes; --output json) and talk to the admin API: over the local unix socket without
 * credentials, or with --server URL --api-key KEY over the network.
 */
import { readFileSync } from 'node:fs';
import { runPolicyCompile } from '@switchboard/policy';
import { homedir } from 'node:os';
import { SwitchboardError } from '@switchboard/common';
import { adminCall, AdminApiError } from './admin-client.js';
import { auditCommand, usersSetRole } from './cli-audit.js';
import {
  adminTarget,
  formatCell as fmt,
  formatOutput,
  formatTable as table,
  parseCliArgs,
  splitList,
  usageError,
  withNewline,
  type CliArgs,
  type Row,
} from './cli-args.js';

export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
  env: Record<string, string | undefined>;
}

export const USAGE = `switchboard — a Tailscale-compatible coordination server

Server:
  switchboard serve [--in-memory]            all services in one process (embedded defaults)
  switchboard service NAME                   one service: key-registry | identity | policy-compiler | netmap-fanout

Admin (talks to the admin API):
  switchboard users create NAME [--display-name X] [--email E]
  switchboard users list
  switchboard users delete NAME|ID
  switchboard users disable|enable NAME|ID   (a disabled user cannot log in; their nodes lose every peer)
  switchboard preauthkeys create --user NAME [--reusable] [--ephemeral] [--tags tag:a,tag:b] [--expiration 1h]
  switchboard preauthkeys list [--user NAME]
  switchboard preauthkeys expire KEY|PREFIX
  switchboard nodes list [--user NAME]
  switchboard nodes register --user NAME --key LOGIN_ID   (approve a pending browser login)
  switchboard nodes delete|expire|approve ID   (or -i/--identifier ID)
  switchboard nodes tag ID --tags tag:a,tag:b
  switchboard nodes approve-routes ID --routes 10.0.0.0/24,0.0.0.0/0,::/0   (empty --routes= removes all)
  switchboard policy get [--version N] | set FILE | check FILE | history | rollback --version N
  switchboard policy compile --policy FILE --nodes NODES.json [--node ID]   (offline, no server)
  switchboard apikeys create [--expiration 90d] [--user NAME] | list | expire PREFIX
                                             (a token with --user acts with that user's role)
  switchboard users set-role NAME|ID --role owner|admin|network-admin|it-admin|auditor|member
  switchboard audit list|export [--actor A] [--action PREFIX] [--target T] [--since T] [--until T] [--limit N]
  switchboard audit verify                   check the audit log's hash chain (exit 1 when broken)

Options:
  -o, --output json|table   output format (default table)
  --socket PATH             admin socket (default $DATA_DIR/admin.sock)
  --server URL --api-key K  use the admin API over the network (or SWITCHBOARD_SERVER / SWITCHBOARD_API_KEY)
`;

/** What a command handler gets: the parsed command line and ways to reach the admin API and the user. */
export interface CommandContext {
  /** "group verb", e.g. "nodes tag". */
  command: string;
  verb: string | undefined;
  rest: string[];
  values: CliArgs['values'];
  io: CliIO;
  call: (method: string, path: string, body?: unknown) => Promise<unknown>;
  print: (data: unknown, render: () => string) => void;
  /** The node/user ID: --identifier or the first positional. */
  idArg: () => string;
  /** A file's text; a usage error when `path` is missing or unreadable. */
  readFile: (what: string, path: string | undefined) => string;
}

type CommandHandler = (ctx: CommandContext) => Promise<number>;

/** One handler per command group (the first word of the command). */
const COMMAND_GROUPS: Readonly<Record<string, CommandHandler>> = {
  policy: policyCommand,
  nodes: nodesCommand,
  users: usersCommand,
  preauthkeys: preauthkeysCommand,
  apikeys: apikeysCommand,
  audit: auditCommand,
};

export async function runAdminCli(argv: string[], io: CliIO): Promise<number> {
  const { command, rest, values, output } = parseCliArgs(argv);
  if (command === undefined) {
    io.out(USAGE);
    return 0;
  }
  const target = adminTarget(values, io.env, homedir());
  const call = (method: string, path: string, body?: unknown): Promise<unknown> =>
    adminCall(target, method, path, body);
  const print = (data: unknown, render: () => string): void => io.out(formatOutput(output, data, render));
  const [group, verb] = command.split(' ');
  const idArg = (): string => {
    const id = values.identifier ?? rest[0];
    if (!id) throw usageError(`${command} needs an ID (positional or --identifier)`);
    return id;
  };

  const readFile = (what: string, path: string | undefined): string => {
    if (!path) throw usageError(`${what} needs a file`);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw usageError(`cannot read ${path}: ${(err as Error).message}`);
    }
  };

  const handler =
    group !== undefined && Object.hasOwn(COMMAND_GROUPS, group) ? COMMAND_GROUPS[group] : undefined;
  if (handler === undefined) throw unknownCommand(command);
  return handler({ command, verb, rest, values, io, call, print, idArg, readFile });
}

function unknownCommand(command: string): SwitchboardError {
  return usageError(`unknown command "${command}"`);
}

/** policy get|set|check|history|rollback over the admin API; policy compile offline. */
async function policyCommand(ctx: CommandContext): Promise<number> {
  const { command, verb, rest, values, io, call, print, readFile } = ctx;
  switch (command) {
    case 'policy compile': {
      const r = runPolicyCompile({
        policyText: readFile('--policy', values.policy),
        nodesJson: readFile('--nodes', values.nodes),
        ...(values.node !== undefined ? { nodeId: values.node } : {}),
      });
      if (r.stdout) io.out(withNewline(r.stdout));
      if (r.stderr) io.err(withNewline(r.stderr));
      return r.exitCode;
    }
    case 'policy get': {
      const q = values.version ? `?version=${encodeURIComponent(values.version)}` : '';
      const r = (await call('GET', `/api/v1/policy${q}`)) as {
        policy: { version: number; text: string | null };
      };
      print(r.policy, () =>
        r.policy.text === null
          ? '// no policy set: the default policy allows all\n'
          : withNewline(r.policy.text),
      );
      return 0;
    }
    case 'policy set':
    case 'policy check': {
      const text = readFile(`policy ${verb}`, values.file ?? rest[0]);
      if (verb === 'check') {
        const r = (await call('POST', '/api/v1/policy/check', { policy: text })) as { tests: number };
        print(r, () => `Policy is valid; ${r.tests} test(s) passed\n`);
      } else {
        const r = (await call('PUT', '/api/v1/policy', { policy: text })) as {
          policy: { version: number };
          unchanged: boolean;
        };
        print(r, () =>
          r.unchanged
            ? `Policy unchanged (version ${r.policy.version})\n`
            : `Policy set: version ${r.policy.version}\n`,
        );
      }
      return 0;
    }
    case 'policy history': {
      const q = values.limit ? `?limit=${encodeURIComponent(values.limit)}` : '';
      const r = (await call('GET', `/api/v1/policy/history${q}`)) as { versions: Row[] };
      print(
        r.versions,
        () =>
          r.versions
            .map(
              (v) =>
                `version ${String(v.version)}  ${String(v.createdAt)}  by ${String(v.author)}\n${String(v.diff)}`,
            )
            .join('\n') || 'no policy versions yet (the default policy allows all)\n',
      );
      return 0;
    }
    case 'policy rollback': {
      const version = Number(values.version ?? rest[0]);
      if (!Number.isInteger(version) || version < 1) throw usageError('policy rollback needs --version N');
      const r = (await call('POST', '/api/v1/policy/rollback', { version })) as {
        policy: { version: number };
      };
      print(r, () => `Rolled back: the policy of version ${version} is now version ${r.policy.version}\n`);
      return 0;
    }
    default:
      throw unknownCommand(command);
  }
}

/** nodes list|delete|expire|approve|tag|approve-routes. */
async function nodesCommand(ctx: CommandContext): Promise<number> {
  const { command, verb, values, call, print, idArg } = ctx;
  switch (command) {
    case 'nodes approve-routes': {
      if (values.routes === undefined)
        throw usageError('nodes approve-routes needs --routes a,b (or --routes= to clear)');
      const routes = splitList(values.routes);
      const r = (await call('POST', `/api/v1/nodes/${encodeURIComponent(idArg())}/routes`, { routes })) as {
        node: Row;
      };
      print(r.node, () => `Node ${String(r.node.id)} approved routes: ${fmt(r.node.approvedRoutes)}\n`);
      return 0;
    }
    case 'nodes register': {
      if (!values.user || !values.key)
        throw usageError('nodes register needs --user NAME and --key LOGIN_ID');
      const r = (await call('POST', '/api/v1/nodes/register', { user: values.user, key: values.key })) as {
        node: Row;
      };
      print(
        r.node,
        () => `Node "${String(r.node.givenName)}" registered for ${values.user} (id ${String(r.node.id)})\n`,
      );
      return 0;
    }
    case 'nodes tag': {
      const tags = splitList(values.tags);
      if (tags.length === 0) throw usageError('nodes tag needs --tags tag:a,tag:b');
      const r = (await call('POST', `/api/v1/nodes/${encodeURIComponent(idArg())}/tag`, { tags })) as {
        node: Row;
      };
      print(r.node, () => `Node ${String(r.node.id)} tagged ${fmt(r.node.tags)}\n`);
      return 0;
    }
    case 'nodes list':
    case 'nodes ls': {
      const q = values.user ? `?user=${encodeURIComponent(values.user)}` : '';
      const r = (await call('GET', `/api/v1/nodes${q}`)) as { nodes: Row[] };
      print(r.nodes, () =>
        table(r.nodes, [
          ['ID', (n) => n.id],
          ['Name', (n) => n.givenName],
          ['Hostname', (n) => n.hostname],
          ['User', (n) => n.userId],
          ['IPv4', (n) => n.ipv4],
          ['IPv6', (n) => n.ipv6],
          ['Tags', (n) => n.tags],
          ['Ephemeral', (n) => n.ephemeral],
          ['Expiry', (n) => n.keyExpiry],
          ['Last seen', (n) => n.lastSeen],
        ]),
      );
      return 0;
    }
    case 'nodes delete': {
      const r = (await call('DELETE', `/api/v1/nodes/${encodeURIComponent(idArg())}`)) as { node: Row };
      print(r.node, () => `Node ${String(r.node.id)} (${String(r.node.givenName)}) deleted\n`);
      return 0;
    }
    case 'nodes expire':
    case 'nodes approve': {
      const r = (await call('POST', `/api/v1/nodes/${encodeURIComponent(idArg())}/${verb}`)) as { node: Row };
      print(
        r.node,
        () =>
          `Node ${String(r.node.id)} (${String(r.node.givenName)}) ${verb === 'expire' ? 'expired' : 'approved'}\n`,
      );
      return 0;
    }
    default:
      throw unknownCommand(command);
  }
}

/** users create|list|delete. */
async function usersCommand(ctx: CommandContext): Promise<number> {
  const { command, rest, values, call, print, idArg } = ctx;
  switch (command) {
    case 'users create': {
      const name = rest[0];
      if (!name) throw usageError('users create needs a NAME');
      const r = (await call('POST', '/api/v1/users', {
        name,
        ...(values['display-name'] ? { displayName: values['display-name'] } : {}),
        ...(values.email ? { email: values.email } : {}),
      })) as { user: Row };
      print(r.user, () => `User "${String(r.user.name)}" created (id ${String(r.user.id)})\n`);
      return 0;
    }
    case 'users list': {
      const r = (await call('GET', '/api/v1/users')) as { users: Row[] };
      print(r.users, () =>
        table(r.users, [
          ['ID', (u) => u.id],
          ['Name', (u) => u.name],
          ['Login', (u) => u.loginName],
          ['Provider', (u) => u.provider],
          ['Groups', (u) => (Array.isArray(u.groups) ? u.groups.join(',') : '')],
          ['Disabled', (u) => (u.disabled === true ? 'yes' : 'no')],
          ['Created', (u) => u.createdAt],
        ]),
      );
      return 0;
    }
    case 'users disable':
    case 'users enable': {
      const verb = command === 'users disable' ? 'disable' : 'enable';
      const r = (await call('POST', `/api/v1/users/${encodeURIComponent(idArg())}/${verb}`)) as { user: Row };
      print(r.user, () => `User "${String(r.user.name)}" ${verb}d\n`);
      return 0;
    }
    case 'users set-role':
      return usersSetRole(ctx);
    case 'users delete':
    case 'users destroy': {
      const r = (await call('DELETE', `/api/v1/users/${encodeURIComponent(idArg())}`)) as { user: Row };
      print(r.user, () => `User "${String(r.user.name)}" deleted\n`);
      return 0;
    }
    default:
      throw unknownCommand(command);
  }
}

/** preauthkeys create|list|expire. */
async function preauthkeysCommand(ctx: CommandContext): Promise<number> {
  const { command, rest, values, call, print } = ctx;
  switch (command) {
    case 'preauthkeys create': {
      if (!values.user) throw usageError('preauthkeys create needs --user NAME');
      const tags = splitList(values.tags);
      const r = (await call('POST', '/api/v1/preauthkeys', {
        user: values.user,
        reusable: values.reusable,
        ephemeral: values.ephemeral,
        tags,
        ...(values.expiration ? { expiration: values.expiration } : {}),
      })) as { key: string; record: Row };
      print(r, () => `${r.key}\n`);
      return 0;
    }
    case 'preauthkeys list': {
      const q = values.user ? `?user=${encodeURIComponent(values.user)}` : '';
      const r = (await call('GET', `/api/v1/preauthkeys${q}`)) as { keys: Row[] };
      print(r.keys, () =>
        table(r.keys, [
          ['ID', (k) => k.id],
          ['Key prefix', (k) => k.prefix],
          ['User', (k) => k.userId],
          ['Reusable', (k) => k.reusable],
          ['Ephemeral', (k) => k.ephemeral],
          ['Used', (k) => k.usedCount],
          ['Usable', (k) => k.usable],
          ['Expiration', (k) => k.expiresAt],
          ['Tags', (k) => k.tags],
        ]),
      );
      return 0;
    }
    case 'preauthkeys expire': {
      const key = values.prefix ?? rest[0];
      if (!key) throw usageError('preauthkeys expire needs the KEY (or its sbkey-<prefix>)');
      const r = (await call('POST', '/api/v1/preauthkeys/expire', { key })) as { record: Row };
      print(r.record, () => `Pre-auth key ${String(r.record.prefix)} expired\n`);
      return 0;
    }
    default:
      throw unknownCommand(command);
  }
}

/** apikeys create|list|expire. */
async function apikeysCommand(ctx: CommandContext): Promise<number> {
  const { command, rest, values, call, print } = ctx;
  switch (command) {
    case 'apikeys create': {
      const r = (await call('POST', '/api/v1/apikeys', {
        ...(values.expiration ? { expiration: values.expiration } : {}),
        ...(values.user ? { user: values.user } : {}),
      })) as {
        key: string;
      };
      print(r, () => `${r.key}\n`);
      return 0;
    }
    case 'apikeys list': {
      const r = (await call('GET', '/api/v1/apikeys')) as { keys: Row[] };
      print(r.keys, () =>
        table(r.keys, [
          ['ID', (k) => k.id],
          ['Prefix', (k) => k.prefix],
          ['Expiration', (k) => k.expiresAt],
          ['Last used', (k) => k.lastUsedAt],
          ['Usable', (k) => k.usable],
        ]),
      );
      return 0;
    }
    case 'apikeys expire': {
      const prefix = values.prefix ?? rest[0];
      if (!prefix) throw usageError('apikeys expire needs the key PREFIX (sbapi-…)');
      const r = (await call('POST', '/api/v1/apikeys/expire', { prefix })) as { record: Row };
      print(r.record, () => `API key ${String(r.record.prefix)} expired\n`);
      return 0;
    }
    default:
      throw unknownCommand(command);
  }
}

export function describeCliError(err: unknown): string {
  if (err instanceof AdminApiError)
    return `error: ${err.message}${err.code !== 'error' ? ` (${err.code})` : ''}${err.hint ? `\nhint: ${err.hint}` : ''}\n`;
  if (err instanceof SwitchboardError)
    return `error: ${err.message}${err.hint ? `\nhint: ${err.hint}` : ''}\n`;
  if (
    err instanceof Error &&
    'code' in err &&
    String((err as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')
  )
    return `error: ${err.message}\nhint: run "switchboard --help"\n`;
  return `error: ${err instanceof Error ? err.message : String(err)}\n`;
}
