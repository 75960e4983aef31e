/**
 * Pre-auth key format and hashing (pure). A key reads `sbkey-<prefix>-<secret>`: the prefix (16 hex)
 * identifies the row, the secret (32 base64url chars, 192 bits) is stored only as HMAC-SHA256 under a
 * server pepper. A fast keyed hash, never bcrypt: bcrypt would cap registrations at ~11/s per core,
 * while a 192-bit random secret needs no key stretching.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface ParsedKey {
  prefix: string;
  secret: string;
}

const KEY_RE = /^sbkey-([0-9a-f]{16})-([A-Za-z0-9_-]{32})$/;

export function generateKey(): { key: string; prefix: string; secret: string } {
  const prefix = randomBytes(8).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  return { key: `sbkey-${prefix}-${secret}`, prefix, secret };
}

export function parseKey(key: string): ParsedKey | null {
  const m = KEY_RE.exec(key.trim());
  if (!m) return null;
  return { prefix: m[1]!, secret: m[2]! };
}

export function hashSecret(pepper: string, secret: string): string {
  return createHmac('sha256', pepper).update(secret).digest('hex');
}

export function verifySecret(pepper: string, secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(pepper, secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
