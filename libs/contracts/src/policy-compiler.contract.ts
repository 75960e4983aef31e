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
