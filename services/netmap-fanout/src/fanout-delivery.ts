/**
 * Delivery: this replica's map streams (one live stream per node; a newer one closes the older),
 * writing frames to them, closing them, and keep-alives for streams that have been quiet. It knows
 * nothing of what a frame says.
 */
import type { Logger } from '@switchboard/common';
import { Bitset } from './bitset.js';
import type { Pending } from './fanout-batcher.js';

export interface StreamSink {
  /** Writes one encoded map frame. */
  write(frame: Buffer): void;
  /** Ends the stream (the client will reconnect or, for a deleted node, get 404 next time). */
  close(reason: string): void;
}

/** Counters for metrics: frames written (all kinds) and their bytes, flushes, encodes, streams opened. */
export interface FanoutStats {
  frames: number;
  bytes: number;
  flushes: number;
  encodes: number;
  streamsOpened: number;
}

export class MapStream {
  readonly sentPeers = new Bitset();
  readonly sentUsers = new Set<number>();
  pending: Pending | null = null;
  lastWrite = Date.now();
  closed = false;
  constructor(
    readonly id: string,
    readonly nodeId: number,
    readonly tailnetId: number,
    readonly sink: StreamSink,
    readonly keepAliveJitterMs: number,
  ) {}
}

export interface StreamDeliveryOptions {
  logger: Logger;
  /** The precomputed keep-alive frame. */
  keepAlive: Buffer;
  keepAliveMs: number;
  now: () => number;
  stats: FanoutStats;
}

export class StreamDelivery {
  private readonly byNode = new Map<number, MapStream>();
  private keepAliveTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: StreamDeliveryOptions) {}

  /** The current stream of each node. */
  get streams(): ReadonlyMap<number, MapStream> {
    return this.byNode;
  }

  start(): void {
    this.keepAliveTimer = setInterval(() => this.keepAlives(), Math.min(1000, this.o.keepAliveMs / 4));
    this.keepAliveTimer.unref();
  }

  /** Stops keep-alives and closes every stream. */
  stop(reason: string): void {
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    for (const s of [...this.byNode.values()]) this.close(s, reason);
  }

  /** Registers a node's new stream; a previous stream of the same node is closed. */
  add(id: string, nodeId: number, tailnetId: number, sink: StreamSink): MapStream {
    const old = this.byNode.get(nodeId);
    if (old) this.close(old, 'superseded by a newer stream of the same node');
    const s = new MapStream(id, nodeId, tailnetId, sink, Math.floor(Math.random() * 9000));
    this.o.stats.streamsOpened++;
    this.byNode.set(nodeId, s);
    return s;
  }

  /** Closes a stream if it is still the node's current one. */
  close(s: MapStream, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    if (this.byNode.get(s.nodeId) === s) this.byNode.delete(s.nodeId);
    try {
      s.sink.close(reason);
    } catch (err) {
      this.o.logger.warn('closing a map stream failed', { nodeId: s.nodeId, err });
    }
  }

  /** Detaches a stream whose client went away (no close call on the sink). */
  detach(s: MapStream): void {
    s.closed = true;
    if (this.byNode.get(s.nodeId) === s) this.byNode.delete(s.nodeId);
  }

  write(s: MapStream, frame: Buffer): void {
    if (s.closed) return;
    s.lastWrite = this.o.now();
    this.o.stats.frames++;
    this.o.stats.bytes += frame.length;
    try {
      s.sink.write(frame);
    } catch (err) {
      this.o.logger.warn('writing to a map stream failed; closing it', { nodeId: s.nodeId, err });
      this.close(s, 'write failed');
    }
  }

  private keepAlives(): void {
    const now = this.o.now();
    const ms = this.o.keepAliveMs;
    for (const s of this.byNode.values()) {
      if (now - s.lastWrite >= ms + s.keepAliveJitterMs * (ms / 50_000)) this.write(s, this.o.keepAlive);
    }
  }
}
