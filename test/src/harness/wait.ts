/**
 * Bounded polling for tests against real clients: `waitFor` retries a probe until it succeeds or
 * a deadline passes, and then fails with a message naming what was awaited and what was last seen.
 */
import { inspect } from 'node:util';
import { sleep } from './exec.js';

const NOT_YET = Symbol('notYet');

/** A probe result meaning "not yet", carrying what was observed for the failure message. */
export interface NotYet {
  readonly [NOT_YET]: true;
  readonly observed: unknown;
}

/** Returned by a probe to say "not yet"; `observed` is reported if the wait times out. */
export function notYet(observed: unknown): NotYet {
  return { [NOT_YET]: true, observed };
}

function isNotYet(v: unknown): v is NotYet {
  return typeof v === 'object' && v !== null && NOT_YET in v;
}

export interface WaitOptions {
  /** What is awaited, in words: it heads the failure message. */
  readonly what: string;
  /** Give up after this long. Default 30 s. */
  readonly timeoutMs?: number;
  /** Pause between probes. Default 250 ms. */
  readonly intervalMs?: number;
}

/** Thrown by a probe to stop waiting at once (e.g. the process it waits for has died). */
export class GiveUp extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GiveUp';
  }
}

/** The wait ran out of time. */
export class WaitTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastObserved: unknown,
    readonly attempts: number,
  ) {
    super(
      `timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${what}; last observed: ` +
        inspect(lastObserved, { depth: 6, breakLength: 120, maxStringLength: 4000 }),
    );
    this.name = 'WaitTimeoutError';
  }
}

/**
 * Calls `probe` until it returns a truthy value that is not `notYet(...)`, and resolves with that
 * value. A falsy result, a `notYet(observed)` or a thrown error means "try again"; the last of
 * them is quoted when the wait times out. A thrown `GiveUp` ends the wait with that error.
 */
export async function waitFor<T>(
  probe: () => Promise<T | NotYet> | T | NotYet,
  opts: WaitOptions,
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 250;
  const deadline = Date.now() + timeoutMs;
  let last: unknown = '(probe never returned)';
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      const v = await probe();
      if (isNotYet(v)) last = v.observed;
      else if (v) return v;
      else last = v;
    } catch (err) {
      if (err instanceof GiveUp) throw new Error(`gave up waiting for ${opts.what}: ${err.message}`);
      last = err instanceof Error ? `${err.name}: ${err.message}` : err;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new WaitTimeoutError(opts.what, timeoutMs, last, attempts);
    await sleep(Math.min(intervalMs, left));
  }
}
