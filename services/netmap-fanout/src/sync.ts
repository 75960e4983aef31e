/**
 * Keeps the read model current (through libs/views' EventView, the same consumer every service's
 * views use): loads snapshots from key-registry, identity and policy-compiler, then consumes the
 * event log from the sequence noted before the snapshots. Events are applied
 * idempotently (version-gated), so overlap between snapshot and log is harmless; a gap (events lost
 * to retention, or a consumer that could not resume) triggers a fresh snapshot. It only decodes:
 * snapshots and validated events are applied through the ViewIngress (model, policy, streams).
 */
import type { Bus, BusEvent } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import {
  ALL_EVENTS_FILTER,
  NodeRemoved,
  NodeUpserted,
  PolicyChanged,
  TailnetDnsUpserted,
  TailnetUpserted,
  UserRemoved,
  UserUpserted,
  callRpc,
  identity,
  keyRegistry,
  policy,
  validateMessage,
} from '@switchboard/contracts';
import { EventView } from '@switchboard/views';
import type { ViewEvent, ViewIngress } from './view-ingress.js';

export class ModelSync {
  private readonly view: EventView;

  constructor(
    private readonly bus: Bus,
    private readonly ingress: ViewIngress,
    private readonly log: Logger,
  ) {
    this.view = new EventView({
      bus,
      name: 'fanout read model',
      filter: ALL_EVENTS_FILTER,
      logger: log,
      load: () => this.loadSnapshots(),
      apply: (ev) => this.handle(ev),
    });
  }

  /** The last log sequence the read model reflects. */
  get lastSeq(): number {
    return this.view.lastSeq;
  }

  /** True once the snapshots are loaded. */
  get ready(): boolean {
    return this.view.ready;
  }

  /**
   * Loads the read model, retrying with backoff while the owning services are not answering yet
   * (replicas may start in any order); readiness stays false until it succeeds.
   */
  async start(): Promise<void> {
    await this.view.start();
  }

  private async loadSnapshots(): Promise<void> {
    const [kr, ids, pol] = await Promise.all([
      callRpc(this.bus, keyRegistry.Snapshot, {}, { timeoutMs: 30_000 }),
      callRpc(this.bus, identity.IdentitySnapshot, {}, { timeoutMs: 30_000 }),
      callRpc(this.bus, policy.PolicySnapshot, {}, { timeoutMs: 30_000 }),
    ]);
    this.ingress.loadSnapshot({
      users: ids.users,
      tailnets: kr.tailnets,
      nodes: kr.nodes,
      policies: pol.policies,
      dns: ids.dns,
    });
    this.log.info('read model loaded from snapshots', { nodes: kr.nodes.length, users: ids.users.length });
  }

  /** Reloads snapshots and restarts consumption; concurrent calls share one resync. */
  resync(): Promise<void> {
    return this.view.resync();
  }

  private handle(ev: BusEvent): void {
    let event: ViewEvent;
    try {
      switch (ev.subject) {
        case NodeUpserted.subject:
          event = {
            kind: 'node-upserted',
            node: validateMessage(NodeUpserted.payload, ev.payload, ev.subject).node,
          };
          break;
        case NodeRemoved.subject: {
          const m = validateMessage(NodeRemoved.payload, ev.payload, ev.subject);
          event = { kind: 'node-removed', nodeId: m.nodeId, version: m.version };
          break;
        }
        case UserUpserted.subject:
          event = {
            kind: 'user-upserted',
            user: validateMessage(UserUpserted.payload, ev.payload, ev.subject).user,
          };
          break;
        case UserRemoved.subject: {
          const m = validateMessage(UserRemoved.payload, ev.payload, ev.subject);
          event = { kind: 'user-removed', userId: m.userId, version: m.version };
          break;
        }
        case TailnetUpserted.subject:
          event = {
            kind: 'tailnet-upserted',
            tailnet: validateMessage(TailnetUpserted.payload, ev.payload, ev.subject).tailnet,
          };
          break;
        case PolicyChanged.subject:
          event = {
            kind: 'policy-changed',
            policy: validateMessage(PolicyChanged.payload, ev.payload, ev.subject).policy,
          };
          break;
        case TailnetDnsUpserted.subject:
          event = {
            kind: 'tailnet-dns-upserted',
            dns: validateMessage(TailnetDnsUpserted.payload, ev.payload, ev.subject).dns,
          };
          break;
        default:
          return;
      }
    } catch (err) {
      this.log.error('ignored an invalid event', { seq: ev.seq, subject: ev.subject, err });
      return;
    }
    this.ingress.applyEvent(event);
  }

  async stop(): Promise<void> {
    await this.view.stop();
  }
}
