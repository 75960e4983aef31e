/**
 * Who may call which admin route: the one place every admin route's access is decided (pure).
 *
 * A route names the scope Tailscale gives it (`devices:core`, `policy_file`, …) and whether it
 * writes. Users (and the API tokens they own) act with their role, as Tailscale defines the roles
 * (https://tailscale.com/kb/1138/user-roles): owner and admin do everything; a network admin edits
 * the policy file, DNS, routes and network settings and reads the rest; an IT admin manages users,
 * devices and keys and reads the rest; an auditor reads everything; a member administers nothing.
 * OAuth clients act with their scopes: a write scope includes its `:read`, `all` and `all:read`
 * include every scope.
 */
import type { UserRole } from '@switchboard/contracts';

/** Scopes of Tailscale's API v2 that Switchboard's routes use, plus its own `tailnets` and `audit`. */
export const SCOPES = [
  'devices:core',
  'devices:routes',
  'auth_keys',
  'oauth_keys',
  'api_access_tokens',
  'policy_file',
  'dns',
  'users',
  'feature_settings',
  'webhooks',
  'logs:configuration',
  'tailnets',
] as const;
export type Scope = (typeof SCOPES)[number];

/** Every scope a client may be given or ask for: each scope, its `:read`, `all` and `all:read`. */
export const GRANTABLE_SCOPES: readonly string[] = [
  'all',
  'all:read',
  ...SCOPES.flatMap((s) => [s, `${s}:read`]),
];

/** Scopes that mint devices: a client holding one must have tags (Tailscale's rule). */
export const SCOPES_NEEDING_TAGS: readonly string[] = ['devices:core', 'auth_keys'];

export interface RouteAccess {
  scope: Scope;
  /** True for every route that changes state. */
  write: boolean;
  /** Only these roles may call it, whatever the scope says (tailnet management: owner only). */
  onlyRoles?: readonly UserRole[];
}

/** The roles that may write under each scope. Every admin role reads every scope. */
const WRITERS: Readonly<Record<Scope, readonly UserRole[]>> = {
  'devices:core': ['owner', 'admin', 'it-admin'],
  'devices:routes': ['owner', 'admin', 'network-admin'],
  auth_keys: ['owner', 'admin', 'it-admin'],
  oauth_keys: ['owner', 'admin'],
  api_access_tokens: ['owner', 'admin'],
  policy_file: ['owner', 'admin', 'network-admin'],
  dns: ['owner', 'admin', 'network-admin'],
  users: ['owner', 'admin', 'it-admin'],
  feature_settings: ['owner', 'admin', 'it-admin'],
  webhooks: ['owner', 'admin'],
  'logs:configuration': [],
  tailnets: ['owner'],
};
const READERS: readonly UserRole[] = ['owner', 'admin', 'network-admin', 'it-admin', 'auditor'];

/** Who is calling: a user (directly or through an API token it owns), the host, or an OAuth client. */
export type Principal =
  | { kind: 'role'; role: UserRole; actor: string; userId: number | null; tailnetId: number }
  | {
      kind: 'scopes';
      scopes: readonly string[];
      tags: readonly string[];
      actor: string;
      clientId: number;
      tailnetId: number;
    };

export type AccessDecision = { allowed: true } | { allowed: false; reason: string };

export function roleMayWrite(role: UserRole, scope: Scope): boolean {
  return WRITERS[scope].includes(role);
}

/** Whether `scopes` grant `scope` (read or write). */
export function scopesGrant(scopes: readonly string[], scope: Scope, write: boolean): boolean {
  if (scopes.includes('all')) return true;
  if (!write && scopes.includes('all:read')) return true;
  if (scopes.includes(scope)) return true;
  return !write && scopes.includes(`${scope}:read`);
}

/** The decision for one call of a route. */
export function decideAccess(p: Principal, access: RouteAccess): AccessDecision {
  const verb = access.write ? 'change' : 'read';
  if (p.kind === 'scopes') {
    if (access.onlyRoles)
      return { allowed: false, reason: `only a user with role ${access.onlyRoles.join(' or ')} may do this` };
    if (scopesGrant(p.scopes, access.scope, access.write)) return { allowed: true };
    return {
      allowed: false,
      reason: `this OAuth token's scopes (${p.scopes.join(' ') || 'none'}) do not allow it to ${verb} ${access.scope}; it needs scope "${access.write ? access.scope : `${access.scope}:read`}"`,
    };
  }
  if (access.onlyRoles && !access.onlyRoles.includes(p.role))
    return {
      allowed: false,
      reason: `role ${p.role} may not do this; only ${access.onlyRoles.join(' or ')}`,
    };
  const ok = access.write ? roleMayWrite(p.role, access.scope) : READERS.includes(p.role);
  if (ok) return { allowed: true };
  return { allowed: false, reason: `role ${p.role} may not ${verb} ${access.scope}` };
}

/** The role name a principal acts with, for audit entries. */
export function principalRole(p: Principal): string {
  return p.kind === 'role' ? p.role : `oauth:${p.scopes.join(' ')}`;
}
