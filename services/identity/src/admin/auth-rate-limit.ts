/**
 * Failed-authentication limit per source address for the admin API's TCP listener (pure: no I/O,
 * the clock is injected).
 *
 * Rules, in the order a request meets them:
 * - A source is an IPv4 address, or the /64 prefix of an IPv6 address (one host owns a whole /64,
 *   so counting single IPv6 addresses would let it rotate freely). IPv4-mapped IPv6 counts as IPv4.
 * - Only a presented, wrong key is a failure (the caller decides: a request without credentials
 *   guesses nothing and is released uncounted).
 * - A request is admitted *before* its key is checked. A blocked source is refused without checking
 *   the key at all, so a correct key from a blocked source is refused too (GitHub and Tailscale do
 *   the same): otherwise the difference between 200 and 429 would still answer the guess.
 * - Checks in flight count against the budget: with `failures` recorded and `inFlight` unfinished,
 *   a new attempt is admitted only while `failures + inFlight < limit`. A burst of concurrent guesses
 *   therefore cannot outrun the limit.
 * - The failure that reaches `limit` within one window (which starts at a source's first failure)
 *   blocks the source for one full window from that moment; refused requests neither count as
 *   failures nor extend the block. When the block ends the source starts afresh.
 * - At most `maxSources` sources are tracked; a new one first drops stale entries, then the entry
 *   whose last failure is oldest. Sources without failures or checks in flight are not kept.
 */

export interface AuthRateLimitOptions {
  /** Failed attempts allowed per source per window before it is blocked (at least 1). */
  limit: number;
  /** Window and block length in milliseconds (default one minute). */
  windowMs?: number;
  /** Most sources tracked at once (default 10 000, about 1 MB). */
  maxSources?: number;
  now?: () => number;
}

/** Why an attempt was refused: the source is blocked, or its remaining budget is all in flight. */
export type RefusalReason = 'blocked' | 'in_flight';

export type Admission =
  | { admitted: true; ticket: AttemptTicket }
  | { admitted: false; reason: RefusalReason; retryAfterMs: number; retryAt: number };

/** The result of recording a failure: `blocked` is true only for the failure that starts a block. */
export interface FailureResult {
  failures: number;
  blocked: boolean;
  /** When the block ends (epoch ms); set when `blocked`. */
  blockedUntil?: number;
}

interface Entry {
  /** Start of the current counting window (first failure), epoch ms; 0 while no failure yet. */
  windowStart: number;
  failures: number;
  inFlight: number;
  /** End of the block, epoch ms; 0 while not blocked. */
  blockedUntil: number;
}

/** One admitted attempt; finish it exactly once with the outcome of the key check. */
export interface AttemptTicket {
  readonly source: string;
  /** The key was valid: the attempt no longer counts. */
  succeeded(): void;
  /** The key was missing or wrong: counts one failure. */
  failed(): FailureResult;
  /**
   * Finished without a failure to count: no credential was presented (nothing was guessed), or
   * the check itself failed (database down).
   */
  released(): void;
}

export class AuthFailureLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly maxSources: number;
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();
  /** Entries dropped to stay within `maxSources` while still live (a sign of a distributed attack). */
  evicted = 0;

  constructor(o: AuthRateLimitOptions) {
    if (!Number.isInteger(o.limit) || o.limit < 1)
      throw new RangeError(`auth failure limit must be a whole number of at least 1, got ${o.limit}`);
    this.limit = o.limit;
    this.windowMs = o.windowMs ?? 60_000;
    this.maxSources = o.maxSources ?? 10_000;
    if (this.maxSources < 1) throw new RangeError(`maxSources must be at least 1, got ${this.maxSources}`);
    this.now = o.now ?? Date.now;
  }

  /** Number of sources currently tracked. */
  get size(): number {
    return this.entries.size;
  }

  /** Admits or refuses one authentication attempt from `source` (see `sourceKey`). */
  admit(source: string): Admission {
    const now = this.now();
    let e = this.entries.get(source);
    if (e) this.refresh(e, now);
    if (e && e.blockedUntil > now) {
      return {
        admitted: false,
        reason: 'blocked',
        retryAfterMs: e.blockedUntil - now,
        retryAt: e.blockedUntil,
      };
    }
    if (e && e.failures + e.inFlight >= this.limit) {
      // The rest of the budget is being spent right now; the answer comes within a request's time.
      const retryAfterMs = 1000;
      return { admitted: false, reason: 'in_flight', retryAfterMs, retryAt: now + retryAfterMs };
    }
    if (!e) {
      e = { windowStart: 0, failures: 0, inFlight: 0, blockedUntil: 0 };
      this.insert(source, e, now);
    }
    e.inFlight++;
    return { admitted: true, ticket: this.ticket(source, e) };
  }

  private ticket(source: string, e: Entry): AttemptTicket {
    let done = false;
    const finish = (): void => {
      if (done) throw new Error(`auth attempt from ${source} finished twice`);
      done = true;
      e.inFlight--;
    };
    const dropIfIdle = (): void => {
      this.refresh(e, this.now());
      if (this.isIdle(e) && this.entries.get(source) === e) this.entries.delete(source);
    };
    return {
      source,
      succeeded: () => {
        finish();
        dropIfIdle();
      },
      released: () => {
        finish();
        dropIfIdle();
      },
      failed: () => {
        finish();
        return this.recordFailure(source, e);
      },
    };
  }

  private recordFailure(source: string, admitted: Entry): FailureResult {
    const now = this.now();
    let e = this.entries.get(source);
    if (e !== admitted) {
      // Evicted while the key was checked: count the failure on a fresh entry (the evicted one's
      // other tickets keep their own object, so nothing is counted twice or leaks).
      e = { windowStart: 0, failures: 0, inFlight: 0, blockedUntil: 0 };
      this.insert(source, e, now);
    } else {
      this.refresh(e, now);
      // Most recent failure last, so eviction drops the source that failed longest ago.
      this.entries.delete(source);
      this.entries.set(source, e);
    }
    if (e.failures === 0) e.windowStart = now;
    e.failures++;
    if (e.failures >= this.limit && e.blockedUntil <= now) {
      e.blockedUntil = now + this.windowMs;
      return { failures: e.failures, blocked: true, blockedUntil: e.blockedUntil };
    }
    return { failures: e.failures, blocked: false };
  }

  /** Forgets a finished block or counting window; checks in flight are kept. */
  private refresh(e: Entry, now: number): void {
    if (e.blockedUntil > 0) {
      if (e.blockedUntil <= now) {
        e.blockedUntil = 0;
        e.failures = 0;
        e.windowStart = 0;
      }
    } else if (e.failures > 0 && now >= e.windowStart + this.windowMs) {
      e.failures = 0;
      e.windowStart = 0;
    }
  }

  private isIdle(e: Entry): boolean {
    return e.inFlight === 0 && e.failures === 0 && e.blockedUntil === 0;
  }

  private insert(source: string, e: Entry, now: number): void {
    if (this.entries.size >= this.maxSources) {
      // Oldest first; stop at the first live entry (later ones are younger, mostly live).
      for (const [k, old] of this.entries) {
        if (this.entries.size < this.maxSources) break;
        this.refresh(old, now);
        if (!this.isIdle(old)) break;
        this.entries.delete(k);
      }
    }
    while (this.entries.size >= this.maxSources) {
      const first = this.entries.keys().next();
      if (first.done) break;
      this.entries.delete(first.value);
      this.evicted++;
    }
    this.entries.set(source, e);
  }
}
