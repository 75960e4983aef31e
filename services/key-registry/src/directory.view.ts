/**
 * What key-registry knows of state other services own, kept locally so that no request path calls
 * identity or policy-compiler: the users (identity's `user-upserted`/`user-removed`) and each
 * tailnet's current policy (policy-compiler's `policy-changed`), compiled once per version for the
 * tagOwners and autoApprovers checks (libs/policy). Fed by an EventView (snapshots at start, then
 * the event log).
 *
 * Stale views (ARCHITECTURE.md, "Stale views"): a decision that would refuse on the view's evidence
 * — an unknown user, a tag not owned, an announced route not approved — is taken again after the view
 * has caught up with the log's head; a permissive decision on a slightly stale view is what the same
 * request would have got a moment earlier, and stands.
 */
import type { Bus, BusEvent } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import {
  ALL_EVENTS_FILTER,
  PolicyChanged,
  UserRemoved,
  UserUpserted,
  callRpc,
  identity,
  policy,
  validateMessage,
  type PolicyRecord,
  type UserRecord,
} from '@switchboard/contracts';
import { PolicyEngine, parsePolicy } from '@switchboard/policy';
import { EventView, VersionedMap } from '@switchboard/views';

/** How long a refusing decision may wait for the view to catch up with the log. */
export const CATCH_UP_MS = 2000;

/** The part of a node the policy's ownership checks look at. */
export interface OwnedRoutes {
  tailnetId: number;
  userId: number | null;
  tags: readonly string[];
  routableIPs: readonly string[];
  approvedRoutes: readonly string[];
}

interface TailnetPolicy {
  record: PolicyRecord;
  /** Built on first use after a change; null when there is no policy (or it no longer parses). */
  engine?: PolicyEngine | null;
}

/**
 * The approved routes after auto-approval: the current approvals plus the announced routes the
 * policy approves. Approvals only grow this way (an admin removes them with set-approved-routes).
 */
export function withAutoApproved(
  approved: readonly string[],
  announced: readonly string[],
  autoApproved: readonly string[],
): string[] {
  const add = autoApproved.filter((r) => announced.includes(r));
  return [...new Set([...approved, ...add])].sort();
}

/** Announced routes that are not approved. */
export function pendingRoutes(n: Pick<OwnedRoutes, 'routableIPs' | 'approvedRoutes'>): string[] {
  return n.routableIPs.filter((r) => !n.approvedRoutes.includes(r));
}

export class DirectoryView {
  private readonly users = new VersionedMap<number, UserRecord>();
  private readonly policies = new Map<number, TailnetPolicy>();
  readonly view: EventView;

  constructor(
    bus: Bus,
    private readonly log: Logger,
    /** Called after a live `user-removed` (not for snapshot loads): the user's nodes and keys go. */
    private readonly onUserRemoved: (userId: number) => void = () => undefined,
  ) {
    this.view = new EventView({
      bus,
      name: 'key-registry users+policy',
      filter: ALL_EVENTS_FILTER,
      logger: log,
      load: async () => {
        const [ids, pol] = await Promise.all([
          callRpc(bus, identity.IdentitySnapshot, {}, { timeoutMs: 30_000 }),
          callRpc(bus, policy.PolicySnapshot, {}, { timeoutMs: 30_000 }),
        ]);
        this.users.replace(ids.users.map((u) => [u.id, u] as const));
        this.policies.clear();
        for (const p of pol.policies) this.policies.set(p.tailnetId, { record: p });
      },
      apply: (ev) => this.apply(ev),
    });
  }

  /** Starts loading in the background (identity and policy-compiler may start after us). */
  start(): void {
    this.view.start().catch((err: unknown) => {
      this.log.error('the users+policy view could not be loaded; requests that need it fail', { err });
    });
  }

  async stop(): Promise<void> {
    await this.view.stop();
  }

  private apply(ev: BusEvent): void {
    switch (ev.subject) {
      case UserUpserted.subject: {
        const { user } = validateMessage(UserUpserted.payload, ev.payload, ev.subject);
        this.users.upsert(user.id, user);
        return;
      }
      case UserRemoved.subject: {
        const m = validateMessage(UserRemoved.payload, ev.payload, ev.subject);
        if (this.users.remove(m.userId, m.version)) this.onUserRemoved(m.userId);
        return;
      }
      case PolicyChanged.subject: {
        const { policy: p } = validateMessage(PolicyChanged.payload, ev.payload, ev.subject);
        const cur = this.policies.get(p.tailnetId);
        if (!cur || p.version > cur.record.version) this.policies.set(p.tailnetId, { record: p });
        return;
      }
      default:
        return;
    }
  }

  async whenReady(): Promise<void> {
    await this.view.whenReady(10_000);
  }

  /** Catches up with the log's head (bounded); true when the view is at least that fresh. */
  async catchUp(): Promise<boolean> {
    return this.view.catchUp(CATCH_UP_MS);
  }

  /** The user as the view holds it (no waiting). */
  userNow(id: number): UserRecord | undefined {
    return this.users.get(id);
  }

  /** The user, confirming a miss against the log's head (a user created a moment ago). */
  async user(id: number): Promise<UserRecord | undefined> {
    await this.whenReady();
    const u = this.users.get(id);
    if (u) return u;
    await this.catchUp();
    return this.users.get(id);
  }

  private engine(tailnetId: number): PolicyEngine | null {
    const p = this.policies.get(tailnetId);
    if (!p || p.record.text === null) return null;
    if (p.engine === undefined) {
      try {
        p.engine = new PolicyEngine(parsePolicy(p.record.text, { externalGroups: 'any' }));
      } catch (err) {
        // Stored policies were valid when set; a stricter parser may refuse an old one.
        this.log.error('the current policy does not parse here; no tags are owned, no routes approved', {
          tailnetId,
          version: p.record.version,
          err,
        });
        p.engine = null;
      }
    }
    return p.engine;
  }

  /** tagOwners now: may `ownerLogin` apply these tags? Without a policy no tag is owned. */
  tagsNow(tailnetId: number, ownerLogin: string, tags: readonly string[]): { ok: boolean; denied: string[] } {
    const e = this.engine(tailnetId);
    if (!e) return { ok: tags.length === 0, denied: [...tags] };
    const r = e.tagsAllowedFor(ownerLogin, tags);
    return { ok: r.ok, denied: [...r.denied] };
  }

  /** tagOwners, confirming a refusal against the log's head (a policy set a moment ago). */
  async checkTags(
    tailnetId: number,
    ownerLogin: string,
    tags: readonly string[],
  ): Promise<{ ok: boolean; denied: string[] }> {
    await this.whenReady();
    const r = this.tagsNow(tailnetId, ownerLogin, tags);
    if (r.ok) return r;
    await this.catchUp();
    return this.tagsNow(tailnetId, ownerLogin, tags);
  }

  /** The node's approved routes after auto-approval, from the view as it is (pure, in memory). */
  approvedRoutesNow(n: OwnedRoutes): string[] {
    const pending = pendingRoutes(n);
    if (pending.length === 0) return [...n.approvedRoutes];
    const e = this.engine(n.tailnetId);
    if (!e) return [...n.approvedRoutes];
    const tagged = n.tags.length > 0;
    const login = n.userId === null || tagged ? null : (this.users.get(n.userId)?.loginName ?? null);
    const auto = e.autoApprovedRoutes({
      id: 'candidate',
      user: login,
      tags: [...n.tags],
      // autoApprovers look at owners and routes only; the engine just wants the node to have an address.
      ipv4: '100.64.0.1',
      ipv6: 'fd7a:115c:a1e0::1',
      routableIPs: [...n.routableIPs],
      approvedRoutes: [...n.approvedRoutes],
    });
    return withAutoApproved(n.approvedRoutes, n.routableIPs, auto);
  }

  /**
   * Call before a transaction that will auto-approve this node's routes: when the view as it is would
   * leave an announced route unapproved, it first catches up with the log (outside the transaction,
   * so no lock is held while waiting).
   */
  async settleApprovals(n: OwnedRoutes): Promise<void> {
    if (n.routableIPs.length === 0) return;
    await this.whenReady();
    if (pendingRoutes({ ...n, approvedRoutes: this.approvedRoutesNow(n) }).length === 0) return;
    await this.catchUp();
  }
}
