/**
 * The tailnets' policies as the fan-out sees them: one incremental PolicyEngine per tailnet (no
 * policy document = the default allow-all), kept in step with the read model. Every node, user or
 * policy change is applied to the engine at once, and what it reports changed (filters, peer sets
 * with per-node deltas, SSH policies, node capabilities) becomes a `policy-effects` change for the
 * streams. A policy document that no longer parses keeps the previous one in force.
 */
import { processMetrics, type Histogram } from '@switchboard/metrics';
import type { Logger } from '@switchboard/common';
import type { NodeRecord } from '@switchboard/contracts';
import type { CapMap, FilterRule, SSHPolicy } from '@switchboard/protocol';
import {
  parsePolicy,
  PolicyEngine,
  type Policy,
  type PolicyChange,
  type PolicyNode,
} from '@switchboard/policy';
import type { PolicyView } from './fanout-engine.js';
import { trustedJson, type DeepReadonly, type Json } from './map-builder.js';
import type { ModelChange, PolicyEffects, ReadModelReader } from './read-model.js';

const DENY_ALL: Policy = parsePolicy('{"acls": []}');

export class PolicyState implements PolicyView {
  private engines = new Map<number, PolicyEngine>();
  private readonly userLogins = new Map<number, string>();
  /** Users disabled as this replica last applied them: their nodes are kept out of the engines. */
  private readonly disabledUsers = new Set<number>();

  constructor(
    private readonly model: ReadModelReader,
    private readonly log: Logger,
  ) {}

  /** The tailnet's policy (null = default allow-all), or `failed` when the stored text does not parse. */
  private policyFor(tailnetId: number): { ok: true; policy: Policy | null } | { ok: false } {
    const rec = this.model.policies.get(tailnetId);
    if (!rec?.text) return { ok: true, policy: null };
    try {
      return { ok: true, policy: parsePolicy(rec.text, { externalGroups: 'any' }) };
    } catch (err) {
      // policy-compiler only stores policies that parse; this means the replicas run different versions.
      this.log.error(
        'the stored policy does not parse on this replica; keeping the previous one (or denying all)',
        {
          tailnetId,
          version: rec.version,
          err,
        },
      );
      return { ok: false };
    }
  }

  private engine(tailnetId: number): PolicyEngine {
    let e = this.engines.get(tailnetId);
    if (!e) {
      e = this.build(tailnetId);
      this.engines.set(tailnetId, e);
    }
    return e;
  }

  private build(tailnetId: number): PolicyEngine {
    const nodes: PolicyNode[] = [];
    for (const n of this.model.nodes.values())
      if (n.tailnetId === tailnetId && this.active(n)) nodes.push(this.toPolicyNode(n));
    const p = this.policyFor(tailnetId);
    // Fail closed: a policy that cannot be read here must not turn into allow-all.
    const policy = p.ok ? p.policy : (this.engines.get(tailnetId)?.currentPolicy() ?? DENY_ALL);
    const end = policyCompileSeconds().startTimer({ service: 'netmap-fanout' });
    try {
      const e = new PolicyEngine(policy, { nodes, userGroups: this.userGroups(tailnetId) });
      end({ outcome: 'ok' });
      return e;
    } catch (err) {
      end({ outcome: 'error' });
      throw err;
    }
  }

  private userGroups(tailnetId: number): [string, string[]][] {
    const out: [string, string[]][] = [];
    for (const u of this.model.users.values())
      if (u.tailnetId === tailnetId && u.groups.length > 0) out.push([u.loginName, u.groups]);
    return out;
  }

  /**
   * A node of a disabled user is not in the policy engine: it has no peers and is no one's peer
   * (its stream stays open, so enabling the user again brings everything back at once).
   */
  private active(n: NodeRecord): boolean {
    return n.userId === null || n.tags.length > 0 || !this.model.users.get(n.userId)?.disabled;
  }

  toPolicyNode(n: NodeRecord): PolicyNode {
    const login =
      n.userId === null ? null : (this.model.users.get(n.userId)?.loginName ?? `user-${n.userId}`);
    if (n.userId !== null && login !== null) this.userLogins.set(n.userId, login);
    return {
      id: String(n.id),
      user: n.tags.length > 0 ? null : login,
      tags: n.tags,
      ipv4: n.ipv4,
      ipv6: n.ipv6,
      routableIPs: n.routableIPs,
      approvedRoutes: n.approvedRoutes,
    };
  }

  /** Rebuilds every engine from the model (after a snapshot load); streams then recompute fully. */
  rebuildAll(): ModelChange[] {
    const tailnets = new Set<number>([
      ...this.engines.keys(),
      ...[...this.model.nodes.values()].map((n) => n.tailnetId),
    ]);
    const next = new Map<number, PolicyEngine>();
    const out: ModelChange[] = [];
    for (const t of tailnets) {
      next.set(t, this.build(t));
      out.push({ kind: 'policy', tailnetId: t });
    }
    this.engines = next;
    return out;
  }

  /** Applies one model change to the engines; returns the policy effects to fan out, if any. */
  follow(c: ModelChange): ModelChange | null {
    switch (c.kind) {
      case 'node': {
        const e = this.engine(c.tailnetId);
        const id = String(c.nodeId);
        const change =
          c.after && this.active(c.after)
            ? e.upsertNode(this.toPolicyNode(c.after))
            : e.hasNode(id)
              ? e.removeNode(id)
              : null;
        return change ? effects(c.tailnetId, change) : null;
      }
      case 'policy': {
        const e = this.engine(c.tailnetId);
        const parsed = this.policyFor(c.tailnetId);
        if (!parsed.ok) return null;
        return effects(c.tailnetId, e.setPolicy(parsed.policy), true);
      }
      case 'user': {
        const u = c.after;
        if (!u) return null;
        const e = this.engine(u.tailnetId);
        const all: ModelChange[] = [];
        const before = this.userLogins.get(u.id);
        if (before !== undefined && before !== u.loginName) {
          // Re-key the user's nodes under the new login.
          for (const n of this.model.nodes.values())
            if (n.userId === u.id) all.push(effects(u.tailnetId, e.upsertNode(this.toPolicyNode(n))));
        }
        this.userLogins.set(u.id, u.loginName);
        all.push(effects(u.tailnetId, e.setUserGroups(u.loginName, u.groups)));
        if ((u.disabled === true) !== this.disabledUsers.has(u.id))
          all.push(...this.toggleUser(u.id, u.tailnetId, u.disabled === true));
        return mergeEffects(u.tailnetId, all);
      }
      case 'tailnet':
      case 'presence':
      case 'policy-effects':
        return null;
    }
  }

  /** Takes a disabled user's nodes out of the engine (or puts them back); their own streams recompute. */
  private toggleUser(userId: number, tailnetId: number, disabled: boolean): ModelChange[] {
    if (disabled) this.disabledUsers.add(userId);
    else this.disabledUsers.delete(userId);
    const e = this.engine(tailnetId);
    const out: ModelChange[] = [];
    const own = new Set<number>();
    for (const n of this.model.nodes.values()) {
      if (n.userId !== userId || n.tags.length > 0) continue;
      own.add(n.id);
      const id = String(n.id);
      const change = disabled
        ? e.hasNode(id)
          ? e.removeNode(id)
          : null
        : e.upsertNode(this.toPolicyNode(n));
      if (change) out.push(effects(tailnetId, change));
    }
    out.push({
      kind: 'policy-effects',
      tailnetId,
      filterChanged: own,
      peersChanged: own,
      sshChanged: own,
      capsChanged: own,
      peerDelta: undefined,
    });
    return out;
  }

  // ---- PolicyView

  canSee(viewer: NodeRecord, peer: NodeRecord): boolean {
    return (
      viewer.tailnetId === peer.tailnetId &&
      this.engine(viewer.tailnetId).canSee(String(viewer.id), String(peer.id))
    );
  }
  peerIds(viewer: NodeRecord): number[] {
    const e = this.engine(viewer.tailnetId);
    const id = String(viewer.id);
    return e.hasNode(id) ? e.peersOf(id).map(Number) : [];
  }
  filterJson(viewer: NodeRecord): Json<FilterRule[]> {
    const e = this.engine(viewer.tailnetId);
    const id = String(viewer.id);
    return trustedJson(e.hasNode(id) ? e.filterJsonFor(id) : '[]');
  }
  sshPolicy(viewer: NodeRecord): DeepReadonly<SSHPolicy> | null {
    const e = this.engine(viewer.tailnetId);
    const id = String(viewer.id);
    return e.hasNode(id) ? e.sshPolicyFor(id) : null;
  }
  peerRoutes(viewer: NodeRecord, peer: NodeRecord): string[] {
    const e = this.engine(viewer.tailnetId);
    const v = String(viewer.id);
    const p = String(peer.id);
    return e.hasNode(v) && e.hasNode(p) ? e.routesVisibleTo(v, p) : [];
  }
  capMap(viewer: NodeRecord): Readonly<CapMap> {
    const e = this.engine(viewer.tailnetId);
    const id = String(viewer.id);
    return e.hasNode(id) ? e.nodeCapsFor(id) : {};
  }
}

const toNums = (s: ReadonlySet<string>): Set<number> => new Set([...s].map(Number));

function effects(tailnetId: number, c: PolicyChange, full = false): PolicyEffects {
  let delta: Map<number, { added: number[]; removed: number[] }> | undefined;
  if (c.peerDelta && !full) {
    delta = new Map();
    for (const [id, d] of c.peerDelta)
      delta.set(Number(id), { added: d.added.map(Number), removed: d.removed.map(Number) });
  }
  return {
    kind: 'policy-effects',
    tailnetId,
    filterChanged: toNums(c.filterChanged),
    peersChanged: toNums(c.peersChanged),
    sshChanged: toNums(c.sshChanged),
    capsChanged: toNums(c.capsChanged),
    peerDelta: delta,
  };
}

function mergeEffects(tailnetId: number, list: ModelChange[]): ModelChange | null {
  const fx = list.filter((x): x is PolicyEffects => x.kind === 'policy-effects');
  if (fx.length === 0) return null;
  if (fx.length === 1) return fx[0]!;
  const out: PolicyEffects = {
    kind: 'policy-effects',
    tailnetId,
    filterChanged: new Set(),
    peersChanged: new Set(),
    sshChanged: new Set(),
    capsChanged: new Set(),
    peerDelta: undefined,
  };
  for (const f of fx) {
    for (const k of ['filterChanged', 'peersChanged', 'sshChanged', 'capsChanged'] as const)
      for (const id of f[k]) (out[k] as Set<number>).add(id);
  }
  return out;
}

function policyCompileSeconds(): Histogram<string> {
  return processMetrics().histogram(
    'switchboard_policy_compile_duration_seconds',
    'Policy compiles (parse, validate, build the per-node filters) and their duration, by service and outcome.',
    ['service', 'outcome'],
  );
}
