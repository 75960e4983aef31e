/**
 * Which user owns which nodes, as identity needs to know it to refuse removing a user that still owns
 * nodes — kept locally from key-registry's node events (EventView: its snapshot at start, then the
 * log), so removing a user calls no other service. Before deciding, the view catches up with the
 * log's head; a node registered while that news is still in flight is removed by key-registry when
 * it sees the `user-removed` event.
 */
import type { Bus, BusEvent } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import {
  ALL_EVENTS_FILTER,
  NodeRemoved,
  NodeUpserted,
  TailnetUpserted,
  callRpc,
  keyRegistry,
  validateMessage,
} from '@switchboard/contracts';
import type { TailnetRecord } from '@switchboard/contracts';
import { EventView, VersionedMap } from '@switchboard/views';

interface Owner {
  userId: number | null;
  version: number;
}

export class NodeOwnersView {
  private readonly nodes = new VersionedMap<number, Owner>();
  /** The tailnets (name, MagicDNS domain), for the admin API's `{tailnet}` segment and device names. */
  readonly tailnets = new Map<number, TailnetRecord>();
  readonly view: EventView;

  constructor(
    bus: Bus,
    private readonly log: Logger,
  ) {
    this.view = new EventView({
      bus,
      name: 'identity node owners',
      filter: ALL_EVENTS_FILTER,
      logger: log,
      load: async () => {
        const { nodes, tailnets } = await callRpc(bus, keyRegistry.Snapshot, {}, { timeoutMs: 30_000 });
        this.tailnets.clear();
        for (const t of tailnets) this.tailnets.set(t.id, t);
        this.nodes.replace(nodes.map((n) => [n.id, { userId: n.userId, version: n.version }] as const));
      },
      apply: (ev) => this.apply(ev),
    });
  }

  private apply(ev: BusEvent): void {
    if (ev.subject === NodeUpserted.subject) {
      const { node } = validateMessage(NodeUpserted.payload, ev.payload, ev.subject);
      this.nodes.upsert(node.id, { userId: node.userId, version: node.version });
    } else if (ev.subject === NodeRemoved.subject) {
      const m = validateMessage(NodeRemoved.payload, ev.payload, ev.subject);
      this.nodes.remove(m.nodeId, m.version);
    } else if (ev.subject === TailnetUpserted.subject) {
      const { tailnet } = validateMessage(TailnetUpserted.payload, ev.payload, ev.subject);
      this.tailnets.set(tailnet.id, tailnet);
    }
  }

  /** Starts loading in the background (key-registry may start after identity). */
  start(): void {
    this.view.start().catch((err: unknown) => {
      this.log.error('the node-owners view could not be loaded; removing users fails until it is', { err });
    });
  }

  async stop(): Promise<void> {
    await this.view.stop();
  }

  /** The users' node counts (the view as it is, without catching up). */
  countsByUser(): Map<number, number> {
    const out = new Map<number, number>();
    for (const o of this.nodes.values())
      if (o.userId !== null) out.set(o.userId, (out.get(o.userId) ?? 0) + 1);
    return out;
  }

  /** How many nodes the user owns, after catching up with the log. */
  async ownedBy(userId: number): Promise<number> {
    await this.view.catchUp(2000);
    let n = 0;
    for (const o of this.nodes.values()) if (o.userId === userId) n++;
    return n;
  }
}
