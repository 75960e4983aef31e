/**
 * What the legacy (pre-Noise) control channel needs besides the box: the `/machine/<key hex>`
 * routes, the `/key` answer for each client, and re-sealing the map stream's frames.
 *
 * Wire facts (tailscale v1.62.1 control/controlclient/direct.go): register is
 * `POST <server>/machine/<machine key, 64 hex, no prefix>`, map `POST …/map`; both bodies are
 * sealed JSON. A register answer is sealed JSON (read up to 1 MiB; a non-200 answer is plain text).
 * A map answer is a stream of frames `u32 little-endian length ‖ sealed payload`, the payload being
 * the zstd frame of the MapResponse JSON (compress, then seal; the client opens, then decompresses);
 * keep-alives are sealed like every other frame.
 */
import { ProtocolError } from '../errors.js';
import { formatKey, keyFromBytes, type MachinePublic } from '../keys.js';
import { MAP_FRAME_HEADER_LEN } from '../map-framing.js';
import type { LegacyBoxKey } from './legacy-box.js';

export type LegacyEndpoint = 'register' | 'map';

export interface LegacyRoute {
  endpoint: LegacyEndpoint;
  machineKey: MachinePublic;
  /** `mkey:<hex>`, as the rest of the server names machine keys. */
  machineKeyText: string;
}

const ROUTE = /\/machine\/([0-9a-fA-F]{64})(\/map)?$/;

/**
 * Matches a legacy route (after any login-server path prefix, as clients keep one); null for any
 * other path. The Noise endpoints (`/machine/register`, `/machine/map`) never match: their second
 * segment is not 64 hex digits.
 */
export function parseLegacyRoute(pathname: string): LegacyRoute | null {
  const m = ROUTE.exec(pathname);
  if (!m?.[1]) return null;
  const machineKey = keyFromBytes('machine', Buffer.from(m[1], 'hex'));
  return {
    endpoint: m[2] ? 'map' : 'register',
    machineKey,
    machineKeyText: formatKey('machine', machineKey),
  };
}

/** Which keys `/key` shows one client. */
export interface KeyAnswerPolicy {
  /** `mkey:<hex>` of the Noise key. */
  noiseKeyText: string;
  /** `mkey:<hex>` of the legacy key, or null when the legacy channel is off. */
  legacyKeyText: string | null;
  /**
   * Clients whose `/key?v=` is at most this get only the legacy key (`publicKey` zero), so they use
   * the legacy channel; newer ones get both and use Noise. -1 = none.
   */
  legacyOnlyMaxCapVersion: number;
}

export type KeyAnswer =
  { kind: 'json'; body: { legacyPublicKey: string; publicKey: string } } | { kind: 'hex'; body: string };

const ZERO_MKEY = `mkey:${'0'.repeat(64)}`;

/**
 * The `/key` answer: clients up to v1.22 send no `v` and read bare hex (the legacy key); later ones
 * read JSON `OverTLSPublicKeyResponse` and use Noise exactly when `publicKey` is non-zero.
 * With the legacy channel off, every client gets the Noise key and a zero legacy key (as before).
 */
export function keyAnswer(p: KeyAnswerPolicy, capVersion: number | null): KeyAnswer {
  if (p.legacyKeyText === null)
    return { kind: 'json', body: { legacyPublicKey: ZERO_MKEY, publicKey: p.noiseKeyText } };
  if (capVersion === null) return { kind: 'hex', body: p.legacyKeyText.slice('mkey:'.length) };
  const legacyOnly = capVersion <= p.legacyOnlyMaxCapVersion;
  return {
    kind: 'json',
    body: { legacyPublicKey: p.legacyKeyText, publicKey: legacyOnly ? ZERO_MKEY : p.noiseKeyText },
  };
}

/**
 * Re-seals map wire frames (`u32 LE length ‖ zstd payload`, one or several concatenated, as the
 * fan-out engine writes them, identical for every stream) into the legacy form
 * (`u32 LE length ‖ nonce ‖ box(zstd payload)`), per stream.
 */
export function sealMapFrames(frames: Uint8Array, key: LegacyBoxKey): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  const buf = Buffer.from(frames.buffer, frames.byteOffset, frames.byteLength);
  while (pos < buf.length) {
    if (buf.length - pos < MAP_FRAME_HEADER_LEN)
      throw new ProtocolError('map_frame_invalid', 'map frames end inside a length header');
    const len = buf.readUInt32LE(pos);
    const start = pos + MAP_FRAME_HEADER_LEN;
    if (len === 0 || start + len > buf.length)
      throw new ProtocolError('map_frame_invalid', `map frame of ${len} bytes does not fit the buffer`);
    const sealed = key.seal(buf.subarray(start, start + len));
    const header = Buffer.allocUnsafe(MAP_FRAME_HEADER_LEN);
    header.writeUInt32LE(sealed.length, 0);
    out.push(header, sealed);
    pos = start + len;
  }
  return Buffer.concat(out);
}
