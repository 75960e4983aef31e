/**
 * policy-compiler domain logic. A policy is accepted only if it parses, validates and its own
 * `tests`/`sshTests` pass against the tailnet's current nodes; otherwise it is refused with every
 * issue located by line:column, and the running policy stays as it was. Each accepted version is
 * stored with its author, time and diff, and published (through the outbox) for the fan-out replicas,
 * which compile it per node. Until a policy is set, the default allow-all policy (version 0) applies.
 */
import type { Bus } from '@switchboard/bus';
import type { Db } from '@switchboard/db';
import { appendOutbox } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import {
  PolicyChanged,
  callRpc,
  identity,
  keyRegistry,
  type PolicyRecord,
  type PolicyVersion,
} from '@switchboard/contracts';
import {
  parsePolicy,
  PolicyEngine,
  policyTestsError,
  runPolicyTests,
  type Policy,
  type PolicyNode,
} from '@switchboard/policy';
import { lineDiff } from './line-diff.js';
import { PolicyCompilerError } from './policy-compiler.errors.js';
import { PolicyRepository } from './policy-compiler.repository.js';

export const POLICY_SCHEMA = 'policy';

export interface PolicyDeps {
  db: Db;
  bus: Bus;
  logger: Logger;
  kickOutbox: () => void;
}

export class PolicyCompilerService {
  private readonly repo = new PolicyRepository();
  constructor(private readonly deps: PolicyDeps) {}

  async get(tailnetId: number): Promise<PolicyRecord> {
    return this.repo.latest(this.deps.db, tailnetId);
  }

  async getVersion(tailnetId: number, version: number): Promise<PolicyRecord> {
    const p = await this.repo.version(this.deps.db, tailnetId, version);
    if (!p)
      throw new PolicyCompilerError(
        'policy_version_not_found',
        `no policy version ${version}`,
        'see "switchboard policy history"',
      );
    return p;
  }

  async snapshot(): Promise<PolicyRecord[]> {
    return this.repo.allLatest(this.deps.db);
  }

  async history(tailnetId: number, limit: number): Promise<PolicyVersion[]> {
    return this.repo.history(this.deps.db, tailnetId, limit);
  }

  /** The tailnet's nodes as the policy sees them, for running a policy's tests. */
  private async currentNodes(
    tailnetId: number,
  ): Promise<{ nodes: PolicyNode[]; groups: [string, string[]][] }> {
    const [{ nodes }, { users }] = await Promise.all([
      callRpc(this.deps.bus, keyRegistry.ListNodes, { tailnetId }, { timeoutMs: 30_000 }),
      callRpc(this.deps.bus, identity.ListUsers, {}, { timeoutMs: 30_000 }),
    ]);
    const login = new Map(users.map((u) => [u.id, u.loginName]));
    return {
      nodes: nodes.map((n) => ({
        id: String(n.id),
        user: n.tags.length > 0 || n.userId === null ? null : (login.get(n.userId) ?? `user-${n.userId}`),
        tags: n.tags,
        ipv4: n.ipv4,
        ipv6: n.ipv6,
        routableIPs: n.routableIPs,
        approvedRoutes: n.approvedRoutes,
      })),
      groups: users.filter((u) => u.groups.length > 0).map((u) => [u.loginName, u.groups]),
    };
  }

  /** Parses, validates and runs the policy's tests; throws PolicyError (code invalid_policy) when refused. */
  async check(tailnetId: number, text: string): Promise<{ policy: Policy; tests: number }> {
    const policy = parsePolicy(text);
    const tests = policy.tests.length + policy.sshTests.length;
    if (tests > 0) {
      const { nodes, groups } = await this.currentNodes(tailnetId);
      const failures = runPolicyTests(policy, nodes, { userGroups: groups });
      if (failures.length > 0) throw policyTestsError(failures);
    }
    return { policy, tests };
  }

  async set(
    tailnetId: number,
    text: string,
    author: string,
  ): Promise<{ policy: PolicyRecord; unchanged: boolean }> {
    try {
      await this.check(tailnetId, text);
    } catch (err) {
      this.deps.logger.warn('policy refused; the running policy is unchanged', { tailnetId, author, err });
      throw err;
    }
    const out = await this.deps.db.transaction(async (q) => {
      await this.repo.lock(q, tailnetId);
      const current = await this.repo.latest(q, tailnetId);
      if (current.text === text) return { policy: current, unchanged: true };
      const next: PolicyRecord = { tailnetId, version: current.version + 1, text };
      await this.repo.insert(q, {
        tailnetId,
        version: next.version,
        text,
        author,
        diff: lineDiff(current.text ?? '', text),
      });
      await appendOutbox(q, POLICY_SCHEMA, PolicyChanged.subject, { policy: next });
      return { policy: next, unchanged: false };
    });
    this.deps.kickOutbox();
    if (!out.unchanged)
      this.deps.logger.info('policy updated', { tailnetId, version: out.policy.version, author });
    return out;
  }

  async rollback(
    tailnetId: number,
    version: number,
    author: string,
  ): Promise<{ policy: PolicyRecord; unchanged: boolean }> {
    const target = await this.getVersion(tailnetId, version);
    return this.set(tailnetId, target.text ?? '', `${author} (rollback to v${version})`);
  }

  /** The routes the policy's autoApprovers approve for this node (only ever adds approvals). */
  async autoApproveRoutes(tailnetId: number, node: PolicyNode): Promise<string[]> {
    const current = await this.repo.latest(this.deps.db, tailnetId);
    if (!current.text) return [];
    const engine = new PolicyEngine(parsePolicy(current.text));
    return engine.autoApprovedRoutes(node);
  }

  /** tagOwners: may `ownerLogin` put these tags on keys or nodes? Without a policy no tag is owned. */
  async checkTags(
    tailnetId: number,
    ownerLogin: string,
    tags: string[],
  ): Promise<{ ok: boolean; denied: string[] }> {
    const current = await this.repo.latest(this.deps.db, tailnetId);
    if (!current.text) return { ok: tags.length === 0, denied: [...tags] };
    const engine = new PolicyEngine(parsePolicy(current.text));
    const r = engine.tagsAllowedFor(ownerLogin, tags);
    return { ok: r.ok, denied: [...r.denied] };
  }
}
