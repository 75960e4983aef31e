/**
 * A real OpenID provider for tests: node-oidc-provider with its development interactions (a
 * login form taking any login and password, then a consent page), one confidential client, and
 * accounts whose claims (email, name, groups) the test chooses. Listens on 127.0.0.1.
 */
import { createServer, type Server } from 'node:http';
import Provider from 'oidc-provider';

export interface OpAccount {
  email: string;
  name: string;
  groups: string[];
}

export interface RunningOp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  stop(): Promise<void>;
}

export async function startOidcProvider(opts: {
  redirectUris: string[];
  accounts: Record<string, OpAccount>;
  port?: number;
}): Promise<RunningOp> {
  const srv: Server = createServer();
  await new Promise<void>((r) => srv.listen(opts.port ?? 0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = 'switchboard-test';
  const clientSecret = 'test-secret-0123456789abcdef0123456789';
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: opts.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    findAccount: (_ctx: unknown, id: string) => {
      const a = opts.accounts[id];
      if (!a) return undefined;
      return {
        accountId: id,
        claims: () => ({ sub: id, email: a.email, email_verified: true, name: a.name, groups: a.groups }),
      };
    },
    cookies: { keys: ['test-cookie-key-0123456789'] },
    features: { devInteractions: { enabled: true } },
    // Claims in the id_token too (like Okta's groups claim), not only at userinfo.
    conformIdTokenClaims: false,
  });
  srv.on('request', provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    stop: () =>
      new Promise<void>((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}
