/**
 * A load-generator worker process (forked by the coordinator, see fleet.ts). It owns a slice of the
 * simulated nodes, runs the commands of worker-protocol.ts against them and answers over IPC. While
 * a change is measured it only timestamps and keeps the frames that arrive; matching them against the
 * change (decompress, search, parse) happens afterwards in `collect`, so analysis work never delays a
 * receive timestamp. Frames too large to keep are analysed on arrival instead.
 */
import { initZstd, parseKey, zstdDecompress, type MachinePublic } from '@switchboard/protocol';
import { now, sleep } from '../clock.js';
import { LeanNode, type StreamHandlers } from './lean-node.js';
import type {
  CollectResult,
  Command,
  FirstMapResult,
  Marker,
  Reply,
  Request,
  ResultOf,
  StormMode,
  WorkerInit,
  WorkerStats,
} from './worker-protocol.js';

interface Rec {
  readonly t: number;
  readonly payload: Buffer | null;
  /** For frames analysed on arrival. */
  readonly match?: boolean;
  readonly id?: number | null;
}

interface Recording {
  readonly marker: Marker;
  readonly idOfKey: string | undefined;
  readonly frames: Map<LeanNode, Rec[]>;
  /** Nodes whose streams were open when recording began. */
  readonly streaming: Set<LeanNode>;
  /** Per stream: how far its frames are analysed and when it first matched. */
  readonly state: Map<LeanNode, { next: number; at: number | null }>;
  /** ID found for idOfKey. */
  id: number | null;
  /** Frames recorded so far. */
  recorded: number;
}

const MAX_ERRORS_KEPT = 5;

class Worker {
  private init: WorkerInit | null = null;
  private serverPublic: MachinePublic | null = null;
  private readonly nodes = new Map<number, LeanNode>();
  private recording: Recording | null = null;
  private readonly keepFirst = new Map<LeanNode, (payload: Buffer | null) => void>();
  private keepBytes = 256 * 1024;
  private framesReceived = 0;
  private bytesReceived = 0;
  private streamsLost = 0;
  /** Streams we end on purpose (storm, close-all) are not counted as lost. */
  private quiet = false;
  private aborted = false;

  private readonly handlers: StreamHandlers = {
    keep: (node, len, first) => (first ? this.keepFirst.has(node) : this.recording !== null && len > 0),
    onFrame: (node, len, payload, t, first) => {
      this.framesReceived++;
      this.bytesReceived += len + 4;
      if (first) {
        const cb = this.keepFirst.get(node);
        if (cb) {
          this.keepFirst.delete(node);
          cb(payload);
        }
        return;
      }
      const rec = this.recording;
      if (!rec || !payload) return;
      rec.recorded++;
      if (rec.state.get(node)?.at != null) return; // already matched
      let list = rec.frames.get(node);
      if (!list) rec.frames.set(node, (list = []));
      if (payload.length > this.keepBytes) {
        const m = matchFrame(payload, rec.marker, rec.idOfKey);
        list.push({ t, payload: null, match: m.match, id: m.id });
      } else list.push({ t, payload });
    },
    onEnd: (node, gen) => {
      if (node.gen === gen && !this.quiet) this.streamsLost++;
    },
  };

  node(index: number): LeanNode {
    const init = this.init;
    if (!init) throw new Error('worker not initialised');
    let n = this.nodes.get(index);
    if (!n) {
      n = new LeanNode(index, init.urls[index % init.urls.length]!, init.capVersion);
      this.nodes.set(index, n);
    }
    return n;
  }

  /** Hubs (the first `hubs` nodes and, with hubs, the joiners) use the tagged key. */
  private authKeyOf(index: number): string {
    const init = this.init!;
    const hubKey = init.hubAuthKey;
    if (hubKey !== null && (index < init.hubs || index >= init.nodes)) return hubKey;
    return init.authKey;
  }

  private get key(): MachinePublic {
    if (!this.serverPublic) throw new Error('worker not initialised');
    return this.serverPublic;
  }

  async run(cmd: Command): Promise<ResultOf[Command['type']]> {
    switch (cmd.type) {
      case 'init': {
        await initZstd();
        this.init = cmd.init;
        this.serverPublic = parseKey('machine', cmd.init.serverPublic, 'serverPublic');
        this.keepBytes = cmd.init.keepFrameBytes ?? this.keepBytes;
        for (const i of cmd.init.indices) this.node(i);
        return null;
      }
      case 'ping':
        return now();
      case 'register':
        return this.register(cmd.indices, cmd.concurrency, cmd.budgetMs);
      case 'open-streams':
        return this.openStreams(cmd.indices, cmd.concurrency, cmd.timeoutMs);
      case 'prepare':
        await this.node(cmd.index).connect(this.key);
        return null;
      case 'first-map':
        return this.firstMap(cmd.index, cmd.timeoutMs);
      case 'record':
        this.startRecording(cmd.marker, cmd.idOfKey);
        return null;
      case 'collect':
        return this.collect(cmd.since, cmd.exclude, cmd.final);
      case 'join':
        return this.join(cmd.index, cmd.timeoutMs);
      case 'endpoint': {
        const n = this.node(cmd.index);
        const t0 = now();
        await n.sendEndpoint(cmd.endpoint);
        return { t0, done: now() };
      }
      case 'storm':
        return this.storm(cmd.mode, cmd.timeoutMs);
      case 'abort':
        this.aborted = true;
        return null;
      case 'close': {
        this.quiet = true;
        await this.node(cmd.index).close();
        this.quiet = false;
        return null;
      }
      case 'node-key':
        return this.node(cmd.index).nodeKey;
      case 'stats':
        return this.stats();
      case 'close-all': {
        this.quiet = true;
        await Promise.all([...this.nodes.values()].map((n) => n.close()));
        this.quiet = false;
        return null;
      }
    }
  }

  private startRecording(marker: Marker, idOfKey: string | undefined): void {
    const streaming = new Set<LeanNode>();
    for (const n of this.nodes.values()) if (n.streaming && n.firstFrameAt > 0) streaming.add(n);
    this.recording = {
      marker,
      idOfKey,
      frames: new Map(),
      streaming,
      state: new Map(),
      id: null,
      recorded: 0,
    };
  }

  private async register(
    indices: readonly number[],
    concurrency: number,
    budgetMs: number,
  ): Promise<ResultOf['register']> {
    const connectMs: number[] = [];
    const registerMs: number[] = [];
    const firstErrors: string[] = [];
    let errors = 0;
    let skipped = 0;
    const start = now();
    await pool(indices, concurrency, async (i) => {
      if (now() - start > budgetMs) {
        skipped++;
        return;
      }
      const n = this.node(i);
      try {
        const a = now();
        await n.connect(this.key);
        const b = now();
        await n.register(this.authKeyOf(i));
        const c = now();
        connectMs.push(b - a);
        registerMs.push(c - b);
      } catch (err) {
        errors++;
        if (firstErrors.length < MAX_ERRORS_KEPT) firstErrors.push(`node ${i}: ${describe(err)}`);
      } finally {
        await n.close();
      }
    });
    return { connectMs, registerMs, errors, skipped, firstErrors, start, end: now() };
  }

  private async openStreams(
    indices: readonly number[],
    concurrency: number,
    timeoutMs: number,
  ): Promise<ResultOf['open-streams']> {
    const openMs: number[] = [];
    const firstErrors: string[] = [];
    let errors = 0;
    const start = now();
    await pool(indices, concurrency, async (i) => {
      const n = this.node(i);
      try {
        const a = now();
        await n.connect(this.key);
        const t = await n.openStream(this.handlers, timeoutMs);
        openMs.push(t - a);
      } catch (err) {
        errors++;
        if (firstErrors.length < MAX_ERRORS_KEPT) firstErrors.push(`node ${i}: ${describe(err)}`);
        n.drop();
      }
    });
    return { openMs, errors, firstErrors, start, end: now() };
  }

  private async firstMap(index: number, timeoutMs: number): Promise<FirstMapResult> {
    const n = this.node(index);
    if (!n.client) await n.connect(this.key);
    let payload: Buffer | null = null;
    this.keepFirst.set(n, (p) => (payload = p));
    const t0 = now();
    let t1: number;
    try {
      t1 = await n.openStream(this.handlers, timeoutMs);
    } finally {
      this.keepFirst.delete(n);
    }
    const p = payload as Buffer | null;
    if (!p) throw new Error('first frame was not kept');
    const json = Buffer.from(zstdDecompress(p));
    const msg = JSON.parse(json.toString('utf8')) as { Peers?: unknown[]; Node?: { ID?: number } };
    return {
      t0,
      t1,
      frameBytes: p.length + 4,
      jsonBytes: json.length,
      peers: msg.Peers?.length ?? 0,
      selfId: msg.Node?.ID ?? null,
    };
  }

  private collect(since: number, exclude: readonly number[], final: boolean): CollectResult {
    const rec = this.recording;
    if (!rec) throw new Error('collect without record');
    if (final) this.recording = null;
    const skip = new Set(exclude);
    const times: number[] = [];
    const missingSample: number[] = [];
    let missing = 0;
    let bigFrames = 0;
    for (const n of rec.streaming) {
      if (skip.has(n.index)) continue;
      let st = rec.state.get(n);
      if (!st) rec.state.set(n, (st = { next: 0, at: null }));
      const frames = rec.frames.get(n) ?? [];
      while (st.at === null && st.next < frames.length) {
        const f = frames[st.next++]!;
        if (f.t < since) continue;
        let m: { match: boolean; id: number | null };
        if (f.payload) m = matchFrame(f.payload, rec.marker, rec.id === null ? rec.idOfKey : undefined);
        else {
          bigFrames++;
          m = { match: f.match ?? false, id: f.id ?? null };
        }
        if (m.match) {
          st.at = f.t;
          if (rec.id === null && m.id !== null) rec.id = m.id;
        }
      }
      if (st.at !== null) times.push(st.at);
      else {
        missing++;
        if (missingSample.length < 5) missingSample.push(n.index);
      }
      // Frames already analysed are not needed again.
      if (st.next > 0 && frames.length > 0) {
        frames.splice(0, st.next);
        st.next = 0;
      }
    }
    return { times, missing, missingSample, id: rec.id, framesSeen: rec.recorded, bigFrames };
  }

  private async join(index: number, timeoutMs: number): Promise<ResultOf['join']> {
    const n = this.node(index);
    await n.connect(this.key);
    const t0 = now();
    await n.register(this.authKeyOf(index));
    const registered = now();
    await n.openStream(this.handlers, timeoutMs);
    return { t0, registered, nodeKey: n.nodeKey };
  }

  private async storm(mode: StormMode, timeoutMs: number): Promise<ResultOf['storm']> {
    const victims = [...this.nodes.values()].filter((n) => n.streaming);
    this.quiet = true;
    if (mode === 'abrupt') for (const n of victims) n.drop();
    else await Promise.all(victims.map((n) => n.close()));
    const start = now();
    const deadline = start + timeoutMs;
    this.aborted = false;
    const mapAt: number[] = [];
    const firstErrors: string[] = [];
    let failed = 0;
    let retries = 0;
    await Promise.all(
      victims.map(async (n) => {
        for (let attempt = 0; ; attempt++) {
          const left = deadline - now();
          if (left <= 0 || this.aborted) {
            failed++;
            return;
          }
          try {
            await n.connect(this.key, Math.min(left, 15_000));
            mapAt.push(await n.openStream(this.handlers, Math.max(1, deadline - now())));
            return;
          } catch (err) {
            n.drop();
            retries++;
            if (firstErrors.length < MAX_ERRORS_KEPT) firstErrors.push(`node ${n.index}: ${describe(err)}`);
            // Back off like a client would: 0.25-0.5 s, doubling, at most 4 s.
            await sleep(Math.min(4000, 250 * 2 ** Math.min(attempt, 4)) * (1 + Math.random()));
          }
        }
      }),
    );
    this.quiet = false;
    return { start, mapAt, failed, retries, firstErrors };
  }

  private stats(): WorkerStats {
    const m = process.memoryUsage();
    const c = process.cpuUsage();
    let open = 0;
    for (const n of this.nodes.values()) if (n.streaming) open++;
    const lost = this.streamsLost;
    this.streamsLost = 0;
    return {
      rssKb: Math.round(m.rss / 1024),
      heapUsedKb: Math.round(m.heapUsed / 1024),
      cpuMs: (c.user + c.system) / 1000,
      openStreams: open,
      streamsLost: lost,
      framesReceived: this.framesReceived,
      bytesReceived: this.bytesReceived,
    };
  }
}

/** Whether a frame carries the change; for a join, also the ID of the peer with key `idOfKey`. */
export function matchFrame(
  payload: Buffer,
  marker: Marker,
  idOfKey: string | undefined,
): { match: boolean; id: number | null } {
  const text = Buffer.from(zstdDecompress(payload)).toString('utf8');
  switch (marker.kind) {
    case 'contains': {
      if (!text.includes(marker.text)) return { match: false, id: null };
      if (idOfKey === undefined) return { match: true, id: null };
      const msg = JSON.parse(text) as { PeersChanged?: PeerLike[]; Peers?: PeerLike[] };
      const p = [...(msg.PeersChanged ?? []), ...(msg.Peers ?? [])].find((x) => x.Key === idOfKey);
      return { match: true, id: typeof p?.ID === 'number' ? p.ID : null };
    }
    case 'removed': {
      if (!text.includes('PeersRemoved') && !text.includes('"Peers":')) return { match: false, id: null };
      const msg = JSON.parse(text) as { PeersRemoved?: number[]; Peers?: PeerLike[] };
      if (msg.PeersRemoved?.includes(marker.id)) return { match: true, id: null };
      if (Array.isArray(msg.Peers) && !msg.Peers.some((p) => p.ID === marker.id))
        return { match: true, id: null };
      return { match: false, id: null };
    }
  }
}

interface PeerLike {
  ID?: number;
  Key?: string;
}

async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(lanes);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Entry point when this module is the forked worker. */
export function runWorker(): void {
  const w = new Worker();
  const send = (r: Reply): void => {
    process.send?.(r);
  };
  let uncaught = 0;
  process.on('uncaughtException', (err) => {
    if (uncaught++ < 5) process.stderr.write(`bench worker ${process.pid}: uncaught ${describe(err)}\n`);
  });
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw: unknown) => {
    const req = raw as Request;
    w.run(req.cmd).then(
      (value) => send({ id: req.id, ok: true, value }),
      (err: unknown) => send({ id: req.id, ok: false, error: describe(err) }),
    );
  });
}
