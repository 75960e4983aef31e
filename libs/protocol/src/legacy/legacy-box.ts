/**
 * The pre-Noise ("legacy") control channel's crypto: every request and response body is a NaCl
 * `crypto_box` (x25519-xsalsa20-poly1305) between the client's machine key and the server's legacy
 * key, written as Tailscale's `MachinePrivate.SealTo` writes it: a random 24-byte nonce, then the
 * box (16-byte Poly1305 tag, then the ciphertext). Opening reads the nonce from the first 24 bytes
 * (`OpenFrom`). The box authenticates both ends but has no replay protection: see
 * `NonceReplayGuard`.
 *
 * A `LegacyBoxKey` precomputes the shared key once (`box.before`, Go's `box.Precompute`) so a map
 * stream seals each frame with the symmetric half only.
 */
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { ProtocolError } from '../errors.js';
import { isZeroKey, KEY_LENGTH, x25519, type MachinePublic, type PrivateKey } from '../keys.js';

export const LEGACY_NONCE_LEN = 24;
export const LEGACY_TAG_LEN = 16;
/** Bytes a sealed message adds to its cleartext. */
export const LEGACY_SEAL_OVERHEAD = LEGACY_NONCE_LEN + LEGACY_TAG_LEN;

/** The shared box key between one server legacy key and one client machine key. */
export class LegacyBoxKey {
  private readonly shared: Uint8Array;

  constructor(serverPrivate: PrivateKey, clientPublic: MachinePublic) {
    if (clientPublic.length !== KEY_LENGTH || isZeroKey(clientPublic))
      throw new ProtocolError('legacy_box_invalid', 'the client machine key is zero or malformed');
    // A low-order client key gives an all-zero x25519 result, which Go's box and tweetnacl accept
    // (any attacker could then open and forge): refuse it here (native X25519, cheap).
    try {
      if (isZeroKey(x25519(serverPrivate, clientPublic))) throw new Error('all-zero result');
    } catch {
      throw new ProtocolError('legacy_box_invalid', 'the client machine key is a low-order point');
    }
    this.shared = nacl.box.before(clientPublic, serverPrivate);
  }

  /** nonce ‖ tag ‖ ciphertext, with a fresh random nonce unless one is given (test vectors). */
  seal(cleartext: Uint8Array, nonce?: Uint8Array): Buffer {
    const n = nonce ?? randomBytes(LEGACY_NONCE_LEN);
    if (n.length !== LEGACY_NONCE_LEN)
      throw new ProtocolError('legacy_box_invalid', `nonce must be ${LEGACY_NONCE_LEN} bytes`);
    const boxed = nacl.box.after(cleartext, n, this.shared);
    const out = Buffer.allocUnsafe(LEGACY_NONCE_LEN + boxed.length);
    out.set(n, 0);
    out.set(boxed, LEGACY_NONCE_LEN);
    return out;
  }

  /** Opens nonce ‖ box; throws ProtocolError('legacy_box_invalid') if it does not authenticate. */
  open(sealed: Uint8Array): Buffer {
    if (sealed.length < LEGACY_SEAL_OVERHEAD)
      throw new ProtocolError(
        'legacy_box_invalid',
        `sealed message of ${sealed.length} bytes is shorter than nonce and tag (${LEGACY_SEAL_OVERHEAD})`,
      );
    const clear = nacl.box.open.after(
      sealed.subarray(LEGACY_NONCE_LEN),
      sealed.subarray(0, LEGACY_NONCE_LEN),
      this.shared,
    );
    if (!clear)
      throw new ProtocolError(
        'legacy_box_invalid',
        'the body does not open with this machine key and the server legacy key',
        'the client sealed it to another server key (stale /key?) or sent a key in the path it does not hold',
      );
    return Buffer.from(clear.buffer, clear.byteOffset, clear.byteLength);
  }
}

/** The nonce of a sealed message (its first 24 bytes), as hex; for replay checks and logs. */
export function legacyNonceHex(sealed: Uint8Array): string {
  return Buffer.from(sealed.buffer, sealed.byteOffset, Math.min(sealed.length, LEGACY_NONCE_LEN)).toString(
    'hex',
  );
}

/**
 * Remembers the nonces of the last `capacity` sealed requests and refuses a repeat. A genuine client
 * draws each nonce at random, so a repeat is a captured body being replayed. Bounded memory (oldest
 * forgotten first); per process, so a replay sent to another replica is not caught.
 */
export class NonceReplayGuard {
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = 65_536) {}

  /** Records the nonce; throws ProtocolError('legacy_replay') if it was seen already. */
  check(sealed: Uint8Array): void {
    const n = legacyNonceHex(sealed);
    if (this.seen.has(n))
      throw new ProtocolError(
        'legacy_replay',
        'a sealed request reused a nonce seen before: a replayed body',
        'a real client never repeats a nonce; look for someone replaying captured traffic',
      );
    this.seen.add(n);
    if (this.seen.size > this.capacity) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }

  get size(): number {
    return this.seen.size;
  }
}
