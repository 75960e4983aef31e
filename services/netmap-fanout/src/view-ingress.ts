/**
 * The one way into the fan-out's view. Every change to the read model — from the snapshots and
 * the event log (ModelSync), from a record fetched on a request path (a register reply, a
 * GetNodeByKey answer, a user loaded for a register response) and from presence broadcasts — is
 * applied here: the model first (version-gated), then the policy engines follow it, then the
 * change and its policy effects are queued for the streams. Nothing else writes the model, so
 * nothing reaches a stream without passing the policy step.
 */
import type { Logger } from '@switchboard/common';
import type {
  NodeRecord,
  PolicyRecord,
  TailnetDnsRecord,
  TailnetRecord,
  UserRecord,
} from '@switchboard/contracts';
import type { ModelChange, ReadModel } from './read-model.js';

/** The policy step: follows each change, or rebuilds everything (after a snapshot, or a failure). */
export interface PolicyFollower {
  follow(change: ModelChange): ModelChange | null;
  rebuildAll(): ModelChange[];
}

/** Where followed changes go: the fan-out engine's queue. */
export interface ChangeSink {
  apply(changes: ModelChange[]): void;
}

/** One event from the log, validated. */
export type ViewEvent =
  | { kind: 'node-upserted'; node: NodeRecord }
  | { kind: 'node-removed'; nodeId: number; version: number }
  | { kind: 'user-upserted'; user: UserRecord }
  | { kind: 'user-removed'; userId: number; version: number }
  | { kind: 'tailnet-upserted'; tailnet: TailnetRecord }
  | { kind: 'policy-changed'; policy: PolicyRecord }
  | { kind: 'tailnet-dns-upserted'; dns: TailnetDnsRecord };

/** Everything the owners' snapshot RPCs returned. */
export interface ViewSnapshot {
  users: UserRecord[];
  tailnets: TailnetRecord[];
  nodes: NodeRecord[];
  policies: PolicyRecord[];
  dns?: TailnetDnsRecord[];
}

/** A record fetched from its owner on a request path, ahead of its event. */
export type DirectRecord = { node: NodeRecord } | { user: UserRecord };

export class ViewIngress {
  constructor(
    private readonly model: ReadModel,
    private readonly policy: PolicyFollower,
    private readonly sink: ChangeSink,
    private readonly log: Logger,
  ) {}

  /** Replaces the view with the snapshots; the policy engines are rebuilt, streams recompute. */
  loadSnapshot(s: ViewSnapshot): void {
    const changes: ModelChange[] = [
      ...this.model.replaceUsers(s.users),
      ...this.model.replaceNodes(s.tailnets, s.nodes),
    ];
    for (const p of s.policies) {
      const c = this.model.setPolicy(p);
      if (c) changes.push(c);
    }
    for (const d of s.dns ?? []) {
      const c = this.model.setDns(d);
      if (c) changes.push(c);
    }
    this.sink.apply([...changes, ...this.policy.rebuildAll()]);
  }

  /** Applies one event from the log. */
  applyEvent(e: ViewEvent): void {
    this.follow(this.toModel(e));
  }

  /** Applies a record fetched directly (a node that registered before its event arrived). */
  applyDirect(r: DirectRecord): void {
    this.follow('node' in r ? this.model.upsertNode(r.node) : this.model.upsertUser(r.user));
  }

  /** Applies a presence broadcast (a node's stream opened or closed on some replica). */
  applyPresence(nodeId: number, online: boolean, at: string): void {
    this.follow(this.model.setOnline(nodeId, online, at));
  }

  private toModel(e: ViewEvent): ModelChange | null {
    switch (e.kind) {
      case 'node-upserted':
        return this.model.upsertNode(e.node);
      case 'node-removed':
        return this.model.removeNode(e.nodeId, e.version);
      case 'user-upserted':
        return this.model.upsertUser(e.user);
      case 'user-removed':
        return this.model.removeUser(e.userId, e.version);
      case 'tailnet-upserted':
        return this.model.upsertTailnet(e.tailnet);
      case 'policy-changed':
        return this.model.setPolicy(e.policy);
      case 'tailnet-dns-upserted':
        return this.model.setDns(e.dns);
    }
  }

  /** The policy step for one model change, then the engine's queue. */
  private follow(c: ModelChange | null): void {
    if (!c) return;
    const out: ModelChange[] = [c];
    try {
      const fx = this.policy.follow(c);
      if (fx) out.push(fx);
    } catch (err) {
      this.log.error('policy engine failed to follow a change; rebuilding it', { err, change: c.kind });
      out.push(...this.policy.rebuildAll());
    }
    this.sink.apply(out);
  }
}
