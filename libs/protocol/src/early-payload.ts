/**
 * The optional "early payload" a ts2021 server may send inside Noise before HTTP/2 starts:
 * magic FF FF FF 54 53 ("\xff\xff\xffTS"), a u32 BIG-endian JSON length, then the JSON of
 * tailcfg.EarlyNoise. Its 9-byte header has the size of an HTTP/2 frame header, which is how the
 * client tells the two apart on its first read.
 */
import { ValidationError } from '@switchboard/common';
import { ProtocolError } from './errors.js';
import { normalizeKeyText, zeroKeyText } from './keys.js';
import type { EarlyNoise } from './tailcfg.js';

export const EARLY_PAYLOAD_MAGIC: Uint8Array = Uint8Array.of(0xff, 0xff, 0xff, 0x54, 0x53);
/** Size of the early-payload header and of an HTTP/2 frame header. */
export const EARLY_PAYLOAD_HEADER_LEN = 9;
/** Clients refuse early payloads longer than this (ts2021/conn.go). */
export const MAX_EARLY_PAYLOAD_LEN = 10 << 20;

export function encodeEarlyPayload(early: EarlyNoise): Buffer {
  const json = Buffer.from(JSON.stringify(early), 'utf8');
  const out = Buffer.allocUnsafe(EARLY_PAYLOAD_HEADER_LEN + json.length);
  out.set(EARLY_PAYLOAD_MAGIC, 0);
  out.writeUInt32BE(json.length, EARLY_PAYLOAD_MAGIC.length);
  json.copy(out, EARLY_PAYLOAD_HEADER_LEN);
  return out;
}

/** True when the first 9 plaintext bytes start with the early-payload magic. */
export function hasEarlyPayloadMagic(header: Uint8Array): boolean {
  for (let i = 0; i < EARLY_PAYLOAD_MAGIC.length; i++) if (header[i] !== EARLY_PAYLOAD_MAGIC[i]) return false;
  return true;
}

/** The JSON length from an early-payload header; throws above MAX_EARLY_PAYLOAD_LEN. */
export function earlyPayloadLength(header: Uint8Array): number {
  const len = Buffer.from(header.buffer, header.byteOffset, header.byteLength).readUInt32BE(
    EARLY_PAYLOAD_MAGIC.length,
  );
  if (len > MAX_EARLY_PAYLOAD_LEN)
    throw new ProtocolError('early_payload_invalid', 'invalid early payload length');
  return len;
}

/** Decodes and checks early-payload JSON (unknown fields ignored, the challenge key validated). */
export function parseEarlyPayloadJson(json: Uint8Array): EarlyNoise {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'));
  } catch (err) {
    throw new ProtocolError('early_payload_invalid', `early payload is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ProtocolError('early_payload_invalid', 'early payload is not a JSON object');
  const raw = (value as Record<string, unknown>).nodeKeyChallenge;
  // Like Go's decoder: a missing or null field leaves the zero key.
  if (raw === undefined || raw === null) return { nodeKeyChallenge: zeroKeyText('challenge') };
  try {
    return { nodeKeyChallenge: normalizeKeyText('challenge', raw, 'nodeKeyChallenge') };
  } catch (err) {
    if (err instanceof ValidationError) throw new ProtocolError('early_payload_invalid', err.message);
    throw err;
  }
}
