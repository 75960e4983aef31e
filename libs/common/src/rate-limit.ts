/**
 * Small, allocation-free rate limiters for hostile-input paths: a token bucket (floods of frames,
 * failed logins) and a logger wrapper that lets through a few lines per window and then one line
 * saying how many it suppressed, so one misbehaving peer cannot amplify itself into the logs.
 */
import type { LogFields, Logger, LogLevel } from './logger.js';

/** A token bucket: `burst` tokens, refilled at `ratePerSecond`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly burst: number,
    private readonly ratePerSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(burst > 0) || !(ratePerSecond >= 0))
      throw new RangeError('TokenBucket needs burst > 0 and rate >= 0');
    this.tokens = burst;
    this.last = now();
  }

  /** Takes `n` tokens if there are that many; false (and nothing taken) otherwise. */
  take(n = 1): boolean {
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerSecond);
      this.last = t;
    }
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Milliseconds until `n` tokens are available (0 if they are now). */
  msUntil(n = 1): number {
    this.take(0);
    if (this.tokens >= n) return 0;
    if (this.ratePerSecond === 0) return Infinity;
    return Math.ceil(((n - this.tokens) / this.ratePerSecond) * 1000);
  }
}

export interface LimitedLoggerOptions {
  /** Lines let through per window (default 10). */
  linesPerWindow?: number;
  /** Window length in ms (default 60 s). */
  windowMs?: number;
  now?: () => number;
}

/**
 * A Logger that passes at most `linesPerWindow` warn/info/error lines per window (debug is passed
 * through: it is off in production); the first line of the next window reports how many were
 * suppressed. Make one per connection (or per source) for lines a peer can trigger at will.
 */
export class LimitedLogger implements Logger {
  private windowStart: number;
  private used = 0;
  private suppressed = 0;
  private readonly linesPerWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(
    private readonly inner: Logger,
    opts: LimitedLoggerOptions = {},
  ) {
    this.linesPerWindow = opts.linesPerWindow ?? 10;
    this.windowMs = opts.windowMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.windowStart = this.now();
  }

  /** Lines dropped so far in the current window. */
  get suppressedCount(): number {
    return this.suppressed;
  }

  private admit(): boolean {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0)
        this.inner.warn('log lines suppressed (rate limit per peer)', {
          suppressed: this.suppressed,
          windowMs: this.windowMs,
        });
      this.windowStart = t;
      this.used = 0;
      this.suppressed = 0;
    }
    if (this.used < this.linesPerWindow) {
      this.used++;
      if (this.used === this.linesPerWindow)
        this.inner.warn('further log lines from this peer are suppressed for the rest of the window', {
          windowMs: this.windowMs,
        });
      return true;
    }
    this.suppressed++;
    return false;
  }

  debug(msg: string, fields?: LogFields): void {
    this.inner.debug(msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    if (this.admit()) this.inner.info(msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    if (this.admit()) this.inner.warn(msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    if (this.admit()) this.inner.error(msg, fields);
  }
  child(name: string, fields?: LogFields): Logger {
    return new LimitedLogger(this.inner.child(name, fields), {
      linesPerWindow: this.linesPerWindow,
      windowMs: this.windowMs,
      now: this.now,
    });
  }
  isLevelEnabled(level: LogLevel): boolean {
    return this.inner.isLevelEnabled(level);
  }
}
