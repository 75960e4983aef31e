/**
 * `/api/v1` as data: each route's path, access rule and the zod schemas its controller
 * (admin.controller.ts) validates with — the same schemas the OpenAPI document is generated from,
 * and the access rule the admin server checks (roles/roles.ts) before the controller runs.
 */
import { USER_ROLES, identity, keyRegistry, policy } from '@switchboard/contracts';
import { z } from 'zod';
import type { DocumentedRoute } from '../api-v2/v2.openapi.js';
import type { RouteAccess } from '../roles/roles.js';

export const CreateKeyBody = z.object({
  user: z.union([z.string().min(1), z.number().int().positive()]),
  reusable: z.boolean().default(false),
  ephemeral: z.boolean().default(false),
  tags: z.array(z.string()).default([]),
  expiration: z.string().optional(),
});
export const ExpireKeyBody = z.object({
  key: z.string().optional(),
  id: z.number().int().positive().optional(),
});
export const TagsBody = z.object({ tags: z.array(z.string()) });
export const RoutesBody = z.object({ routes: z.array(z.string()) });
export const PolicyBody = z.object({ policy: z.string() });
export const RollbackBody = z.object({ version: z.number().int().positive() });
export const RoleBody = z.object({ role: z.enum(USER_ROLES) });
export const CreateApiKeyBody = z.object({
  expiration: z.string().optional(),
  /** Owner (name or id): the token acts with its role. None = acts as owner. */
  user: z.union([z.string().min(1), z.number().int().positive()]).optional(),
});
export const RegisterPendingBody = z.object({ user: z.string().min(1), key: keyRegistry.loginId });
export const ExpireApiKeyBody = z.object({ prefix: z.string().min(1) });
export const AuditQuery = z.object({
  actor: z.string().optional(),
  action: z.string().optional(),
  target: z.string().optional(),
  since: z.string().datetime({ offset: true }).optional(),
  until: z.string().datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().positive().max(100_000).optional(),
});

const id = z.object({ id: z.string() });
const r = (
  method: DocumentedRoute['method'],
  path: string,
  operationId: string,
  summary: string,
  access: RouteAccess,
  extra: Partial<DocumentedRoute> = {},
): DocumentedRoute => ({
  method,
  path: `/api/v1${path}`,
  operationId: `v1.${operationId}`,
  summary,
  tag: 'v1',
  access,
  ...extra,
});

const users = { scope: 'users', write: false } as const;
const usersW = { scope: 'users', write: true } as const;
const keys = { scope: 'auth_keys', write: false } as const;
const keysW = { scope: 'auth_keys', write: true } as const;
const dev = { scope: 'devices:core', write: false } as const;
const devW = { scope: 'devices:core', write: true } as const;
const pol = { scope: 'policy_file', write: false } as const;
const polW = { scope: 'policy_file', write: true } as const;
const tok = { scope: 'api_access_tokens', write: false } as const;
const tokW = { scope: 'api_access_tokens', write: true } as const;

export const V1_ROUTES: readonly DocumentedRoute[] = [
  r('GET', '/users', 'listUsers', 'List users', users),
  r('POST', '/users', 'createUser', 'Create a user', usersW, {
    body: identity.CreateUser.request,
    examples: { body: { name: 'alice', email: 'alice@example.com' } },
  }),
  r('DELETE', '/users/{id}', 'deleteUser', 'Delete a user (by id or name)', usersW, { params: id }),
  r(
    'POST',
    '/users/{id}/disable',
    'disableUser',
    'Disable a user (no login; their nodes lose every peer)',
    usersW,
    {
      params: id,
    },
  ),
  r('POST', '/users/{id}/enable', 'enableUser', 'Enable a disabled user', usersW, { params: id }),
  r('GET', '/preauthkeys', 'listPreAuthKeys', 'List pre-auth keys', keys, {
    query: z.object({ user: z.string().optional() }),
  }),
  r('POST', '/preauthkeys', 'createPreAuthKey', 'Create a pre-auth key', keysW, {
    body: CreateKeyBody,
    examples: { body: { user: 'alice', reusable: true, tags: ['tag:ci'], expiration: '1h' } },
  }),
  r('POST', '/preauthkeys/expire', 'expirePreAuthKey', 'Expire a pre-auth key', keysW, {
    body: ExpireKeyBody,
    examples: { body: { id: 3 } },
  }),
  r('GET', '/nodes', 'listNodes', 'List nodes', dev, {
    query: z.object({ user: z.string().optional() }),
    response: keyRegistry.ListNodes.response,
  }),
  r('POST', '/nodes/register', 'registerPendingLogin', 'Approve a pending browser login for a user', devW, {
    body: RegisterPendingBody,
    examples: { body: { user: 'alice', key: 'AbCdEfGhIjKlMnOpQrStUvWx' } },
  }),
  r('DELETE', '/nodes/{id}', 'deleteNode', 'Delete a node', devW, { params: id }),
  r('POST', '/nodes/{id}/expire', 'expireNode', 'Expire a node key', devW, { params: id }),
  r('POST', '/nodes/{id}/approve', 'approveNode', 'Approve a machine', devW, { params: id }),
  r('POST', '/nodes/{id}/tag', 'tagNode', 'Tag a node', devW, {
    params: id,
    body: TagsBody,
    examples: { body: { tags: ['tag:server'] } },
  }),
  r(
    'POST',
    '/nodes/{id}/routes',
    'approveRoutes',
    'Approve routes',
    { scope: 'devices:routes', write: true },
    { params: id, body: RoutesBody, examples: { body: { routes: ['10.0.0.0/24'] } } },
  ),
  r('GET', '/policy', 'getPolicy', 'The current policy', pol, {
    query: z.object({ version: z.string().optional() }),
    response: policy.GetPolicy.response,
  }),
  r('PUT', '/policy', 'setPolicy', 'Replace the policy', polW, {
    body: PolicyBody,
    examples: { body: { policy: '{"acls":[]}' } },
  }),
  r('POST', '/policy/check', 'checkPolicy', 'Check a policy', pol, {
    body: PolicyBody,
    examples: { body: { policy: '{"acls":[]}' } },
  }),
  r('GET', '/policy/history', 'policyHistory', 'Policy versions', pol, {
    query: z.object({ limit: z.string().optional() }),
  }),
  r('POST', '/policy/rollback', 'rollbackPolicy', 'Make an earlier version current', polW, {
    body: RollbackBody,
    examples: { body: { version: 2 } },
  }),
  r('GET', '/apikeys', 'listApiKeys', 'List API keys', tok),
  r('POST', '/apikeys', 'createApiKey', 'Create an API key', tokW, {
    body: CreateApiKeyBody,
    examples: { body: { expiration: '90d', user: 'alice' } },
  }),
  r('POST', '/apikeys/expire', 'expireApiKey', 'Expire an API key', tokW, {
    body: ExpireApiKeyBody,
    examples: { body: { prefix: 'sbapi-0123456789abcdef' } },
  }),
  r(
    'GET',
    '/audit',
    'listAudit',
    'Audit log entries, oldest first',
    { scope: 'logs:configuration', write: false },
    { query: AuditQuery },
  ),
  r('GET', '/audit/verify', 'verifyAudit', 'Verify the audit hash chain', {
    scope: 'logs:configuration',
    write: false,
  }),
  r('POST', '/users/{id}/role', 'setUserRole', "Set a user's role", usersW, {
    params: id,
    body: RoleBody,
    examples: { body: { role: 'auditor' } },
  }),
];
