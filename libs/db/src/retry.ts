/**
 * Which database errors a transaction retries, and how long it waits: serialization failures
 * (40001) and deadlocks (40P01) are retried with a small jittered exponential backoff.
 */

/** SQLSTATE of a database error (pg and PGlite both expose it as `code`), if any. */
export function sqlState(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function isRetryable(err: unknown): boolean {
  const s = sqlState(err);
  return s === '40001' || s === '40P01';
}

/** A unique constraint was violated (23505). */
export function isUniqueViolation(err: unknown): boolean {
  return sqlState(err) === '23505';
}

/** Backoff before retry `attempt` (0-based): full jitter over 2, 4, 8 … ms, capped at 250 ms. */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(250, 2 * 2 ** attempt);
  return Math.round(cap / 2 + random() * (cap / 2));
}
