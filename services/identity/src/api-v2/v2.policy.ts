/**
 * `/api/v2/tailnet/{tailnet}/acl`: the policy file in HuJSON (verbatim, comments kept) or JSON, with
 * an `ETag` (a hash of the text) and `If-Match` (`"ts-default"` = only while the policy is the
 * untouched default); `acl/validate` checks a policy or a list of tests. The work is policy-compiler's.
 *
 * If-Match is compared against the version read just before the set; two writers racing in the same
 * few milliseconds could both pass (policy-compiler's set takes no expected version yet).
 */
import { createHash } from 'node:crypto';
import { SwitchboardError, ValidationError } from '@switchboard/common';
import { callRpc, policy } from '@switchboard/contracts';
import { parseHujson, toPlain } from '@switchboard/policy';
import { z } from 'zod';
import { route, type ApiRoute, type RouteContext } from './v2.route.js';
import type { V2Deps } from './v2.deps.js';
import { V2Error } from './v2.errors.js';

/** What a tailnet starts with (version 0, stored as no text): everyone reaches everything. */
export const DEFAULT_POLICY_TEXT = `// Default policy: every device may reach every other device.
{
  "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:*"] }]
}
`;
const DEFAULT_ETAG = 'ts-default';

export function policyEtag(text: string | null): string {
  if (text === null) return DEFAULT_ETAG;
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

const PolicyJson = z.record(z.unknown());
const ValidateResult = z.object({
  message: z.string().optional(),
  data: z.array(z.object({ user: z.string().optional(), errors: z.array(z.string()).optional() })).optional(),
});
const tailnetParams = z.object({ tailnet: z.string() });
const EXAMPLE_POLICY = { acls: [{ action: 'accept', src: ['*'], dst: ['*:*'] }] };

function asPlain(text: string): unknown {
  const node = parseHujson(text);
  return node === null ? {} : toPlain(node);
}

function wantsJson(c: RouteContext<unknown, unknown, unknown>): boolean {
  return (c.headers.accept ?? '').split(',').some((a) => a.trim().startsWith('application/json'));
}

function policyBody(
  c: RouteContext<unknown, { details?: string }, unknown>,
  text: string | null,
): {
  json?: unknown;
  text?: { body: string; contentType: string };
  headers: Record<string, string>;
} {
  const shown = text ?? DEFAULT_POLICY_TEXT;
  const headers = { etag: `"${policyEtag(text)}"` };
  if (c.query.details === 'true')
    return { json: { acl: Buffer.from(shown).toString('base64'), warnings: [], errors: null }, headers };
  if (wantsJson(c)) return { json: asPlain(shown), headers };
  return { text: { body: shown, contentType: 'application/hujson' }, headers };
}

/** The policy text a POST carries: HuJSON or JSON as sent; empty resets to the default. */
function sentText(raw: string | undefined): string {
  if (raw === undefined || raw.trim() === '') return DEFAULT_POLICY_TEXT;
  return raw;
}

export function policyRoutes(d: V2Deps): ApiRoute[] {
  const current = async (tailnetId: number) => (await callRpc(d.bus, policy.GetPolicy, { tailnetId })).policy;
  return [
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/acl',
      operationId: 'getPolicyFile',
      summary: 'The policy file: HuJSON (default) or JSON (Accept: application/json), with an ETag',
      tag: 'policy',
      access: { scope: 'policy_file', write: false },
      params: tailnetParams,
      query: z.object({ details: z.enum(['true', 'false']).optional() }),
      response: PolicyJson,
      examples: { response: EXAMPLE_POLICY },
      handler: async (c) => policyBody(c, (await current(c.tailnetId)).text),
    }),
    route({
      method: 'POST',
      path: '/api/v2/tailnet/{tailnet}/acl',
      operationId: 'setPolicyFile',
      summary: 'Replace the policy file (HuJSON or JSON; If-Match guards against lost updates; empty resets)',
      tag: 'policy',
      access: { scope: 'policy_file', write: true },
      params: tailnetParams,
      query: z.object({ details: z.enum(['true', 'false']).optional() }),
      bodyKind: 'policy',
      body: PolicyJson,
      response: PolicyJson,
      examples: { body: EXAMPLE_POLICY, response: EXAMPLE_POLICY },
      handler: async (c) => {
        const text = sentText(c.rawBody);
        const before = await current(c.tailnetId);
        const ifMatch = c.headers['if-match'];
        if (typeof ifMatch === 'string' && ifMatch.trim() !== '*') {
          const want = ifMatch.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
          const have = policyEtag(before.text);
          if (want !== have)
            throw new V2Error('precondition_failed', 'precondition failed, invalid old hash');
        }
        const r = await callRpc(
          d.bus,
          policy.SetPolicy,
          { tailnetId: c.tailnetId, text, author: c.principal.actor },
          { timeoutMs: 60_000 },
        );
        return {
          ...policyBody(c, r.policy.text),
          audit: {
            target: `tailnet:${c.tailnetId}:policy`,
            before: { version: before.version, text: before.text },
            after: { version: r.policy.version, text: r.policy.text },
          },
        };
      },
    }),
    route({
      method: 'POST',
      path: '/api/v2/tailnet/{tailnet}/acl/validate',
      operationId: 'validatePolicyFile',
      summary: 'Check a policy file, or run a list of tests against the current one; 200 {} when fine',
      tag: 'policy',
      access: { scope: 'policy_file', write: false },
      params: tailnetParams,
      bodyKind: 'policy',
      body: z.union([PolicyJson, z.array(z.record(z.unknown()))]),
      response: ValidateResult,
      examples: { body: EXAMPLE_POLICY, response: {} },
      handler: async (c) => {
        let text = sentText(c.rawBody);
        let plain: unknown;
        try {
          plain = asPlain(text);
        } catch (err) {
          return { json: { message: `policy is not valid HuJSON: ${(err as Error).message}`, data: [] } };
        }
        if (Array.isArray(plain)) {
          const base = asPlain((await current(c.tailnetId)).text ?? DEFAULT_POLICY_TEXT) as Record<
            string,
            unknown
          >;
          text = JSON.stringify({ ...base, tests: plain });
        }
        try {
          await callRpc(d.bus, policy.CheckPolicy, { tailnetId: c.tailnetId, text }, { timeoutMs: 60_000 });
          return { json: {} };
        } catch (err) {
          if (
            err instanceof SwitchboardError &&
            (err.code === 'invalid_policy' || err.code === 'invalid_input')
          )
            return { json: { message: err.message, data: [{ errors: [err.message] }] } };
          if (err instanceof ValidationError) return { json: { message: err.message, data: [] } };
          throw err;
        }
      },
    }),
  ];
}
