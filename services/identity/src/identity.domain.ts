/**
 * identity's pure decisions (no I/O): API key format, the fields a new user gets, and whether a user
 * may be removed.
 */
import { IdentityError } from './identity.errors.js';

const API_KEY_RE = /^sbapi-([0-9a-f]{16})-([A-Za-z0-9_-]{32})$/;

/** Splits `sbapi-<prefix>-<secret>`; null when the text is not an API key. */
export function parseApiKey(key: string): { prefix: string; secret: string } | null {
  const m = API_KEY_RE.exec(key);
  return m ? { prefix: m[1]!, secret: m[2]! } : null;
}

/** The prefix an admin names a key by: the full key, `sbapi-<prefix>`, or the bare prefix. */
export function apiKeyPrefixOf(text: string): string {
  return text.replace(/^sbapi-/, '').split('-')[0] ?? '';
}

export interface NewUserRequest {
  name: string;
  displayName?: string | undefined;
  email?: string | undefined;
  tailnetId?: number | undefined;
}

/** A new user's stored fields: the login is the e-mail when given, else the name. */
export function newUserFields(req: NewUserRequest): {
  tailnetId: number;
  name: string;
  loginName: string;
  displayName: string;
  email: string | null;
} {
  return {
    tailnetId: req.tailnetId ?? 1,
    name: req.name,
    loginName: req.email ?? req.name,
    displayName: req.displayName ?? req.name,
    email: req.email ?? null,
  };
}

/** A user that still owns nodes is not removed (its nodes would lose their owner). */
export function assertRemovable(userId: number, ownedNodes: number): void {
  if (ownedNodes > 0)
    throw new IdentityError(
      'user_has_nodes',
      `user ${userId} still owns ${ownedNodes} node(s)`,
      'delete them first with "switchboard nodes delete ID"',
    );
}
