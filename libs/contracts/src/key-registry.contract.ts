/**
 * key-registry: machines, nodes, pre-auth keys and IP allocation. Served in queue group `key-registry`.
 */
import { z } from 'zod';
import { defineBroadcast, defineRpc } from './rpc.js';
import { NodeRecordSchema, TailnetRecordSchema, isoTime } from './records.js';

export const KEY_REGISTRY_QUEUE = 'key-registry';

const mkey = z.string().regex(/^mkey:[0-9a-f]{64}$/);
const nodekey = z.string().regex(/^nodekey:[0-9a-f]{64}$/);
const discokey = z.string().regex(/^discokey:[0-9a-f]{64}$/);

export const RegisterInputSchema = z.object({
  /** The Noise peer's static key: the authenticated machine. */
  machineKey: mkey,
  capVersion: z.number().int().nonnegative(),
  nodeKey: nodekey,
  oldNodeKey: nodekey.nullable(),
  authKey: z.string().max(512).nullable(),
  /** Requested expiry: a past time means logout, a future one a shorter key lifetime. */
  expiry: isoTime.nullable(),
  followup: z.string().max(2048),
  hostinfo: z.record(z.unknown()).nullable(),
  ephemeral: z.boolean(),
});
export type RegisterInput = z.infer<typeof RegisterInputSchema>;

export const RegisterResultSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('ok'),
    node: NodeRecordSchema,
    nodeKeyExpired: z.boolean(),
    machineAuthorized: z.boolean(),
  }),
  z.object({ kind: z.literal('logged-out'), nodeId: z.number().int(), deleted: z.boolean() }),
  z.object({ kind: z.literal('node-key-expired') }),
  z.object({ kind: z.literal('auth-url'), url: z.string(), loginId: z.string().optional() }),
  /** A follow-up for an interactive login still in progress: the edge holds it and asks again. */
  z.object({ kind: z.literal('login-pending'), loginId: z.string(), expiresAt: isoTime }),
  z.object({ kind: z.literal('error'), message: z.string() }),
]);
export type RegisterResult = z.infer<typeof RegisterResultSchema>;

export const Register = defineRpc('keyreg.v1.register', RegisterInputSchema, RegisterResultSchema);

export const UpdateNodeInputSchema = z.object({
  machineKey: mkey,
  nodeKey: nodekey,
  capVersion: z.number().int().nonnegative(),
  discoKey: discokey.nullable(),
  endpoints: z.array(z.string().max(64)).max(1000).nullable(),
  hostinfo: z.record(z.unknown()).nullable(),
});
export type UpdateNodeInput = z.infer<typeof UpdateNodeInputSchema>;
export const UpdateNode = defineRpc(
  'keyreg.v1.update-node',
  UpdateNodeInputSchema,
  z.object({ node: NodeRecordSchema, changed: z.boolean() }),
);

/** Looks a node up by node key, bound to the machine key that must own it. */
export const GetNodeByKey = defineRpc(
  'keyreg.v1.get-node-by-key',
  z.object({ machineKey: mkey, nodeKey: nodekey }),
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('found'), node: NodeRecordSchema }),
    z.object({ kind: z.literal('not-found') }),
    z.object({ kind: z.literal('machine-mismatch') }),
  ]),
);

export const ListNodes = defineRpc(
  'keyreg.v1.list-nodes',
  z.object({
    tailnetId: z.number().int().positive().optional(),
    userId: z.number().int().positive().optional(),
  }),
  z.object({ nodes: z.array(NodeRecordSchema) }),
);

const nodeRef = z.object({ nodeId: z.number().int().positive() });
export const DeleteNode = defineRpc('keyreg.v1.delete-node', nodeRef, z.object({ node: NodeRecordSchema }));
export const ExpireNode = defineRpc(
  'keyreg.v1.expire-node',
  nodeRef.extend({ at: isoTime.optional() }),
  z.object({ node: NodeRecordSchema }),
);
export const ApproveNode = defineRpc('keyreg.v1.approve-node', nodeRef, z.object({ node: NodeRecordSchema }));

export const Snapshot = defineRpc(
  'keyreg.v1.snapshot',
  z.object({}),
  z.object({ tailnets: z.array(TailnetRecordSchema), nodes: z.array(NodeRecordSchema) }),
);

export const PreAuthKeyRecordSchema = z.object({
  id: z.number().int().positive(),
  /** The public part of the key (`sbkey-<prefix>-…`), safe to show. */
  prefix: z.string(),
  tailnetId: z.number().int().positive(),
  userId: z.number().int().positive(),
  reusable: z.boolean(),
  ephemeral: z.boolean(),
  tags: z.array(z.string()),
  createdAt: isoTime,
  expiresAt: isoTime,
  usedCount: z.number().int().nonnegative(),
  /** Expired, used up (single-use) or revoked. */
  usable: z.boolean(),
});
export type PreAuthKeyRecord = z.infer<typeof PreAuthKeyRecordSchema>;

export const CreatePreAuthKey = defineRpc(
  'keyreg.v1.create-preauth-key',
  z.object({
    userId: z.number().int().positive(),
    tailnetId: z.number().int().positive().optional(),
    reusable: z.boolean().default(false),
    ephemeral: z.boolean().default(false),
    tags: z
      .array(z.string().regex(/^tag:[a-zA-Z][a-zA-Z0-9-]*$/))
      .max(64)
      .default([]),
    expiresAt: isoTime,
  }),
  z.object({ key: z.string(), record: PreAuthKeyRecordSchema }),
);
export const ListPreAuthKeys = defineRpc(
  'keyreg.v1.list-preauth-keys',
  z.object({ userId: z.number().int().positive().optional() }),
  z.object({ keys: z.array(PreAuthKeyRecordSchema) }),
);
export const ExpirePreAuthKey = defineRpc(
  'keyreg.v1.expire-preauth-key',
  z.object({ id: z.number().int().positive().optional(), prefix: z.string().optional() }),
  z.object({ record: PreAuthKeyRecordSchema }),
);

/** Admin tagging: the node becomes a tagged node (no user identity) carrying exactly these tags. */
export const TagNode = defineRpc(
  'keyreg.v1.tag-node',
  z.object({
    nodeId: z.number().int().positive(),
    tags: z
      .array(z.string().regex(/^tag:[a-zA-Z][a-zA-Z0-9-]*$/, 'tags look like tag:name'))
      .min(1, 'give at least one tag; a tagged node cannot go back to a user without logging in again')
      .max(64),
  }),
  z.object({ node: NodeRecordSchema }),
);

/** Admin route approval: served routes are announced ∩ approved. */
export const SetApprovedRoutes = defineRpc(
  'keyreg.v1.set-approved-routes',
  z.object({ nodeId: z.number().int().positive(), routes: z.array(z.string().max(64)).max(1000) }),
  z.object({ node: NodeRecordSchema }),
);

/** An interactive login in progress: the device that asked, and what became of it. */
export const PendingLoginRecordSchema = z.object({
  id: z.string(),
  machineKey: mkey,
  nodeKey: nodekey,
  hostname: z.string(),
  os: z.string(),
  createdAt: isoTime,
  expiresAt: isoTime,
  status: z.enum(['pending', 'completed']),
  userId: z.number().int().positive().nullable(),
  nodeId: z.number().int().positive().nullable(),
});
export type PendingLoginRecord = z.infer<typeof PendingLoginRecordSchema>;

export const loginId = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'login ids are 16-64 URL-safe characters');

export const GetPendingLogin = defineRpc(
  'keyreg.v1.get-pending-login',
  z.object({ loginId }),
  z.object({ login: PendingLoginRecordSchema.nullable() }),
);

/**
 * Attaches the device of a pending login to a user (after the person confirmed it in the browser,
 * or an admin approved it with `nodes register`): one transaction, one `node-upserted` event.
 */
export const CompleteLogin = defineRpc(
  'keyreg.v1.complete-login',
  z.object({ loginId, userId: z.number().int().positive() }),
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('ok'), node: NodeRecordSchema, already: z.boolean() }),
    z.object({ kind: z.literal('not-found') }),
    z.object({ kind: z.literal('expired') }),
    z.object({ kind: z.literal('refused'), message: z.string() }),
  ]),
);

/** A pending login was completed: the replica holding its follow-up answers it now (best effort). */
export const LoginSettled = defineBroadcast('keyreg.v1.login-settled', z.object({ loginId: z.string() }));
/**
 * Admin edits of one node (API v2): authorize or deauthorize the machine, rename it (the MagicDNS
 * label; empty = back to its hostname), set or clear its key expiry (null = never expires).
 */
export const SetNodeFields = defineRpc(
  'keyreg.v1.set-node-fields',
  z.object({
    nodeId: z.number().int().positive(),
    machineAuthorized: z.boolean().optional(),
    givenName: z
      .string()
      .max(63)
      .regex(/^([a-z0-9]([a-z0-9-]*[a-z0-9])?)?$/, 'a DNS label: lower-case letters, digits and "-"')
      .optional(),
    keyExpiry: isoTime.nullable().optional(),
  }),
  z.object({ node: NodeRecordSchema }),
);
