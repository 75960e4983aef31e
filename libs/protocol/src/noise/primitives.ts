/**
 * The Noise primitives Tailscale's controlbase uses, on node:crypto: BLAKE2s-256, HMAC-BLAKE2s,
 * the two-output Noise HKDF (RFC 5869 with salt = chaining key, empty info) and ChaCha20-Poly1305
 * with controlbase's nonce layout: 4 zero bytes then the 64-bit counter BIG-endian.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import { TAG_LEN } from './messages.js';

export const HASH_LEN = 32;
export const AEAD_KEY_LEN = 32;
export const NONCE_LEN = 12;

export function blake2s(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function hmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);

/** Noise HKDF(ck, ikm) with two outputs: the new chaining key and a cipher key. */
export function hkdf2(chainingKey: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const prk = hmacBlake2s(chainingKey, ikm);
  const out1 = hmacBlake2s(prk, ONE);
  const out2 = hmacBlake2s(prk, out1, TWO);
  return [out1, out2];
}

/** The 12-byte nonce for a counter: 4 zero bytes, then the counter as u64 big-endian. */
export function nonceFor(counter: number, out: Buffer = Buffer.alloc(NONCE_LEN)): Buffer {
  out.writeUInt32BE(0, 0);
  out.writeUInt32BE(Math.floor(counter / 0x1_0000_0000), 4);
  out.writeUInt32BE(counter >>> 0, 8);
  return out;
}

/** ChaCha20-Poly1305 seal: returns ciphertext || 16-byte tag. */
export function aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_LEN });
  if (ad && ad.length > 0) c.setAAD(ad, { plaintextLength: plaintext.length });
  const body = plaintext.length > 0 ? c.update(plaintext) : Buffer.alloc(0);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

/** ChaCha20-Poly1305 open of ciphertext || tag; throws ProtocolError('noise_decrypt_failed'). */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad?: Uint8Array): Buffer {
  if (sealed.length < TAG_LEN)
    throw new ProtocolError(
      'noise_decrypt_failed',
      `ciphertext of ${sealed.length} bytes is shorter than the tag`,
    );
  const ctLen = sealed.length - TAG_LEN;
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_LEN });
  d.setAuthTag(sealed.subarray(ctLen));
  if (ad && ad.length > 0) d.setAAD(ad, { plaintextLength: ctLen });
  const body = ctLen > 0 ? d.update(sealed.subarray(0, ctLen)) : Buffer.alloc(0);
  try {
    d.final();
  } catch {
    throw new ProtocolError('noise_decrypt_failed', 'chacha20poly1305: message authentication failed');
  }
  return body;
}
