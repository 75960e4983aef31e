/**
 * One direction of a Noise transport: a ChaCha20-Poly1305 key and a message counter used as the
 * big-endian nonce (controlbase's deviation from the Noise spec, which says little-endian). Seals
 * plaintext straight into a complete type-4 record so writers do one allocation per record.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import { HEADER_LEN, MAX_PLAINTEXT_SIZE, MSG_TYPE_RECORD, TAG_LEN } from './messages.js';
import { AEAD_KEY_LEN, NONCE_LEN, nonceFor } from './primitives.js';

/**
 * Counters are JS numbers. controlbase gives up at 2^64-1; we give up at 2^53-1, which at a million
 * records a second is still ~285 years away, and say "cipher exhausted" the same way.
 */
const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

export class TransportCipher {
  private counter: number;
  private readonly key: Buffer;
  private readonly nonce = Buffer.alloc(NONCE_LEN);

  constructor(key: Uint8Array, initialCounter = 0) {
    if (key.length !== AEAD_KEY_LEN) throw new RangeError(`transport key must be ${AEAD_KEY_LEN} bytes`);
    this.key = Buffer.from(key);
    this.counter = initialCounter;
  }

  /** The counter the next record will use. */
  get nextCounter(): number {
    return this.counter;
  }

  private takeNonce(): Buffer {
    if (this.counter >= MAX_COUNTER)
      throw new ProtocolError(
        'noise_cipher_exhausted',
        'cipher exhausted, no more nonces available for current key',
        'open a new connection',
      );
    nonceFor(this.counter, this.nonce);
    this.counter++;
    return this.nonce;
  }

  /** Encrypts `plaintext[start, end)` into `out` at `offset` as a whole record; returns the record size. */
  sealRecordInto(plaintext: Uint8Array, start: number, end: number, out: Buffer, offset: number): number {
    const len = end - start;
    if (len < 0 || len > MAX_PLAINTEXT_SIZE)
      throw new RangeError(`record plaintext of ${len} bytes exceeds ${MAX_PLAINTEXT_SIZE}`);
    const c = createCipheriv('chacha20-poly1305', this.key, this.takeNonce(), { authTagLength: TAG_LEN });
    out[offset] = MSG_TYPE_RECORD;
    out.writeUInt16BE(len + TAG_LEN, offset + 1);
    let pos = offset + HEADER_LEN;
    if (len > 0) {
      const body = c.update(plaintext.subarray(start, end));
      body.copy(out, pos);
      pos += body.length;
    }
    c.final();
    c.getAuthTag().copy(out, pos);
    return HEADER_LEN + len + TAG_LEN;
  }

  /** Encrypts plaintext (at most MAX_PLAINTEXT_SIZE bytes) into a new record buffer. */
  sealRecord(plaintext: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(HEADER_LEN + plaintext.length + TAG_LEN);
    this.sealRecordInto(plaintext, 0, plaintext.length, out, 0);
    return out;
  }

  /** Decrypts a record's ciphertext (tag included). Throws ProtocolError('noise_decrypt_failed'). */
  open(sealed: Uint8Array): Buffer {
    const nonce = this.takeNonce();
    if (sealed.length < TAG_LEN)
      throw new ProtocolError(
        'noise_decrypt_failed',
        `record of ${sealed.length} bytes is shorter than the tag`,
      );
    const ctLen = sealed.length - TAG_LEN;
    const d = createDecipheriv('chacha20-poly1305', this.key, nonce, { authTagLength: TAG_LEN });
    d.setAuthTag(sealed.subarray(ctLen));
    const body = ctLen > 0 ? d.update(sealed.subarray(0, ctLen)) : Buffer.alloc(0);
    try {
      d.final();
    } catch {
      throw new ProtocolError('noise_decrypt_failed', 'chacha20poly1305: message authentication failed');
    }
    return body;
  }
}
