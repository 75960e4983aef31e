/**
 * Route visibility: which of a peer's approved subnet routes a viewer may use (the peer's
 * AllowedIPs as the viewer sees them; headscale CanAccessRoute semantics, including via grants).
 * Answered per pair on demand from the membership index; nothing cached.
 *
 * Known simplification (README): node addresses of a source set's members are not matched
 * against routes.
 */
import { INTERNET_SET, parsePrefix, rangesOverlap, WILDCARD_SET, formatPrefix, type Range } from './ip.js';
import { viaHosts, type MembershipIndex, type PSet } from './membership.js';
import { nodeIpIn, nodeRoutesOverlap, type NodeRec } from './node-state.js';
import type { NodeStore } from './node-store.js';
import type { PeerVisibility } from './peers.js';

export class RouteVisibility {
  constructor(
    private readonly store: NodeStore,
    private readonly sets: MembershipIndex,
    private readonly peers: PeerVisibility,
  ) {}

  /**
   * The peer's approved subnet routes the viewer may use. Exit routes are not included (they
   * are always offered) and primary-router election is left to the caller.
   */
  routesVisibleTo(viewer: NodeRec, peer: NodeRec): string[] {
    const out: string[] = [];
    const seen = this.peers.peerBits(viewer).has(peer.slot);
    for (const route of peer.subnetRoutes) {
      // Routers serving the same route see each other's copy (HA pairs; captures grant-p10-2,
      // via-grant-v38), but not a merely overlapping one (routes-a2).
      const visible =
        (seen &&
          viewer.subnetRoutes.some(
            (vr) => vr.first === route.first && vr.bits === route.bits && vr.family === route.family,
          )) ||
        this.grantedRoute(viewer, peer, route);
      if (visible) out.push(formatPrefix(route));
    }
    return out;
  }

  /** Does some ip/cap or via unit let the viewer use the peer's `route`? */
  private grantedRoute(viewer: NodeRec, peer: NodeRec, route: Range): boolean {
    const units = this.sets.compiled.units;
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const sets = this.sets.unitSets[i];
      if (u === undefined || sets?.src == null) continue;
      const src = sets.src;
      if ((u.kind === 'ip' || u.kind === 'cap') && sets.dst !== null) {
        if (src.content.count === 0 && u.kind === 'ip') continue;
        const dst = sets.dst;
        const viewerIsSrc = src.ident.has(viewer.slot) || src.addrIp.has(viewer.slot);
        const viewerRoutesInSrc = viewer.subnetRoutes.some((vr) => this.srcOverlaps(src, vr));
        const dstHitsRoute = dstOverlaps(dst, route);
        const srcHitsRoute = this.srcOverlaps(src, route);
        const visible =
          ((viewerIsSrc || viewerRoutesInSrc) && dstHitsRoute) ||
          (srcHitsRoute && (dstHasIp(dst, viewer) || viewer.subnetRoutes.some((vr) => dstOverlaps(dst, vr))));
        if (visible) return true;
      } else if (u.kind === 'via' && viaHosts(u, peer)) {
        const viewerIsSrc = src.ident.has(viewer.slot) || src.addrIp.has(viewer.slot);
        const visible =
          viewerIsSrc &&
          u.prefixes.some((p) => nodeRoutesOverlap(peer, p.prefix) && rangesOverlap(p.prefix, route));
        if (visible) return true;
      }
    }
    return false;
  }

  /** Do a src set's addresses overlap `r` (node addresses of members are ignored, see README)? */
  private srcOverlaps(set: PSet, r: Range): boolean {
    const spec = set.spec;
    if (spec.dangerAll) return true;
    if (spec.literals.some((l) => rangesOverlap(l.prefix, r))) return true;
    if (spec.wildcard) {
      if (WILDCARD_SET.overlaps(r)) return true;
      for (const text of this.store.routeCount.keys()) {
        const p = parsePrefix(text);
        if (p !== null && rangesOverlap(p, r)) return true;
      }
    }
    return false;
  }
}

function dstOverlaps(set: PSet, r: Range): boolean {
  const spec = set.spec;
  if (spec.wildcard) return true;
  if (spec.internet && INTERNET_SET.overlaps(r)) return true;
  return spec.literals.some((l) => rangesOverlap(l.prefix, r));
}

/** Does a dst set contain one of the node's addresses? */
function dstHasIp(set: PSet, n: NodeRec): boolean {
  if (set.ident.has(n.slot) || set.spec.wildcard) return true;
  return (
    set.spec.literals.some((l) => nodeIpIn(n, l.prefix)) ||
    (set.spec.internet && n.addrs.some((a) => INTERNET_SET.containsAddr(a)))
  );
}
