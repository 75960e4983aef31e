/**
 * The in-process bus for the one-process mode: the same contract and the same observable
 * behaviour as the NATS bus, in memory.
 * - Every payload round-trips through JSON (so what would fail over NATS fails here too, with the
 *   same `invalid_input` error) and is limited to 1 MiB like NATS' default `max_payload`.
 * - Queue groups: each group serving a subject gets one copy of a request, handed to its members
 *   round-robin; the first reply wins. Error envelopes are built by the same code as over NATS.
 * - The event log has gap-free sequences from 1, deduplicates on msgId within a window (2 minutes),
 *   keeps at most `maxEvents` events (older ones are dropped: a consumer asking for them gets
 *   `onGap`), and accepts only subjects matching `eventSubjects` (`events.>`), like the JetStream stream.
 * - Delivery is always asynchronous: nothing runs inside `publish`/`publishEvent`/`request` calls.
 * The log lives only as long as the process, which is the lifetime of every consumer in this mode.
 */
import { RemoteError, type Logger } from '@switchboard/common';
import type { Bus, ConsumeOptions, PublishEventOptions, RequestOptions, Subscription } from './bus.js';
import { InFlight, runAs, isInside } from './drain.js';
import {
  BusClosedError,
  DEFAULT_MAX_PAYLOAD_BYTES,
  decodePayload,
  decodeReply,
  encodePayload,
  handleRequest,
  noRespondersError,
  timeoutError,
} from './envelope.js';
import { observeRequest } from './bus-metrics.js';
import { assertSubject, subjectMatches } from './subject.js';

export interface InProcessBusOptions {
  logger: Logger;
  /** How many events the log keeps; older ones are dropped. Defaults to 100 000. */
  maxEvents?: number;
  /** msgId deduplication window. Defaults to 2 minutes (the JetStream stream's default here). */
  duplicateWindowMs?: number;
  /** Subjects the event log stores, like the stream's subjects. Defaults to `['events.>']`. */
  eventSubjects?: string[];
  /** Largest payload accepted. Defaults to 1 MiB (NATS' default). */
  maxPayloadBytes?: number;
}

interface Server {
  pattern: string;
  queue: string;
  handler: (payload: unknown) => Promise<unknown>;
  active: boolean;
  work: InFlight;
}

interface Subscriber {
  pattern: string;
  handler: (payload: unknown, subject: string) => void;
  active: boolean;
  work: InFlight;
}

interface StoredEvent {
  seq: number;
  subject: string;
  text: string;
  committedAt?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** Consumers yield to the event loop after this many events so a long backlog cannot starve I/O. */
const YIELD_EVERY = 64;

class EventConsumer {
  active = true;
  private wakeUp: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(
    private readonly bus: InProcessBus,
    private readonly opts: ConsumeOptions,
    private readonly logger: Logger,
  ) {
    this.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      runAs(this, () => this.loop()),
    );
  }

  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  private async loop(): Promise<void> {
    let next = Math.max(1, Math.floor(this.opts.fromSeq));
    let sinceYield = 0;
    while (this.active) {
      const first = this.bus.firstSeq();
      if (next < first) {
        await this.gap(next, first);
        next = first;
        continue;
      }
      const ev = this.bus.eventAt(next);
      if (ev === undefined) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
          if (!this.active || this.bus.eventAt(next) !== undefined || next < this.bus.firstSeq()) this.wake();
        });
        continue;
      }
      next = ev.seq + 1;
      if (!subjectMatches(this.opts.filter, ev.subject)) continue;
      if (++sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        await new Promise((resolve) => setImmediate(resolve));
        if (!this.active) break;
      }
      let payload: unknown;
      try {
        payload = decodePayload(ev.subject, ev.text, Number.MAX_SAFE_INTEGER);
      } catch (err) {
        this.logger.error('malformed event skipped; consumption goes on', {
          subject: ev.subject,
          seq: ev.seq,
          filter: this.opts.filter,
          err,
        });
        continue;
      }
      try {
        await this.opts.handler({
          seq: ev.seq,
          subject: ev.subject,
          payload,
          ...(ev.committedAt !== undefined ? { committedAt: ev.committedAt } : {}),
        });
      } catch (err) {
        this.logger.error('event handler failed; the event is skipped and consumption goes on', {
          subject: ev.subject,
          seq: ev.seq,
          filter: this.opts.filter,
          err,
        });
      }
    }
  }

  private async gap(expectedSeq: number, firstAvailableSeq: number): Promise<void> {
    this.logger.warn('events were dropped by retention before this consumer read them', {
      filter: this.opts.filter,
      expectedSeq,
      firstAvailableSeq,
    });
    try {
      await this.opts.onGap?.({ expectedSeq, firstAvailableSeq });
    } catch (err) {
      this.logger.error('onGap handler failed; consumption goes on from the first available event', {
        filter: this.opts.filter,
        err,
      });
    }
  }

  async stop(): Promise<void> {
    this.active = false;
    this.wake();
    if (!isInside(this)) await this.done;
  }
}

export class InProcessBus implements Bus {
  private readonly logger: Logger;
  private readonly maxEvents: number;
  private readonly duplicateWindowMs: number;
  private readonly eventSubjects: string[];
  private readonly maxPayloadBytes: number;
  private servers: Server[] = [];
  private subscribers: Subscriber[] = [];
  private readonly consumers = new Set<EventConsumer>();
  private readonly roundRobin = new Map<string, number>();
  private readonly events: StoredEvent[] = [];
  /** Index in `events` of the oldest kept event (the array is compacted now and then). */
  private head = 0;
  private lastSeq = 0;
  private readonly msgIds = new Map<string, { seq: number; at: number }>();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(opts: InProcessBusOptions) {
    this.logger = opts.logger;
    this.maxEvents = Math.max(1, opts.maxEvents ?? 100_000);
    this.duplicateWindowMs = opts.duplicateWindowMs ?? 120_000;
    this.eventSubjects = opts.eventSubjects ?? ['events.>'];
    for (const s of this.eventSubjects) assertSubject(s, true);
    this.maxPayloadBytes = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new BusClosedError(what);
  }

  request(subject: string, payload: unknown, opts?: RequestOptions): Promise<unknown> {
    return observeRequest(subject, () => this.send(subject, payload, opts));
  }

  private async send(subject: string, payload: unknown, opts?: RequestOptions): Promise<unknown> {
    this.assertOpen(`send a request on "${subject}"`);
    assertSubject(subject, false);
    const text = encodePayload(subject, payload, this.maxPayloadBytes);
    const timeoutMs = opts?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const groups = new Map<string, Server[]>();
    for (const s of this.servers) {
      if (!s.active || !subjectMatches(s.pattern, subject)) continue;
      const key = `${s.pattern}\u0000${s.queue}`;
      const members = groups.get(key);
      if (members) members.push(s);
      else groups.set(key, [s]);
    }
    if (groups.size === 0) throw noRespondersError(subject);
    const picked: Server[] = [];
    for (const [key, members] of groups) {
      const n = this.roundRobin.get(key) ?? 0;
      this.roundRobin.set(key, n + 1);
      picked.push(members[n % members.length]!);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timeoutError(subject, timeoutMs)), timeoutMs);
    });
    const replies = picked.map((server) =>
      server.work.run(async () => {
        await new Promise((resolve) => setImmediate(resolve));
        return handleRequest(subject, text, server.handler, this.logger, this.maxPayloadBytes);
      }),
    );
    try {
      const reply = await Promise.race([...replies, timeout]);
      return decodeReply(subject, reply, this.maxPayloadBytes);
    } finally {
      clearTimeout(timer);
    }
  }

  serve(subject: string, queue: string, handler: (payload: unknown) => Promise<unknown>): Subscription {
    this.assertOpen(`serve "${subject}"`);
    assertSubject(subject, true);
    const server: Server = { pattern: subject, queue, handler, active: true, work: new InFlight() };
    this.servers.push(server);
    return {
      unsubscribe: async () => {
        server.active = false;
        this.servers = this.servers.filter((s) => s !== server);
        await server.work.drain();
      },
    };
  }

  publish(subject: string, payload: unknown): void {
    this.assertOpen(`publish on "${subject}"`);
    assertSubject(subject, false);
    const text = encodePayload(subject, payload, this.maxPayloadBytes);
    for (const sub of this.subscribers) {
      if (!subjectMatches(sub.pattern, subject)) continue;
      void sub.work.run(async () => {
        await new Promise((resolve) => setImmediate(resolve));
        if (!sub.active) return;
        let payload: unknown;
        try {
          payload = decodePayload(subject, text, Number.MAX_SAFE_INTEGER);
        } catch (err) {
          this.logger.error('malformed broadcast message dropped', { subject, err });
          return;
        }
        try {
          const r: unknown = sub.handler(payload, subject);
          if (r instanceof Promise) await r;
        } catch (err) {
          this.logger.error('subscriber failed on a broadcast message', { subject, err });
        }
      });
    }
  }

  subscribe(subject: string, handler: (payload: unknown, subject: string) => void): Subscription {
    this.assertOpen(`subscribe to "${subject}"`);
    assertSubject(subject, true);
    const sub: Subscriber = { pattern: subject, handler, active: true, work: new InFlight() };
    this.subscribers.push(sub);
    return {
      unsubscribe: async () => {
        sub.active = false;
        this.subscribers = this.subscribers.filter((s) => s !== sub);
        await sub.work.drain();
      },
    };
  }

  async publishEvent(
    subject: string,
    payload: unknown,
    msgId: string,
    opts?: PublishEventOptions,
  ): Promise<number> {
    this.assertOpen(`publish event "${subject}"`);
    assertSubject(subject, false);
    if (!this.eventSubjects.some((p) => subjectMatches(p, subject))) {
      throw new RemoteError(
        'unavailable',
        `no event stream stores "${subject}"`,
        `event subjects must match one of ${this.eventSubjects.join(', ')}`,
      );
    }
    const text = encodePayload(subject, payload, this.maxPayloadBytes);
    const now = Date.now();
    for (const [id, entry] of this.msgIds) {
      if (now - entry.at < this.duplicateWindowMs) break;
      this.msgIds.delete(id);
    }
    const dup = this.msgIds.get(msgId);
    if (dup !== undefined) return dup.seq;
    const seq = ++this.lastSeq;
    this.events.push({
      seq,
      subject,
      text,
      ...(opts?.committedAt !== undefined ? { committedAt: opts.committedAt } : {}),
    });
    this.msgIds.set(msgId, { seq, at: now });
    this.trim();
    for (const c of this.consumers) c.wake();
    return seq;
  }

  private trim(): void {
    const kept = this.events.length - this.head;
    if (kept > this.maxEvents) this.head += kept - this.maxEvents;
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Sequence of the oldest stored event, or the next sequence when the log holds none. */
  firstSeq(): number {
    return this.events[this.head]?.seq ?? this.lastSeq + 1;
  }

  eventAt(seq: number): StoredEvent | undefined {
    const first = this.events[this.head];
    if (first === undefined) return undefined;
    return this.events[this.head + (seq - first.seq)];
  }

  consumeEvents(opts: ConsumeOptions): Subscription {
    this.assertOpen(`consume "${opts.filter}"`);
    assertSubject(opts.filter, true);
    const consumer = new EventConsumer(this, opts, this.logger);
    this.consumers.add(consumer);
    return {
      unsubscribe: async () => {
        this.consumers.delete(consumer);
        await consumer.stop();
      },
    };
  }

  async lastEventSeq(): Promise<number> {
    this.assertOpen('read the last event sequence');
    return this.lastSeq;
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    const consumers = [...this.consumers];
    this.consumers.clear();
    const servers = this.servers;
    const subscribers = this.subscribers;
    this.servers = [];
    this.subscribers = [];
    for (const s of servers) s.active = false;
    for (const s of subscribers) s.active = false;
    await Promise.all([
      ...consumers.map((c) => c.stop()),
      ...servers.map((s) => s.work.drain()),
      ...subscribers.map((s) => s.work.drain()),
    ]);
  }
}

export function createInProcessBus(opts: InProcessBusOptions): InProcessBus {
  return new InProcessBus(opts);
}
