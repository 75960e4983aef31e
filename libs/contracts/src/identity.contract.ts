/** identity: users, groups and API keys. Served in queue group `identity`. */
import { z } from 'zod';
import { defineRpc } from './rpc.js';
import { TailnetDnsRecordSchema, UserRecordSchema, isoTime } from './records.js';

export const IDENTITY_QUEUE = 'identity';

export const userName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9._@-]*$/i, 'user names use letters, digits, ".", "_", "-" and "@"');

export const CreateUser = defineRpc(
  'identity.v1.create-user',
  z.object({
    name: userName,
    displayName: z.string().max(128).optional(),
    email: z.string().email().optional(),
    tailnetId: z.number().int().positive().optional(),
  }),
  z.object({ user: UserRecordSchema }),
);
export const ListUsers = defineRpc(
  'identity.v1.list-users',
  z.object({}),
  z.object({ users: z.array(UserRecordSchema) }),
);
export const GetUser = defineRpc(
  'identity.v1.get-user',
  z.object({ id: z.number().int().positive().optional(), name: z.string().optional() }),
  z.object({ user: UserRecordSchema.nullable() }),
);
export const DeleteUser = defineRpc(
  'identity.v1.delete-user',
  z.object({ id: z.number().int().positive() }),
  z.object({ user: UserRecordSchema }),
);
export const IdentitySnapshot = defineRpc(
  'identity.v1.snapshot',
  z.object({}),
  z.object({
    users: z.array(UserRecordSchema),
    /** Older identity replicas send none. */
    dns: z.array(TailnetDnsRecordSchema).default([]),
  }),
);

export const ApiKeyRecordSchema = z.object({
  id: z.number().int().positive(),
  prefix: z.string(),
  createdAt: isoTime,
  expiresAt: isoTime,
  lastUsedAt: isoTime.nullable(),
  /** The owner whose role the token acts with; null = created on the host (acts as owner). */
  userId: z.number().int().positive().nullable().default(null),
  usable: z.boolean(),
});
export type ApiKeyRecord = z.infer<typeof ApiKeyRecordSchema>;

export const CreateApiKey = defineRpc(
  'identity.v1.create-api-key',
  z.object({ expiresAt: isoTime }),
  z.object({ key: z.string(), record: ApiKeyRecordSchema }),
);
export const ListApiKeys = defineRpc(
  'identity.v1.list-api-keys',
  z.object({}),
  z.object({ keys: z.array(ApiKeyRecordSchema) }),
);
export const ExpireApiKey = defineRpc(
  'identity.v1.expire-api-key',
  z.object({ prefix: z.string() }),
  z.object({ record: ApiKeyRecordSchema }),
);
export const VerifyApiKey = defineRpc(
  'identity.v1.verify-api-key',
  z.object({ key: z.string().max(512) }),
  z.object({ valid: z.boolean(), id: z.number().int().nullable() }),
);
