/**
 * The DERP handshake's NaCl boxes (crypto_box: X25519, HSalsa20, XSalsa20-Poly1305), as
 * tailscale's `key.NodePrivate.SealTo`/`OpenFrom` write them: `nonce(24) ‖ tag(16) ‖ ciphertext`.
 *
 * - ClientInfo frame = client public key (32) ‖ box(JSON) sealed client → server.
 * - ServerInfo frame = box(JSON) sealed server → client.
 *
 * The X25519 step runs in OpenSSL (node:crypto), the rest in tweetnacl (OpenSSL has no XSalsa20);
 * the result equals tweetnacl's `box.before` (checked in the spec). A shared key that comes out
 * all zero (a low-order public key) is refused.
 */
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, timingSafeEqual } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  DerpFrameError,
  FrameType,
  KEY_LEN,
  MAX_CLIENT_INFO_LEN,
  NONCE_LEN,
  PROTOCOL_VERSION,
  encodeFrame,
  validAppName,
} from './frames.js';

const SIGMA = Buffer.from('expand 32-byte k', 'latin1');
const ZERO16 = new Uint8Array(16);
/** tweetnacl exports its low-level primitives untyped; this is the one we use. */
const hsalsa20 = (
  nacl as unknown as {
    lowlevel: {
      crypto_core_hsalsa20: (out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array) => void;
    };
  }
).lowlevel.crypto_core_hsalsa20;

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

/** The public key of a 32-byte curve25519 private key. */
export function publicFromPrivate(secret: Uint8Array): Buffer {
  return Buffer.from(nacl.scalarMult.base(secret));
}

/** A fresh curve25519 key pair. */
export function generateKeyPair(): { secretKey: Buffer; publicKey: Buffer } {
  const secretKey = randomBytes(32);
  return { secretKey, publicKey: publicFromPrivate(secretKey) };
}

/** A private key ready for repeated X25519 (parse the raw bytes once). */
export class BoxKey {
  readonly publicKey: Buffer;
  private readonly keyObject: ReturnType<typeof createPrivateKey>;

  constructor(readonly secretKey: Buffer) {
    if (secretKey.length !== 32) throw new RangeError('a box secret key is 32 bytes');
    this.publicKey = publicFromPrivate(secretKey);
    this.keyObject = createPrivateKey({
      key: { kty: 'OKP', crv: 'X25519', d: b64u(secretKey), x: b64u(this.publicKey) },
      format: 'jwk',
    });
  }

  /** crypto_box_beforenm(theirPublic, mySecret); null when the peer key is low-order. */
  sharedKey(theirPublic: Uint8Array): Uint8Array | null {
    if (theirPublic.length !== KEY_LEN) return null;
    let dh: Buffer;
    try {
      const pub = createPublicKey({
        key: { kty: 'OKP', crv: 'X25519', x: b64u(theirPublic) },
        format: 'jwk',
      });
      dh = diffieHellman({ privateKey: this.keyObject, publicKey: pub });
    } catch {
      return null; // OpenSSL refuses an all-zero result
    }
    if (dh.every((b) => b === 0)) return null;
    const k = new Uint8Array(32);
    hsalsa20(k, ZERO16, dh, SIGMA);
    return k;
  }
}

/** Seals `msg` with a shared key: nonce ‖ tag ‖ ciphertext. */
export function sealWithShared(
  shared: Uint8Array,
  msg: Uint8Array,
  nonce: Uint8Array = randomBytes(NONCE_LEN),
): Buffer {
  return Buffer.concat([nonce, nacl.secretbox(msg, nonce, shared)]);
}

/** Opens nonce ‖ tag ‖ ciphertext with a shared key; null when it does not authenticate. */
export function openWithShared(shared: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < NONCE_LEN + nacl.secretbox.overheadLength) return null;
  const out = nacl.secretbox.open(sealed.subarray(NONCE_LEN), sealed.subarray(0, NONCE_LEN), shared);
  return out ? Buffer.from(out) : null;
}

/** ClientInfo as the server uses it (derp.ClientInfo). */
export interface ClientInfo {
  /** Mesh key text as sent (64 hex digits since v1.86, any string before); '' when absent. */
  meshKey: string;
  version: number;
  canAckPings: boolean;
  isProber: boolean;
  appName: string;
}

/** Looks a JSON key up case-insensitively, as Go's encoding/json matches struct fields. */
function field(obj: Record<string, unknown>, name: string): unknown {
  if (name in obj) return obj[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

/** Parses and checks ClientInfo JSON; throws DerpFrameError saying what is wrong. */
export function parseClientInfoJson(text: Buffer): ClientInfo {
  let v: unknown;
  try {
    v = JSON.parse(text.toString('utf8'));
  } catch {
    throw new DerpFrameError('ClientInfo is not JSON', FrameType.ClientInfo);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new DerpFrameError('ClientInfo is not a JSON object', FrameType.ClientInfo);
  const o = v as Record<string, unknown>;
  const str = (name: string): string => {
    const x = field(o, name);
    if (x === undefined || x === null) return '';
    if (typeof x !== 'string')
      throw new DerpFrameError(`ClientInfo.${name} is not a string`, FrameType.ClientInfo);
    return x;
  };
  const bool = (name: string): boolean => {
    const x = field(o, name);
    if (x === undefined || x === null) return false;
    if (typeof x !== 'boolean')
      throw new DerpFrameError(`ClientInfo.${name} is not a boolean`, FrameType.ClientInfo);
    return x;
  };
  const ver = field(o, 'version') ?? 0;
  if (typeof ver !== 'number' || !Number.isSafeInteger(ver))
    throw new DerpFrameError('ClientInfo.version is not an integer', FrameType.ClientInfo);
  const appName = str('AppName');
  if (!validAppName(appName))
    throw new DerpFrameError('ClientInfo.AppName is not valid', FrameType.ClientInfo);
  return {
    meshKey: str('meshKey'),
    version: ver,
    canAckPings: bool('CanAckPings'),
    isProber: bool('IsProber'),
    appName,
  };
}

/** What the server learns from a ClientInfo frame. */
export interface OpenedClientInfo {
  clientKey: Buffer;
  info: ClientInfo;
  /** Shared key of this client and the server: seal the ServerInfo with it. */
  shared: Uint8Array;
}

/**
 * Opens a ClientInfo frame's payload (the server's `recvClientKey`): 56 bytes to 256 KiB, the
 * box must open with the claimed client key, the JSON must parse and the AppName be valid.
 */
export function openClientInfo(server: BoxKey, payload: Buffer): OpenedClientInfo {
  const n = payload.length;
  if (n < KEY_LEN + NONCE_LEN) throw new DerpFrameError('short ClientInfo', FrameType.ClientInfo);
  if (n > MAX_CLIENT_INFO_LEN) throw new DerpFrameError('long ClientInfo', FrameType.ClientInfo);
  const clientKey = Buffer.from(payload.subarray(0, KEY_LEN));
  const shared = server.sharedKey(clientKey);
  if (!shared) throw new DerpFrameError('ClientInfo carries a low-order client key', FrameType.ClientInfo);
  const msg = openWithShared(shared, payload.subarray(KEY_LEN));
  if (!msg)
    throw new DerpFrameError(
      'ClientInfo box does not open with the claimed client key (sealed to another server key?)',
      FrameType.ClientInfo,
    );
  return { clientKey, info: parseClientInfoJson(msg), shared };
}

/** The client's ClientInfo frame (`derp.Client.sendClientKey`). */
export function encodeClientInfo(
  client: BoxKey,
  serverPublic: Uint8Array,
  info: Partial<ClientInfo> = {},
  nonce?: Uint8Array,
): Buffer {
  const json: Record<string, unknown> = {};
  if (info.meshKey) json.meshKey = info.meshKey;
  json.version = info.version ?? PROTOCOL_VERSION;
  json.CanAckPings = info.canAckPings ?? false;
  if (info.isProber) json.IsProber = true;
  if (info.appName) json.AppName = info.appName;
  const shared = client.sharedKey(serverPublic);
  if (!shared) throw new RangeError('server key is low-order');
  const box = sealWithShared(shared, Buffer.from(JSON.stringify(json)), nonce);
  return encodeFrame(FrameType.ClientInfo, client.publicKey, box);
}

/** The server's ServerInfo frame: `{"version":2}` sealed to the client (`sendServerInfo`). */
export function encodeServerInfo(shared: Uint8Array, nonce?: Uint8Array): Buffer {
  return encodeFrame(
    FrameType.ServerInfo,
    sealWithShared(shared, Buffer.from(JSON.stringify({ version: PROTOCOL_VERSION })), nonce),
  );
}

/** Client side: opens a ServerInfo box; throws when it does not open or is not JSON. */
export function openServerInfo(shared: Uint8Array, box: Buffer): Record<string, unknown> {
  const msg = openWithShared(shared, box);
  if (!msg) throw new DerpFrameError('ServerInfo box does not open', FrameType.ServerInfo);
  const v: unknown = JSON.parse(msg.toString('utf8'));
  if (typeof v !== 'object' || v === null)
    throw new DerpFrameError('ServerInfo is not an object', FrameType.ServerInfo);
  return v as Record<string, unknown>;
}

/** Constant-time comparison of two mesh keys as text (equal length first). */
export function meshKeyEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.trim().toLowerCase(), 'utf8');
  const y = Buffer.from(b.trim().toLowerCase(), 'utf8');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
