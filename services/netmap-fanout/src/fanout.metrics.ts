/**
 * netmap-fanout's series in the process's metric set (`@switchboard/metrics`), read from the engine,
 * the edge and the read model at scrape time. The series names are the ones the hand-written
 * `/metrics` had (`switchboard_fanout_*`, `switchboard_edge_*`), now with HELP/TYPE lines, plus:
 * - `switchboard_fanout_propagation_seconds`: from an event's commit in its owner's database
 *   (the outbox row's time, carried with the event) to the flush that wrote the resulting deltas
 *   to this replica's streams; events that reached no stream are not counted.
 * - `switchboard_fanout_ready`: 1 once the read model is loaded.
 */
import type { BusEvent } from '@switchboard/bus';
import { processMetrics, type Histogram } from '@switchboard/metrics';
import type { EdgeServer } from './edge.server.js';
import type { FanoutEngine } from './fanout-engine.js';
import type { ReadModelReader } from './read-model.js';
import type { ModelSync } from './sync.js';

const MAX_PENDING = 10_000;

export interface FanoutMetricsSources {
  engine: () => FanoutEngine;
  edge: () => EdgeServer;
  model: ReadModelReader;
  sync: () => ModelSync;
  replicaId: string;
}

export class FanoutMetrics {
  private readonly propagation: Histogram<string>;
  private pendingCommits: number[] = [];
  private off: (() => void)[] = [];

  constructor(private readonly s: FanoutMetricsSources) {
    this.propagation = processMetrics().histogram(
      'switchboard_fanout_propagation_seconds',
      'From a change committed in Postgres to the map deltas it caused written to the streams of this replica.',
      [],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    );
  }

  /** An event was applied to the read model: its commit time waits for the next flush. */
  onEvent(ev: BusEvent): void {
    if (ev.committedAt === undefined || this.pendingCommits.length >= MAX_PENDING) return;
    this.pendingCommits.push(ev.committedAt);
  }

  /** A flush happened: events since the last one propagated when it wrote to any stream. */
  onFlush(streamsWritten: number): void {
    if (this.pendingCommits.length === 0) return;
    const commits = this.pendingCommits;
    this.pendingCommits = [];
    if (streamsWritten === 0) return;
    const now = Date.now();
    for (const t of commits) this.propagation.observe(Math.max(0, now - t) / 1000);
  }

  start(): void {
    const m = processMetrics();
    const g = (name: string, help: string, read: () => number): void => {
      this.off.push(m.observeGauge(name, help, [], read));
    };
    const c = (name: string, help: string, read: () => number): void => {
      this.off.push(m.observeCounter(name, help, [], read));
    };
    const stats = () => this.s.engine().stats;
    const edge = () => this.s.edge().counters;
    g('switchboard_fanout_streams', 'Map streams this replica holds.', () => this.s.engine().streamCount);
    g('switchboard_fanout_nodes', 'Nodes in the read model.', () => this.s.model.nodes.size);
    c(
      'switchboard_fanout_frames_total',
      'Map messages written to streams (deltas, full maps, keep-alives).',
      () => stats().frames,
    );
    c(
      'switchboard_fanout_frame_bytes_total',
      'Bytes of map messages written to streams (after compression).',
      () => stats().bytes,
    );
    c(
      'switchboard_fanout_encodes_total',
      'Map messages rendered and compressed (one per distinct frame).',
      () => stats().encodes,
    );
    c('switchboard_fanout_flushes_total', 'Fan-out ticks that delivered changes.', () => stats().flushes);
    c('switchboard_fanout_streams_opened_total', 'Map streams opened.', () => stats().streamsOpened);
    g(
      'switchboard_fanout_event_seq',
      'Event-log sequence the read model reflects.',
      () => this.s.sync().lastSeq,
    );
    g('switchboard_fanout_ready', 'Whether the read model is loaded (1) or not (0).', () =>
      this.s.sync().ready ? 1 : 0,
    );
    c(
      'switchboard_edge_upgrades_total',
      'Successful /ts2021 upgrades (Noise handshakes).',
      () => edge().upgrades,
    );
    c('switchboard_edge_upgrade_failures_total', 'Failed /ts2021 upgrades.', () => edge().upgradeFailures);
    c('switchboard_edge_requests_total', 'Requests over Noise (HTTP/2) answered.', () => edge().requests);
    c(
      'switchboard_edge_bad_requests_total',
      'Requests over Noise refused as malformed.',
      () => edge().badRequests,
    );
    g(
      'switchboard_edge_connections',
      'TCP connections the client edge holds.',
      () => this.s.edge().connectionCount,
    );
    this.off.push(
      m.observeCounter(
        'switchboard_edge_limit_hits_total',
        'Connections or requests refused or closed by an edge bound, by reason.',
        ['reason'],
        () =>
          Object.entries(this.s.edge().limitHits).map(([reason, value]) => ({ labels: { reason }, value })),
      ),
    );
  }

  stop(): void {
    for (const f of this.off) f();
    this.off = [];
  }
}
