/**
 * The coordinator's side of the load generator: forks the worker processes, deals the simulated
 * nodes out to them (node i to worker i mod W, and to control URL i mod U), measures each worker's
 * clock offset, sends commands and merges the answers. Every time it returns is on the coordinator's
 * clock (worker timestamps are converted with the measured offset).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { now, offsetFromSamples, type ClockSample } from '../clock.js';
import type {
  Command,
  CommandType,
  Marker,
  Reply,
  ResultOf,
  StormMode,
  WorkerStats,
} from './worker-protocol.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));

class WorkerHandle {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  offsetMs = 0;
  rttMs = 0;
  exited = false;

  constructor(
    readonly n: number,
    readonly proc: ChildProcess,
  ) {
    proc.on('message', (raw: unknown) => {
      const r = raw as Reply;
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(new Error(`worker ${this.n}: ${r.error}`));
    });
    proc.on('exit', (code, signal) => {
      this.exited = true;
      const err = new Error(`worker ${this.n} exited (${signal ?? code})`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  call<T extends CommandType>(cmd: Extract<Command, { type: T }>): Promise<ResultOf[T]> {
    if (this.exited) return Promise.reject(new Error(`worker ${this.n} has exited`));
    const id = this.nextId++;
    return new Promise<ResultOf[T]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, cmd });
    });
  }

  /** Worker time → coordinator time. */
  local(t: number): number {
    return t - this.offsetMs;
  }

  /** Coordinator time → worker time. */
  remote(t: number): number {
    return t + this.offsetMs;
  }

  async calibrate(rounds = 15): Promise<void> {
    const samples: ClockSample[] = [];
    for (let i = 0; i < rounds; i++) {
      const sent = now();
      const remote = await this.call({ type: 'ping' });
      samples.push({ sent, remote, received: now() });
    }
    const o = offsetFromSamples(samples);
    this.offsetMs = o.offsetMs;
    this.rttMs = o.rttMs;
  }
}

export interface FleetOptions {
  readonly workers: number;
  readonly urls: readonly string[];
  readonly serverPublic: string;
  readonly capVersion: number;
  readonly authKey: string;
  /** Tagged key for hubs (hub topology), else null. */
  readonly hubAuthKey: string | null;
  /** Nodes 0..hubs-1 are hubs (and the joiners, when there are hubs). */
  readonly hubs: number;
  /** Nodes 0..nodes-1 are the fleet; nodes..nodes+joiners-1 join during the propagation trials. */
  readonly nodes: number;
  readonly joiners: number;
}

export interface MergedRegister {
  connectMs: number[];
  registerMs: number[];
  errors: number;
  skipped: number;
  firstErrors: string[];
  wallMs: number;
}

export interface MergedOpen {
  openMs: number[];
  errors: number;
  firstErrors: string[];
  wallMs: number;
}

export interface MergedCollect {
  /** Per stream: receive time minus `since`, ms. */
  latenciesMs: number[];
  missing: number;
  missingSample: number[];
  id: number | null;
  framesSeen: number;
  bigFrames: number;
}

export interface MergedStorm {
  /** Per node: time from the storm command to its first map, ms. */
  mapMs: number[];
  failed: number;
  retries: number;
  firstErrors: string[];
}

export interface FleetStats {
  rssKb: number;
  cpuMs: number;
  openStreams: number;
  streamsLost: number;
  framesReceived: number;
  bytesReceived: number;
  perWorkerRssKb: number[];
}

export class Fleet {
  private constructor(
    private readonly workers: WorkerHandle[],
    readonly opts: FleetOptions,
  ) {}

  static async start(opts: FleetOptions): Promise<Fleet> {
    const w = Math.max(1, opts.workers);
    const handles: WorkerHandle[] = [];
    for (let i = 0; i < w; i++) {
      const proc = fork(WORKER_MAIN, [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        execArgv: ['--max-old-space-size=8192'],
      });
      handles.push(new WorkerHandle(i, proc));
    }
    const fleet = new Fleet(handles, opts);
    try {
      const total = opts.nodes + opts.joiners;
      await Promise.all(
        handles.map(async (h) => {
          const indices: number[] = [];
          for (let i = h.n; i < total; i += w) indices.push(i);
          await h.call({
            type: 'init',
            init: {
              urls: opts.urls,
              serverPublic: opts.serverPublic,
              capVersion: opts.capVersion,
              authKey: opts.authKey,
              hubAuthKey: opts.hubAuthKey,
              hubs: opts.hubs,
              nodes: opts.nodes,
              indices,
            },
          });
          await h.calibrate();
        }),
      );
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    return fleet;
  }

  get workerCount(): number {
    return this.workers.length;
  }

  /** Worst clock-offset uncertainty (half the best round trip), ms. */
  get clockUncertaintyMs(): number {
    return Math.max(...this.workers.map((w) => w.rttMs / 2));
  }

  private owner(index: number): WorkerHandle {
    return this.workers[index % this.workers.length]!;
  }

  private slices(indices: readonly number[]): Map<WorkerHandle, number[]> {
    const m = new Map<WorkerHandle, number[]>();
    for (const i of indices) {
      const w = this.owner(i);
      let l = m.get(w);
      if (!l) m.set(w, (l = []));
      l.push(i);
    }
    return m;
  }

  private perWorker(concurrency: number): number {
    return Math.max(1, Math.ceil(concurrency / this.workers.length));
  }

  /** The fleet's node indices [from, to). */
  static range(from: number, to: number): number[] {
    return Array.from({ length: Math.max(0, to - from) }, (_, k) => from + k);
  }

  /** Registers the given nodes (each: dial, register, hang up), `concurrency` in flight in total. */
  async register(indices: readonly number[], concurrency: number, budgetMs: number): Promise<MergedRegister> {
    const t0 = now();
    const parts = await Promise.all(
      [...this.slices(indices)].map(([w, idx]) =>
        w.call({ type: 'register', indices: idx, concurrency: this.perWorker(concurrency), budgetMs }),
      ),
    );
    const out: MergedRegister = {
      connectMs: [],
      registerMs: [],
      errors: 0,
      skipped: 0,
      firstErrors: [],
      wallMs: 0,
    };
    for (const p of parts) {
      out.connectMs.push(...p.connectMs);
      out.registerMs.push(...p.registerMs);
      out.errors += p.errors;
      out.skipped += p.skipped;
      out.firstErrors.push(...p.firstErrors);
    }
    out.wallMs = now() - t0;
    return out;
  }

  /** Dials and opens the map stream of the given nodes; resolves when all have their first map. */
  async openStreams(indices: readonly number[], concurrency: number, timeoutMs: number): Promise<MergedOpen> {
    const t0 = now();
    const parts = await Promise.all(
      [...this.slices(indices)].map(([w, idx]) =>
        w.call({ type: 'open-streams', indices: idx, concurrency: this.perWorker(concurrency), timeoutMs }),
      ),
    );
    const out: MergedOpen = { openMs: [], errors: 0, firstErrors: [], wallMs: 0 };
    for (const p of parts) {
      out.openMs.push(...p.openMs);
      out.errors += p.errors;
      out.firstErrors.push(...p.firstErrors);
    }
    out.wallMs = now() - t0;
    return out;
  }

  /** Dials node `index` so that `firstMap` measures only the map request. */
  prepare(index: number): Promise<null> {
    return this.owner(index).call({ type: 'prepare', index });
  }

  /** Opens node `index`'s map stream on the prepared connection; leaves it open (see close). */
  async firstMap(index: number, timeoutMs: number): Promise<ResultOf['first-map'] & { ms: number }> {
    const r = await this.owner(index).call({ type: 'first-map', index, timeoutMs });
    return { ...r, ms: r.t1 - r.t0 };
  }

  /** Tells every worker to give up a running storm. */
  async abort(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call({ type: 'abort' }).catch(() => null)));
  }

  close(index: number): Promise<null> {
    return this.owner(index).call({ type: 'close', index });
  }

  async record(marker: Marker, idOfKey?: string): Promise<void> {
    await Promise.all(
      this.workers.map((w) => w.call({ type: 'record', marker, ...(idOfKey ? { idOfKey } : {}) })),
    );
  }

  /** Latency of the recorded change at every open stream, from `since` (coordinator clock). */
  async collect(since: number, exclude: readonly number[], final: boolean): Promise<MergedCollect> {
    const parts = await Promise.all(
      this.workers.map(async (w) => ({
        w,
        r: await w.call({ type: 'collect', since: w.remote(since), exclude, final }),
      })),
    );
    const out: MergedCollect = {
      latenciesMs: [],
      missing: 0,
      missingSample: [],
      id: null,
      framesSeen: 0,
      bigFrames: 0,
    };
    for (const { w, r } of parts) {
      for (const t of r.times) out.latenciesMs.push(w.local(t) - since);
      out.missing += r.missing;
      out.missingSample.push(...r.missingSample);
      out.id ??= r.id;
      out.framesSeen += r.framesSeen;
      out.bigFrames += r.bigFrames;
    }
    return out;
  }

  nodeKey(index: number): Promise<string> {
    return this.owner(index).call({ type: 'node-key', index });
  }

  /** Node `index` dials, registers (t0, coordinator clock) and opens its stream. */
  async join(index: number, timeoutMs: number): Promise<{ t0: number; registerMs: number; nodeKey: string }> {
    const w = this.owner(index);
    const r = await w.call({ type: 'join', index, timeoutMs });
    return { t0: w.local(r.t0), registerMs: r.registered - r.t0, nodeKey: r.nodeKey };
  }

  /** Node `index` announces a new endpoint; returns when it was sent (coordinator clock). */
  async endpoint(index: number, endpoint: string): Promise<{ t0: number }> {
    const w = this.owner(index);
    const r = await w.call({ type: 'endpoint', index, endpoint });
    return { t0: w.local(r.t0) };
  }

  /**
   * Every open stream ends at once (see StormMode) and all reconnect; times are from `t0`, the
   * moment the command went out (so a graceful close's few milliseconds count too).
   */
  async storm(mode: StormMode, timeoutMs: number): Promise<MergedStorm & { t0: number }> {
    const t0 = now();
    const parts = await Promise.all(
      this.workers.map(async (w) => ({ w, r: await w.call({ type: 'storm', mode, timeoutMs }) })),
    );
    const out: MergedStorm = { mapMs: [], failed: 0, retries: 0, firstErrors: [] };
    for (const { w, r } of parts) {
      for (const t of r.mapAt) out.mapMs.push(w.local(t) - t0);
      out.failed += r.failed;
      out.retries += r.retries;
      out.firstErrors.push(...r.firstErrors);
    }
    return { ...out, t0 };
  }

  async stats(): Promise<FleetStats> {
    const parts: WorkerStats[] = await Promise.all(this.workers.map((w) => w.call({ type: 'stats' })));
    return {
      rssKb: parts.reduce((a, p) => a + p.rssKb, 0),
      cpuMs: parts.reduce((a, p) => a + p.cpuMs, 0),
      openStreams: parts.reduce((a, p) => a + p.openStreams, 0),
      streamsLost: parts.reduce((a, p) => a + p.streamsLost, 0),
      framesReceived: parts.reduce((a, p) => a + p.framesReceived, 0),
      bytesReceived: parts.reduce((a, p) => a + p.bytesReceived, 0),
      perWorkerRssKb: parts.map((p) => p.rssKb),
    };
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call({ type: 'close-all' }).catch(() => null)));
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exited) return resolve();
            const t = setTimeout(() => w.proc.kill('SIGKILL'), 5000);
            w.proc.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            w.proc.disconnect();
          }),
      ),
    );
  }
}
