/**
 * SSH policy: the policy's `ssh` rules compiled over the membership index (source and
 * destination sets are ordinary source-role sets) and each node's Tailscale `SSHPolicy`,
 * computed on demand and cached.
 *
 * Change detection is structural: after a mutation, every destination of a rule that a touched
 * node matched before or after may have changed (an over-approximation), plus the touched nodes.
 */
import type { SpecFactory } from './compile.js';
import { formatRange, type Addr } from './ip.js';
import type { MembershipIndex, PSet } from './membership.js';
import type { NodeRec } from './node-state.js';
import type { NodeStore } from './node-store.js';
import type { Policy, SshAction, SshPolicy, SshPolicyRule, SshRule } from './types.js';

interface SshCompiled {
  readonly rule: SshRule;
  readonly src: PSet;
  readonly dst: PSet | null;
  readonly hasSelf: boolean;
  readonly sshUsers: Readonly<Record<string, string>>;
  readonly localpartDomains: readonly string[];
}

/** A touched node's SSH rule matches before a change. */
export interface SshBefore {
  readonly sshRules: ReadonlySet<number>;
}

function taggedPrincipals(addrs: readonly Addr[]): { nodeIP: string }[] {
  return addrs.map((a) => ({ nodeIP: formatRange({ family: a.family, first: a.value, last: a.value }) }));
}

function principals(addrs: readonly Addr[]): { nodeIP: string }[] {
  return [...addrs]
    .sort((x, y) => (x.family !== y.family ? x.family - y.family : x.value < y.value ? -1 : 1))
    .map((a) => ({ nodeIP: formatRange({ family: a.family, first: a.value, last: a.value }) }));
}

function compileSshRule(sets: MembershipIndex, factory: SpecFactory, rule: SshRule): SshCompiled {
  const src = sets.setFor(
    factory,
    rule.src.map((r) => r.alias),
    'src',
  );
  const others = rule.dst.filter((d) => !(d.alias.kind === 'autogroup' && d.alias.name === 'autogroup:self'));
  const dst =
    others.length > 0
      ? sets.setFor(
          factory,
          others.map((r) => r.alias),
          'src',
        )
      : null;
  const names = rule.users.map((u) => u.name);
  const localpartDomains: string[] = [];
  const normal: string[] = [];
  for (const n of names) {
    const m = /^localpart:\*@(.+)$/.exec(n);
    if (m?.[1] !== undefined) localpartDomains.push(m[1]);
    else if (n !== 'root' && n !== 'autogroup:nonroot') normal.push(n);
  }
  const map = new Map<string, string>();
  if (names.includes('autogroup:nonroot')) map.set('*', '=');
  map.set('root', names.includes('root') ? 'root' : '');
  for (const n of normal) map.set(n, n);
  const sshUsers: Record<string, string> = {};
  for (const k of [...map.keys()].sort()) sshUsers[k] = map.get(k) ?? '';
  return {
    rule,
    src,
    dst,
    hasSelf: others.length !== rule.dst.length,
    sshUsers,
    localpartDomains,
  };
}

export class SshPolicies {
  private rules: SshCompiled[] = [];
  private readonly cache = new Map<number, SshPolicy | null>();
  private policy: Policy;

  constructor(
    private readonly store: NodeStore,
    private readonly sshCheckUrlBase: string,
    policy: Policy,
  ) {
    this.policy = policy;
  }

  /** Compiles the policy's ssh rules (called while the membership index is rebuilt). */
  compile(policy: Policy, sets: MembershipIndex, factory: SpecFactory): void {
    this.policy = policy;
    this.rules = [];
    this.cache.clear();
    for (const rule of policy.ssh ?? []) this.rules.push(compileSshRule(sets, factory, rule));
  }

  drop(slot: number): void {
    this.cache.delete(slot);
  }

  clear(): void {
    this.cache.clear();
  }

  /** Tailscale SSH policy for a node; null when the policy has no `ssh` section. */
  sshPolicyFor(n: NodeRec): SshPolicy | null {
    if (this.cache.has(n.slot)) return this.cache.get(n.slot) ?? null;
    const p = this.computeSsh(n);
    this.cache.set(n.slot, p);
    return p;
  }

  /** Indexes of the rules whose sources or destinations the node matches by identity. */
  rulesMatching(n: NodeRec): Set<number> {
    const out = new Set<number>();
    this.rules.forEach((c, i) => {
      if (c.src.ident.has(n.slot) || c.dst?.ident.has(n.slot) === true) out.add(i);
    });
    return out;
  }

  /**
   * Nodes whose SSH policy may have changed (structural over-approximation; empty when the
   * policy has no `ssh` section), dropping their cached policies.
   */
  changes(
    before: Iterable<SshBefore>,
    after: ReadonlyMap<string, NodeRec>,
    affectedUsers: ReadonlySet<string>,
  ): Set<string> {
    const sshChanged = new Set<string>();
    if (this.policy.ssh === null) return sshChanged;
    const rulesHit = new Set<number>();
    for (const b of before) for (const r of b.sshRules) rulesHit.add(r);
    for (const a of after.values()) for (const r of this.rulesMatching(a)) rulesHit.add(r);
    const add = (slot: number): void => {
      const n = this.store.nodes[slot];
      if (n !== undefined) sshChanged.add(n.id);
    };
    for (const i of rulesHit) {
      const c = this.rules[i];
      if (c === undefined) continue;
      c.dst?.ident.forEach(add);
      if (c.hasSelf)
        for (const u of affectedUsers) for (const m of this.store.userNodeList(u)) sshChanged.add(m.id);
      if (c.localpartDomains.length > 0) c.src.ident.forEach(add);
    }
    for (const id of after.keys()) sshChanged.add(id);
    for (const id of sshChanged) {
      const s = this.store.idToSlot.get(id);
      if (s !== undefined) this.cache.delete(s);
    }
    return sshChanged;
  }

  private action(c: SshCompiled): SshAction {
    return c.rule.action === 'check'
      ? {
          holdAndDelegate: `${this.sshCheckUrlBase}/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER`,
        }
      : {
          accept: true,
          allowAgentForwarding: true,
          allowLocalPortForwarding: true,
          allowRemotePortForwarding: true,
        };
  }

  /**
   * Source nodes of a rule grouped by user; tagged nodes repeat once per tag (SaaS wire format).
   * Users are ordered by their oldest node (lowest id), standing in for SaaS's user-id order.
   */
  private sourcesByUser(c: SshCompiled): { byUser: Map<string, Addr[]>; tagged: Addr[] } {
    const byUser = new Map<string, Addr[]>();
    const tagged: Addr[] = [];
    for (const slot of this.store.order) {
      const n = this.store.nodes[slot];
      if (n === undefined || !c.src.ident.has(slot)) continue;
      if (n.tagged) {
        for (let i = 0; i < n.tags.size; i++) tagged.push(...n.addrs);
      } else if (n.user !== null) {
        const list = byUser.get(n.user) ?? [];
        list.push(...n.addrs);
        byUser.set(n.user, list);
      }
    }
    return { byUser, tagged };
  }

  private computeSsh(m: NodeRec): SshPolicy | null {
    if (this.policy.ssh === null || this.policy.ssh.length === 0) return null;
    const rules: SshPolicyRule[] = [];
    for (const c of this.rules) {
      if (c.src.ident.isEmpty()) continue;
      this.rulesFor(c, m, rules);
    }
    const checks = rules.filter((r) => r.action.holdAndDelegate !== undefined);
    const accepts = rules.filter((r) => r.action.holdAndDelegate === undefined);
    return { rules: [...checks, ...accepts] };
  }

  /** Appends what one compiled rule gives node `m`. */
  private rulesFor(c: SshCompiled, m: NodeRec, rules: SshPolicyRule[]): void {
    const action = this.action(c);
    const env =
      c.rule.acceptEnv !== null && c.rule.acceptEnv.length > 0 ? { acceptEnv: c.rule.acceptEnv } : {};
    const { byUser, tagged } = this.sourcesByUser(c);
    const users = [...byUser.keys()];
    const localpart = (login: string): string | null => {
      const at = login.lastIndexOf('@');
      if (at < 0) return null;
      const domain = login.slice(at + 1).toLowerCase();
      return c.localpartDomains.some((d) => d.toLowerCase() === domain) ? login.slice(0, at) : null;
    };
    const append = (ps: { nodeIP: string }[], login: string | null): void => {
      rules.push({ principals: ps, sshUsers: c.sshUsers, action, ...env });
      if (login !== null && c.localpartDomains.length > 0) {
        const lp = localpart(login);
        if (lp !== null) rules.push({ principals: ps, sshUsers: { [lp]: lp }, action, ...env });
      }
    };
    if (c.hasSelf && !m.tagged && m.user !== null) {
      const mine = byUser.get(m.user);
      if (mine !== undefined && mine.length > 0) append(principals(mine), m.user);
    }
    if (c.dst === null) return;
    if (c.dst.ident.has(m.slot)) {
      if (c.localpartDomains.length > 0) {
        for (const u of users) append(principals(byUser.get(u) ?? []), u);
        if (tagged.length > 0) append(principals(tagged).slice(), null);
      } else {
        const all = [...users.flatMap((u) => principals(byUser.get(u) ?? [])), ...taggedPrincipals(tagged)];
        if (all.length > 0) append(all, null);
      }
    } else if (c.localpartDomains.length > 0 && c.src.ident.has(m.slot)) {
      if (m.tagged) append(principals(m.addrs), null);
      else if (m.user !== null) append(principals(byUser.get(m.user) ?? []), m.user);
    }
  }
}
