/**
 * policy-compiler domain logic. A policy is accepted only if it parses, validates and its own
 * `tests`/`sshTests` pass against the tailnet's current nodes; otherwise it is refused with every
 * issue located by line:column, and the running policy stays as it was. Each accepted version is
 * stored with its author, time and diff, and published (through the outbox) for the fan-out replicas,
 * which compile it per node. Until a policy is set, the default allow-all policy (version 0) applies.
 *
 * No other service is called on a request path: the nodes and users the tests run against come from
 * a local, event-fed view (`tailnet.view.ts`). Other services keep views of the policy, so `set`
 * replies only once its `policy-changed` event is in the log (ARCHITECTURE.md, "Stale views").
 */
import { processMetrics } from '@switchboard/metrics';
import type { Db } from '@switchboard/db';
import { appendOutbox } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import { PolicyChanged, type PolicyRecord, type PolicyVersion } from '@switchboard/contracts';
import {
  parsePolicy,
  PolicyEngine,
  policyTestsError,
  runPolicyTests,
  type Policy,
  type PolicyNode,
} from '@switchboard/policy';
import { lineDiff } from './line-diff.js';
import { nextPolicyVersion, tagsWithoutPolicy } from './policy-decisions.js';
import { PolicyCompilerError } from './policy-compiler.errors.js';
import { PolicyRepository } from './policy-compiler.repository.js';
import type { TailnetView } from './tailnet.view.js';

export const POLICY_SCHEMA = 'policy';

/** How long `set` waits for its event to reach the log before replying anyway. */
const PUBLISH_WAIT_MS = 2000;
/** How long a failing policy test waits before it is run once more against a caught-up view. */
const CONFIRM_REFUSAL_MS = 200;

/**
 * Groups the policy file does not define are identity-provider groups (imported at each login,
 * usually under a provider's `groupsPrefix`): valid before any user has them, matching no one
 * until someone does. key-registry and netmap-fanout parse stored policies the same way.
 */
const IDP_GROUPS = { externalGroups: 'any' } as const;

export interface PolicyDeps {
  db: Db;
  logger: Logger;
  kickOutbox: () => void;
  /** Resolves once the outbox is published (rejects after the timeout). */
  waitPublished: (timeoutMs: number) => Promise<void>;
  tailnet: TailnetView;
}

export class PolicyCompilerService {
  private readonly repo = new PolicyRepository();
  /** The current policy's engine per tailnet, built once per version (for tag and route checks). */
  private readonly engines = new Map<number, { version: number; engine: PolicyEngine | null }>();
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

  /** Parses, validates and runs the policy's tests; throws PolicyError (code invalid_policy) when refused. */
  async check(tailnetId: number, text: string): Promise<{ policy: Policy; tests: number }> {
    const end = processMetrics()
      .histogram(
        'switchboard_policy_compile_duration_seconds',
        'Policy compiles (parse, validate, build the per-node filters) and their duration, by service and outcome.',
        ['service', 'outcome'],
      )
      .startTimer({ service: 'policy-compiler' });
    try {
      const r = await this.checkOnce(tailnetId, text);
      end({ outcome: 'ok' });
      return r;
    } catch (err) {
      end({ outcome: 'refused' });
      throw err;
    }
  }

  private async checkOnce(tailnetId: number, text: string): Promise<{ policy: Policy; tests: number }> {
    const policy = parsePolicy(text, IDP_GROUPS);
    const tests = policy.tests.length + policy.sshTests.length;
    if (tests > 0) {
      const run = async () => {
        const { nodes, groups } = await this.deps.tailnet.current(tailnetId);
        return runPolicyTests(policy, nodes, { userGroups: groups });
      };
      let failures = await run();
      // A refusal is confirmed once more after a moment: a node registered just before this request
      // may still be on its way from key-registry's outbox to the log.
      if (failures.length > 0) {
        await new Promise((r) => setTimeout(r, CONFIRM_REFUSAL_MS));
        failures = await run();
      }
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
      const decision = nextPolicyVersion(current, text);
      if (decision.unchanged) return { policy: current, unchanged: true };
      const next = decision.next;
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
    if (!out.unchanged) {
      this.deps.logger.info('policy updated', { tailnetId, version: out.policy.version, author });
      await this.deps.waitPublished(PUBLISH_WAIT_MS).catch((err: unknown) => {
        // Stored all the same; other services' views see it once the relay gets through.
        this.deps.logger.warn('policy stored but its event is not in the log yet', { tailnetId, err });
      });
    }
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

  /** The current policy's engine, built once per version; null without a policy. */
  private async engine(tailnetId: number): Promise<PolicyEngine | null> {
    const current = await this.repo.latest(this.deps.db, tailnetId);
    const hit = this.engines.get(tailnetId);
    if (hit && hit.version === current.version) return hit.engine;
    const engine = current.text ? new PolicyEngine(parsePolicy(current.text, IDP_GROUPS)) : null;
    this.engines.set(tailnetId, { version: current.version, engine });
    return engine;
  }

  /** The routes the policy's autoApprovers approve for this node (only ever adds approvals). */
  async autoApproveRoutes(tailnetId: number, node: PolicyNode): Promise<string[]> {
    return (await this.engine(tailnetId))?.autoApprovedRoutes(node) ?? [];
  }

  /** tagOwners: may `ownerLogin` put these tags on keys or nodes? Without a policy no tag is owned. */
  async checkTags(
    tailnetId: number,
    ownerLogin: string,
    tags: string[],
  ): Promise<{ ok: boolean; denied: string[] }> {
    const engine = await this.engine(tailnetId);
    if (!engine) return tagsWithoutPolicy(tags);
    const r = engine.tagsAllowedFor(ownerLogin, tags);
    return { ok: r.ok, denied: [...r.denied] };
  }
}
