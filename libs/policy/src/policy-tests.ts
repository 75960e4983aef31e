/**
 * The policy's own assertions: `tests` (network reachability against the global, unreduced
 * filter) and `sshTests` (SSH access against each destination's compiled SSH policy), evaluated
 * against the current nodes the way headscale does. A policy whose tests fail must be refused.
 * Failures are located issues with headscale's detail wording after Tailscale's "test(s) failed".
 */
import { PolicyEngine, type PolicyEngineOptions } from './engine.js';
import { PolicyError, type PolicyIssue, type SourceLocation } from './errors.js';
import { formatAddr, rangeContainsAddr, rangesOverlap, rangeToPrefixes, type Range } from './ip.js';
import { parseAlias, q } from './syntax.js';
import type { Policy, PolicyNode, PolicyTestEntry, SshPolicy, SshTestEntry } from './types.js';
import { parseTestDestination } from './validate.js';

const DEFAULT_PROTOS: readonly number[] = [6, 17, 1, 58];

function issue(loc: SourceLocation, message: string): PolicyIssue {
  return { line: loc.line, column: loc.column, message: `test(s) failed: ${message}` };
}

function networkTest(engine: PolicyEngine, t: PolicyTestEntry, out: PolicyIssue[]): void {
  const protoSuffix = t.proto.name === '' ? '' : ` (${t.proto.name})`;
  const alias = parseAlias(t.src);
  if (!alias.ok) {
    out.push(issue(t.srcLoc, `${t.src}${protoSuffix}: failed to resolve source ${q(t.src)}: ${alias.error}`));
    return;
  }
  const srcPrefixes = engine.resolveAddrs(alias.value).flatMap(rangeToPrefixes);
  if (srcPrefixes.length === 0) {
    out.push(issue(t.srcLoc, `${t.src}${protoSuffix}: source ${q(t.src)} resolved to no IP addresses`));
    return;
  }
  const rules = engine.globalRules();
  const protos = t.proto.numbers ?? DEFAULT_PROTOS;
  const allowed = (dstRanges: readonly Range[], port: number): boolean =>
    srcPrefixes.every((src) =>
      rules.some(
        (r) =>
          r.src.some((s) => rangesOverlap(s, src)) &&
          (r.proto === null || r.proto.some((p) => protos.includes(p))) &&
          r.dst.some(
            (d) =>
              port >= d.first &&
              port <= d.last &&
              d.ranges.some((x) => dstRanges.some((y) => rangesOverlap(x, y))),
          ),
      ),
    );
  const check = (list: PolicyTestEntry['accept'], want: boolean): void => {
    for (const dst of list) {
      const parsed = parseTestDestination(dst.text);
      if (typeof parsed === 'string') {
        out.push(issue(dst.loc, `${t.src}${protoSuffix}: error testing ${q(dst.text)}: ${parsed}`));
        continue;
      }
      const ranges = engine.resolveAddrs(parsed.ref.alias);
      if (ranges.length === 0) {
        out.push(
          issue(
            dst.loc,
            `${t.src}${protoSuffix}: error testing ${q(dst.text)}: destination resolved to no IP addresses: ${q(dst.text)}`,
          ),
        );
        continue;
      }
      const port = parsed.ports[0]?.first ?? 0;
      if (allowed(ranges, port) !== want) {
        const verdict = want ? 'expected ALLOWED, got DENIED' : 'expected DENIED, got ALLOWED';
        out.push(issue(dst.loc, `${t.src} -> ${dst.text}${protoSuffix}: ${verdict}`));
      }
    }
  };
  check(t.accept, true);
  check(t.deny, false);
}

/** Whether `user` may log in from `src` under a destination's SSH policy: [accepted, via check]. */
function sshReach(policy: SshPolicy | null, src: string, user: string): [boolean, boolean] {
  if (policy === null || user === '') return [false, false];
  let accept = false;
  let check = false;
  for (const rule of policy.rules) {
    if (!rule.principals.some((p) => p.nodeIP === src)) continue;
    const direct = rule.sshUsers[user];
    const mapped =
      direct !== undefined
        ? direct !== ''
        : user !== 'root' && rule.sshUsers['*'] !== undefined && rule.sshUsers['*'] !== '';
    if (!mapped) continue;
    accept = true;
    if (rule.action.holdAndDelegate !== undefined) check = true;
  }
  return [accept, check];
}

function sshTest(engine: PolicyEngine, t: SshTestEntry, out: PolicyIssue[]): void {
  if (t.src === null) return; // shape error already reported by validation
  const label = t.src.text;
  const ranges = engine.resolveAddrs(t.src.alias);
  // Sources are node addresses; a range that also covers non-node addresses adds one address
  // no rule can match (headscale iterates every address of the range).
  const srcAddrs: string[] = [];
  let foreign = false;
  const nodeAddrs = engine.nodeIds().flatMap((id) => engine.nodeAddrs(id).map((a) => ({ id, a })));
  for (const r of ranges) {
    const inside = nodeAddrs.filter(({ a }) => rangeContainsAddr(r, a));
    for (const { a } of inside) srcAddrs.push(formatAddr(a));
    if (BigInt(inside.length) < r.last - r.first + 1n) foreign = true;
  }
  if (srcAddrs.length === 0 && !foreign) {
    out.push(issue(t.src.loc, `${label}: source ${q(label)} resolved to no IP addresses`));
    return;
  }
  const srcList = foreign ? [...new Set(srcAddrs), ''] : [...new Set(srcAddrs)];
  if (t.accept.length === 0 && t.deny.length === 0 && t.check.length === 0) {
    out.push(issue(t.loc, `${label}: no accept, deny, or check assertions specified`));
    return;
  }
  const srcUser = t.src.alias.kind === 'user' ? t.src.alias.login : null;
  const dstNodes: string[] = [];
  for (const d of t.dst) {
    const isSelf = d.alias.kind === 'autogroup' && d.alias.name === 'autogroup:self';
    const ids = isSelf
      ? srcUser === null
        ? []
        : engine.userNodeIds(srcUser)
      : engine.nodesForAlias(d.alias);
    if (ids.length === 0) out.push(issue(d.loc, `${label}: dst alias ${q(d.text)} resolved to no nodes`));
    for (const id of ids) if (!dstNodes.includes(id)) dstNodes.push(id);
  }
  const assert = (users: SshTestEntry['accept'], kind: 'accept' | 'deny' | 'check'): void => {
    for (const u of users) {
      for (const dst of dstNodes) {
        const pol = engine.sshPolicyFor(dst);
        const results = srcList.map((s) => (s === '' ? ([false, false] as const) : sshReach(pol, s, u.name)));
        const shown = u.name === '' ? '""' : u.name;
        if (kind === 'accept' && results.some(([a]) => !a)) {
          out.push(issue(u.loc, `${label}/${shown} -> ${dst}: expected ALLOWED, got DENIED`));
        } else if (kind === 'deny' && results.some(([a]) => a)) {
          out.push(issue(u.loc, `${label}/${shown} -> ${dst}: expected DENIED, got ALLOWED`));
        } else if (kind === 'check' && results.some(([, c]) => !c)) {
          const how = results.every(([a]) => a) ? 'ALLOWED via accept' : 'DENIED';
          out.push(issue(u.loc, `${label}/${shown} -> ${dst}: expected ALLOWED via check, got ${how}`));
        }
      }
    }
  };
  assert(t.accept, 'accept');
  assert(t.deny, 'deny');
  assert(t.check, 'check');
}

/**
 * Runs the policy's `tests` and `sshTests` against `nodes` (or against an engine already holding
 * the nodes; its policy must be `policy`). Returns the failures; empty means all passed.
 */
export function runPolicyTests(
  policy: Policy,
  nodes: readonly PolicyNode[] | PolicyEngine,
  options: Omit<PolicyEngineOptions, 'nodes'> = {},
): PolicyIssue[] {
  if (policy.tests.length === 0 && policy.sshTests.length === 0) return [];
  const engine =
    nodes instanceof PolicyEngine && nodes.currentPolicy() === policy
      ? nodes
      : new PolicyEngine(policy, {
          ...options,
          nodes:
            nodes instanceof PolicyEngine ? nodes.nodeIds().flatMap((id) => nodes.getNode(id) ?? []) : nodes,
        });
  const out: PolicyIssue[] = [];
  for (const t of policy.tests) networkTest(engine, t, out);
  for (const t of policy.sshTests) sshTest(engine, t, out);
  return out;
}

/** Wraps test failures in a PolicyError (Tailscale rejects the save with "test(s) failed"). */
export function policyTestsError(failures: readonly PolicyIssue[]): PolicyError {
  return new PolicyError(failures, 'test(s) failed: fix the policy or its tests');
}
