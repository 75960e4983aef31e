/**
 * @switchboard/policy — Tailscale-compatible policy files: HuJSON parsing and validation,
 * incremental compilation into per-node packet filters, peer visibility, SSH policies and node
 * capabilities, policy tests, and the offline `policy compile` command. Pure: no I/O.
 */
export { PolicyError, formatIssue, type PolicyIssue, type SourceLocation } from './errors.js';
export { parseHujson, toPlain, type JsonNode } from './hujson.js';
export { parsePolicy, parsePolicyUnchecked, isAllowAll, EMPTY_POLICY, type ParseOptions } from './policy.js';
export { validatePolicy, type ValidateOptions } from './validate.js';
export {
  PolicyEngine,
  compareNodeIds,
  type PolicyChange,
  type PeerDelta,
  type PolicyEngineOptions,
  type TagCheck,
} from './engine.js';
export { runPolicyTests, policyTestsError } from './policy-tests.js';
export {
  runPolicyCompile,
  parseNodesJson,
  type PolicyCompileArgs,
  type PolicyCompileResult,
  type CompiledNodeOutput,
} from './offline-compile.js';
export type {
  Policy,
  PolicyNode,
  FilterRule,
  NetPortRange,
  CapGrant,
  SshPolicy,
  SshPolicyRule,
  SshPrincipal,
  SshAction,
  NodeCapMap,
  Alias,
  AliasRef,
} from './types.js';
