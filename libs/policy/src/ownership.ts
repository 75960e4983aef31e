/**
 * Ownership queries: `tagOwners` checks and `autoApprovers`. Pure functions of the policy and a
 * group lookup (policy groups and identity-provider groups of a user); no node state.
 */
import { formatPrefix, parsePrefix, rangeContains, type Prefix } from './ip.js';
import { makeNodeRec } from './node-state.js';
import { normalizeLogin } from './syntax.js';
import type { Alias, Policy, PolicyNode } from './types.js';

/** Result of a tagOwners check. */
export interface TagCheck {
  readonly ok: boolean;
  /** Tags the owner may not apply (undefined in tagOwners or not owned). */
  readonly denied: readonly string[];
}

/** The groups (policy and identity-provider) a user login belongs to. */
export type GroupLookup = (login: string) => ReadonlySet<string> | undefined;

function parseRoute(text: string): Prefix | null {
  return text.includes('/') ? parsePrefix(text) : null;
}

/** Does an owner entry (user, group or tag) cover a node or credential with this user and tags? */
function ownerMatches(
  owner: Alias,
  user: string | null,
  tags: ReadonlySet<string>,
  groupsOf: GroupLookup,
): boolean {
  const tagged = tags.size > 0;
  switch (owner.kind) {
    case 'user':
      return !tagged && user !== null && user === normalizeLogin(owner.login);
    case 'group':
      return !tagged && user !== null && (groupsOf(user)?.has(owner.name) ?? false);
    case 'tag':
      return tags.has(owner.name);
    case 'autogroup':
    case 'host':
    case 'prefix':
    case 'wildcard':
      return false;
  }
}

/**
 * Routes from `node.routableIPs` that autoApprovers allow this node to have approved
 * (subnet routes via `routes` with a covering prefix; exit routes only via `exitNode`).
 */
export function autoApprovedRoutes(policy: Policy, node: PolicyNode, groupsOf: GroupLookup): string[] {
  const rec = makeNodeRec({ ...node, approvedRoutes: [] }, -1);
  const out: string[] = [];
  const matches = (owners: readonly { alias: Alias }[]): boolean =>
    owners.some((o) => ownerMatches(o.alias, rec.user, rec.tags, groupsOf));
  for (const text of node.routableIPs) {
    const r = parseRoute(text);
    if (r === null) continue;
    const approved =
      r.bits === 0
        ? matches(policy.autoApprovers.exitNode)
        : policy.autoApprovers.routes.some(
            (e) => e.prefix.bits <= r.bits && rangeContains(e.prefix, r) && matches(e.owners),
          );
    if (approved) out.push(formatPrefix(r));
  }
  return out;
}

/** Owners a tag flattens to (users and groups), following tag→tag ownership. */
function flatOwners(policy: Policy, tag: string, seen = new Set<string>()): Alias[] {
  if (seen.has(tag)) return [];
  seen.add(tag);
  const def = policy.tagOwners.get(tag);
  if (def === undefined) return [];
  return def.owners.flatMap((o) =>
    o.alias.kind === 'tag' ? flatOwners(policy, o.alias.name, seen) : [o.alias],
  );
}

/**
 * tagOwners check for tags requested by a user (e.g. on a pre-auth key): each tag must be
 * defined and the user must own it directly, through a group, or through a tag that owns it.
 */
export function tagsAllowedFor(
  policy: Policy,
  ownerLogin: string,
  tags: readonly string[],
  groupsOf: GroupLookup,
): TagCheck {
  const login = normalizeLogin(ownerLogin);
  const denied = tags.filter(
    (t) =>
      !policy.tagOwners.has(t) ||
      !flatOwners(policy, t).some((o) => ownerMatches(o, login, new Set(), groupsOf)),
  );
  return { ok: denied.length === 0, denied };
}

/** tagOwners check for a credential that itself carries tags (tag→tag ownership, transitively). */
export function tagsAllowedForTags(
  policy: Policy,
  ownerTags: readonly string[],
  tags: readonly string[],
): TagCheck {
  const owned = new Set(ownerTags);
  const walk = (t: string, seen: Set<string>): boolean => {
    if (seen.has(t)) return false;
    seen.add(t);
    for (const o of policy.tagOwners.get(t)?.owners ?? []) {
      if (o.alias.kind === 'tag' && (owned.has(o.alias.name) || walk(o.alias.name, seen))) return true;
    }
    return false;
  };
  const denied = tags.filter((t) => !policy.tagOwners.has(t) || (!owned.has(t) && !walk(t, new Set())));
  return { ok: denied.length === 0, denied };
}
