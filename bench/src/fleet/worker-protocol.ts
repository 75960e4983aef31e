/**
 * Messages between the coordinator and a generator worker process (over the fork IPC channel). Each
 * command carries an `id`; the worker answers with a reply of the same id, either `ok` with the
 * command's result or an error text. Timestamps are the worker's `now()` (see clock.ts); the
 * coordinator converts them with the offset it measured.
 */

export interface WorkerInit {
  /** Control URLs; node i uses urls[i % urls.length] (several fanout replicas). */
  readonly urls: readonly string[];
  /** The server's Noise key, `mkey:…`. */
  readonly serverPublic: string;
  readonly capVersion: number;
  /** Pre-auth key of user-owned nodes. */
  readonly authKey: string;
  /** Pre-auth key tagged tag:hub, for hubs (hub topology), else null. */
  readonly hubAuthKey: string | null;
  /** Nodes 0..hubs-1 are hubs, as are the joiners (indices >= nodes) when there are hubs. */
  readonly hubs: number;
  readonly nodes: number;
  /** Global node indices this worker owns. */
  readonly indices: readonly number[];
  /** Frames larger than this (compressed bytes) are not kept for later analysis (default 256 KiB). */
  readonly keepFrameBytes?: number;
}

/** What marks that a change reached a stream. */
export type Marker =
  /** The decompressed frame contains this text (a node key for a join, an endpoint for a change). */
  | { readonly kind: 'contains'; readonly text: string }
  /** The frame removes node `id`: PeersRemoved holds it, or a full Peers list lacks it. */
  | { readonly kind: 'removed'; readonly id: number };

export type Command =
  | { readonly type: 'init'; readonly init: WorkerInit }
  | { readonly type: 'ping' }
  /** Connect, register and disconnect every owned node (not the joiners), `concurrency` at a time. */
  | {
      readonly type: 'register';
      readonly indices: readonly number[];
      readonly concurrency: number;
      /** No new registration starts after this long (ms); the rest count as skipped. */
      readonly budgetMs: number;
    }
  /** Connect and open the map stream of the given nodes, `concurrency` at a time. */
  | {
      readonly type: 'open-streams';
      readonly indices: readonly number[];
      readonly concurrency: number;
      readonly timeoutMs: number;
    }
  /** Connect one node (not timed); the next 'first-map' uses this connection. */
  | { readonly type: 'prepare'; readonly index: number }
  /** Request a streaming map on the prepared connection; wait for and parse the first frame; close. */
  | { readonly type: 'first-map'; readonly index: number; readonly timeoutMs: number }
  /**
   * Start keeping every frame that arrives, with its receive time. Frames too large to keep are
   * matched against `marker` on arrival. For a join, `idOfKey` asks for the ID of the peer with
   * that node key (read from the matching frame).
   */
  | { readonly type: 'record'; readonly marker: Marker; readonly idOfKey?: string }
  /**
   * Find in each stream open when recording began the first frame at/after `since` that matches
   * (frames are analysed once; a later call continues where the last one stopped). `final` also
   * stops recording.
   */
  | {
      readonly type: 'collect';
      readonly since: number;
      readonly final: boolean;
      /** Node indices whose streams are not counted (the node the change is about). */
      readonly exclude: readonly number[];
    }
  /** A new node: connect (not timed), then register (t0 = request sent), then open its stream. */
  | { readonly type: 'join'; readonly index: number; readonly timeoutMs: number }
  /** An endpoint change of a streaming node: a lite map update with new Endpoints (t0 = sent). */
  | { readonly type: 'endpoint'; readonly index: number; readonly endpoint: string }
  /**
   * Every open stream ends at once and all nodes reconnect and reopen their streams. `graceful`: the
   * client cancels its stream and closes the connection (GOAWAY, FIN); `abrupt`: the connection is
   * destroyed with nothing sent first, as when a network path or a load balancer fails.
   */
  | { readonly type: 'storm'; readonly mode: StormMode; readonly timeoutMs: number }
  /** Ends a running storm: nodes still reconnecting give up (the server is gone). */
  | { readonly type: 'abort' }
  /** Closes one node's connection (after 'first-map'). */
  | { readonly type: 'close'; readonly index: number }
  | { readonly type: 'node-key'; readonly index: number }
  | { readonly type: 'stats' }
  | { readonly type: 'close-all' };

export type CommandType = Command['type'];

export type StormMode = 'graceful' | 'abrupt';

export interface RegisterResult {
  /** Per successful node: Noise dial (TCP, upgrade, handshake, HTTP/2) in ms. */
  readonly connectMs: number[];
  /** Per successful node: the /machine/register request in ms. */
  readonly registerMs: number[];
  readonly errors: number;
  /** Nodes not attempted because the time budget ran out. */
  readonly skipped: number;
  readonly firstErrors: string[];
  readonly start: number;
  readonly end: number;
}

export interface OpenStreamsResult {
  /** Per opened stream: dial plus time to the first (full) map frame, ms. */
  readonly openMs: number[];
  readonly errors: number;
  readonly firstErrors: string[];
  readonly start: number;
  readonly end: number;
}

export interface FirstMapResult {
  /** Request sent → first frame complete. */
  readonly t0: number;
  readonly t1: number;
  readonly frameBytes: number;
  readonly jsonBytes: number;
  readonly peers: number;
  readonly selfId: number | null;
}

export interface CollectResult {
  /** Per stream that saw the change: receive time (worker clock). */
  readonly times: number[];
  /** Streams open during the window that never saw it. */
  readonly missing: number;
  /** Node indices of some streams that never saw it (for diagnosis). */
  readonly missingSample: number[];
  /** The peer ID carried with idOfKey, if asked and found. */
  readonly id: number | null;
  readonly framesSeen: number;
  /** Frames too large to keep that were analysed on arrival. */
  readonly bigFrames: number;
}

export interface JoinResult {
  readonly t0: number;
  readonly registered: number;
  readonly nodeKey: string;
}

export interface EndpointResult {
  readonly t0: number;
  readonly done: number;
}

export interface StormResult {
  /** When the connections were down and reconnecting began (worker clock). */
  readonly start: number;
  /** Per node that got its map again: time of the first frame (worker clock). */
  readonly mapAt: number[];
  readonly failed: number;
  readonly retries: number;
  readonly firstErrors: string[];
}

export interface WorkerStats {
  readonly rssKb: number;
  readonly heapUsedKb: number;
  readonly cpuMs: number;
  readonly openStreams: number;
  /** Streams the server closed or that failed, since the last stats call. */
  readonly streamsLost: number;
  readonly framesReceived: number;
  readonly bytesReceived: number;
}

export interface ResultOf {
  init: null;
  ping: number;
  register: RegisterResult;
  'open-streams': OpenStreamsResult;
  prepare: null;
  'first-map': FirstMapResult;
  record: null;
  collect: CollectResult;
  join: JoinResult;
  endpoint: EndpointResult;
  storm: StormResult;
  close: null;
  abort: null;
  'node-key': string;
  stats: WorkerStats;
  'close-all': null;
}

export interface Request {
  readonly id: number;
  readonly cmd: Command;
}

export type Reply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };
