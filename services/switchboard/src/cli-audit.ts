/** CLI verbs for roles and the audit log: `users set-role`, `audit list|export|verify`. */
import { usageError, formatTable as table, type Row } from './cli-args.js';
import type { CommandContext } from './cli.js';

export async function usersSetRole(ctx: CommandContext): Promise<number> {
  const { values, call, print, idArg } = ctx;
  if (!values.role)
    throw usageError('users set-role needs --role owner|admin|network-admin|it-admin|auditor|member');
  const r = (await call('POST', `/api/v1/users/${encodeURIComponent(idArg())}/role`, {
    role: values.role,
  })) as {
    user: Row;
  };
  print(r.user, () => `User "${String(r.user.name)}" now has role ${String(r.user.role)}\n`);
  return 0;
}

function auditQuery(values: CommandContext['values']): string {
  const q = new URLSearchParams();
  for (const k of ['actor', 'action', 'target', 'since', 'until', 'limit'] as const) {
    const v = values[k];
    if (typeof v === 'string' && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function auditCommand(ctx: CommandContext): Promise<number> {
  const { command, values, call, print, io } = ctx;
  switch (command) {
    case 'audit list': {
      const r = (await call('GET', `/api/v1/audit${auditQuery(values)}`)) as { entries: Row[] };
      print(r.entries, () =>
        table(r.entries, [
          ['ID', (e) => e.id],
          ['Time', (e) => e.at],
          ['Actor', (e) => e.actor],
          ['Role', (e) => e.actorRole],
          ['Action', (e) => e.action],
          ['Target', (e) => e.target],
          ['Outcome', (e) => e.outcome],
        ]),
      );
      return 0;
    }
    case 'audit export': {
      const r = (await call('GET', `/api/v1/audit${auditQuery(values)}`)) as { entries: Row[] };
      for (const e of r.entries) io.out(`${JSON.stringify(e)}\n`);
      return 0;
    }
    case 'audit verify': {
      const r = (await call('GET', '/api/v1/audit/verify')) as
        | { ok: true; entries: number; lastHash: string }
        | { ok: false; entries: number; brokenAt: number; why: string };
      print(r, () =>
        r.ok
          ? `audit log intact: ${r.entries} entries, last hash ${r.lastHash}\n`
          : `audit log BROKEN at entry ${r.brokenAt}: ${r.why} (${r.entries} entries before it verify)\n`,
      );
      return r.ok ? 0 : 1;
    }
    default:
      throw usageError(`unknown command "${command}"; audit takes list, export or verify`);
  }
}
