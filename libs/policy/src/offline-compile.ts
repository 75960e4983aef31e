/**
 * Offline compile, the body of `switchboard policy compile --policy FILE --nodes NODES.json
 * [--node ID]`: parses and validates the policy, reads the node list, applies autoApprovers the
 * way the server would, runs the policy's tests and prints every node's packet filter and peers.
 * Pure: the CLI reads the files and writes stdout/stderr; this returns what to write.
 */
import { compareNodeIds, PolicyEngine } from './engine.js';
import { PolicyError, formatIssue, type PolicyIssue } from './errors.js';
import { parseHujson, type JsonNode } from './hujson.js';
import { parsePolicy } from './policy.js';
import { runPolicyTests } from './policy-tests.js';
import type { FilterRule, PolicyNode } from './types.js';
import { makeNodeRec } from './node-state.js';
import { parseAddr, parsePrefix } from './ip.js';
import { errorMessage } from '@switchboard/common';

export interface PolicyCompileArgs {
  readonly policyText: string;
  readonly nodesJson: string;
  readonly nodeId?: string;
}

export interface PolicyCompileResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** What `policy compile` prints for one node. */
export interface CompiledNodeOutput {
  readonly filter: readonly FilterRule[];
  readonly peers: readonly string[];
}

const NODE_FIELDS = [
  'id',
  'user',
  'tags',
  'ipv4',
  'ipv6',
  'routableIPs',
  'approvedRoutes',
  'groups',
] as const;

function issuesText(source: string, issues: readonly PolicyIssue[]): string {
  return issues.map((i) => `${source}:${formatIssue(i)}`).join('\n') + '\n';
}

/** Reads NODES.json (a JSON array of PolicyNode) with located errors. */
export function parseNodesJson(text: string): PolicyNode[] {
  const root = parseHujson(text);
  const issues: PolicyIssue[] = [];
  const report = (node: { loc: { line: number; column: number } }, message: string): void => {
    issues.push({ line: node.loc.line, column: node.loc.column, message });
  };
  if (root === null)
    throw new PolicyError([{ line: 1, column: 1, message: 'expected a JSON array of nodes' }]);
  if (root.kind !== 'array') {
    report(root, `expected a JSON array of nodes, got ${root.kind}`);
    throw new PolicyError(issues);
  }
  const out: PolicyNode[] = [];
  const seen = new Set<string>();
  root.items.forEach((item, i) => {
    const where = `nodes[${i}]`;
    if (item.kind !== 'object') {
      report(item, `${where}: expected an object, got ${item.kind}`);
      return;
    }
    const fields = new Map<string, JsonNode>();
    for (const m of item.members) {
      if (!(NODE_FIELDS as readonly string[]).includes(m.key)) {
        issues.push({
          line: m.keyLoc.line,
          column: m.keyLoc.column,
          message: `${where}: unknown field: ${JSON.stringify(m.key)}`,
        });
        continue;
      }
      fields.set(m.key, m.value);
    }
    const str = (key: string, optional: boolean): string | null => {
      const v = fields.get(key);
      if (v === undefined) {
        if (!optional) report(item, `${where}: missing field ${JSON.stringify(key)}`);
        return null;
      }
      if (v.kind === 'null' && optional) return null;
      if (v.kind === 'number' && key === 'id' && Number.isInteger(v.value)) return String(v.value);
      if (v.kind !== 'string') {
        report(v, `${where}.${key}: expected a string, got ${v.kind}`);
        return null;
      }
      return v.value;
    };
    const strList = (key: string, optional: boolean): string[] | null => {
      const v = fields.get(key);
      if (v === undefined || v.kind === 'null') {
        if (!optional) report(item, `${where}: missing field ${JSON.stringify(key)}`);
        return null;
      }
      if (v.kind !== 'array') {
        report(v, `${where}.${key}: expected an array of strings, got ${v.kind}`);
        return null;
      }
      const list: string[] = [];
      for (const e of v.items) {
        if (e.kind !== 'string') report(e, `${where}.${key}: expected a string, got ${e.kind}`);
        else list.push(e.value);
      }
      return list;
    };
    const id = str('id', false);
    const user = str('user', true);
    const ipv4 = str('ipv4', true) ?? '';
    const ipv6 = str('ipv6', true) ?? '';
    const node: PolicyNode = {
      id: id ?? '',
      user,
      tags: strList('tags', true) ?? [],
      ipv4,
      ipv6,
      routableIPs: strList('routableIPs', true) ?? [],
      approvedRoutes: strList('approvedRoutes', true) ?? [],
      ...(fields.has('groups') ? { groups: strList('groups', true) ?? [] } : {}),
    };
    const addrField = (key: 'ipv4' | 'ipv6', family: 4 | 6): boolean => {
      const v = fields.get(key);
      if (v?.kind !== 'string' || v.value === '') return true;
      const a = parseAddr(v.value);
      if (a !== null && a.family === family) return true;
      report(v, `${where}.${key}: invalid IPv${family} address ${JSON.stringify(v.value)}`);
      return false;
    };
    const routeField = (key: 'routableIPs' | 'approvedRoutes'): boolean => {
      const v = fields.get(key);
      if (v?.kind !== 'array') return true;
      let ok = true;
      for (const e of v.items) {
        if (e.kind === 'string' && (!e.value.includes('/') || parsePrefix(e.value) === null)) {
          report(e, `${where}.${key}: invalid route prefix ${JSON.stringify(e.value)}`);
          ok = false;
        }
      }
      return ok;
    };
    const fieldsOk = [
      addrField('ipv4', 4),
      addrField('ipv6', 6),
      routeField('routableIPs'),
      routeField('approvedRoutes'),
    ];
    if (id === null || fieldsOk.includes(false)) return;
    if (ipv4 === '' && ipv6 === '') {
      report(item, `${where}: a node needs an ipv4 or ipv6 address`);
      return;
    }
    if (seen.has(id)) {
      report(fields.get('id') ?? item, `${where}: duplicate node id ${JSON.stringify(id)}`);
      return;
    }
    seen.add(id);
    try {
      makeNodeRec(node, 0);
    } catch (e) {
      report(item, `${where}: ${errorMessage(e)}`);
      return;
    }
    out.push(node);
  });
  if (issues.length > 0) throw new PolicyError(issues);
  return out;
}

/** Compiles a policy for a node list: `{ "<id>": { filter, peers } }` for every node (or one). */
export function runPolicyCompile(args: PolicyCompileArgs): PolicyCompileResult {
  let policy;
  try {
    policy = parsePolicy(args.policyText);
  } catch (e) {
    if (e instanceof PolicyError) return { exitCode: 1, stdout: '', stderr: issuesText('policy', e.issues) };
    throw e;
  }
  let nodes: PolicyNode[];
  try {
    nodes = parseNodesJson(args.nodesJson);
  } catch (e) {
    if (e instanceof PolicyError) return { exitCode: 1, stdout: '', stderr: issuesText('nodes', e.issues) };
    throw e;
  }
  // The server auto-approves announced routes the policy allows; do the same here.
  const probe = new PolicyEngine(policy);
  const approved = nodes.map((n) => ({
    ...n,
    approvedRoutes: [...new Set([...n.approvedRoutes, ...probe.autoApprovedRoutes(n)])],
  }));
  const engine = new PolicyEngine(policy, { nodes: approved });
  const failures = runPolicyTests(policy, engine);
  if (failures.length > 0) return { exitCode: 1, stdout: '', stderr: issuesText('policy', failures) };
  const ids =
    args.nodeId === undefined ? engine.nodeIds() : engine.hasNode(args.nodeId) ? [args.nodeId] : null;
  if (ids === null) {
    return { exitCode: 1, stdout: '', stderr: `nodes: unknown node ${JSON.stringify(args.nodeId)}\n` };
  }
  const out: Record<string, CompiledNodeOutput> = {};
  for (const id of ids.sort(compareNodeIds))
    out[id] = { filter: engine.filterFor(id), peers: engine.peersOf(id) };
  return { exitCode: 0, stdout: `${JSON.stringify(out, null, 2)}\n`, stderr: '' };
}
