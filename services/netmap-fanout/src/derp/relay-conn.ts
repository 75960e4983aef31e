/**
 * One DERP client connection on the relay: handshake (ServerKey → ClientInfo → ServerInfo within
 * `handshakeTimeoutMs`), then frames. Everything the client sends is bounded here; a protocol error
 * closes this connection only and is logged (rate-limited).
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '@switchboard/common';
import {
  DerpFrameError,
  FrameReader,
  FrameType,
  KEEP_ALIVE,
  MAX_CLIENT_FRAME_LEN,
  MAX_CLIENT_INFO_LEN,
  PeerGoneReason,
  decodeClientFrame,
  encodePeerGone,
  encodePong,
  encodeServerInfo,
  encodeServerKey,
  meshKeyEqual,
  openClientInfo,
  type ClientInfo,
} from '@switchboard/derp';
import { keepAliveDelay, type DerpRelay } from './derp-relay.js';

export interface RelayConnOptions {
  relay: DerpRelay;
  socket: Duplex;
  head: Buffer;
  fastStart: boolean;
  notIdeal: boolean;
  remote: string;
  remotePort: number;
  logger: Logger;
}

const DISCO_MAGIC = Buffer.from('TS💬', 'utf8');
const DEFAULT_QUEUE_BYTES = 256 << 10;

export class RelayConn {
  key: Buffer = Buffer.alloc(32);
  keyHex = '';
  info: ClientInfo | undefined;
  isMesh = false;
  readonly remote: string;
  readonly remotePort: number;
  readonly notIdeal: boolean;
  private ready = false;
  private closed = false;
  private readonly reader: FrameReader;
  private timer: NodeJS.Timeout | undefined;
  private peerGoneTokens = 3;
  private peerGoneRefill = Date.now();
  private readonly queueBytes: number;

  constructor(private readonly o: RelayConnOptions) {
    this.remote = o.remote.replace(/^::ffff:/, '');
    this.remotePort = o.remotePort;
    this.notIdeal = o.notIdeal;
    this.queueBytes = o.relay.o.queueBytes ?? DEFAULT_QUEUE_BYTES;
    this.reader = new FrameReader(MAX_CLIENT_INFO_LEN, (t, p) => this.onFrame(t, p));
  }

  start(): void {
    const { socket, relay } = this.o;
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    if (!this.o.fastStart)
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n' +
          `Derp-Version: 2\r\nDerp-Public-Key: ${relay.publicKeyHex}\r\n\r\n`,
      );
    socket.write(encodeServerKey(relay.o.key.publicKey));
    this.timer = setTimeout(() => {
      relay.stats.refused.handshake++;
      this.fail('no ClientInfo within the handshake timeout');
    }, relay.o.handshakeTimeoutMs ?? 10_000);
    this.timer.unref();
    if (this.o.head.length > 0) this.onData(this.o.head);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.o.relay.stats.protocolErrors++;
      this.fail(err instanceof DerpFrameError ? err.message : String(err));
    }
  }

  private onFrame(type: number, payload: Buffer): void {
    if (this.closed) return;
    if (!this.ready) return this.handshake(type, payload);
    const f = decodeClientFrame(type, payload);
    const relay = this.o.relay;
    switch (f.type) {
      case 'send-packet':
        return relay.deliver(this.key, f.dst, f.packet, this, false);
      case 'forward-packet':
        if (!this.isMesh) throw new DerpFrameError('ForwardPacket needs the mesh key', type);
        return relay.deliver(f.src, f.dst, f.packet, this, true);
      case 'watch-conns':
        if (!this.isMesh) throw new DerpFrameError('WatchConns needs the mesh key', type);
        return relay.addWatcher(this);
      case 'close-peer':
        if (!this.isMesh) throw new DerpFrameError('ClosePeer needs the mesh key', type);
        relay.closeKey(f.peer.toString('hex'), 'ClosePeer from a mesh peer');
        return;
      case 'ping':
        this.sendControl(encodePong(f.data));
        return;
      case 'note-preferred':
      case 'pong':
      case 'unknown':
        return;
    }
  }

  private handshake(type: number, payload: Buffer): void {
    const relay = this.o.relay;
    if (type !== FrameType.ClientInfo) {
      relay.stats.refused.handshake++;
      throw new DerpFrameError(`first frame must be ClientInfo, got type ${type}`, type);
    }
    let opened;
    try {
      opened = openClientInfo(relay.o.key, payload);
    } catch (err) {
      relay.stats.refused.handshake++;
      throw err;
    }
    this.key = opened.clientKey;
    this.keyHex = opened.clientKey.toString('hex');
    this.info = opened.info;
    this.isMesh = relay.o.meshKey !== '' && meshKeyEqual(opened.info.meshKey, relay.o.meshKey);
    if (!relay.register(this)) {
      this.closed = true; // never registered: nothing to unregister
      clearTimeout(this.timer);
      this.o.socket.destroy();
      return;
    }
    this.ready = true;
    clearTimeout(this.timer);
    this.reader.setMaxFrameLen(MAX_CLIENT_FRAME_LEN);
    this.o.socket.write(encodeServerInfo(opened.shared));
    this.scheduleKeepAlive();
  }

  private scheduleKeepAlive(): void {
    const base = this.o.relay.o.keepAliveMs ?? 60_000;
    this.timer = setTimeout(() => {
      if (this.closed) return;
      this.sendControl(KEEP_ALIVE);
      this.scheduleKeepAlive();
    }, keepAliveDelay(base));
    this.timer.unref();
  }

  /** Queues a packet frame; false (dropped) when the client already holds `queueBytes` unsent. */
  sendPacket(frame: Buffer): boolean {
    if (this.closed) return false;
    if (this.o.socket.writableLength + frame.length > this.queueBytes) return false;
    this.o.socket.write(frame);
    return true;
  }

  /** Control frames (pong, keep-alive, presence) are small; a client that never reads is dropped. */
  sendControl(frame: Buffer): void {
    if (this.closed) return;
    const limit = this.isMesh ? 64 * this.queueBytes : 4 * this.queueBytes;
    if (this.o.socket.writableLength > limit) return this.fail('client is not reading its frames');
    this.o.socket.write(frame);
  }

  /** PeerGone(NotHere) for a disco packet to an unknown key, at most 3 at once and 1/s. */
  peerGoneNotHere(dst: Buffer, packet: Buffer): void {
    if (!packet.subarray(0, DISCO_MAGIC.length).equals(DISCO_MAGIC)) return;
    const now = Date.now();
    this.peerGoneTokens = Math.min(3, this.peerGoneTokens + (now - this.peerGoneRefill) / 1000);
    this.peerGoneRefill = now;
    if (this.peerGoneTokens < 1) return;
    this.peerGoneTokens--;
    this.sendControl(encodePeerGone(dst, PeerGoneReason.NotHere));
  }

  private fail(why: string): void {
    if (this.closed) return;
    this.o.logger.warn('closed a DERP connection', {
      reason: why,
      remote: this.remote,
      nodeKey: this.keyHex ? `nodekey:${this.keyHex}` : undefined,
    });
    this.close();
  }

  close(why?: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    if (why)
      this.o.logger.debug('closing a DERP connection', { reason: why, nodeKey: `nodekey:${this.keyHex}` });
    if (this.ready) this.o.relay.unregister(this);
    this.o.socket.destroy();
  }
}
