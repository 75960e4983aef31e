/**
 * The incremental coordinator: owns the engine's parts and applies every change to them in one
 * fixed order, then asks each part which nodes' outputs the change affected.
 *
 *   node store  →  membership index  →  SrcIPs renderer  →  filters, peers, SSH, caps
 *
 * A mutation (`mutate`) runs as named steps: snapshot the touched nodes' outputs, apply the
 * change to the node store, refresh the touched nodes' bits in the sets that can contain them,
 * bring the sources' content hashes up to date, then collect the exact filter and peer changes,
 * the (over-approximated) SSH changes and the caps changes. Slots of touched nodes stay stable
 * during a mutation (a removed node's slot is released afterwards), so old and new bit sets can
 * be compared slot for slot. `setPolicy` is a full rebuild compared node by node.
 */
import type { BitSet } from './bitset.js';
import { compilePolicy, type CompiledPolicy } from './compile.js';
import { FilterCompiler, planEquals, type PlanRule } from './filters.js';
import { MembershipIndex, type PSet } from './membership.js';
import { NodeCaps } from './node-caps.js';
import { groupName, makeNodeRec, type NodeRec } from './node-state.js';
import { NodeStore, sameSet } from './node-store.js';
import { PeerVisibility } from './peers.js';
import { EMPTY_POLICY } from './policy.js';
import { ChangeResult, emptyChange, type PolicyChange } from './policy-change.js';
import { SrcRenderer } from './src-render.js';
import { SshPolicies } from './ssh-policy.js';
import { normalizeLogin } from './syntax.js';
import type { Policy, PolicyNode } from './types.js';

export interface CoordinatorOptions {
  readonly nodes?: Iterable<PolicyNode>;
  readonly userGroups?: Iterable<readonly [string, readonly string[]]>;
  readonly sshCheckUrlBase?: string;
}

/** A touched node's outputs and memberships before a mutation. */
interface Before {
  readonly rec: NodeRec;
  readonly plan: readonly PlanRule[];
  readonly peers: BitSet;
  readonly caps: string;
  readonly identSrc: ReadonlySet<PSet>;
  readonly relevant: ReadonlySet<PSet>;
  readonly sshRules: ReadonlySet<number>;
}

/** Everything a mutation compares against, taken before it is applied. */
interface Snapshot {
  readonly before: Map<string, Before>;
  /** Users whose `autogroup:self` rules may change (grows when the touched nodes are re-read). */
  readonly affectedUsers: Set<string>;
  readonly selfBefore: Map<string, Map<number, string>>;
  readonly routeKeysBefore: ReadonlySet<string>;
  readonly firstPosBefore: ReadonlyMap<string, number>;
}

export class IncrementalCoordinator {
  readonly store = new NodeStore();
  readonly sets: MembershipIndex;
  readonly renderer: SrcRenderer;
  readonly filters: FilterCompiler;
  readonly peers: PeerVisibility;
  readonly ssh: SshPolicies;
  readonly caps: NodeCaps;

  /** `policy` null means the default policy: allow all, everyone sees everyone. */
  constructor(policy: Policy | null, options: CoordinatorOptions = {}) {
    const pol = policy ?? EMPTY_POLICY;
    const compiled = compilePolicy(policy);
    this.sets = new MembershipIndex(this.store, pol, compiled);
    this.renderer = new SrcRenderer(this.store, this.sets);
    this.filters = new FilterCompiler(this.store, this.sets, this.renderer);
    this.peers = new PeerVisibility(this.store, this.sets);
    this.ssh = new SshPolicies(this.store, options.sshCheckUrlBase ?? '', pol);
    this.caps = new NodeCaps(this.store, pol);
    const userGroups = [...(options.userGroups ?? [])].map(
      ([login, groups]) => [normalizeLogin(login), new Set(groups.map(groupName))] as const,
    );
    this.store.load(options.nodes ?? [], userGroups);
    this.rebuild(pol, compiled);
  }

  /** The current policy (null-policy engines report the empty allow-all policy). */
  get policy(): Policy {
    return this.sets.policy;
  }

  private rebuild(policy: Policy, compiled: CompiledPolicy): void {
    this.sets.rebuild(policy, compiled, (factory) => this.ssh.compile(policy, this.sets, factory));
    this.renderer.reset();
    this.filters.reset();
    this.peers.clear();
    this.caps.setPolicy(policy);
  }

  // -------------------------------------------------------------------------------------------
  // Changes

  /** Adds a node or replaces it (tags, routes, user, addresses, groups). */
  upsertNode(node: PolicyNode): PolicyChange {
    const old = this.store.get(node.id);
    const probe = makeNodeRec(node, old?.slot ?? 0);
    if (old !== undefined && old.fingerprint === probe.fingerprint) return emptyChange();
    const touched = new Set<string>([node.id]);
    const users = new Set<string>();
    if (probe.user !== null) users.add(probe.user);
    const groupsChange =
      probe.user !== null &&
      probe.groups !== undefined &&
      !sameSet(this.store.externalGroupsOf(probe.user), probe.groups);
    if (groupsChange && probe.user !== null)
      for (const m of this.store.userNodeList(probe.user)) touched.add(m.id);
    return this.mutate(touched, users, () => {
      if (old === undefined) this.store.add(node);
      else this.store.replace(old, node);
    });
  }

  /** Removes a node. Unknown ids are ignored. */
  removeNode(id: string): PolicyChange {
    const old = this.store.get(id);
    if (old === undefined) return emptyChange();
    const change = this.mutate(new Set([id]), new Set(), () => this.store.remove(old));
    this.store.releaseSlot(old.slot);
    return change;
  }

  /** Sets a user's identity-provider groups; affects that user's untagged nodes. */
  setUserGroups(login: string, groups: readonly string[]): PolicyChange {
    const user = normalizeLogin(login);
    const next = new Set(groups.map(groupName));
    if (sameSet(this.store.externalGroupsOf(user), [...next])) return emptyChange();
    const touched = new Set(this.store.userNodeList(user).map((n) => n.id));
    return this.mutate(touched, new Set([user]), () => {
      this.store.setExternalGroups(user, [...next]);
    });
  }

  /** Replaces the policy (null: allow all): a full rebuild, compared node by node. */
  setPolicy(policy: Policy | null): PolicyChange {
    const live = this.store.order
      .map((s) => this.store.nodes[s])
      .filter((n): n is NodeRec => n !== undefined);
    const before = live.map((n) => ({
      id: n.id,
      plan: this.filters.plan(n),
      peers: this.peers.peerBits(n),
      ssh: JSON.stringify(this.ssh.sshPolicyFor(n)),
      caps: this.caps.snapshot(n),
    }));
    this.rebuild(policy ?? EMPTY_POLICY, compilePolicy(policy));
    const filterChanged = new Set<string>();
    const peersChanged = new Set<string>();
    const sshChanged = new Set<string>();
    const capsChanged = new Set<string>();
    for (const b of before) {
      const n = this.store.node(b.id);
      if (!planEquals(b.plan, this.filters.plan(n))) filterChanged.add(b.id);
      if (!b.peers.equals(this.peers.peerBits(n))) peersChanged.add(b.id);
      if (b.ssh !== JSON.stringify(this.ssh.sshPolicyFor(n))) sshChanged.add(b.id);
      if (b.caps !== this.caps.snapshot(n)) capsChanged.add(b.id);
    }
    return new ChangeResult(filterChanged, peersChanged, sshChanged, capsChanged, null, () => true);
  }

  // -------------------------------------------------------------------------------------------
  // The mutation steps

  /**
   * Applies a change to the touched nodes (whose slots stay stable) and computes exactly which
   * outputs changed. `users` names users whose `autogroup:self` rules may change besides the
   * touched nodes' current users.
   */
  private mutate(
    touchedIds: ReadonlySet<string>,
    users: ReadonlySet<string>,
    apply: () => void,
  ): PolicyChange {
    const snap = this.snapshotBefore(touchedIds, users);
    apply();
    const after = this.touchedAfter(touchedIds, snap.affectedUsers);
    const { touchedSets, dstWasNonEmpty } = this.refreshTouched(touchedIds, snap.before, after);
    const changedSets = this.renderer.sourceChanges(
      touchedSets,
      snap.before.values(),
      after.values(),
      snap.routeKeysBefore,
    );
    for (const u of snap.affectedUsers) this.renderer.dropSelfRenders(u);
    const filterChanged = this.filters.changes({
      touchedIds,
      before: snap.before,
      after,
      changedSets,
      dstWasNonEmpty,
      firstPosBefore: snap.firstPosBefore,
      selfBefore: snap.selfBefore,
      affectedUsers: snap.affectedUsers,
    });
    const { peersChanged, flips } = this.peers.changes(touchedIds, snap.before, after);
    const sshChanged = this.ssh.changes(snap.before.values(), after, snap.affectedUsers);
    const capsChanged = this.capsChanges(snap.before, after);
    return new ChangeResult(filterChanged, peersChanged, sshChanged, capsChanged, flips, (id) =>
      this.store.idToSlot.has(id),
    );
  }

  /** Step 1: the touched nodes' plans, peers, caps and memberships, and the tailnet-wide keys. */
  private snapshotBefore(touchedIds: ReadonlySet<string>, users: ReadonlySet<string>): Snapshot {
    const before = new Map<string, Before>();
    const affectedUsers = new Set(users);
    for (const id of touchedIds) {
      const rec = this.store.get(id);
      if (rec === undefined) continue;
      if (rec.user !== null) affectedUsers.add(rec.user);
      const relevant = this.sets.relevantSets(rec);
      before.set(id, {
        rec,
        plan: this.filters.plan(rec),
        peers: this.peers.peerBits(rec).clone(),
        caps: this.caps.snapshot(rec),
        identSrc: new Set([...relevant].filter((s) => s.role === 'src' && s.ident.has(rec.slot))),
        relevant,
        sshRules: this.ssh.rulesMatching(rec),
      });
    }
    const selfBefore = new Map<string, Map<number, string>>();
    if (this.sets.compiled.hasSelf)
      for (const u of affectedUsers) selfBefore.set(u, this.renderer.selfSnapshot(u));
    const routeKeysBefore = new Set(this.store.routeCount.keys());
    const firstPosBefore = this.filters.firstPositionsNow();
    return { before, affectedUsers, selfBefore, routeKeysBefore, firstPosBefore };
  }

  /** Step 2 (after `apply`): the touched nodes that exist now; their users are affected too. */
  private touchedAfter(touchedIds: ReadonlySet<string>, affectedUsers: Set<string>): Map<string, NodeRec> {
    const after = new Map<string, NodeRec>();
    for (const id of touchedIds) {
      const rec = this.store.get(id);
      if (rec === undefined) continue;
      after.set(id, rec);
      if (rec.user !== null) affectedUsers.add(rec.user);
    }
    return after;
  }

  /**
   * Step 3: re-evaluates each touched node against every set it could belong to before or after
   * (and its reach bits), and drops its cached outputs. Returns the sets refreshed and, for
   * destination sets, whether they had identity members before.
   */
  private refreshTouched(
    touchedIds: ReadonlySet<string>,
    before: ReadonlyMap<string, Before>,
    after: ReadonlyMap<string, NodeRec>,
  ): { touchedSets: Set<PSet>; dstWasNonEmpty: Map<PSet, boolean> } {
    const touchedSets = new Set<PSet>();
    const dstWasNonEmpty = new Map<PSet, boolean>();
    for (const id of touchedIds) {
      const rec = after.get(id) ?? before.get(id)?.rec;
      if (rec === undefined) continue;
      const present = after.has(id);
      const sets = new Set(before.get(id)?.relevant ?? []);
      if (present) for (const s of this.sets.relevantSets(rec)) sets.add(s);
      for (const set of sets) {
        if (set.role === 'dst' && !dstWasNonEmpty.has(set)) dstWasNonEmpty.set(set, set.identCount > 0);
        this.sets.refreshMember(set, rec, present);
        touchedSets.add(set);
      }
      this.sets.refreshReach(rec.slot);
      this.dropCaches(rec.slot);
    }
    return { touchedSets, dstWasNonEmpty };
  }

  private dropCaches(slot: number): void {
    this.filters.drop(slot);
    this.peers.drop(slot);
    this.ssh.drop(slot);
    this.caps.drop(slot);
  }

  /** Last step: caps depend only on the node itself, so only touched nodes can change (exact). */
  private capsChanges(before: ReadonlyMap<string, Before>, after: ReadonlyMap<string, NodeRec>): Set<string> {
    const capsChanged = new Set<string>();
    for (const [id, rec] of after) {
      if (before.get(id)?.caps !== this.caps.snapshot(rec)) capsChanged.add(id);
    }
    return capsChanged;
  }
}
