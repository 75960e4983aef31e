/**
 * Test helpers shared by the spec files (not exported from the package): loading testdata and
 * comparing filters the way the spec's §19 prescribes (rules in order; SrcIPs and CapGrant Dsts
 * as address sets; DstPorts as a multiset; IPProto as a set).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { IPSet, parseRangeText } from './ip.js';
import { PolicyEngine } from './engine.js';
import type { FilterRule, Policy, PolicyNode } from './types.js';

export const TESTDATA = new URL('../../testdata/', import.meta.url);

export function readTestdata(rel: string): string {
  return readFileSync(new URL(rel, TESTDATA), 'utf8');
}

export function listTestdata(dir: string): string[] {
  return readdirSync(new URL(dir, TESTDATA)).sort();
}

function setKey(strings: readonly string[]): string {
  const ranges = strings.flatMap((s) => parseRangeText(s) ?? [{ family: 4 as const, first: -1n, last: -1n }]);
  return IPSet.of(ranges)
    .ranges.map((r) => `${r.family}:${r.first}-${r.last}`)
    .join(',');
}

/** A rule normalised for order-insensitive comparison of its parts. */
export function normalizeRule(r: FilterRule): string {
  return JSON.stringify({
    src: setKey(r.SrcIPs),
    proto: [...(r.IPProto ?? [])].sort((a, b) => a - b),
    dst: (r.DstPorts ?? []).map((d) => `${setKey([d.IP])}|${d.Ports.First}-${d.Ports.Last}`).sort(),
    cap: (r.CapGrant ?? []).map((c) => `${setKey(c.Dsts)}|${JSON.stringify(c.CapMap)}`),
  });
}

export function normalizeFilter(rules: readonly FilterRule[] | null | undefined): string[] {
  return (rules ?? []).map(normalizeRule);
}

/** Applies autoApprovers the way the control server does before compiling (additive). */
export function withAutoApproval(policy: Policy | null, nodes: readonly PolicyNode[]): PolicyNode[] {
  const probe = new PolicyEngine(policy);
  return nodes.map((n) => ({
    ...n,
    approvedRoutes: [...new Set([...n.approvedRoutes, ...probe.autoApprovedRoutes(n)])],
  }));
}

/** Every output of an engine, for equality checks between incremental and fresh engines. */
export function snapshot(
  engine: PolicyEngine,
): Record<string, { filter: string; peers: string[]; ssh: string; caps: string }> {
  const out: Record<string, { filter: string; peers: string[]; ssh: string; caps: string }> = {};
  for (const id of engine.nodeIds()) {
    out[id] = {
      filter: engine.filterJsonFor(id),
      peers: engine.peersOf(id),
      ssh: JSON.stringify(engine.sshPolicyFor(id)),
      caps: JSON.stringify(engine.nodeCapsFor(id)),
    };
  }
  return out;
}
