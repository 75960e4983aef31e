/**
 * The fan-out engine: holds this replica's map streams and turns read-model changes into per-stream
 * deltas. It separates what changed and who gets it (fanout-batcher: ModelChange values, merged per
 * stream until the next tick, visibility through the policy view, tracked per stream in a compact
 * bitset of sent peers), how it is rendered (map-renderer over map-builder; identical frames are
 * compressed once per tick) and delivery (fanout-delivery: the streams, writes, keep-alives).
 */
import type { Logger } from '@switchboard/common';
import type { NodeRecord } from '@switchboard/contracts';
import { SlotMap } from './bitset.js';
import { ChangeBatcher, type Pending } from './fanout-batcher.js';
import { StreamDelivery, type FanoutStats, type MapStream, type StreamSink } from './fanout-delivery.js';
import type { MapSettings } from './map-builder.js';
import { MapRenderer, type FrameEncoder, type PolicyView } from './map-renderer.js';
import type { ModelChange, ReadModelReader } from './read-model.js';

export { MapStream, type FanoutStats, type StreamSink } from './fanout-delivery.js';
export type { FrameEncoder, PolicyView } from './map-renderer.js';

export interface FanoutEngineOptions {
  model: ReadModelReader;
  settings: MapSettings;
  policy: PolicyView;
  encoder: FrameEncoder;
  logger: Logger;
  keepAliveMs?: number;
  /**
   * Flushes are at least this far apart (default 20 ms): a burst of changes (a reconnect storm, a
   * registration wave) is merged into one message per stream instead of one per change.
   */
  minFlushIntervalMs?: number;
  now?: () => number;
  /** Called after every flush with the number of streams it wrote a delta to (metrics). */
  onFlush?: (streamsWritten: number) => void;
}

export class FanoutEngine {
  private readonly slots = new SlotMap();
  private readonly delivery: StreamDelivery;
  private readonly batcher: ChangeBatcher;
  private readonly renderer: MapRenderer;
  /** Frames written (all kinds) and bytes, for metrics. */
  readonly stats: FanoutStats = { frames: 0, bytes: 0, flushes: 0, encodes: 0, streamsOpened: 0 };

  constructor(private readonly o: FanoutEngineOptions) {
    const now = o.now ?? Date.now;
    this.delivery = new StreamDelivery({
      logger: o.logger,
      keepAlive: o.encoder.keepAlive,
      keepAliveMs: o.keepAliveMs ?? 50_000,
      now,
      stats: this.stats,
    });
    this.batcher = new ChangeBatcher({
      model: o.model,
      policy: o.policy,
      streams: this.delivery.streams,
      slots: this.slots,
      minFlushIntervalMs: o.minFlushIntervalMs ?? 20,
      now,
      flush: () => this.flush(),
    });
    this.renderer = new MapRenderer({
      model: o.model,
      settings: o.settings,
      policy: o.policy,
      encoder: o.encoder,
      slots: this.slots,
      now,
      stats: this.stats,
    });
  }

  start(): void {
    this.delivery.start();
  }

  stop(): void {
    this.delivery.stop('server shutting down');
  }

  get streamCount(): number {
    return this.delivery.streams.size;
  }

  streamFor(nodeId: number): MapStream | undefined {
    return this.delivery.streams.get(nodeId);
  }

  /** Opens a stream: writes the full map at once; a previous stream of the same node is closed. */
  open(id: string, node: NodeRecord, sink: StreamSink): MapStream {
    const s = this.delivery.add(id, node.id, node.tailnetId, sink);
    this.delivery.write(s, this.renderer.fullMapFrame(node, s));
    return s;
  }

  /** Closes a stream if it is still the node's current one. */
  close(s: MapStream, reason: string): void {
    this.delivery.close(s, reason);
  }

  /** Detaches a stream whose client went away (no close call on the sink). */
  detach(s: MapStream): void {
    this.delivery.detach(s);
  }

  /** Full map for one node as JSON (one-shot requests, tests). */
  fullMap(self: NodeRecord, s?: MapStream): string {
    return this.renderer.fullMap(self, s);
  }

  /** Full map for one node as a map frame (compressed peer blocks shared across viewers). */
  fullMapFrame(self: NodeRecord, s?: MapStream): Buffer {
    return this.renderer.fullMapFrame(self, s);
  }

  /** Queues read-model changes; streams get their deltas on the next tick. */
  apply(changes: ModelChange[]): void {
    this.batcher.push(changes);
  }

  /** Drains the queue: routes every change, then renders and writes one message per affected stream. */
  flush(): void {
    const changes = this.batcher.take();
    if (changes.length === 0) {
      this.o.onFlush?.(0);
      return;
    }
    const framesBefore = this.stats.frames;
    this.stats.flushes++;
    const streams = this.delivery.streams;
    const removedNodes: number[] = [];
    for (const c of changes) {
      try {
        this.batcher.route(c);
      } catch (err) {
        this.o.logger.error('could not route a change to streams; affected streams get a full map', {
          err,
          change: c.kind,
        });
        for (const s of streams.values()) this.batcher.pendingOf(s).full = true;
      }
      if (c.kind === 'node' && !c.after) removedNodes.push(c.nodeId);
    }
    const frames = new Map<string, Buffer>();
    for (const s of [...streams.values()]) {
      const p = s.pending;
      if (!p) continue;
      s.pending = null;
      try {
        this.deliver(s, p, frames);
      } catch (err) {
        this.o.logger.error('could not deliver a map delta; closing the stream so the client resyncs', {
          nodeId: s.nodeId,
          err,
        });
        this.close(s, 'internal error');
      }
    }
    for (const id of removedNodes) {
      if (this.o.model.nodes.has(id)) continue;
      const slot = this.slots.peek(id);
      if (slot !== undefined) for (const s of streams.values()) s.sentPeers.delete(slot);
      this.slots.release(id);
      this.renderer.forget(id);
    }
    this.o.onFlush?.(this.stats.frames - framesBefore);
  }

  private deliver(s: MapStream, p: Pending, frames: Map<string, Buffer>): void {
    const self = this.o.model.nodes.get(s.nodeId);
    if (p.deleted || !self) {
      this.close(s, 'node deleted');
      return;
    }
    this.batcher.resolve(s, self, p);
    const json = this.renderer.delta(s, self, p);
    if (json === null) return;
    let frame = frames.get(json);
    if (!frame) {
      frame = this.renderer.frame(json);
      frames.set(json, frame);
    }
    this.delivery.write(s, frame);
  }
}
