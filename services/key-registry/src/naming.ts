/**
 * DNS labels for nodes (pure): the host name a node reports becomes a MagicDNS label, lower-case,
 * letters, digits and hyphens, at most 63 characters, unique in the tailnet (a numeric suffix is added
 * when the label is taken).
 */
export function sanitizeLabel(hostname: string): string {
  const s = hostname
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/g, '');
  return s.length > 0 ? s : 'node';
}

/** Picks `base`, or `base-1`, `base-2`, … whichever is free in `taken`. */
export function uniqueLabel(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 1; ; i++) {
    const suffix = `-${i}`;
    const candidate = base.slice(0, 63 - suffix.length).replace(/-+$/g, '') + suffix;
    if (!taken.has(candidate)) return candidate;
  }
}
