/**
 * The outbox relay: publishes `<schema>.outbox` rows to the bus's event log in id order, with
 * msgId `<schema>:<origin>:<id>` (origin: a random id of this database's outbox), and marks them
 * published.
 * - One relay at a time per schema publishes: on Postgres each round runs in a transaction that
 *   first takes `pg_try_advisory_xact_lock` (replicas that do not get it skip the round) and holds it
 *   while publishing; on PGlite (one process) a process-local guard plays that part, and rows are
 *   read, published and marked in short statements so the single connection is never held while
 *   waiting on the bus.
 * - Crash-safe: a row published but not yet marked is published again and the event log
 *   deduplicates it by msgId (within its duplicate window, 2 minutes by default).
 * - Never loses or reorders: rows go out strictly one after another in id order (each publication
 *   is acknowledged before the next), and ids are assigned in commit order (see `outbox.ts`).
 * - Batches of `batchSize` (256) rows per round; when the bus fails, the rows published so far are
 *   marked and the relay retries with exponential backoff (100 ms … `maxBackoffMs`), logging an
 *   error naming the schema.
 * - Published rows are deleted after `retainPublishedMs` (1 day).
 * - Metrics: `switchboard_outbox_lag_seconds{schema}` is the age of the oldest unpublished row
 *   (measured at most once a second by the loop, also while the bus is failing), and
 *   `switchboard_outbox_published_total{schema}`; each event carries its row's commit time.
 */
import { SwitchboardError, type Logger } from '@switchboard/common';
import type { Bus } from '@switchboard/bus';
import type { Db, Queryable } from './db.js';
import { processMetrics } from '@switchboard/metrics';
import { advisoryKey, assertSchemaName, qualified, quoteIdent } from './ident.js';

export interface OutboxRelayOptions {
  db: Db;
  schema: string;
  bus: Bus;
  logger: Logger;
  /** How often to look for rows when nobody calls `kick()`. Defaults to 1000 ms. */
  pollMs?: number;
  /** Rows per round. Defaults to 256. */
  batchSize?: number;
  /** Upper bound of the retry backoff when the bus fails. Defaults to 10 000 ms. */
  maxBackoffMs?: number;
  /** How long published rows are kept before deletion. Defaults to one day. */
  retainPublishedMs?: number;
}

interface OutboxRow {
  id: number;
  subject: string;
  payload: unknown;
  committed_ms: number | string;
}

interface RoundResult {
  published: number;
  more: boolean;
  busy: boolean;
  error?: Error;
}

/** PGlite schemas with a relay round in progress in this process (the single-process stand-in for the lock). */
const localRounds = new WeakMap<Db, Set<string>>();

export class OutboxRelay {
  private readonly db: Db;
  private readonly schema: string;
  private readonly bus: Bus;
  private readonly logger: Logger;
  private readonly pollMs: number;
  private readonly batchSize: number;
  private readonly maxBackoffMs: number;
  private readonly retainPublishedMs: number;
  private readonly table: string;
  private running = false;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private kicked = false;
  private lastCleanup = 0;
  private publishedTotal = 0;
  private lagSeconds = 0;
  private lastLagCheck = 0;
  private unobserve: (() => void)[] = [];

  constructor(opts: OutboxRelayOptions) {
    assertSchemaName(opts.schema);
    this.db = opts.db;
    this.schema = opts.schema;
    this.bus = opts.bus;
    this.logger = opts.logger.child('outbox-relay', { schema: opts.schema });
    this.pollMs = opts.pollMs ?? 1000;
    this.batchSize = opts.batchSize ?? 256;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.retainPublishedMs = opts.retainPublishedMs ?? 24 * 3600_000;
    this.table = `${quoteIdent(opts.schema)}.outbox`;
  }

  /** Starts the relay loop (idempotent). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const m = processMetrics();
    const labels = { schema: this.schema };
    this.unobserve = [
      m.observeGauge(
        'switchboard_outbox_lag_seconds',
        'Age of the oldest outbox row not yet published to the event log (0 when none), by schema.',
        ['schema'],
        () => [{ labels, value: this.lagSeconds }],
      ),
      m.observeCounter(
        'switchboard_outbox_published_total',
        'Outbox rows published to the event log by this process, by schema.',
        ['schema'],
        () => [{ labels, value: this.publishedTotal }],
      ),
    ];
    this.loopDone = this.loop();
  }

  /** Wakes the relay now (call after committing a transaction that appended to the outbox). */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /** Stops the loop; resolves once the round in progress (if any) has finished. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loopDone;
    for (const f of this.unobserve) f();
    this.unobserve = [];
    this.loopDone = undefined;
  }

  /** Rows published by this relay since it was created. */
  get published(): number {
    return this.publishedTotal;
  }

  /** Number of rows not yet published. */
  async pending(): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${this.table} WHERE published_at IS NULL`,
    );
    return rows[0]?.n ?? 0;
  }

  /**
   * Resolves once every row is published (by this relay or another one), kicking the relay while
   * waiting. Rejects with a `timeout` SwitchboardError after `timeoutMs` (default 10 s).
   */
  async waitDrained(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      this.kick();
      const n = await this.pending();
      if (n === 0) return;
      if (Date.now() > end) {
        throw new SwitchboardError(
          'timeout',
          `outbox of schema ${this.schema} still has ${n} unpublished rows after ${timeoutMs} ms`,
          this.running ? 'is the bus reachable? see the relay errors in the log' : 'the relay is not started',
        );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Publishes one batch now (the loop calls this; tests may too). */
  async relayOnce(): Promise<{ published: number; more: boolean; busy: boolean }> {
    const r = this.db.kind === 'postgres' ? await this.lockedRound() : await this.localRound();
    this.publishedTotal += r.published;
    if (r.error !== undefined) throw r.error;
    return { published: r.published, more: r.more, busy: r.busy };
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      this.kicked = false;
      let more = false;
      await this.measureLag();
      try {
        const r = await this.relayOnce();
        more = r.more;
        if (failures > 0) this.logger.info('outbox relay recovered', { schema: this.schema, failures });
        failures = 0;
        await this.cleanup();
      } catch (err) {
        failures++;
        const cap = Math.min(this.maxBackoffMs, 100 * 2 ** Math.min(failures - 1, 20));
        const wait = Math.round(cap / 2 + (Math.random() * cap) / 2);
        this.logger.error('outbox relay cannot publish; retrying', {
          schema: this.schema,
          failures,
          retryInMs: wait,
          err,
        });
        await this.sleep(wait, false);
        continue;
      }
      if (more || this.kicked) continue;
      await this.sleep(this.pollMs, true);
    }
  }

  /** Refreshes the lag gauge, at most once a second; a failing database keeps the last value. */
  private async measureLag(): Promise<void> {
    const now = Date.now();
    if (now - this.lastLagCheck < 1000) return;
    this.lastLagCheck = now;
    try {
      const { rows } = await this.db.query<{ lag: number | string | null }>(
        `SELECT extract(epoch FROM now() - min(created_at))::float8 AS lag FROM ${this.table} WHERE published_at IS NULL`,
      );
      this.lagSeconds = Math.max(0, Number(rows[0]?.lag ?? 0));
    } catch {
      // the round that follows fails too and logs why
    }
  }

  /** Sleeps `ms`; stop() always interrupts it, kick() only when `kickable`. */
  private sleep(ms: number, kickable: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = () => {
        if (kickable || !this.running) done();
      };
      if (!this.running || (kickable && this.kicked)) done();
    });
  }

  private async lockedRound(): Promise<RoundResult> {
    return this.db.transaction(async (tx) => {
      const { rows: lock } = await tx.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_xact_lock($1::bigint) AS locked',
        [advisoryKey('outbox-relay', this.schema)],
      );
      if (lock[0]?.locked !== true) return { published: 0, more: false, busy: true };
      return this.publishBatch(tx, tx);
    });
  }

  private async localRound(): Promise<RoundResult> {
    let active = localRounds.get(this.db);
    if (!active) localRounds.set(this.db, (active = new Set()));
    if (active.has(this.schema)) return { published: 0, more: false, busy: true };
    active.add(this.schema);
    try {
      return await this.publishBatch(this.db, this.db);
    } finally {
      active.delete(this.schema);
    }
  }

  private origin: string | undefined;

  /** This outbox's origin id (created by the outbox DDL; created here if an older schema lacks it). */
  private async originId(q: Queryable): Promise<string> {
    if (this.origin) return this.origin;
    const t = qualified(this.schema, 'outbox_origin');
    let r = await q
      .query<{ id: string }>(`SELECT id FROM ${t} LIMIT 1`)
      .catch(() => ({ rows: [] as { id: string }[] }));
    if (!r.rows[0]) {
      await q.query(`CREATE TABLE IF NOT EXISTS ${t} (id text PRIMARY KEY)`);
      await q.query(
        `INSERT INTO ${t} (id) SELECT md5(random()::text || clock_timestamp()::text) WHERE NOT EXISTS (SELECT 1 FROM ${t})`,
      );
      r = await q.query<{ id: string }>(`SELECT id FROM ${t} LIMIT 1`);
    }
    this.origin = r.rows[0]!.id;
    return this.origin;
  }

  private async publishBatch(read: Queryable, mark: Queryable): Promise<RoundResult> {
    const origin = await this.originId(read);
    const { rows } = await read.query<OutboxRow>(
      `SELECT id, subject, payload, (extract(epoch FROM created_at) * 1000)::float8 AS committed_ms FROM ${this.table} WHERE published_at IS NULL ORDER BY id LIMIT $1`,
      [this.batchSize],
    );
    const done: number[] = [];
    let error: Error | undefined;
    for (const row of rows) {
      try {
        await this.bus.publishEvent(row.subject, row.payload, `${this.schema}:${origin}:${row.id}`, {
          committedAt: Number(row.committed_ms),
        });
        done.push(row.id);
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));
        break;
      }
    }
    if (done.length > 0) {
      await mark.query(`UPDATE ${this.table} SET published_at = now() WHERE id = ANY($1::bigint[])`, [done]);
    }
    return {
      published: done.length,
      more: error === undefined && rows.length === this.batchSize,
      busy: false,
      error,
    };
  }

  private async cleanup(): Promise<void> {
    const now = Date.now();
    if (now - this.lastCleanup < 60_000) return;
    this.lastCleanup = now;
    try {
      const r = await this.db.query(
        `DELETE FROM ${this.table} WHERE published_at IS NOT NULL AND published_at < now() - make_interval(secs => $1)`,
        [this.retainPublishedMs / 1000],
      );
      if (r.rowCount > 0)
        this.logger.debug('deleted old published outbox rows', { schema: this.schema, rows: r.rowCount });
    } catch (err) {
      this.logger.warn('could not delete old published outbox rows', { schema: this.schema, err });
    }
  }
}
