/** `/api/v2` users (list, get, role) and the audit log (`/tailnet/{t}/audit`, JSON or JSON lines). */
import { USER_ROLES, type UserRecord } from '@switchboard/contracts';
import { z } from 'zod';
import { route, type ApiRoute } from './v2.route.js';
import type { V2Deps } from './v2.deps.js';
import { V2Error, notFound } from './v2.errors.js';

export const UserSchema = z.object({
  id: z.string(),
  displayName: z.string(),
  loginName: z.string(),
  profilePicUrl: z.string(),
  tailnetId: z.string(),
  created: z.string(),
  type: z.enum(['member', 'shared']),
  role: z.enum(USER_ROLES),
  status: z.enum(['active', 'idle', 'suspended', 'needs-approval', 'over-billing-limit']),
  deviceCount: z.number().int(),
  lastSeen: z.string(),
  currentlyConnected: z.boolean(),
});

function userJson(u: UserRecord, devices: number): z.infer<typeof UserSchema> {
  return {
    id: String(u.id),
    displayName: u.displayName || u.name,
    loginName: u.loginName,
    profilePicUrl: u.profilePicUrl ?? '',
    tailnetId: String(u.tailnetId),
    created: u.createdAt,
    type: 'member',
    role: u.role ?? 'member',
    status: 'active',
    deviceCount: devices,
    lastSeen: u.createdAt,
    currentlyConnected: false,
  };
}

const EXAMPLE_USER = {
  id: '1',
  displayName: 'Alice',
  loginName: 'alice@example.com',
  profilePicUrl: '',
  tailnetId: '1',
  created: '2026-12-01T10:00:00.000Z',
  type: 'member',
  role: 'admin',
  status: 'active',
  deviceCount: 2,
  lastSeen: '2026-12-01T10:00:00.000Z',
  currentlyConnected: false,
};

const AuditEntrySchema = z.object({
  id: z.number().int(),
  tailnetId: z.number().int(),
  at: z.string(),
  actor: z.string(),
  actorRole: z.string(),
  action: z.string(),
  target: z.string(),
  before: z.unknown(),
  after: z.unknown(),
  outcome: z.string(),
  source: z.string(),
  requestId: z.string(),
  prevHash: z.string(),
  hash: z.string(),
});

export function userRoutes(d: V2Deps): ApiRoute[] {
  const userOf = async (tailnetId: number, id: string): Promise<UserRecord> => {
    const u = /^\d+$/.test(id) ? await d.identity.getUser({ id: Number(id) }) : null;
    if (!u || u.tailnetId !== tailnetId) throw notFound(`user ${id}`);
    return u;
  };
  return [
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/users',
      operationId: 'listUsers',
      summary: 'Users of the tailnet',
      tag: 'users',
      access: { scope: 'users', write: false },
      params: z.object({ tailnet: z.string() }),
      query: z.object({ type: z.enum(['member', 'shared', 'all']).optional(), role: z.string().optional() }),
      response: z.object({ users: z.array(UserSchema) }),
      examples: { response: { users: [EXAMPLE_USER] } },
      handler: async (c) => {
        const counts = d.nodeOwners.countsByUser();
        let users = (await d.identity.listUsers()).filter((u) => u.tailnetId === c.tailnetId);
        if (c.query.type === 'shared') users = [];
        if (c.query.role && c.query.role !== 'all')
          users = users.filter((u) => (u.role ?? 'member') === c.query.role);
        return { json: { users: users.map((u) => userJson(u, counts.get(u.id) ?? 0)) } };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v2/users/{userId}',
      operationId: 'getUser',
      summary: 'One user',
      tag: 'users',
      access: { scope: 'users', write: false },
      params: z.object({ userId: z.string() }),
      response: UserSchema,
      examples: { response: EXAMPLE_USER },
      handler: async (c) => {
        const u = await userOf(c.tailnetId, c.params.userId);
        return { json: userJson(u, d.nodeOwners.countsByUser().get(u.id) ?? 0) };
      },
    }),
    route({
      method: 'POST',
      path: '/api/v2/users/{userId}/role',
      operationId: 'updateUserRole',
      summary: "Change a user's role (owner only grants or moves owner; nobody changes their own role)",
      tag: 'users',
      access: { scope: 'users', write: true },
      params: z.object({ userId: z.string() }),
      body: z.object({ role: z.enum(USER_ROLES) }),
      examples: { body: { role: 'network-admin' } },
      handler: async (c) => {
        const u = await userOf(c.tailnetId, c.params.userId);
        const p = c.principal;
        if (p.kind === 'role' && p.userId === u.id)
          throw new V2Error('forbidden', 'a user cannot change their own role');
        const callerRole = p.kind === 'role' ? p.role : null;
        if (
          (c.body.role === 'owner' || u.role === 'owner' || c.body.role === 'admin' || u.role === 'admin') &&
          callerRole !== 'owner' &&
          callerRole !== 'admin'
        )
          throw new V2Error(
            'forbidden',
            'only an owner or admin may grant or remove the owner and admin roles',
          );
        if ((c.body.role === 'owner' || u.role === 'owner') && callerRole !== 'owner')
          throw new V2Error('forbidden', 'only an owner may grant or remove the owner role');
        await d.identity.setUserRole(u.id, c.body.role, (q, before, after) =>
          c.auditIn(q, {
            target: `user:${u.id}`,
            before: { role: before.role ?? 'member' },
            after: { role: after.role },
          }),
        );
        return {};
      },
    }),
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/audit',
      operationId: 'listAuditLog',
      summary: 'Audit log entries, oldest first (format=jsonl: JSON lines)',
      tag: 'audit',
      access: { scope: 'logs:configuration', write: false },
      params: z.object({ tailnet: z.string() }),
      query: z.object({
        actor: z.string().optional(),
        action: z.string().optional(),
        target: z.string().optional(),
        since: z.string().datetime({ offset: true }).optional(),
        until: z.string().datetime({ offset: true }).optional(),
        limit: z.coerce.number().int().positive().max(100_000).optional(),
        format: z.enum(['json', 'jsonl']).optional(),
      }),
      response: z.object({ entries: z.array(AuditEntrySchema) }),
      examples: { response: { entries: [] } },
      handler: async (c) => {
        const { format, ...f } = c.query;
        const entries = await d.audit.list({ ...f, tailnetId: c.tailnetId });
        if (format === 'jsonl')
          return {
            text: {
              body: entries.map((e) => JSON.stringify(e) + '\n').join(''),
              contentType: 'application/x-ndjson',
            },
          };
        return { json: { entries } };
      },
    }),
  ];
}
