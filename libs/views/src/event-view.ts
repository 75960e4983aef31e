/**
 * EventView: a service's local, read-only view of state that another service owns, kept current
 * from the durable event log with the snapshot + sequence + gap-resync pattern:
 *
 *  1. note the log's last sequence S (`bus.lastEventSeq()`),
 *  2. `load()` a snapshot (the owner's snapshot RPC — at start-up and after a gap, never on a
 *     request path) and replace the view's state with it,
 *  3. consume the log from S + 1 through `apply()`; events that overlap the snapshot are harmless
 *     because views apply them version-gated (see `VersionedMap`),
 *  4. on a gap (events lost to retention, a consumer that could not resume) go back to 1.
 *
 * Loading retries with backoff while the owner does not answer yet (services start in any order), so
 * `start()` never blocks a service's own start-up on another service: request handlers that need the
 * view await `whenReady()`.
 *
 * Read-your-writes: `catchUp()` resolves once the view has applied everything the log held when it
 * was called. Callers use it before refusing a request on the view's evidence (ARCHITECTURE.md,
 * "Stale views"). The filter must cover every subject the log holds (`events.v1.>`) for the
 * sequence comparison to be exact; `apply` ignores what it does not need.
 *
 * Metrics: `switchboard_event_view_seq{view}` (the sequence applied) and
 * `switchboard_event_view_lag_events{view}` (the log's head minus that, refreshed every 5 s).
 */
import type { Bus, BusEvent, Subscription } from '@switchboard/bus';
import { SwitchboardError, type Logger } from '@switchboard/common';
import { processMetrics } from '@switchboard/metrics';

export interface EventViewOptions {
  bus: Bus;
  /** Names the view in logs and errors, e.g. `key-registry users+policy`. */
  name: string;
  /** Subject filter of the consumer; cover the whole log (see above). */
  filter: string;
  /** Replaces the view's state from snapshots; called at start and after every gap. */
  load: () => Promise<void>;
  /** Applies one event (version-gated, idempotent); a throw is logged and the event skipped. */
  apply: (ev: BusEvent) => void | Promise<void>;
  logger: Logger;
  /** Which load failures are retried (default: `unavailable` and `timeout` codes, i.e. an owner not up yet). */
  retryable?: (err: unknown) => boolean;
  /** Upper bound of the retry backoff (default 5000 ms). */
  maxBackoffMs?: number;
}

const defaultRetryable = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'unavailable' || code === 'timeout';
};

interface SeqWaiter {
  seq: number;
  resolve: (reached: boolean) => void;
}

export class EventView {
  private sub: Subscription | undefined;
  private resyncing: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private stopped = false;
  private seq = 0;
  private loaded = false;
  private readyWaiters: (() => void)[] = [];
  private seqWaiters: SeqWaiter[] = [];
  private cancelSleep: (() => void) | undefined;
  private lagEvents = 0;
  private lagTimer: NodeJS.Timeout | undefined;
  private unobserve: (() => void)[] = [];

  constructor(private readonly opts: EventViewOptions) {}

  /** Events the log holds that this view has not applied yet (asks the log for its head). */
  async lag(): Promise<number> {
    const head = await this.opts.bus.lastEventSeq();
    this.lagEvents = Math.max(0, head - this.seq);
    return this.lagEvents;
  }

  private observe(): void {
    const m = processMetrics();
    const labels = { view: this.opts.name };
    this.unobserve = [
      m.observeGauge(
        'switchboard_event_view_seq',
        'Event-log sequence this local view has applied, by view.',
        ['view'],
        () => [{ labels, value: this.seq }],
      ),
      m.observeGauge(
        'switchboard_event_view_lag_events',
        'Events in the log this local view has not applied yet (refreshed every 5 s), by view.',
        ['view'],
        () => [{ labels, value: this.lagEvents }],
      ),
    ];
    this.lagTimer = setInterval(() => {
      this.lag().catch(() => undefined); // the log unreachable: keep the last figure
    }, 5000);
    this.lagTimer.unref();
  }

  /** The last log sequence the view reflects (the snapshot's, then each applied event's). */
  get lastSeq(): number {
    return this.seq;
  }

  /** True once the first snapshot is loaded. */
  get ready(): boolean {
    return this.loaded;
  }

  /**
   * Loads the view and starts consuming, retrying retryable failures with backoff; resolves once
   * loaded. Idempotent. Callers that must not wait (a service's own start) may ignore the promise's
   * value but should catch its rejection (a non-retryable load failure, or `stop()` first).
   */
  start(): Promise<void> {
    if (!this.starting) this.observe();
    this.starting ??= this.startLoop();
    return this.starting;
  }

  private async startLoop(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.resync();
        return;
      } catch (err) {
        if (this.stopped) throw new SwitchboardError('unavailable', `${this.opts.name} view was stopped`);
        if (!(this.opts.retryable ?? defaultRetryable)(err)) throw err;
        const delay = Math.min(this.opts.maxBackoffMs ?? 5000, 100 * 2 ** attempt);
        this.opts.logger.warn(`waiting to load the ${this.opts.name} view`, { err, retryInMs: delay });
        await new Promise<void>((r) => {
          const t = setTimeout(r, delay);
          this.cancelSleep = () => {
            clearTimeout(t);
            r();
          };
        });
        this.cancelSleep = undefined;
      }
    }
  }

  /** Resolves once the view is loaded; rejects with `unavailable` after `timeoutMs`. */
  async whenReady(timeoutMs = 10_000): Promise<void> {
    if (this.loaded) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        reject(
          new SwitchboardError(
            'unavailable',
            `the ${this.opts.name} view is not loaded yet (waited ${timeoutMs} ms)`,
            'the service that owns this data is not answering its snapshot request; check that it runs',
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      this.readyWaiters.push(done);
    });
  }

  /** Resolves true once the view reflects log sequence `seq`, false after `timeoutMs`. */
  waitForSeq(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.loaded && this.seq >= seq) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const w: SeqWaiter = {
        seq,
        resolve: (reached) => {
          clearTimeout(t);
          resolve(reached);
        },
      };
      const t = setTimeout(() => {
        this.seqWaiters = this.seqWaiters.filter((x) => x !== w);
        resolve(false);
      }, timeoutMs);
      this.seqWaiters.push(w);
    });
  }

  /**
   * Waits until the view has applied everything the log holds now (read-your-writes for anything
   * appended before this call). Resolves false when that takes longer than `timeoutMs`.
   */
  async catchUp(timeoutMs = 2000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    await this.whenReady(timeoutMs);
    const head = await this.opts.bus.lastEventSeq();
    return this.waitForSeq(head, Math.max(0, end - Date.now()));
  }

  /** Reloads the snapshot and restarts consumption; concurrent calls share one resync. */
  resync(): Promise<void> {
    this.resyncing ??= (async () => {
      try {
        if (this.sub) await this.sub.unsubscribe();
        this.sub = undefined;
        const seq = await this.opts.bus.lastEventSeq();
        await this.opts.load();
        if (this.stopped) return;
        this.advance(seq);
        this.markLoaded();
        this.opts.logger.info(`${this.opts.name} view loaded from snapshots`, { fromSeq: seq + 1 });
        this.sub = this.opts.bus.consumeEvents({
          filter: this.opts.filter,
          fromSeq: seq + 1,
          handler: (ev) => this.handle(ev),
          onGap: async (info) => {
            this.opts.logger.warn(`event log gap; reloading the ${this.opts.name} view`, info);
            setImmediate(() => {
              this.resync().catch((err: unknown) =>
                this.opts.logger.error(`resync of the ${this.opts.name} view failed`, { err }),
              );
            });
          },
        });
      } finally {
        this.resyncing = undefined;
      }
    })();
    return this.resyncing;
  }

  private async handle(ev: BusEvent): Promise<void> {
    try {
      await this.opts.apply(ev);
    } catch (err) {
      this.opts.logger.error(`the ${this.opts.name} view ignored an event it could not apply`, {
        seq: ev.seq,
        subject: ev.subject,
        err,
      });
    }
    this.advance(ev.seq);
  }

  private advance(seq: number): void {
    if (seq > this.seq) this.seq = seq;
    if (this.seqWaiters.length === 0) return;
    const due = this.seqWaiters.filter((w) => w.seq <= this.seq);
    if (due.length === 0) return;
    this.seqWaiters = this.seqWaiters.filter((w) => w.seq > this.seq);
    for (const w of due) w.resolve(true);
  }

  private markLoaded(): void {
    if (this.loaded) return;
    this.loaded = true;
    const ws = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of ws) w();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.lagTimer);
    for (const f of this.unobserve) f();
    this.unobserve = [];
    this.cancelSleep?.();
    if (this.sub) await this.sub.unsubscribe();
    this.sub = undefined;
    const ws = this.seqWaiters;
    this.seqWaiters = [];
    for (const w of ws) w.resolve(false);
  }
}
