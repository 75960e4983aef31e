/**
 * A simulated node: its own machine and node keys, a Noise session and HTTP/2 connection to the
 * control server, registration with a pre-auth key and a map stream whose messages are applied to a
 * local peer table, like tailscaled's map session does. Used by cross-service tests and benchmarks.
 */
import {
  ControlClient,
  CURRENT_CAPVER,
  fetchServerKey,
  formatKey,
  generatePrivateKey,
  publicKeyFromPrivate,
  type MachinePublic,
  type MapRequest,
  type MapResponse,
  type PrivateKey,
  type RegisterResponse,
} from '@switchboard/protocol';

export interface SimNodeOptions {
  url: string;
  serverPublic?: MachinePublic;
  hostname?: string;
  capVersion?: number;
  machinePrivate?: PrivateKey;
}

type PeerNode = Record<string, unknown> & { ID: number };

export class SimNode {
  readonly machinePrivate: PrivateKey;
  nodePrivate: PrivateKey = generatePrivateKey();
  readonly discoPrivate: PrivateKey = generatePrivateKey();
  client: ControlClient | undefined;
  /** Peer table as the client sees it (after applying every delta). */
  readonly peers = new Map<number, PeerNode>();
  self: Record<string, unknown> | undefined;
  readonly messages: MapResponse[] = [];
  /** Sent with every register and map request, like tailscaled does. */
  hostinfo: Record<string, unknown>;
  private listeners: (() => void)[] = [];
  private streamAbort: AbortController | undefined;
  streamDone: Promise<void> | undefined;
  streamError: unknown;

  constructor(readonly opts: SimNodeOptions) {
    this.machinePrivate = opts.machinePrivate ?? generatePrivateKey();
    this.hostinfo = { Hostname: opts.hostname ?? 'sim', OS: 'linux', BackendLogID: 'sim' };
  }

  get nodeKey(): string {
    return formatKey('node', publicKeyFromPrivate('node', this.nodePrivate));
  }
  get machineKey(): string {
    return formatKey('machine', publicKeyFromPrivate('machine', this.machinePrivate));
  }
  get discoKey(): string {
    return formatKey('disco', publicKeyFromPrivate('disco', this.discoPrivate));
  }
  get capVersion(): number {
    return this.opts.capVersion ?? CURRENT_CAPVER;
  }

  async connect(): Promise<ControlClient> {
    const serverPublic = this.opts.serverPublic ?? (await fetchServerKey(this.opts.url)).publicKey;
    this.client = await ControlClient.connect({
      url: this.opts.url,
      machinePrivate: this.machinePrivate,
      serverPublic,
      capVersion: this.capVersion,
    });
    return this.client;
  }

  async register(authKey: string | null, extra: Record<string, unknown> = {}): Promise<RegisterResponse> {
    const c = this.client ?? (await this.connect());
    if (extra.Hostinfo) this.hostinfo = extra.Hostinfo as Record<string, unknown>;
    return c.register({
      Version: this.capVersion,
      NodeKey: this.nodeKey,
      ...(authKey !== null ? { Auth: { AuthKey: authKey } } : {}),
      ...extra,
      Hostinfo: this.hostinfo,
    });
  }

  mapRequest(over: Partial<MapRequest> = {}): MapRequest {
    return {
      Version: this.capVersion,
      NodeKey: this.nodeKey,
      DiscoKey: this.discoKey,
      Compress: 'zstd',
      KeepAlive: true,
      Stream: true,
      Hostinfo: this.hostinfo,
      Endpoints: ['192.0.2.1:41641'],
      ...over,
    };
  }

  /** Starts the long-poll map stream and applies every message to `peers`/`self`. */
  startStream(): Promise<MapResponse> {
    const c = this.client;
    if (!c) throw new Error('connect and register first');
    this.streamAbort = new AbortController();
    let first!: (m: MapResponse) => void;
    let firstErr!: (e: unknown) => void;
    const firstP = new Promise<MapResponse>((res, rej) => {
      first = res;
      firstErr = rej;
    });
    let gotFirst = false;
    this.streamDone = (async () => {
      try {
        for await (const m of c.mapStream(this.mapRequest(), {
          signal: this.streamAbort!.signal,
          keepAlives: false,
        })) {
          this.apply(m.message);
          if (!gotFirst) {
            gotFirst = true;
            first(m.message);
          }
        }
      } catch (err) {
        this.streamError = err;
        if (!gotFirst) firstErr(err);
      }
      if (!gotFirst) firstErr(new Error('map stream ended before the first message'));
    })();
    return firstP;
  }

  stopStream(): void {
    this.streamAbort?.abort();
  }

  apply(m: MapResponse): void {
    this.messages.push(m);
    const msg = m as unknown as Record<string, unknown>;
    if (msg.Node) this.self = msg.Node as Record<string, unknown>;
    const full = msg.Peers as PeerNode[] | undefined;
    if (full && full.length > 0) {
      this.peers.clear();
      for (const p of full) this.peers.set(p.ID, p);
    } else {
      for (const id of (msg.PeersRemoved as number[] | undefined) ?? []) this.peers.delete(id);
      for (const p of (msg.PeersChanged as PeerNode[] | undefined) ?? []) this.peers.set(p.ID, p);
      for (const patch of (msg.PeersChangedPatch as
        (Record<string, unknown> & { NodeID: number })[] | undefined) ?? []) {
        const p = this.peers.get(patch.NodeID);
        if (!p) continue;
        for (const [k, v] of Object.entries(patch)) {
          if (k === 'NodeID') continue;
          const key = k === 'DERPRegion' ? 'HomeDERP' : k;
          p[key] = v;
        }
      }
    }
    for (const l of this.listeners.splice(0)) l();
  }

  /** Resolves on the next applied message. */
  nextMessage(timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no map message within ${timeoutMs} ms`)), timeoutMs);
      this.listeners.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.stopStream();
    await this.client?.close();
  }
}
