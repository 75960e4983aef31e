/**
 * What key-registry reads from a client's Hostinfo (pure): host name, announced routes, home DERP
 * region, and the node patch a new Hostinfo implies (keeping the last NetInfo when a request leaves
 * it out).
 */
import type { NodeRecord } from '@switchboard/contracts';
import type { NodePatch } from './key-registry.repository.js';

export function hostnameOf(hostinfo: Record<string, unknown> | null): string {
  const h = hostinfo?.Hostname;
  return typeof h === 'string' ? h.slice(0, 255) : '';
}

export function routableIPsOf(hostinfo: Record<string, unknown> | null): string[] {
  const r = hostinfo?.RoutableIPs;
  return Array.isArray(r) ? r.filter((x): x is string => typeof x === 'string').slice(0, 1000) : [];
}

export function preferredDerpOf(hostinfo: Record<string, unknown>): number | null {
  const ni = hostinfo.NetInfo;
  if (ni && typeof ni === 'object') {
    const d = (ni as Record<string, unknown>).PreferredDERP;
    if (typeof d === 'number' && Number.isInteger(d) && d >= 0) return d;
  }
  return null;
}

export function hostinfoPatch(node: NodeRecord, hostinfo: Record<string, unknown> | null): NodePatch {
  if (hostinfo === null) return {};
  const merged: Record<string, unknown> = { ...hostinfo };
  // Keep the last NetInfo when a request leaves it out.
  if (merged.NetInfo === undefined && node.hostinfo?.NetInfo !== undefined)
    merged.NetInfo = node.hostinfo.NetInfo;
  const patch: NodePatch = { hostinfo: merged, routableIPs: routableIPsOf(merged) };
  const hn = hostnameOf(merged);
  if (hn !== node.hostname) patch.hostname = hn;
  const derp = preferredDerpOf(merged);
  if (derp !== null) patch.homeDerp = derp;
  return patch;
}

export function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
