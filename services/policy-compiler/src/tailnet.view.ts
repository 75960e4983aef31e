/**
 * The nodes and users a policy's `tests`/`sshTests` run against, kept locally from key-registry's
 * and identity's events (EventView: their snapshots at start, then the log), so checking or setting
 * a policy calls no other service. A check first catches up with the log's head, so a node or user
 * created before the request is seen.
 */
import type { Bus, BusEvent } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import {
  ALL_EVENTS_FILTER,
  NodeRemoved,
  NodeUpserted,
  UserRemoved,
  UserUpserted,
  callRpc,
  identity,
  keyRegistry,
  validateMessage,
  type NodeRecord,
  type UserRecord,
} from '@switchboard/contracts';
import type { PolicyNode } from '@switchboard/policy';
import { EventView, VersionedMap } from '@switchboard/views';

/** The tailnet's nodes as the policy sees them, and the IdP groups of its users (pure). */
export function policyInputs(
  tailnetId: number,
  nodes: Iterable<NodeRecord>,
  users: Iterable<UserRecord>,
): { nodes: PolicyNode[]; groups: [string, string[]][] } {
  const us = [...users];
  const login = new Map(us.map((u) => [u.id, u.loginName]));
  const out: PolicyNode[] = [];
  for (const n of nodes) {
    if (n.tailnetId !== tailnetId) continue;
    out.push({
      id: String(n.id),
      user: n.tags.length > 0 || n.userId === null ? null : (login.get(n.userId) ?? `user-${n.userId}`),
      tags: n.tags,
      ipv4: n.ipv4,
      ipv6: n.ipv6,
      routableIPs: n.routableIPs,
      approvedRoutes: n.approvedRoutes,
    });
  }
  out.sort((a, b) => Number(a.id) - Number(b.id));
  return {
    nodes: out,
    groups: us.filter((u) => u.groups.length > 0).map((u) => [u.loginName, u.groups]),
  };
}

export class TailnetView {
  private readonly nodes = new VersionedMap<number, NodeRecord>();
  private readonly users = new VersionedMap<number, UserRecord>();
  readonly view: EventView;

  constructor(
    bus: Bus,
    private readonly log: Logger,
  ) {
    this.view = new EventView({
      bus,
      name: 'policy-compiler nodes+users',
      filter: ALL_EVENTS_FILTER,
      logger: log,
      load: async () => {
        const [kr, ids] = await Promise.all([
          callRpc(bus, keyRegistry.Snapshot, {}, { timeoutMs: 30_000 }),
          callRpc(bus, identity.IdentitySnapshot, {}, { timeoutMs: 30_000 }),
        ]);
        this.nodes.replace(kr.nodes.map((n) => [n.id, n] as const));
        this.users.replace(ids.users.map((u) => [u.id, u] as const));
      },
      apply: (ev) => this.apply(ev),
    });
  }

  private apply(ev: BusEvent): void {
    switch (ev.subject) {
      case NodeUpserted.subject: {
        const { node } = validateMessage(NodeUpserted.payload, ev.payload, ev.subject);
        this.nodes.upsert(node.id, node);
        return;
      }
      case NodeRemoved.subject: {
        const m = validateMessage(NodeRemoved.payload, ev.payload, ev.subject);
        this.nodes.remove(m.nodeId, m.version);
        return;
      }
      case UserUpserted.subject: {
        const { user } = validateMessage(UserUpserted.payload, ev.payload, ev.subject);
        this.users.upsert(user.id, user);
        return;
      }
      case UserRemoved.subject: {
        const m = validateMessage(UserRemoved.payload, ev.payload, ev.subject);
        this.users.remove(m.userId, m.version);
        return;
      }
      default:
        return;
    }
  }

  /** Starts loading in the background (key-registry and identity may start after us). */
  start(): void {
    this.view.start().catch((err: unknown) => {
      this.log.error('the nodes+users view could not be loaded; policy tests cannot run until it is', {
        err,
      });
    });
  }

  async stop(): Promise<void> {
    await this.view.stop();
  }

  /** The tailnet's nodes and user groups, after catching up with the log. */
  async current(tailnetId: number): Promise<{ nodes: PolicyNode[]; groups: [string, string[]][] }> {
    await this.view.whenReady(30_000);
    await this.view.catchUp(2000);
    return policyInputs(tailnetId, this.nodes.values(), this.users.values());
  }
}
