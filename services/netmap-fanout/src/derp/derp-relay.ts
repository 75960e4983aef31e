/**
 * The embedded DERP relay: the `/derp` upgrade (`Upgrade: DERP` and its `Derp-Fast-Start`
 * variant; WebSocket, used only by js/wasm clients, is refused), `/derp/probe`, `/derp/latency-check` and `/generate_204`, then one
 * `RelayConn` per client speaking @switchboard/derp frames.
 *
 * Bounds (what one client can do to the others): frames over MAX_CLIENT_FRAME_LEN or malformed
 * close that client only; each client's outgoing bytes are capped (`queueBytes`, the socket's own
 * buffer is the queue) and packets over the cap are dropped and counted; the handshake has 10 s;
 * admission asks `admit` (a node of the tailnet, live and unexpired) and `revoke()` cuts a key
 * off at once. Mesh peers (ClientInfo carrying the mesh key) may WatchConns, ForwardPacket and
 * ClosePeer; their PeerPresent/PeerGone feed `forwarders`, the mesh route table.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { LimitedLogger, type Logger } from '@switchboard/common';
import {
  BoxKey,
  PeerGoneReason,
  PeerPresentFlags,
  encodePeerGone,
  encodePeerPresent,
  encodeRecvPacket,
  ipTo16,
} from '@switchboard/derp';
import { RelayConn } from './relay-conn.js';

export interface RelayOptions {
  key: BoxKey;
  logger: Logger;
  /** True when `nodeKey` (`nodekey:<hex>`) belongs to a live node of the tailnet. */
  admit: (nodeKey: string) => boolean;
  /** Shared mesh key (64 hex); empty disables mesh peers. */
  meshKey: string;
  /** Outgoing bytes held per client before packets to it are dropped. */
  queueBytes?: number;
  keepAliveMs?: number;
  handshakeTimeoutMs?: number;
}

/** Counters, exported as prom-client-compatible text by `metricsText()`. */
export interface RelayStats {
  accepts: number;
  refused: Record<'unknown_node' | 'handshake' | 'upgrade', number>;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  forwardedOut: number;
  forwardedIn: number;
  drops: Record<'queue_full' | 'unknown_dest' | 'gone', number>;
  protocolErrors: number;
  revoked: number;
}

/** Something that can carry packets to a key connected elsewhere (a mesh connection). */
export interface PacketForwarder {
  forward(src: Buffer, dst: Buffer, packet: Buffer): boolean;
}

const CHALLENGE = /^[A-Za-z0-9._:-]{1,64}$/;

export class DerpRelay {
  readonly stats: RelayStats = {
    accepts: 0,
    refused: { unknown_node: 0, handshake: 0, upgrade: 0 },
    packetsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    forwardedOut: 0,
    forwardedIn: 0,
    drops: { queue_full: 0, unknown_dest: 0, gone: 0 },
    protocolErrors: 0,
    revoked: 0,
  };
  /** Connected clients by node key hex; the newest connection of a key receives. */
  private readonly clients = new Map<string, RelayConn[]>();
  /** Mesh watchers (other replicas' relays). */
  private readonly watchers = new Set<RelayConn>();
  /** Keys connected to other replicas, and the mesh link that reaches each. */
  private readonly forwarders = new Map<string, PacketForwarder>();
  /** Who sent to whom, so the receiver learns PeerGone when the sender leaves. */
  private readonly sentTo = new Map<RelayConn, Set<string>>();
  private readonly log: Logger;
  private readonly limited: Logger;
  private closed = false;
  readonly publicKeyHex: string;

  constructor(readonly o: RelayOptions) {
    this.log = o.logger;
    this.limited = new LimitedLogger(o.logger, { linesPerWindow: 30 });
    this.publicKeyHex = o.key.publicKey.toString('hex');
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Plain-HTTP routes: probe, latency check, captive-portal 204, and 426 for a /derp without upgrade. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/derp/probe' || path === '/derp/latency-check') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { 'content-type': 'text/plain' }).end('bogus probe method\n');
        return true;
      }
      res.writeHead(200, { 'access-control-allow-origin': '*' }).end();
      return true;
    }
    if (path === '/generate_204') {
      const headers: Record<string, string> = {
        'cache-control': 'no-cache, no-store, must-revalidate, no-transform, max-age=0',
      };
      const c = req.headers['x-tailscale-challenge'];
      if (typeof c === 'string' && CHALLENGE.test(c)) headers['x-tailscale-response'] = `response ${c}`;
      res.writeHead(204, headers).end();
      return true;
    }
    if (path === '/derp') {
      this.stats.refused.upgrade++;
      res.writeHead(426, { 'content-type': 'text/plain' }).end('DERP requires connection upgrade\n');
      return true;
    }
    return false;
  }

  /** Takes `/derp` upgrades; returns false for other paths. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if ((req.url ?? '').split('?')[0] !== '/derp') return false;
    const up = String(req.headers.upgrade ?? '').toLowerCase();
    if (up === 'websocket') {
      // Only js/wasm clients (or TS_DEBUG_DERP_WS_CLIENT) use DERP over WebSocket; not served here.
      this.stats.refused.upgrade++;
      socket.end(
        'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nDERP over WebSocket is not supported by this relay; use Upgrade: DERP\n',
      );
      return true;
    }
    if (up !== 'derp') {
      this.stats.refused.upgrade++;
      socket.end(
        'HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\n\r\nDERP requires connection upgrade\n',
      );
      return true;
    }
    if (this.closed) {
      socket.destroy();
      return true;
    }
    this.stats.accepts++;
    const remote = (socket as { remoteAddress?: string }).remoteAddress ?? '';
    const remotePort = (socket as { remotePort?: number }).remotePort ?? 0;
    const conn = new RelayConn({
      relay: this,
      socket,
      head,
      fastStart: req.headers['derp-fast-start'] === '1',
      notIdeal: typeof req.headers['ideal-node'] === 'string',
      remote,
      remotePort,
      logger: this.limited,
    });
    conn.start();
    return true;
  }

  // ---- called by RelayConn ----

  /** A client finished its handshake: admitted (true) or refused (false). */
  register(c: RelayConn): boolean {
    if (!c.isMesh && !this.o.admit(`nodekey:${c.keyHex}`)) {
      this.stats.refused.unknown_node++;
      this.limited.warn('refused a DERP client: its node key is not a live node of the tailnet', {
        nodeKey: `nodekey:${c.keyHex}`,
        remote: c.remote,
        hint: 'register the node first; a deleted or expired node may not use the relay',
      });
      return false;
    }
    const list = this.clients.get(c.keyHex) ?? [];
    list.push(c);
    this.clients.set(c.keyHex, list);
    if (list.length === 1) this.broadcastPresent(c);
    return true;
  }

  unregister(c: RelayConn): void {
    this.watchers.delete(c);
    const list = this.clients.get(c.keyHex);
    if (list) {
      const rest = list.filter((x) => x !== c);
      if (rest.length > 0) this.clients.set(c.keyHex, rest);
      else {
        this.clients.delete(c.keyHex);
        this.broadcastGone(c.keyHex);
        this.notifySenders(c);
      }
    }
    this.sentTo.delete(c);
  }

  addWatcher(c: RelayConn): void {
    if (c.keyHex === this.publicKeyHex) return; // our own mesh client looped back
    this.watchers.add(c);
    for (const [, list] of this.clients) {
      const last = list[list.length - 1];
      if (last) c.sendControl(this.presentFrame(last));
    }
  }

  /** Closes every connection of `keyHex` (ClosePeer from the mesh, or revocation). */
  closeKey(keyHex: string, why: string): number {
    const list = this.clients.get(keyHex) ?? [];
    for (const c of [...list]) c.close(why);
    return list.length;
  }

  /** Cuts a node key off at once (node deleted, expired, key rotated). */
  revoke(nodeKey: string): void {
    const hex = nodeKey.replace(/^nodekey:/, '');
    if (this.closeKey(hex, 'node is no longer a live node of the tailnet') > 0) {
      this.stats.revoked++;
      this.log.info('cut a DERP client off: its node was deleted, expired or rekeyed', { nodeKey });
    }
  }

  /** Re-checks every connected regular client against `admit` (after a snapshot reload). */
  recheckAll(): void {
    for (const [hex, list] of this.clients) {
      if (list.every((c) => c.isMesh)) continue;
      if (!this.o.admit(`nodekey:${hex}`)) this.revoke(`nodekey:${hex}`);
    }
  }

  /** SendPacket from `from` (or ForwardPacket from a mesh peer, then `from` is the mesh link). */
  deliver(src: Buffer, dst: Buffer, packet: Buffer, from: RelayConn, forwarded: boolean): void {
    this.stats.packetsIn++;
    this.stats.bytesIn += packet.length;
    const dstHex = dst.toString('hex');
    const list = this.clients.get(dstHex);
    const target = list?.[list.length - 1];
    if (target) {
      if (forwarded) this.stats.forwardedIn++;
      else this.noteSent(from, dstHex);
      if (target.sendPacket(encodeRecvPacket(src, packet))) {
        this.stats.packetsOut++;
        this.stats.bytesOut += packet.length;
      } else this.stats.drops.queue_full++;
      return;
    }
    if (!forwarded) {
      const fwd = this.forwarders.get(dstHex);
      if (fwd?.forward(src, dst, packet)) {
        this.stats.forwardedOut++;
        return;
      }
    }
    this.stats.drops.unknown_dest++;
    if (!forwarded) from.peerGoneNotHere(dst, packet);
  }

  /** Mesh route table, fed by our mesh clients' PeerPresent/PeerGone. */
  setForwarder(keyHex: string, fwd: PacketForwarder | undefined): void {
    if (fwd) this.forwarders.set(keyHex, fwd);
    else this.forwarders.delete(keyHex);
  }

  /** Drops every route through `fwd` (its mesh connection broke). */
  dropForwarder(fwd: PacketForwarder): void {
    for (const [k, f] of this.forwarders) if (f === fwd) this.forwarders.delete(k);
  }

  get forwarderCount(): number {
    return this.forwarders.size;
  }

  private noteSent(from: RelayConn, dstHex: string): void {
    let s = this.sentTo.get(from);
    if (!s) this.sentTo.set(from, (s = new Set()));
    if (s.size < 4096) s.add(dstHex);
  }

  /** When a sender leaves, those it sent to learn PeerGone(Disconnected) (derpserver does the same). */
  private notifySenders(c: RelayConn): void {
    const dsts = this.sentTo.get(c);
    if (!dsts) return;
    const frame = encodePeerGone(c.key, PeerGoneReason.Disconnected);
    for (const d of dsts) {
      const l = this.clients.get(d);
      l?.[l.length - 1]?.sendControl(frame);
    }
  }

  private presentFrame(c: RelayConn): Buffer {
    let flags: number = c.isMesh ? PeerPresentFlags.IsMeshPeer : PeerPresentFlags.IsRegular;
    if (c.info?.isProber) flags |= PeerPresentFlags.IsProber;
    if (c.notIdeal) flags |= PeerPresentFlags.NotIdeal;
    const ip = ipTo16(c.remote) ?? new Uint8Array(16);
    return encodePeerPresent(c.key, { ip, port: c.remotePort }, flags, c.info?.appName ?? '');
  }

  private broadcastPresent(c: RelayConn): void {
    if (this.watchers.size === 0) return;
    const f = this.presentFrame(c);
    for (const w of this.watchers) w.sendControl(f);
  }

  private broadcastGone(keyHex: string): void {
    if (this.watchers.size === 0) return;
    const f = encodePeerGone(Buffer.from(keyHex, 'hex'), PeerGoneReason.Disconnected);
    for (const w of this.watchers) w.sendControl(f);
  }

  /** Closes every connection (shutdown). */
  close(): void {
    this.closed = true;
    for (const list of [...this.clients.values()]) for (const c of list) c.close('relay shutting down');
  }

  metricsText(): string {
    const s = this.stats;
    return [
      `switchboard_derp_clients ${this.clients.size}`,
      `switchboard_derp_mesh_watchers ${this.watchers.size}`,
      `switchboard_derp_mesh_routes ${this.forwarders.size}`,
      `switchboard_derp_accepts_total ${s.accepts}`,
      ...Object.entries(s.refused).map(([r, n]) => `switchboard_derp_refused_total{reason="${r}"} ${n}`),
      `switchboard_derp_packets_received_total ${s.packetsIn}`,
      `switchboard_derp_bytes_received_total ${s.bytesIn}`,
      `switchboard_derp_packets_sent_total ${s.packetsOut}`,
      `switchboard_derp_bytes_sent_total ${s.bytesOut}`,
      `switchboard_derp_packets_forwarded_out_total ${s.forwardedOut}`,
      `switchboard_derp_packets_forwarded_in_total ${s.forwardedIn}`,
      ...Object.entries(s.drops).map(
        ([r, n]) => `switchboard_derp_packets_dropped_total{reason="${r}"} ${n}`,
      ),
      `switchboard_derp_protocol_errors_total ${s.protocolErrors}`,
      `switchboard_derp_revoked_total ${s.revoked}`,
    ].join('\n');
  }
}

/** Keep-alive interval with derpserver's jitter (60 s + 0–5 s). */
export function keepAliveDelay(baseMs: number): number {
  return baseMs + (randomBytes(2).readUInt16BE(0) % 5000);
}
