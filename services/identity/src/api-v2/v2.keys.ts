/**
 * `/api/v2/tailnet/{tailnet}/keys`: auth keys (key-registry's pre-auth keys, ids `k<n>`) and OAuth
 * clients (identity's, `keyType: client`, ids `kc<hex>`). A trust credential that mints devices must
 * carry tags, and the auth keys it makes carry only tags it has.
 */
import { ValidationError } from '@switchboard/common';
import { callRpc, keyRegistry, type PreAuthKeyRecord } from '@switchboard/contracts';
import { z } from 'zod';
import { GRANTABLE_SCOPES, SCOPES_NEEDING_TAGS, decideAccess, type Principal } from '../roles/roles.js';
import { clientKeyId } from './v2.credentials.js';
import { V2Repository, type CredentialRow } from './v2.repository.js';
import { route, type ApiRoute } from './v2.route.js';
import type { V2Deps } from './v2.deps.js';
import { V2Error, notFound } from './v2.errors.js';

const repo = new V2Repository();
const tagName = z.string().regex(/^tag:[a-zA-Z][a-zA-Z0-9-]*$/, 'tags look like tag:name');
const description = z
  .string()
  .max(50)
  .regex(/^[A-Za-z0-9 -]*$/, 'letters, digits, hyphens and spaces');

const Capabilities = z.object({
  devices: z
    .object({
      create: z
        .object({
          reusable: z.boolean().default(false),
          ephemeral: z.boolean().default(false),
          preauthorized: z.boolean().default(false),
          tags: z.array(tagName).max(64).nullish(),
        })
        .default({}),
    })
    .default({}),
});

export const KeySchema = z.object({
  id: z.string(),
  key: z.string().optional(),
  keyType: z.enum(['auth', 'client', 'api']),
  description: z.string(),
  expirySeconds: z.number().int().optional(),
  created: z.string(),
  updated: z.string(),
  expires: z.string(),
  revoked: z.string().optional(),
  invalid: z.boolean(),
  capabilities: z
    .object({
      devices: z.object({
        create: z.object({
          reusable: z.boolean(),
          ephemeral: z.boolean(),
          preauthorized: z.boolean(),
          tags: z.array(z.string()),
        }),
      }),
    })
    .optional(),
  scopes: z.array(z.string()).optional(),
  tags: z.array(z.string()).optional(),
  userId: z.string(),
});
type Key = z.infer<typeof KeySchema>;

const CreateKeyBody = z.object({
  keyType: z.enum(['auth', 'client']).default('auth'),
  description: description.default(''),
  capabilities: Capabilities.optional(),
  expirySeconds: z
    .number()
    .int()
    .positive()
    .max(90 * 86_400)
    .optional(),
  scopes: z.array(z.string()).max(64).optional(),
  tags: z.array(tagName).max(64).optional(),
});
const SetKeyBody = z.object({
  keyType: z.literal('client'),
  description: description.default(''),
  scopes: z.array(z.string()).min(1).max(64),
  tags: z.array(tagName).max(64).default([]),
});

function authKeyJson(k: PreAuthKeyRecord, secret?: string): Key {
  const out: Key = {
    id: `k${k.id}`,
    keyType: 'auth',
    description: '',
    expirySeconds: Math.max(0, Math.round((Date.parse(k.expiresAt) - Date.parse(k.createdAt)) / 1000)),
    created: k.createdAt,
    updated: k.createdAt,
    expires: k.expiresAt,
    invalid: !k.usable,
    capabilities: {
      devices: {
        create: { reusable: k.reusable, ephemeral: k.ephemeral, preauthorized: true, tags: k.tags },
      },
    },
    userId: String(k.userId),
  };
  if (secret !== undefined) out.key = secret;
  return out;
}

function clientJson(c: CredentialRow, secret?: string): Key {
  const out: Key = {
    id: clientKeyId(c.prefix),
    keyType: 'client',
    description: c.description,
    created: c.createdAt,
    updated: c.updatedAt,
    expires: c.expiresAt,
    invalid: c.revokedAt !== null,
    scopes: c.scopes,
    tags: c.tags,
    userId: c.userId === null ? '' : String(c.userId),
  };
  if (c.revokedAt !== null) out.revoked = c.revokedAt;
  if (secret !== undefined) out.key = secret;
  return out;
}

function checkScopes(scopes: string[], tags: string[]): void {
  const bad = scopes.filter((s) => !GRANTABLE_SCOPES.includes(s));
  if (bad.length > 0)
    throw new ValidationError(
      `unknown scope(s): ${bad.join(', ')}`,
      `known scopes: ${GRANTABLE_SCOPES.join(' ')}`,
    );
  const mints = scopes.some((s) => s === 'all' || SCOPES_NEEDING_TAGS.includes(s));
  if (mints && tags.length === 0)
    throw new ValidationError(
      'an OAuth client with scope devices:core, auth_keys or all must have tags',
      'add "tags": ["tag:…"]',
    );
}

/** The user an auth key belongs to: the caller's own user, else the credential's creator, else the tailnet's owner. */
async function keyOwner(d: V2Deps, p: Principal, tailnetId: number): Promise<number> {
  if (p.kind === 'role' && p.userId !== null) return p.userId;
  if (p.kind === 'scopes') {
    const client = await repo.credentialById(d.db, p.clientId);
    if (client?.userId) return client.userId;
  }
  const users = (await d.identity.listUsers()).filter((u) => u.tailnetId === tailnetId);
  const owner = users.find((u) => u.role === 'owner') ?? users.find((u) => u.role === 'admin') ?? users[0];
  if (!owner)
    throw new V2Error(
      'conflict',
      'the tailnet has no users to own the key',
      'create a user first ("switchboard users create NAME")',
    );
  return owner.id;
}

async function tailnetAuthKeys(d: V2Deps, tailnetId: number): Promise<PreAuthKeyRecord[]> {
  return (await callRpc(d.bus, keyRegistry.ListPreAuthKeys, {})).keys.filter(
    (k) => k.tailnetId === tailnetId,
  );
}

async function findKey(
  d: V2Deps,
  tailnetId: number,
  id: string,
): Promise<{ auth: PreAuthKeyRecord } | { client: CredentialRow }> {
  const a = /^k(\d{1,15})$/.exec(id);
  if (a) {
    const k = (await tailnetAuthKeys(d, tailnetId)).find((x) => x.id === Number(a[1]));
    if (k) return { auth: k };
  }
  const c = /^kc([0-9a-f]{16})$/.exec(id);
  if (c) {
    const row = await repo.credentialByPrefix(d.db, c[1]!);
    if (row && row.kind === 'client' && row.tailnetId === tailnetId) return { client: row };
  }
  throw notFound(`key ${id}`);
}

function requireOAuthKeys(p: Principal): void {
  const dec = decideAccess(p, { scope: 'oauth_keys', write: true });
  if (!dec.allowed) throw new V2Error('forbidden', dec.reason);
}

const keyParams = z.object({ tailnet: z.string(), keyId: z.string().max(64) });
const EXAMPLE_AUTH_KEY = {
  id: 'k12',
  key: 'sbkey-0123456789abcdef-secret',
  keyType: 'auth',
  description: 'ci runners',
  expirySeconds: 86400,
  created: '2026-12-01T10:00:00.000Z',
  updated: '2026-12-01T10:00:00.000Z',
  expires: '2026-12-02T10:00:00.000Z',
  invalid: false,
  capabilities: {
    devices: { create: { reusable: true, ephemeral: true, preauthorized: true, tags: ['tag:ci'] } },
  },
  userId: '1',
};

export function keyRoutes(d: V2Deps): ApiRoute[] {
  return [...keyCreateRoutes(d), ...keyManageRoutes(d)];
}

function keyCreateRoutes(d: V2Deps): ApiRoute[] {
  return [
    route({
      method: 'POST',
      path: '/api/v2/tailnet/{tailnet}/keys',
      operationId: 'createKey',
      summary:
        'Create an auth key (keyType auth) or an OAuth client (keyType client); the secret is shown once',
      tag: 'keys',
      access: { scope: 'auth_keys', write: true },
      params: z.object({ tailnet: z.string() }),
      body: CreateKeyBody,
      response: KeySchema,
      successStatus: 200,
      examples: {
        body: {
          capabilities: {
            devices: { create: { reusable: true, ephemeral: true, preauthorized: true, tags: ['tag:ci'] } },
          },
          expirySeconds: 86400,
          description: 'ci runners',
        },
        response: EXAMPLE_AUTH_KEY,
      },
      handler: async (c) => {
        const b = c.body;
        if (b.keyType === 'client') {
          requireOAuthKeys(c.principal);
          const scopes = b.scopes ?? [];
          const tags = b.tags ?? [];
          if (scopes.length === 0) throw new ValidationError('an OAuth client needs "scopes"');
          checkScopes(scopes, tags);
          if (c.principal.kind === 'scopes') {
            const own = c.principal.tags;
            const missing = tags.filter((t) => !own.includes(t));
            if (missing.length > 0)
              throw new V2Error(
                'forbidden',
                `this OAuth client may not grant tags it does not have: ${missing.join(', ')}`,
              );
          }
          const s = d.credentials.newClientSecret();
          const row = await d.db.transaction(async (q) => {
            const r = await repo.insertCredential(q, {
              prefix: s.prefix,
              hash: s.hash,
              kind: 'client',
              tailnetId: c.tailnetId,
              userId: c.principal.kind === 'role' ? c.principal.userId : null,
              scopes,
              tags,
              description: b.description,
              expiresAt: '9999-12-31T00:00:00.000Z',
            });
            await c.auditIn(q, {
              target: `key:${clientKeyId(r.prefix)}`,
              before: null,
              after: clientJson(r),
            });
            return r;
          });
          return { json: clientJson(row, s.full) };
        }
        const create = b.capabilities?.devices.create ?? {
          reusable: false,
          ephemeral: false,
          preauthorized: false,
          tags: [],
        };
        const tags = create.tags ?? [];
        if (c.principal.kind === 'scopes') {
          if (tags.length === 0)
            throw new V2Error(
              'forbidden',
              'an auth key made by an OAuth client must have tags (of that client)',
            );
          const principalTags = c.principal.tags;
          const missing = tags.filter((t) => !principalTags.includes(t));
          if (missing.length > 0)
            throw new V2Error('forbidden', `this OAuth client does not have tag(s) ${missing.join(', ')}`);
        }
        const userId = await keyOwner(d, c.principal, c.tailnetId);
        const expirySeconds = b.expirySeconds ?? 7_776_000;
        const r = await callRpc(d.bus, keyRegistry.CreatePreAuthKey, {
          userId,
          tailnetId: c.tailnetId,
          reusable: create.reusable,
          ephemeral: create.ephemeral,
          tags,
          expiresAt: new Date(Date.now() + expirySeconds * 1000).toISOString(),
        });
        const json = { ...authKeyJson(r.record, r.key), description: b.description };
        return {
          json,
          audit: { target: `key:k${r.record.id}`, before: null, after: { ...json, key: undefined } },
        };
      },
    }),
  ];
}

function keyManageRoutes(d: V2Deps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/keys',
      operationId: 'listTailnetKeys',
      summary: 'Auth keys and OAuth clients of the tailnet (no secrets)',
      tag: 'keys',
      access: { scope: 'auth_keys', write: false },
      params: z.object({ tailnet: z.string() }),
      query: z.object({ all: z.enum(['true', 'false']).optional() }),
      response: z.object({ keys: z.array(KeySchema) }),
      examples: { response: { keys: [{ ...EXAMPLE_AUTH_KEY, key: undefined }] } },
      handler: async (c) => {
        const auth = (await tailnetAuthKeys(d, c.tailnetId)).map((k) => authKeyJson(k));
        const clients = (await repo.credentials(d.db, c.tailnetId, 'client')).map((r) => clientJson(r));
        return { json: { keys: [...auth, ...clients] } };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/keys/{keyId}',
      operationId: 'getKey',
      summary: 'One key (used, expired or deleted keys answer invalid: true)',
      tag: 'keys',
      access: { scope: 'auth_keys', write: false },
      params: keyParams,
      response: KeySchema,
      examples: { response: { ...EXAMPLE_AUTH_KEY, key: undefined } },
      handler: async (c) => {
        const k = await findKey(d, c.tailnetId, c.params.keyId);
        return { json: 'auth' in k ? authKeyJson(k.auth) : clientJson(k.client) };
      },
    }),
    route({
      method: 'DELETE',
      path: '/api/v2/tailnet/{tailnet}/keys/{keyId}',
      operationId: 'deleteKey',
      summary: 'Revoke a key (it then reads invalid: true)',
      tag: 'keys',
      access: { scope: 'auth_keys', write: true },
      params: keyParams,
      handler: async (c) => {
        const k = await findKey(d, c.tailnetId, c.params.keyId);
        if ('auth' in k) {
          const r = await callRpc(d.bus, keyRegistry.ExpirePreAuthKey, { id: k.auth.id });
          return {
            audit: {
              target: `key:${c.params.keyId}`,
              before: authKeyJson(k.auth),
              after: authKeyJson(r.record),
            },
          };
        }
        requireOAuthKeys(c.principal);
        await d.db.transaction(async (q) => {
          const after = await repo.revokeCredential(q, k.client.id);
          await c.auditIn(q, {
            target: `key:${c.params.keyId}`,
            before: clientJson(k.client),
            after: after && clientJson(after),
          });
        });
        return {};
      },
    }),
    route({
      method: 'PUT',
      path: '/api/v2/tailnet/{tailnet}/keys/{keyId}',
      operationId: 'setKey',
      summary: "Replace an OAuth client's scopes, tags and description",
      tag: 'keys',
      access: { scope: 'oauth_keys', write: true },
      params: keyParams,
      body: SetKeyBody,
      response: KeySchema,
      examples: {
        body: {
          keyType: 'client',
          scopes: ['devices:core', 'auth_keys'],
          tags: ['tag:ci'],
          description: 'ci',
        },
        response: {
          id: 'kc0123456789abcdef',
          keyType: 'client',
          description: 'ci',
          created: '2026-12-01T10:00:00.000Z',
          updated: '2026-12-01T11:00:00.000Z',
          expires: '9999-12-31T00:00:00.000Z',
          invalid: false,
          scopes: ['devices:core', 'auth_keys'],
          tags: ['tag:ci'],
          userId: '1',
        },
      },
      handler: async (c) => {
        const k = await findKey(d, c.tailnetId, c.params.keyId);
        if (!('client' in k))
          throw new ValidationError('only an OAuth client (keyType client) can be changed');
        checkScopes(c.body.scopes, c.body.tags);
        const row = await d.db.transaction(async (q) => {
          const after = await repo.updateClient(q, k.client.id, c.body);
          if (!after) throw notFound(`key ${c.params.keyId}`);
          await c.auditIn(q, {
            target: `key:${c.params.keyId}`,
            before: clientJson(k.client),
            after: clientJson(after),
          });
          return after;
        });
        return { json: clientJson(row) };
      },
    }),
  ];
}
