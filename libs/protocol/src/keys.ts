/**
 * Curve25519 keys as Tailscale writes them: 32 raw bytes, text form `<prefix><64 hex digits>`
 * (parse accepts either case, format writes lowercase), the all-zero key meaning "not set".
 * X25519 runs on node:crypto KeyObjects, which is far faster than pure JS; see keyObject notes below.
 */
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { ValidationError } from '@switchboard/common';

/** The kinds of 32-byte key Tailscale serialises as text, by their text prefix. */
export const KEY_PREFIXES = {
  machine: 'mkey:',
  node: 'nodekey:',
  disco: 'discokey:',
  private: 'privkey:',
  challenge: 'chalpub:',
  nl: 'nlpub:',
} as const;

export type KeyKind = keyof typeof KEY_PREFIXES;

declare const keyKindBrand: unique symbol;

/** 32 raw key bytes tagged with their kind, so a node key cannot be passed where a machine key goes. */
export type Key<K extends KeyKind> = Uint8Array & { readonly [keyKindBrand]: K };
export type MachinePublic = Key<'machine'>;
export type NodePublic = Key<'node'>;
export type DiscoPublic = Key<'disco'>;
/** Any Curve25519 private key (machine, node, disco and challenge keys all print as `privkey:`). */
export type PrivateKey = Key<'private'>;
export type ChallengePublic = Key<'challenge'>;
/** Tailnet-lock key: an ed25519 public key (32 bytes), printed `nlpub:`; parse also accepts `tlpub:`. */
export type NLPublic = Key<'nl'>;

export const KEY_LENGTH = 32;
const HEX_LENGTH = KEY_LENGTH * 2;
const NL_CLI_PREFIX = 'tlpub:';

/** Wraps 32 bytes as a key of the given kind (copies, so later changes to `bytes` do not leak in). */
export function keyFromBytes<K extends KeyKind>(
  kind: K,
  bytes: Uint8Array,
  field: string = kind + ' key',
): Key<K> {
  if (!(bytes instanceof Uint8Array)) throw new ValidationError(`${field}: expected ${KEY_LENGTH} key bytes`);
  if (bytes.length !== KEY_LENGTH)
    throw new ValidationError(`${field}: expected ${KEY_LENGTH} key bytes, got ${bytes.length}`);
  return Uint8Array.from(bytes) as Key<K>;
}

/** Parses `<prefix><64 hex>` into key bytes. Errors name `field` and never echo the text (it may be secret). */
export function parseKey<K extends KeyKind>(kind: K, text: unknown, field: string = kind + ' key'): Key<K> {
  if (typeof text !== 'string')
    throw new ValidationError(`${field}: expected a string, got ${typeName(text)}`);
  const prefix = KEY_PREFIXES[kind];
  let hex: string;
  if (text.startsWith(prefix)) hex = text.slice(prefix.length);
  else if (kind === 'nl' && text.startsWith(NL_CLI_PREFIX)) hex = text.slice(NL_CLI_PREFIX.length);
  else if (text === '')
    throw new ValidationError(
      `${field}: empty string is not a key`,
      `send the zero key ${prefix}${'0'.repeat(HEX_LENGTH)} or omit the field`,
    );
  else throw new ValidationError(`${field}: key does not have the expected prefix ${prefix}`);
  if (hex.length !== HEX_LENGTH)
    throw new ValidationError(`${field}: key hex has the wrong size, got ${hex.length} want ${HEX_LENGTH}`);
  const out = new Uint8Array(KEY_LENGTH);
  for (let i = 0; i < KEY_LENGTH; i++) {
    const hi = hexValue(hex.charCodeAt(2 * i));
    const lo = hexValue(hex.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new ValidationError(`${field}: invalid hex character in key`);
    out[i] = (hi << 4) | lo;
  }
  return out as Key<K>;
}

/** Formats key bytes as `<prefix><64 lowercase hex>`. */
export function formatKey(kind: KeyKind, key: Uint8Array): string {
  if (key.length !== KEY_LENGTH)
    throw new ValidationError(`${kind} key: expected ${KEY_LENGTH} bytes, got ${key.length}`);
  return KEY_PREFIXES[kind] + Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
}

/** Parses and re-formats key text, giving the canonical lowercase form. */
export function normalizeKeyText(kind: KeyKind, text: unknown, field?: string): string {
  return formatKey(kind, parseKey(kind, text, field));
}

export function zeroKey<K extends KeyKind>(kind: K): Key<K> {
  void kind;
  return new Uint8Array(KEY_LENGTH) as Key<K>;
}

export function zeroKeyText(kind: KeyKind): string {
  return KEY_PREFIXES[kind] + '0'.repeat(HEX_LENGTH);
}

export function isZeroKey(key: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < key.length; i++) acc |= key[i]!;
  return acc === 0;
}

/** Constant-time equality of two keys (false for different lengths). */
export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Clamps a Curve25519 private scalar in place, as Tailscale does for machine, node and disco keys. */
export function clampPrivateKey(bytes: Uint8Array): void {
  bytes[0] = bytes[0]! & 248;
  bytes[31] = (bytes[31]! & 127) | 64;
}

/** A fresh random, clamped Curve25519 private key (like key.NewMachine / NewNode / NewDisco). */
export function generatePrivateKey(): PrivateKey {
  const bytes = new Uint8Array(randomBytes(KEY_LENGTH));
  clampPrivateKey(bytes);
  return bytes as PrivateKey;
}

/** The X25519 public key for a private key, tagged with the kind the caller wants. */
export function publicKeyFromPrivate<K extends Exclude<KeyKind, 'private' | 'nl'>>(
  kind: K,
  priv: PrivateKey,
): Key<K> {
  void kind;
  return publicBytesOf(privateKeyObject(priv)) as Key<K>;
}

export interface MachineKeyPair {
  readonly private: PrivateKey;
  readonly public: MachinePublic;
}

export function generateMachineKeyPair(): MachineKeyPair {
  const priv = generatePrivateKey();
  return { private: priv, public: publicKeyFromPrivate('machine', priv) };
}

/**
 * X25519(priv, pub). Throws ValidationError when the result is all zeros (a low-order public key),
 * as Go's curve25519.X25519 does.
 */
export function x25519(priv: PrivateKey | KeyObject, pub: Uint8Array | KeyObject): Uint8Array {
  const privateKey = priv instanceof Uint8Array ? privateKeyObject(priv) : priv;
  const publicKey = pub instanceof Uint8Array ? publicKeyObject(pub) : pub;
  try {
    return new Uint8Array(diffieHellman({ privateKey, publicKey }));
  } catch (err) {
    throw new ValidationError(`X25519 failed: low-order or invalid public key (${errText(err)})`);
  }
}

/** A new X25519 key pair as KeyObject plus public bytes; the fast path for Noise ephemerals. */
export function generateEphemeral(): { key: KeyObject; public: Uint8Array } {
  const priv = generatePrivateKey();
  const key = privateKeyObject(priv, false);
  return { key, public: publicBytesOf(key) };
}

/*
 * KeyObjects. Importing a raw X25519 private key through PKCS8 DER costs ~0.4 ms on OpenSSL 3
 * (the generic decoder framework), while the JWK path costs ~35 µs and public JWK ~10 µs. JWK
 * import requires an `x` member that Node currently ignores for private keys (it derives the public
 * key from `d`); a self-test at first use checks that, and falls back to DER if it ever stops being
 * true. Private KeyObjects are cached per key instance (keys are treated as immutable).
 */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const PLACEHOLDER_X = Buffer.alloc(KEY_LENGTH).toString('base64url');

const privateCache = new WeakMap<Uint8Array, KeyObject>();
let jwkPrivateImportOk: boolean | undefined;

export function privateKeyObject(priv: Uint8Array, cache = true): KeyObject {
  if (priv.length !== KEY_LENGTH)
    throw new ValidationError(`private key: expected ${KEY_LENGTH} bytes, got ${priv.length}`);
  const hit = cache ? privateCache.get(priv) : undefined;
  if (hit) return hit;
  const ko = importPrivate(priv);
  if (cache) privateCache.set(priv, ko);
  return ko;
}

export function publicKeyObject(pub: Uint8Array): KeyObject {
  if (pub.length !== KEY_LENGTH)
    throw new ValidationError(`public key: expected ${KEY_LENGTH} bytes, got ${pub.length}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(pub) }, format: 'jwk' });
}

function importPrivate(priv: Uint8Array): KeyObject {
  if (jwkPrivateImportOk === undefined) jwkPrivateImportOk = selfTestJwkImport();
  if (jwkPrivateImportOk) {
    return createPrivateKey({
      key: { kty: 'OKP', crv: 'X25519', d: b64url(priv), x: PLACEHOLDER_X },
      format: 'jwk',
    });
  }
  return importPrivateDer(priv);
}

function importPrivateDer(priv: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, priv]), format: 'der', type: 'pkcs8' });
}

function selfTestJwkImport(): boolean {
  try {
    const probe = randomBytes(KEY_LENGTH);
    const viaJwk = createPrivateKey({
      key: { kty: 'OKP', crv: 'X25519', d: probe.toString('base64url'), x: PLACEHOLDER_X },
      format: 'jwk',
    });
    return Buffer.from(publicBytesOf(viaJwk)).equals(Buffer.from(publicBytesOf(importPrivateDer(probe))));
  } catch {
    return false;
  }
}

function publicBytesOf(priv: KeyObject): Uint8Array {
  const jwk = createPublicKey(priv).export({ format: 'jwk' });
  if (typeof jwk.x === 'string') return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
  const der = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(SPKI_X25519_PREFIX.length));
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
