/**
 * DERP frames: a 1-byte type and a 4-byte big-endian payload length, then the payload
 * (tailscale.com/derp derp.go, checked against v1.104.5 and v1.80.3). This module encodes every
 * frame a server sends and decodes every frame a client or a mesh peer sends, with the bounds the
 * reference server applies; it never throws on hostile bytes except with `DerpFrameError`.
 *
 * The handshake boxes (ClientInfo/ServerInfo) live in `handshake.ts`; this file only frames them.
 */

/** "DERP🔑": the 8 bytes that start a ServerKey frame. */
export const MAGIC = Buffer.from([0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91]);
export const PROTOCOL_VERSION = 2;
export const KEY_LEN = 32;
export const NONCE_LEN = 24;
export const FRAME_HEADER_LEN = 5;
/** Largest packet inside SendPacket/RecvPacket/ForwardPacket (derp.MaxPacketSize). */
export const MAX_PACKET_SIZE = 64 << 10;
/** ServerInfo/ClientInfo JSON bound on the client side (derp.MaxInfoLen). */
export const MAX_INFO_LEN = 1 << 20;
/** The server refuses a ClientInfo frame longer than this (derpserver recvClientKey). */
export const MAX_CLIENT_INFO_LEN = 256 << 10;
/**
 * Largest frame a server reads from a client: a ForwardPacket with a full packet (mesh peers).
 * A regular client's largest is a SendPacket (KEY_LEN + MAX_PACKET_SIZE); unknown frame types are
 * skipped only up to that size (derpserver maxUnknownFrameLen), anything larger closes the conn.
 */
export const MAX_CLIENT_FRAME_LEN = 2 * KEY_LEN + MAX_PACKET_SIZE;
export const MAX_UNKNOWN_FRAME_LEN = KEY_LEN + MAX_PACKET_SIZE;
/** Ping payloads the server accepts (8 bytes, up to 1000 for future extensions). */
export const MAX_PING_LEN = 1000;
/** ClientInfo.AppName and PeerPresent app names: at most 32 printable ASCII bytes. */
export const MAX_APP_NAME_LEN = 32;

export const FrameType = {
  ServerKey: 0x01,
  ClientInfo: 0x02,
  ServerInfo: 0x03,
  SendPacket: 0x04,
  RecvPacket: 0x05,
  KeepAlive: 0x06,
  NotePreferred: 0x07,
  PeerGone: 0x08,
  PeerPresent: 0x09,
  ForwardPacket: 0x0a,
  WatchConns: 0x10,
  ClosePeer: 0x11,
  Ping: 0x12,
  Pong: 0x13,
  Health: 0x14,
  Restarting: 0x15,
} as const;
export type FrameTypeName = keyof typeof FrameType;

export const PeerGoneReason = {
  /** The peer that sent to you disconnected from this server. */
  Disconnected: 0x00,
  /** The server does not know the destination you sent to. */
  NotHere: 0x01,
  /** Invented client-side by a mesh watcher when its mesh connection breaks; never on the wire. */
  MeshConnBroke: 0xf0,
} as const;

export const PeerPresentFlags = {
  IsRegular: 0x01,
  IsMeshPeer: 0x02,
  IsProber: 0x04,
  NotIdeal: 0x08,
} as const;

/** A frame a peer sent that breaks the protocol: the connection is closed with this reason. */
export class DerpFrameError extends Error {
  constructor(
    message: string,
    readonly frameType?: number,
  ) {
    super(message);
    this.name = 'DerpFrameError';
  }
}

/** Writes one frame (header + payload parts) into one new buffer. */
export function encodeFrame(type: number, ...parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = Buffer.allocUnsafe(FRAME_HEADER_LEN + len);
  out[0] = type;
  out.writeUInt32BE(len, 1);
  let off = FRAME_HEADER_LEN;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function assertKey(k: Uint8Array, what: string): void {
  if (k.length !== KEY_LEN) throw new RangeError(`${what} must be ${KEY_LEN} bytes, got ${k.length}`);
}

export function encodeServerKey(serverPublic: Uint8Array): Buffer {
  assertKey(serverPublic, 'server key');
  return encodeFrame(FrameType.ServerKey, MAGIC, serverPublic);
}

export function encodeSendPacket(dst: Uint8Array, packet: Uint8Array): Buffer {
  assertKey(dst, 'destination key');
  return encodeFrame(FrameType.SendPacket, dst, packet);
}

export function encodeRecvPacket(src: Uint8Array, packet: Uint8Array): Buffer {
  assertKey(src, 'source key');
  return encodeFrame(FrameType.RecvPacket, src, packet);
}

export function encodeForwardPacket(src: Uint8Array, dst: Uint8Array, packet: Uint8Array): Buffer {
  assertKey(src, 'source key');
  assertKey(dst, 'destination key');
  return encodeFrame(FrameType.ForwardPacket, src, dst, packet);
}

export const KEEP_ALIVE = encodeFrame(FrameType.KeepAlive);
export const WATCH_CONNS = encodeFrame(FrameType.WatchConns);

export function encodeNotePreferred(preferred: boolean): Buffer {
  return encodeFrame(FrameType.NotePreferred, Uint8Array.of(preferred ? 1 : 0));
}

export function encodePeerGone(peer: Uint8Array, reason: number): Buffer {
  assertKey(peer, 'peer key');
  return encodeFrame(FrameType.PeerGone, peer, Uint8Array.of(reason));
}

/** A client's address as PeerPresent carries it: IPv4 as v4-mapped IPv6. */
export interface IpPort {
  /** 16 bytes. */
  ip: Uint8Array;
  port: number;
}

/** Parses "1.2.3.4", "::ffff:1.2.3.4" or any IPv6 text into 16 bytes; null when unparsable. */
export function ipTo16(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(text);
  if (v4) {
    out[10] = 0xff;
    out[11] = 0xff;
    for (let i = 0; i < 4; i++) {
      const n = Number(v4[i + 1]);
      if (n > 255) return null;
      out[12 + i] = n;
    }
    return out;
  }
  const zone = text.indexOf('%');
  const t = zone >= 0 ? text.slice(0, zone) : text;
  const halves = t.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string): number[] | null => {
    if (s === '') return [];
    const groups = s.split(':');
    const words: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
      words.push(parseInt(g, 16));
    }
    return words;
  };
  const head = parse(halves[0] ?? '');
  const tail = halves.length === 2 ? parse(halves[1] ?? '') : [];
  if (!head || !tail) return null;
  if (halves.length === 1 ? head.length !== 8 : head.length + tail.length > 7) return null;
  const words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/**
 * PeerPresent as v1.104 servers send it: key ‖ 16-byte IP ‖ BE port ‖ flags ‖ app-name length ‖
 * app name. Clients accept any prefix longer than the key (older servers stop after the key, the
 * port or the flags).
 */
export function encodePeerPresent(peer: Uint8Array, addr: IpPort, flags: number, appName = ''): Buffer {
  assertKey(peer, 'peer key');
  if (addr.ip.length !== 16) throw new RangeError('PeerPresent IP must be 16 bytes');
  const name = Buffer.from(validAppName(appName) ? appName : '', 'latin1');
  const tail = Buffer.alloc(16 + 2 + 1 + 1);
  tail.set(addr.ip, 0);
  tail.writeUInt16BE(addr.port, 16);
  tail[18] = flags;
  tail[19] = name.length;
  return encodeFrame(FrameType.PeerPresent, peer, tail, name);
}

export function encodeClosePeer(peer: Uint8Array): Buffer {
  assertKey(peer, 'peer key');
  return encodeFrame(FrameType.ClosePeer, peer);
}

export function encodePing(data: Uint8Array): Buffer {
  if (data.length !== 8) throw new RangeError('ping data must be 8 bytes');
  return encodeFrame(FrameType.Ping, data);
}

export function encodePong(data: Uint8Array): Buffer {
  if (data.length !== 8) throw new RangeError('pong data must be 8 bytes');
  return encodeFrame(FrameType.Pong, data);
}

/** Health problem text; empty clears the client's DERP health warning. */
export function encodeHealth(problem: string): Buffer {
  return encodeFrame(FrameType.Health, Buffer.from(problem, 'utf8'));
}

/** The server is restarting: reconnect after `reconnectInMs`, keep trying for `tryForMs`. */
export function encodeRestarting(reconnectInMs: number, tryForMs: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(reconnectInMs >>> 0, 0);
  b.writeUInt32BE(tryForMs >>> 0, 4);
  return encodeFrame(FrameType.Restarting, b);
}

/** derp.ValidAppName: at most 32 bytes of printable ASCII. */
export function validAppName(name: string): boolean {
  if (name.length > MAX_APP_NAME_LEN) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/** What a client or mesh peer sent, after the handshake (the server's side of `sclient.run`). */
export type ClientFrame =
  | { type: 'send-packet'; dst: Buffer; packet: Buffer }
  | { type: 'forward-packet'; src: Buffer; dst: Buffer; packet: Buffer }
  | { type: 'note-preferred'; preferred: boolean }
  | { type: 'watch-conns' }
  | { type: 'close-peer'; peer: Buffer }
  | { type: 'ping'; data: Buffer }
  | { type: 'pong'; data: Buffer }
  | { type: 'unknown'; frameType: number; length: number };

/**
 * Decodes one frame from a client as the reference server does (derpserver `run` and its
 * handlers): wrong sizes are protocol errors that close the connection; unknown types are skipped.
 * A client's Pong is not a server frame there either; we report it so a mesh client can use it.
 */
export function decodeClientFrame(type: number, payload: Buffer): ClientFrame {
  const n = payload.length;
  switch (type) {
    case FrameType.SendPacket:
      if (n < KEY_LEN) throw new DerpFrameError('short SendPacket frame', type);
      if (n - KEY_LEN > MAX_PACKET_SIZE)
        throw new DerpFrameError(`SendPacket data of ${n - KEY_LEN} bytes exceeds ${MAX_PACKET_SIZE}`, type);
      return { type: 'send-packet', dst: payload.subarray(0, KEY_LEN), packet: payload.subarray(KEY_LEN) };
    case FrameType.ForwardPacket:
      if (n < 2 * KEY_LEN) throw new DerpFrameError('short ForwardPacket frame', type);
      if (n - 2 * KEY_LEN > MAX_PACKET_SIZE)
        throw new DerpFrameError(
          `ForwardPacket data of ${n - 2 * KEY_LEN} bytes exceeds ${MAX_PACKET_SIZE}`,
          type,
        );
      return {
        type: 'forward-packet',
        src: payload.subarray(0, KEY_LEN),
        dst: payload.subarray(KEY_LEN, 2 * KEY_LEN),
        packet: payload.subarray(2 * KEY_LEN),
      };
    case FrameType.NotePreferred:
      if (n !== 1) throw new DerpFrameError(`NotePreferred must be 1 byte, got ${n}`, type);
      return { type: 'note-preferred', preferred: payload[0] !== 0 };
    case FrameType.WatchConns:
      if (n !== 0) throw new DerpFrameError(`WatchConns must be empty, got ${n} bytes`, type);
      return { type: 'watch-conns' };
    case FrameType.ClosePeer:
      if (n !== KEY_LEN) throw new DerpFrameError(`ClosePeer must be ${KEY_LEN} bytes, got ${n}`, type);
      return { type: 'close-peer', peer: payload };
    case FrameType.Ping:
      if (n < 8) throw new DerpFrameError(`short Ping of ${n} bytes`, type);
      if (n > MAX_PING_LEN) throw new DerpFrameError(`Ping of ${n} bytes is over ${MAX_PING_LEN}`, type);
      return { type: 'ping', data: payload.subarray(0, 8) };
    case FrameType.Pong:
      if (n < 8) throw new DerpFrameError(`short Pong of ${n} bytes`, type);
      return { type: 'pong', data: payload.subarray(0, 8) };
    default:
      if (n > MAX_UNKNOWN_FRAME_LEN)
        throw new DerpFrameError(`unknown frame type ${type} too large: ${n} bytes`, type);
      return { type: 'unknown', frameType: type, length: n };
  }
}

/** What a server sent, as the Go client parses it (`derp.Client.recvTimeout`). */
export type ServerFrame =
  | { type: 'server-key'; key: Buffer }
  | { type: 'server-info'; box: Buffer }
  | { type: 'recv-packet'; src: Buffer; packet: Buffer }
  | { type: 'keep-alive' }
  | { type: 'peer-gone'; peer: Buffer; reason: number }
  | {
      type: 'peer-present';
      peer: Buffer;
      addr?: { ip: Buffer; port: number };
      flags?: number;
      appName?: string;
    }
  | { type: 'ping'; data: Buffer }
  | { type: 'pong'; data: Buffer }
  | { type: 'health'; problem: string }
  | { type: 'restarting'; reconnectInMs: number; tryForMs: number }
  | { type: 'ignored'; frameType: number; reason: string };

/**
 * Decodes one server frame with the Go client's leniency: short frames the client drops are
 * `ignored` (not errors); the only errors are a bad greeting and an oversized ServerInfo.
 */
export function decodeServerFrame(type: number, payload: Buffer): ServerFrame {
  const n = payload.length;
  const ignored = (reason: string): ServerFrame => ({ type: 'ignored', frameType: type, reason });
  switch (type) {
    case FrameType.ServerKey:
      if (n < MAGIC.length + KEY_LEN || !payload.subarray(0, MAGIC.length).equals(MAGIC))
        throw new DerpFrameError('invalid server greeting', type);
      return { type: 'server-key', key: payload.subarray(MAGIC.length, MAGIC.length + KEY_LEN) };
    case FrameType.ServerInfo:
      if (n < NONCE_LEN) throw new DerpFrameError('short ServerInfo frame', type);
      if (n > NONCE_LEN + MAX_INFO_LEN) throw new DerpFrameError('long ServerInfo frame', type);
      return { type: 'server-info', box: payload };
    case FrameType.RecvPacket:
      if (n < KEY_LEN) return ignored('short RecvPacket');
      return { type: 'recv-packet', src: payload.subarray(0, KEY_LEN), packet: payload.subarray(KEY_LEN) };
    case FrameType.KeepAlive:
      return { type: 'keep-alive' };
    case FrameType.PeerGone:
      if (n < KEY_LEN) return ignored('short PeerGone');
      return {
        type: 'peer-gone',
        peer: payload.subarray(0, KEY_LEN),
        reason: n > KEY_LEN ? (payload[KEY_LEN] ?? 0) : PeerGoneReason.Disconnected,
      };
    case FrameType.PeerPresent:
      return decodePeerPresent(payload) ?? ignored('short PeerPresent');
    case FrameType.Ping:
      if (n < 8) return ignored('short Ping');
      return { type: 'ping', data: payload.subarray(0, 8) };
    case FrameType.Pong:
      if (n < 8) return ignored('short Pong');
      return { type: 'pong', data: payload.subarray(0, 8) };
    case FrameType.Health:
      return { type: 'health', problem: payload.toString('utf8') };
    case FrameType.Restarting:
      if (n < 8) return ignored('short Restarting');
      return {
        type: 'restarting',
        reconnectInMs: payload.readUInt32BE(0),
        tryForMs: payload.readUInt32BE(4),
      };
    default:
      return ignored('unknown frame type');
  }
}

function decodePeerPresent(p: Buffer): ServerFrame | null {
  if (p.length < KEY_LEN) return null;
  const out: Extract<ServerFrame, { type: 'peer-present' }> = {
    type: 'peer-present',
    peer: p.subarray(0, KEY_LEN),
  };
  if (p.length < KEY_LEN + 18) return out;
  out.addr = { ip: p.subarray(KEY_LEN, KEY_LEN + 16), port: p.readUInt16BE(KEY_LEN + 16) };
  if (p.length < KEY_LEN + 19) return out;
  out.flags = p[KEY_LEN + 18] ?? 0;
  if (p.length < KEY_LEN + 20) return out;
  const nameLen = p[KEY_LEN + 19] ?? 0;
  if (p.length < KEY_LEN + 20 + nameLen) return out;
  const name = p.subarray(KEY_LEN + 20, KEY_LEN + 20 + nameLen).toString('latin1');
  if (validAppName(name)) out.appName = name;
  return out;
}
