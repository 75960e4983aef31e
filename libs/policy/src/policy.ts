/**
 * Entry points for reading a policy document: HuJSON parse → strict decode → semantic validation.
 * `parsePolicy` throws one `PolicyError` listing every issue with its line and column.
 */
import { PolicyError, type PolicyIssue } from './errors.js';
import { parseHujson } from './hujson.js';
import { decodePolicy } from './parse.js';
import type { Policy } from './types.js';
import { validatePolicy, type ValidateOptions } from './validate.js';

export type ParseOptions = ValidateOptions;

/** The policy an empty document stands for: no acls and no grants, i.e. allow all. */
export const EMPTY_POLICY: Policy = {
  groups: new Map(),
  hosts: new Map(),
  tagOwners: new Map(),
  acls: null,
  grants: null,
  ssh: null,
  nodeAttrs: [],
  autoApprovers: { routes: [], exitNode: [] },
  tests: [],
  sshTests: [],
  randomizeClientPort: false,
};

/**
 * Parses and decodes without the semantic checks. Throws `PolicyError` for syntax and schema
 * problems. An empty document (only whitespace/comments) yields `EMPTY_POLICY` (allow all).
 */
export function parsePolicyUnchecked(text: string): Policy {
  const root = parseHujson(text);
  if (root === null) return EMPTY_POLICY;
  const { policy, issues } = decodePolicy(root);
  if (issues.length > 0) throw new PolicyError(issues, 'fix the policy at the reported line and column');
  return policy;
}

/** Parses, decodes and validates a HuJSON policy. Throws `PolicyError` with every issue found. */
export function parsePolicy(text: string, options: ParseOptions = {}): Policy {
  const policy = parsePolicyUnchecked(text);
  const issues: PolicyIssue[] = validatePolicy(policy, options);
  if (issues.length > 0) throw new PolicyError(issues, 'fix the policy at the reported line and column');
  return policy;
}

/** True when the policy has neither `acls` nor `grants`: the filter is allow-all. */
export function isAllowAll(policy: Policy | null): boolean {
  return policy === null || (policy.acls === null && policy.grants === null);
}
