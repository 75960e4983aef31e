/**
 * `POST /api/v2/oauth/token`: the client-credentials grant (RFC 6749 §4.4). Credentials come as HTTP
 * Basic or in the form; a missing client id is read from the secret. The access token lasts one hour
 * and carries the scopes asked for (each must be the client's), or all of the client's. Every
 * attempt is audited as a login.
 */
import { z } from 'zod';
import { scopesGrant, SCOPES, type Scope } from '../roles/roles.js';
import { route, type ApiRoute, type RouteResult } from './v2.route.js';
import type { V2Deps } from './v2.deps.js';

const TokenForm = z.object({
  grant_type: z.string().optional(),
  scope: z.string().optional(),
  client_id: z.string().optional(),
  client_secret: z.string().optional(),
});
const TokenResponse = z.object({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  scope: z.string(),
});

function oauthError(status: number, error: string, description: string): RouteResult {
  return { status, json: { error, error_description: description } };
}

/** Whether the client's scopes cover a requested scope (`x:read` is covered by `x`; `all` covers all). */
function covers(clientScopes: string[], want: string): boolean {
  if (clientScopes.includes(want) || clientScopes.includes('all')) return true;
  if (want === 'all:read') return clientScopes.includes('all:read');
  const base = want.replace(/:read$/, '');
  if (!SCOPES.includes(base as Scope)) return false;
  return scopesGrant(clientScopes, base as Scope, !want.endsWith(':read'));
}

export function oauthRoutes(d: V2Deps): ApiRoute[] {
  return [
    route({
      method: 'POST',
      path: '/api/v2/oauth/token',
      operationId: 'oauthToken',
      summary: 'Client-credentials grant: an access token for an OAuth client (one hour)',
      tag: 'oauth',
      access: null,
      bodyKind: 'form',
      body: TokenForm,
      response: TokenResponse,
      examples: {
        body: { grant_type: 'client_credentials', scope: 'devices:core auth_keys' },
        response: {
          access_token: 'sboat-0123456789abcdef-…',
          token_type: 'Bearer',
          expires_in: 3600,
          scope: 'devices:core auth_keys',
        },
      },
      handler: async (c) => {
        const form = TokenForm.parse(c.body);
        let id = form.client_id;
        let secret = form.client_secret;
        const h = c.headers.authorization;
        if (h?.startsWith('Basic ')) {
          const text = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
          const i = text.indexOf(':');
          if (i >= 0) {
            id = decodeURIComponent(text.slice(0, i));
            secret = decodeURIComponent(text.slice(i + 1));
          }
        }
        const login = async (outcome: string, actor: string, tailnetId = 1) =>
          d.audit.record({
            tailnetId,
            actor,
            actorRole: 'oauth-client',
            action: 'login.oauth',
            target: actor,
            before: null,
            after: null,
            outcome,
            source: c.source,
            requestId: c.requestId,
          });
        if ((form.grant_type ?? 'client_credentials') !== 'client_credentials')
          return oauthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported');
        const client = secret ? await d.credentials.client(id, secret) : null;
        if (!client) {
          await login('denied: invalid client credentials', `oauth-client:${id ?? '?'}`);
          return oauthError(401, 'invalid_client', 'unknown client or wrong secret');
        }
        const actor = `oauth-client:kc${client.prefix}`;
        const wanted = (form.scope ?? '').split(/\s+/).filter(Boolean);
        const refused = wanted.filter((s) => !covers(client.scopes, s));
        if (refused.length > 0) {
          await login(`denied: scopes not granted: ${refused.join(' ')}`, actor, client.tailnetId);
          return oauthError(400, 'invalid_scope', `the client does not have scope(s) ${refused.join(', ')}`);
        }
        const scopes = wanted.length > 0 ? wanted : client.scopes;
        const t = await d.credentials.issueAccessToken(client.id, scopes);
        await login('ok', actor, client.tailnetId);
        return {
          json: {
            access_token: t.token,
            token_type: 'Bearer',
            expires_in: t.expiresIn,
            scope: scopes.join(' '),
          },
        };
      },
    }),
  ];
}
