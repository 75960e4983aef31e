/**
 * PolicyEngine: compiles a policy for a changing set of nodes, incrementally. The public facade
 * over the engine's parts (README "How compilation works"):
 *
 *  - node-store.ts      node slots and indexes, group memberships
 *  - membership.ts      principal sets as bit sets over slots, the selector index
 *  - src-render.ts      SrcIPs rendering and content hashes
 *  - dst-reduce.ts      destinations reduced to one node's entries (pure)
 *  - filters.ts         per-node packet filters (plans), merge keys, filter change detection
 *  - peers.ts           peer visibility; route-visibility.ts, per-pair route visibility
 *  - ssh-policy.ts      per-node SSH policy
 *  - node-caps.ts       nodeAttrs capabilities
 *  - ownership.ts       tagOwners and autoApprovers (pure)
 *  - incremental.ts     the coordinator: applies each change and collects what changed
 *  - address-queries.ts selectors and rules as addresses, for the policy's own tests
 *
 * This class only validates ids and delegates; it holds no state of its own.
 */
import { AddressQueries, type GlobalRule } from './address-queries.js';
import { IncrementalCoordinator } from './incremental.js';
import type { Addr, Range } from './ip.js';
import { compareNodeIds } from './node-store.js';
import {
  autoApprovedRoutes,
  tagsAllowedFor,
  tagsAllowedForTags,
  type GroupLookup,
  type TagCheck,
} from './ownership.js';
import type { PolicyChange } from './policy-change.js';
import { RouteVisibility } from './route-visibility.js';
import { normalizeLogin } from './syntax.js';
import type { Alias, FilterRule, NodeCapMap, Policy, PolicyNode, SshPolicy } from './types.js';

export { compareNodeIds };
export type { PeerDelta, PolicyChange } from './policy-change.js';
export type { TagCheck } from './ownership.js';

export interface PolicyEngineOptions {
  readonly nodes?: Iterable<PolicyNode>;
  /** Identity-provider groups per user login (names with or without `group:`). */
  readonly userGroups?: Iterable<readonly [string, readonly string[]]>;
  /** Base URL for SSH `check` actions (`<base>/machine/ssh/action/...`). */
  readonly sshCheckUrlBase?: string;
}

export class PolicyEngine {
  private readonly core: IncrementalCoordinator;
  private readonly routes: RouteVisibility;
  private readonly queries: AddressQueries;
  private readonly groupsOf: GroupLookup;

  /** `policy` null means the default policy: allow all, everyone sees everyone. */
  constructor(policy: Policy | null, options: PolicyEngineOptions = {}) {
    const core = new IncrementalCoordinator(policy, options);
    this.core = core;
    this.routes = new RouteVisibility(core.store, core.sets, core.peers);
    this.queries = new AddressQueries(core.store, core.sets, core.renderer);
    this.groupsOf = (login) => core.store.groupsOf(login);
  }

  // -------------------------------------------------------------------------------------------
  // Per-node outputs

  /** The packet filter for a node: every rule whose destination covers it, reduced and merged. */
  filterFor(id: string): FilterRule[] {
    return this.core.filters.filterFor(this.core.store.node(id));
  }

  /** The packet filter serialized as tailcfg JSON (cached; SrcIPs fragments are shared). */
  filterJsonFor(id: string): string {
    return this.core.filters.filterJsonFor(this.core.store.node(id));
  }

  /** Ids of the nodes `id` sees (either may reach the other), in canonical id order. */
  peersOf(id: string): string[] {
    return this.core.peers.peersOf(this.core.store.node(id));
  }

  /** True if `a` and `b` see each other. */
  canSee(a: string, b: string): boolean {
    if (a === b) return false;
    const store = this.core.store;
    return this.core.peers.peerBits(store.node(a)).has(store.node(b).slot);
  }

  /**
   * The peer's approved subnet routes the viewer may use (for the peer's AllowedIPs as seen by
   * the viewer; headscale CanAccessRoute semantics, including via grants). Exit routes are not
   * included (they are always offered) and primary-router election is left to the caller.
   */
  routesVisibleTo(viewerId: string, peerId: string): string[] {
    const store = this.core.store;
    const viewer = store.node(viewerId);
    return this.routes.routesVisibleTo(viewer, store.node(peerId));
  }

  /** Tailscale SSH policy for a node; null when the policy has no `ssh` section. */
  sshPolicyFor(id: string): SshPolicy | null {
    return this.core.ssh.sshPolicyFor(this.core.store.node(id));
  }

  /** Node capabilities granted by `nodeAttrs` (and `randomizeClientPort`). */
  nodeCapsFor(id: string): NodeCapMap {
    return this.core.caps.nodeCapsFor(this.core.store.node(id));
  }

  // -------------------------------------------------------------------------------------------
  // autoApprovers, tagOwners

  /**
   * Routes from `node.routableIPs` that autoApprovers allow this node to have approved
   * (subnet routes via `routes` with a covering prefix; exit routes only via `exitNode`).
   */
  autoApprovedRoutes(node: PolicyNode): string[] {
    return autoApprovedRoutes(this.core.policy, node, this.groupsOf);
  }

  /**
   * tagOwners check for tags requested by a user (e.g. on a pre-auth key): each tag must be
   * defined and the user must own it directly, through a group, or through a tag that owns it.
   */
  tagsAllowedFor(ownerLogin: string, tags: readonly string[]): TagCheck {
    return tagsAllowedFor(this.core.policy, ownerLogin, tags, this.groupsOf);
  }

  /** tagOwners check for a credential that itself carries tags (tag→tag ownership, transitively). */
  tagsAllowedForTags(ownerTags: readonly string[], tags: readonly string[]): TagCheck {
    return tagsAllowedForTags(this.core.policy, ownerTags, tags);
  }

  // -------------------------------------------------------------------------------------------
  // Bookkeeping and mutations

  hasNode(id: string): boolean {
    return this.core.store.idToSlot.has(id);
  }

  nodeIds(): string[] {
    const store = this.core.store;
    return store.order.map((s) => store.nodes[s]?.id ?? '');
  }

  /** The node as last given to the engine. */
  getNode(id: string): PolicyNode | undefined {
    return this.core.store.get(id)?.input;
  }

  /** The current policy (null-policy engines report the empty allow-all policy). */
  currentPolicy(): Policy {
    return this.core.policy;
  }

  /** Adds a node or replaces it (tags, routes, user, addresses, groups). */
  upsertNode(node: PolicyNode): PolicyChange {
    return this.core.upsertNode(node);
  }

  /** Removes a node. Unknown ids are ignored. */
  removeNode(id: string): PolicyChange {
    return this.core.removeNode(id);
  }

  /** Sets a user's identity-provider groups; affects that user's untagged nodes. */
  setUserGroups(login: string, groups: readonly string[]): PolicyChange {
    return this.core.setUserGroups(login, groups);
  }

  /** Replaces the policy (null: allow all). Returns the nodes whose outputs changed. */
  setPolicy(policy: Policy | null): PolicyChange {
    return this.core.setPolicy(policy);
  }

  // -------------------------------------------------------------------------------------------
  // Support for policy tests (policy-tests.ts)

  /** @internal Resolves a source/destination selector to the addresses it stands for now. */
  resolveAddrs(alias: Alias): Range[] {
    return this.queries.resolveAddrs(alias);
  }

  /** @internal The unreduced global rules (no self/via), as address sets, for `tests`. */
  globalRules(): GlobalRule[] {
    return this.queries.globalRules();
  }

  /** @internal Nodes matched by an SSH test destination (by identity or address). */
  nodesForAlias(alias: Alias): string[] {
    return this.queries.nodesForAlias(alias);
  }

  /** @internal Untagged nodes of a user. */
  userNodeIds(login: string): string[] {
    return this.core.store.userNodeList(normalizeLogin(login)).map((n) => n.id);
  }

  /** @internal The node's addresses. */
  nodeAddrs(id: string): readonly Addr[] {
    return this.core.store.node(id).addrs;
  }
}
