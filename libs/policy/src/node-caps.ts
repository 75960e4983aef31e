/**
 * Node capabilities: the `nodeAttrs` whose targets match a node (by identity or address), plus
 * `randomizeClientPort`, as a CapMap with null values. Computed on demand and cached per node;
 * a node's caps depend only on the node itself (and its user's groups), so after a change only
 * the touched nodes need comparing.
 */
import { userDomainOf, type IdentAlias } from './compile.js';
import { WILDCARD_SET } from './ip.js';
import { nodeIpIn, type NodeRec } from './node-state.js';
import type { NodeStore } from './node-store.js';
import { normalizeLogin } from './syntax.js';
import type { Alias, NodeCapMap, Policy } from './types.js';

export class NodeCaps {
  private readonly cache = new Map<number, NodeCapMap>();

  constructor(
    private readonly store: NodeStore,
    private policy: Policy,
  ) {}

  /** Installs a new policy and forgets every node's caps. */
  setPolicy(policy: Policy): void {
    this.policy = policy;
    this.cache.clear();
  }

  drop(slot: number): void {
    this.cache.delete(slot);
  }

  /** Node capabilities granted by `nodeAttrs` (and `randomizeClientPort`). */
  nodeCapsFor(n: NodeRec): NodeCapMap {
    let c = this.cache.get(n.slot);
    if (c === undefined) {
      c = this.computeCaps(n);
      this.cache.set(n.slot, c);
    }
    return c;
  }

  /** Comparable text of a node's caps (to detect changes). */
  snapshot(n: NodeRec): string {
    return JSON.stringify(this.nodeCapsFor(n));
  }

  private computeCaps(n: NodeRec): NodeCapMap {
    const caps: Record<string, null> = {};
    if (this.policy.randomizeClientPort) caps['randomize-client-port'] = null;
    for (const na of this.policy.nodeAttrs) {
      if (na.attr.length === 0) continue;
      if (
        !this.targetHas(
          na.target.map((t) => t.alias),
          n,
        )
      )
        continue;
      for (const a of na.attr) caps[a.name] = null;
    }
    return caps;
  }

  private targetHas(targets: readonly Alias[], n: NodeRec): boolean {
    for (const a of targets) {
      switch (a.kind) {
        case 'wildcard':
          if (n.addrs.some((x) => WILDCARD_SET.containsAddr(x))) return true;
          break;
        case 'prefix':
          if (nodeIpIn(n, a.prefix)) return true;
          break;
        case 'host': {
          const h = this.policy.hosts.get(a.name);
          if (h !== undefined && nodeIpIn(n, h.prefix)) return true;
          break;
        }
        case 'user': {
          const domain = userDomainOf(a.login);
          const alias: IdentAlias =
            domain !== null
              ? { kind: 'userDomain', domain }
              : { kind: 'user', login: normalizeLogin(a.login) };
          if (this.store.identAliasMatch(n, alias)) return true;
          break;
        }
        case 'group':
          if (this.store.identAliasMatch(n, { kind: 'group', name: a.name })) return true;
          break;
        case 'tag':
          if (n.tags.has(a.name)) return true;
          break;
        case 'autogroup':
          if (a.name === 'autogroup:member' && this.store.identAliasMatch(n, { kind: 'member' })) return true;
          if (a.name === 'autogroup:tagged' && n.tagged) return true;
          break;
      }
    }
    return false;
  }
}
