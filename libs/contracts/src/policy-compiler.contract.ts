/** policy-compiler: the tailnet policy document and its versions. Served in queue group `policy-compiler`. */
import { z } from 'zod';
import { defineRpc } from './rpc.js';
import { PolicyRecordSchema } from './records.js';

export const POLICY_QUEUE = 'policy-compiler';

export const GetPolicy = defineRpc(
  'policy.v1.get',
  z.object({ tailnetId: z.number().int().positive().default(1) }),
  z.object({ policy: PolicyRecordSchema }),
);
export const PolicySnapshot = defineRpc(
  'policy.v1.snapshot',
  z.object({}),
  z.object({ policies: z.array(PolicyRecordSchema) }),
);

export const PolicyVersionSchema = z.object({
  tailnetId: z.number().int().positive(),
  version: z.number().int().positive(),
  author: z.string(),
  createdAt: z.string(),
  /** Unified line diff against the previous version. */
  diff: z.string(),
});
export type PolicyVersion = z.infer<typeof PolicyVersionSchema>;

const policyText = z.string().max(1 << 20, 'a policy is at most 1 MiB');

/** Validates, runs the policy's tests against the current nodes, stores a new version, publishes it. */
export const SetPolicy = defineRpc(
  'policy.v1.set',
  z.object({
    tailnetId: z.number().int().positive().default(1),
    text: policyText,
    author: z.string().min(1).max(256),
  }),
  z.object({ policy: PolicyRecordSchema, unchanged: z.boolean() }),
);
/** Validates and runs tests without storing anything. */
export const CheckPolicy = defineRpc(
  'policy.v1.check',
  z.object({ tailnetId: z.number().int().positive().default(1), text: policyText }),
  z.object({ ok: z.literal(true), tests: z.number().int().nonnegative() }),
);
export const PolicyHistory = defineRpc(
  'policy.v1.history',
  z.object({
    tailnetId: z.number().int().positive().default(1),
    limit: z.number().int().positive().max(1000).default(50),
  }),
  z.object({ versions: z.array(PolicyVersionSchema) }),
);
export const GetPolicyVersion = defineRpc(
  'policy.v1.get-version',
  z.object({ tailnetId: z.number().int().positive().default(1), version: z.number().int().positive() }),
  z.object({ policy: PolicyRecordSchema }),
);
/** Makes an earlier version current again (as a new version, after the same checks). */
export const RollbackPolicy = defineRpc(
  'policy.v1.rollback',
  z.object({
    tailnetId: z.number().int().positive().default(1),
    version: z.number().int().positive(),
    author: z.string().min(1).max(256),
  }),
  z.object({ policy: PolicyRecordSchema, unchanged: z.boolean() }),
);
/** tagOwners check for pre-auth keys and tag requests. */
export const CheckTags = defineRpc(
  'policy.v1.check-tags',
  z.object({
    tailnetId: z.number().int().positive().default(1),
    ownerLogin: z.string(),
    tags: z.array(z.string()).max(64),
  }),
  z.object({ ok: z.boolean(), denied: z.array(z.string()) }),
);

const policyNodeSchema = z.object({
  id: z.string(),
  user: z.string().nullable(),
  tags: z.array(z.string()),
  ipv4: z.string(),
  ipv6: z.string(),
  routableIPs: z.array(z.string()),
  approvedRoutes: z.array(z.string()),
});

/** Which of a node's announced routes the policy's autoApprovers approve. */
export const AutoApproveRoutes = defineRpc(
  'policy.v1.auto-approve-routes',
  z.object({ tailnetId: z.number().int().positive().default(1), node: policyNodeSchema }),
  z.object({ routes: z.array(z.string()) }),
);
