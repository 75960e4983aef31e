/**
 * policy-compiler's pure decisions: what storing a policy text means against the current version,
 * and the tagOwners answer when there is no policy.
 */
import type { PolicyRecord } from '@switchboard/contracts';

/** Setting `text` over `current`: unchanged when identical, else the next version. */
export function nextPolicyVersion(
  current: PolicyRecord,
  text: string,
): { unchanged: true } | { unchanged: false; next: PolicyRecord } {
  if (current.text === text) return { unchanged: true };
  return { unchanged: false, next: { tailnetId: current.tailnetId, version: current.version + 1, text } };
}

/** Without a policy no tag is owned: only an empty tag list passes. */
export function tagsWithoutPolicy(tags: readonly string[]): { ok: boolean; denied: string[] } {
  return { ok: tags.length === 0, denied: [...tags] };
}
