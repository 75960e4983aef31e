/**
 * Shared steps of the browser-login tests: a provider config for a test OP, an interactive
 * `tailscale up` whose URL is read while it waits, and TCP reachability between real clients.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exec, status, type TailscaleNode } from '../harness/node.js';
import type { RunResult } from '../harness/exec.js';
import { notYet, waitFor } from '../harness/wait.js';
import type { RunningOp } from './oidc-op.js';

/** Writes the login config (three providers at the same OP) and the client secret file. */
export function writeLoginConfig(dir: string, op: RunningOp): string {
  const secret = join(dir, 'op-secret');
  writeFileSync(secret, op.clientSecret + '\n', { mode: 0o600 });
  const base = {
    type: 'oidc',
    issuer: op.issuer,
    clientId: op.clientId,
    clientSecretFile: secret,
    allowInsecureIssuer: true,
    scopes: ['openid', 'email', 'profile', 'groups'],
  };
  const file = join(dir, 'login.json');
  writeFileSync(
    file,
    JSON.stringify({
      providers: [
        { ...base, id: 'op', displayName: 'Test OP', groupsPrefix: 'idp-' },
        {
          ...base,
          id: 'strict',
          displayName: 'Strict OP',
          allowedDomains: ['example.com'],
          allowedGroups: ['eng'],
        },
        { ...base, id: 'mfa', displayName: 'MFA OP', requireMfa: true },
      ],
    }),
  );
  return file;
}

export const PROVIDER_IDS = ['op', 'strict', 'mfa'];

export interface PendingUp {
  authUrl: string;
  done: Promise<RunResult>;
}

/** Runs `tailscale up` without a key and returns the login URL once the client shows it. */
export async function interactiveUp(
  node: TailscaleNode,
  loginServer: string,
  timeoutS = 180,
): Promise<PendingUp> {
  node.loginServer = loginServer;
  const done = node.cli(
    [
      'up',
      `--login-server=${loginServer}`,
      `--hostname=${node.name}`,
      `--timeout=${timeoutS}s`,
      '--accept-dns=false',
    ],
    { timeoutMs: (timeoutS + 15) * 1000, allowFailure: true },
  );
  const authUrl = await waitFor(
    async () => {
      const st = await status(node);
      return st.AuthURL ? st.AuthURL : notYet({ BackendState: st.BackendState });
    },
    { what: `${node.name} to show a login URL`, timeoutMs: 30_000 },
  );
  return { authUrl, done };
}

const LISTEN = `require('net').createServer((s) => s.end('hello 22\\n')).listen(22, '0.0.0.0');`;
export const LISTENER = LISTEN;

/** True when a TCP connection from `from` to host:22 is accepted within the timeout. */
export async function tcpOk(from: TailscaleNode, host: string, timeoutMs = 1500): Promise<boolean> {
  const script = `const s = require('net').connect({ host: ${JSON.stringify(host)}, port: 22 });
s.setTimeout(${timeoutMs}, () => { console.log('TIMEOUT'); process.exit(2); });
s.on('data', (d) => { console.log('OK ' + d.toString().trim()); process.exit(0); });
s.on('error', (e) => { console.log('ERR ' + e.code); process.exit(3); });`;
  const r = await exec(from, [process.execPath, '-e', script], {
    timeoutMs: timeoutMs + 5000,
    allowFailure: true,
  });
  return r.code === 0 && r.stdout.startsWith('OK hello 22');
}

export const POLICY = `{
  // group:idp-eng exists only at the identity provider (the "op" provider's groups carry "idp-").
  "tagOwners": { "tag:server": ["svc@"] },
  "acls": [ { "action": "accept", "src": ["group:idp-eng"], "dst": ["tag:server:22"] } ],
}
`;
