/**
 * A DERP client (the Go `derphttp.Client` subset we need): `GET /derp` with `Upgrade: DERP` over
 * TLS or plain TCP, the 101 response, ServerKey → ClientInfo → ServerInfo, then frames. Used by the
 * mesh links between replicas, by tests and by the benchmark's simulated clients.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  BoxKey,
  FrameReader,
  FrameType,
  MAX_INFO_LEN,
  NONCE_LEN,
  WATCH_CONNS,
  decodeServerFrame,
  encodeClientInfo,
  encodeForwardPacket,
  encodeSendPacket,
  openServerInfo,
  type ServerFrame,
} from '@switchboard/derp';

export interface DerpClientOptions {
  url: string;
  key: BoxKey;
  meshKey?: string;
  /** Skip certificate checks (self-signed relays of our own replicas, tests). */
  insecure?: boolean;
  timeoutMs?: number;
  onFrame?: (f: ServerFrame) => void;
  onClose?: (err?: Error) => void;
}

export class DerpClient {
  serverKey = Buffer.alloc(32);
  private socket: Socket | undefined;
  private closed = false;

  constructor(private readonly o: DerpClientOptions) {}

  /** Connects and completes the handshake. */
  async connect(): Promise<void> {
    const u = new URL(this.o.url);
    const tls = u.protocol === 'https:';
    const port = Number(u.port || (tls ? 443 : 80));
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const socket: Socket = tls
      ? tlsConnect({
          host,
          port,
          servername: host,
          rejectUnauthorized: !this.o.insecure,
          ALPNProtocols: ['http/1.1'],
        })
      : netConnect({ host, port });
    socket.setNoDelay(true);
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new Error(`DERP handshake with ${this.o.url} timed out`)),
        this.o.timeoutMs ?? 10_000,
      );
      let stage: 'http' | 'key' | 'info' | 'ready' = 'http';
      let head = Buffer.alloc(0);
      let shared: Uint8Array | null = null;
      const fail = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const reader = new FrameReader(MAX_INFO_LEN + NONCE_LEN, (t, p) => {
        if (stage === 'key') {
          const f = decodeServerFrame(t, p);
          if (f.type !== 'server-key') return fail(new Error(`expected ServerKey, got frame ${t}`));
          this.serverKey = Buffer.from(f.key);
          shared = this.o.key.sharedKey(this.serverKey);
          socket.write(
            encodeClientInfo(this.o.key, this.serverKey, {
              canAckPings: true,
              ...(this.o.meshKey ? { meshKey: this.o.meshKey } : {}),
            }),
          );
          stage = 'info';
          return;
        }
        if (stage === 'info' && t === FrameType.ServerInfo) {
          if (!shared) return fail(new Error('low-order server key'));
          openServerInfo(shared, p);
          stage = 'ready';
          clearTimeout(timer);
          resolve();
          return;
        }
        if (stage === 'ready') this.o.onFrame?.(decodeServerFrame(t, Buffer.from(p)));
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          if (stage !== 'http') return reader.push(chunk);
          head = Buffer.concat([head, chunk]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) {
            if (head.length > 8192) fail(new Error('oversized HTTP response'));
            return;
          }
          const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
          if (!/^HTTP\/1\.1 101/.test(status)) return fail(new Error(`DERP upgrade refused: ${status}`));
          stage = 'key';
          reader.push(head.subarray(end + 4));
        } catch (err) {
          fail(err as Error);
        }
      });
      socket.on('error', (err) => {
        if (stage !== 'ready') fail(err);
      });
      socket.on('close', () => {
        if (stage !== 'ready')
          fail(new Error(`connection to ${this.o.url} closed during the DERP handshake`));
        else this.onClosed();
      });
      socket.once(tls ? 'secureConnect' : 'connect', () =>
        socket.write(
          `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n`,
        ),
      );
    });
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.o.onClose?.();
  }

  get open(): boolean {
    return !this.closed && this.socket !== undefined && !this.socket.destroyed;
  }

  /** Bytes written but not yet sent. */
  get pendingBytes(): number {
    return this.socket?.writableLength ?? 0;
  }

  send(dst: Uint8Array, packet: Uint8Array): boolean {
    return this.socket?.write(encodeSendPacket(dst, packet)) ?? false;
  }

  forward(src: Uint8Array, dst: Uint8Array, packet: Uint8Array): boolean {
    if (!this.open) return false;
    this.socket?.write(encodeForwardPacket(src, dst, packet));
    return true;
  }

  writeRaw(b: Buffer): void {
    this.socket?.write(b);
  }

  watchConns(): void {
    this.socket?.write(WATCH_CONNS);
  }

  /** Waits until the socket's buffer drains (for senders that respect back-pressure). */
  drained(): Promise<void> {
    const s = this.socket;
    if (!s || s.writableLength === 0) return Promise.resolve();
    return new Promise((r) => s.once('drain', () => r()));
  }

  close(): void {
    this.socket?.destroy();
    this.onClosed();
  }
}
