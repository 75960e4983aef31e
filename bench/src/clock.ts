/**
 * One time base for the coordinator and its worker processes. Every process reads
 * `performance.timeOrigin + performance.now()`: milliseconds since the epoch with sub-millisecond
 * resolution, monotonic within a process. Processes on one machine share the system clock, but each
 * fixes its time origin at start, so the coordinator measures each worker's offset once by ping-pong
 * over IPC (the sample with the smallest round trip wins) and subtracts it from the worker's
 * timestamps. The residual error is below half the best round trip (typically < 0.2 ms).
 */

/** Milliseconds since the epoch, sub-millisecond resolution, monotonic within the process. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export interface ClockSample {
  /** Coordinator time when the ping was sent. */
  readonly sent: number;
  /** Worker time when it answered. */
  readonly remote: number;
  /** Coordinator time when the answer arrived. */
  readonly received: number;
}

export interface ClockOffset {
  /** remote clock minus local clock, ms: local = remote - offset. */
  readonly offsetMs: number;
  /** Round trip of the sample used, ms (the offset is good to half of it). */
  readonly rttMs: number;
}

/** The offset from the sample with the smallest round trip (Cristian's algorithm). */
export function offsetFromSamples(samples: readonly ClockSample[]): ClockOffset {
  let best: ClockSample | undefined;
  for (const s of samples) if (!best || s.received - s.sent < best.received - best.sent) best = s;
  if (!best) throw new Error('no clock samples');
  return { offsetMs: best.remote - (best.sent + best.received) / 2, rttMs: best.received - best.sent };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
