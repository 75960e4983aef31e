/**
 * The NATS bus: core NATS request/reply in queue groups and broadcast, JetStream for the durable
 * event log.
 * - Payloads are JSON; replies use the envelope in `envelope.ts` (shared with the in-process bus).
 *   No responders → RemoteError `unavailable`, no reply in time → RemoteError `timeout`, both naming
 *   the subject and what to check.
 * - `connectNatsBus` ensures the stream exists (subjects `events.>`, file storage, 2-minute
 *   duplicate window, 7-day max age, all configurable) and updates those limits if they changed.
 * - `publishEvent` sets the `Nats-Msg-Id` header: a duplicate within the window is not stored again
 *   and resolves to the original sequence.
 * - `consumeEvents` runs its own ordered, ephemeral pull consumer (ack none, memory storage): it checks
 *   the stream's first sequence before (re)creating the consumer and calls `onGap` when the wanted
 *   sequence is gone; it checks that delivery sequences are contiguous and, when one is missing or
 *   the connection came back, recreates the consumer from the last delivered sequence + 1. Handler
 *   errors are logged and the event is skipped: consumption goes on.
 */
import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  ErrorCode,
  Events,
  NatsError,
  StorageType,
  connect,
  headers,
  nanos,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type MsgHdrs,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
import { RemoteError, SwitchboardError, errorMessage, type Logger } from '@switchboard/common';
import type { Bus, ConsumeOptions, PublishEventOptions, RequestOptions, Subscription } from './bus.js';
import { InFlight, isInside, runAs } from './drain.js';
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
import { observeConnection, observeRequest } from './bus-metrics.js';
import { assertSubject } from './subject.js';

export const DEFAULT_STREAM = 'SWITCHBOARD_EVENTS';

export interface NatsBusOptions {
  /** Comma-separated server URLs, e.g. `nats://127.0.0.1:4222`. */
  servers: string;
  /** Connection name shown by the server (use the service name). */
  name: string;
  /** JetStream stream holding the event log. Defaults to `SWITCHBOARD_EVENTS`. */
  stream?: string;
  /** Subjects the stream stores. Defaults to `['events.>']`. */
  subjects?: string[];
  /** Duplicate (msgId) window. Defaults to 2 minutes. */
  duplicateWindowMs?: number;
  /** How long events are kept. Defaults to 7 days. */
  maxAgeMs?: number;
  /** At most this many events are kept (oldest dropped first). Defaults to unlimited. */
  maxMsgs?: number;
  /** Stream replicas (for a JetStream cluster). Defaults to 1. */
  replicas?: number;
  /** How long `publishEvent` waits for JetStream's acknowledgement. Defaults to 5000 ms. */
  publishTimeoutMs?: number;
  logger: Logger;
}

const DEFAULT_TIMEOUT_MS = 5000;
const FETCH_BATCH = 256;
const FETCH_EXPIRES_MS = 10_000;
const enc = new TextEncoder();
const dec = new TextDecoder();

function natsCode(err: unknown): string | undefined {
  return err instanceof NatsError ? err.code : undefined;
}

function sleep(ms: number, wake?: (cancel: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    wake?.(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Drains a core subscription, but never waits more than 2 s for the server (it may be unreachable). */
async function drainSubscription(sub: {
  isClosed(): boolean;
  drain(): Promise<void>;
  unsubscribe(): void;
}): Promise<void> {
  if (sub.isClosed()) return;
  await Promise.race([sub.drain().catch(() => undefined), sleep(2000)]);
  if (!sub.isClosed()) sub.unsubscribe();
}

function backoffMs(attempt: number): number {
  const base = Math.min(5000, 100 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

interface Internals {
  nc: NatsConnection;
  isConnected(): boolean;
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  logger: Logger;
}

/** One `consumeEvents` subscription: an ordered ephemeral consumer recreated on any doubt. */
class NatsEventConsumer {
  private active = true;
  private next: number;
  private consumerName: string | undefined;
  private serial = 0;
  private readonly prefix = `sb_${randomUUID().replaceAll('-', '')}`;
  private current: ConsumerMessages | undefined;
  private resetRequested = false;
  private cancelSleep: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(
    private readonly x: Internals,
    private readonly opts: ConsumeOptions,
  ) {
    this.next = Math.max(1, Math.floor(opts.fromSeq));
    this.done = runAs(this, () => this.loop());
  }

  /** Drops the current consumer and recreates it from the last delivered sequence + 1. */
  reset(): void {
    this.resetRequested = true;
    this.current?.stop();
  }

  async stop(): Promise<void> {
    this.active = false;
    this.current?.stop();
    this.cancelSleep?.();
    if (!isInside(this)) await this.done;
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (this.active) {
      try {
        await this.runConsumer();
        attempt = 0;
      } catch (err) {
        if (!this.active) break;
        const wait = backoffMs(attempt++);
        this.x.logger.warn('event consumer interrupted; it resumes from the next undelivered event', {
          stream: this.x.stream,
          filter: this.opts.filter,
          nextSeq: this.next,
          retryInMs: Math.round(wait),
          err,
        });
        await sleep(wait, (cancel) => (this.cancelSleep = cancel));
        this.cancelSleep = undefined;
      }
    }
    await this.deleteConsumer();
  }

  private async deleteConsumer(): Promise<void> {
    const name = this.consumerName;
    this.consumerName = undefined;
    // While disconnected, leave it: the server drops an inactive ephemeral consumer by itself.
    if (name === undefined || !this.x.isConnected()) return;
    try {
      await this.x.jsm.consumers.delete(this.x.stream, name);
    } catch {
      // best effort: the server drops an inactive ephemeral consumer by itself
    }
  }

  private async runConsumer(): Promise<void> {
    this.resetRequested = false;
    const firstAvailable = await this.firstAvailableSeq();
    if (this.next < firstAvailable) {
      await this.gap(this.next, firstAvailable);
      this.next = firstAvailable;
    }
    if (!this.active) return;
    await this.deleteConsumer();
    const name = `${this.prefix}_${++this.serial}`;
    await this.x.jsm.consumers.add(this.x.stream, {
      name,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.next,
      ack_policy: AckPolicy.None,
      max_deliver: 1,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(5 * 60_000),
      filter_subject: this.opts.filter,
    });
    this.consumerName = name;
    const consumer = await this.x.js.consumers.get(this.x.stream, name);
    let deliverySeq = 0;
    while (this.active && !this.resetRequested) {
      const iter = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
      this.current = iter;
      if (!this.active || this.resetRequested) iter.stop();
      try {
        for await (const m of iter) {
          if (!this.active || this.resetRequested) break;
          if (m.info.deliverySequence !== deliverySeq + 1) {
            this.x.logger.debug('event consumer saw a delivery gap; recreating it', {
              filter: this.opts.filter,
              nextSeq: this.next,
            });
            this.resetRequested = true;
            break;
          }
          deliverySeq = m.info.deliverySequence;
          if (m.seq > this.next) {
            // Sequences skipped: filtered out, or dropped by retention before the server delivered
            // them (which delivery sequences do not reveal). Ask the stream which.
            const first = await this.firstAvailableSeq();
            if (first > this.next) await this.gap(this.next, first);
          }
          await this.deliver(m.seq, m.subject, m.data, committedAtOf(m.headers));
          this.next = m.seq + 1;
        }
      } finally {
        this.current = undefined;
        iter.stop();
      }
    }
  }

  /** The oldest sequence the stream still holds, or the next one it will assign when it holds none. */
  private async firstAvailableSeq(): Promise<number> {
    const { state } = await this.x.jsm.streams.info(this.x.stream);
    return state.messages > 0 ? state.first_seq : state.last_seq + 1;
  }

  private async deliver(
    seq: number,
    subject: string,
    data: Uint8Array,
    committedAt: number | undefined,
  ): Promise<void> {
    let payload: unknown;
    try {
      payload = decodePayload(subject, dec.decode(data), Number.MAX_SAFE_INTEGER);
    } catch (err) {
      this.x.logger.error('malformed event skipped; consumption goes on', {
        stream: this.x.stream,
        subject,
        seq,
        filter: this.opts.filter,
        err,
      });
      return;
    }
    try {
      await this.opts.handler({
        seq,
        subject,
        payload,
        ...(committedAt !== undefined ? { committedAt } : {}),
      });
    } catch (err) {
      this.x.logger.error('event handler failed; the event is skipped and consumption goes on', {
        stream: this.x.stream,
        subject,
        seq,
        filter: this.opts.filter,
        err,
      });
    }
  }

  private async gap(expectedSeq: number, firstAvailableSeq: number): Promise<void> {
    this.x.logger.warn('events were dropped by retention before this consumer read them', {
      stream: this.x.stream,
      filter: this.opts.filter,
      expectedSeq,
      firstAvailableSeq,
    });
    try {
      await this.opts.onGap?.({ expectedSeq, firstAvailableSeq });
    } catch (err) {
      this.x.logger.error('onGap handler failed; consumption goes on from the first available event', {
        filter: this.opts.filter,
        err,
      });
    }
  }
}

export class NatsBus implements Bus {
  private readonly logger: Logger;
  private readonly maxPayloadBytes: number;
  private readonly publishTimeoutMs: number;
  private readonly subs = new Set<{ drain(): Promise<void> }>();
  private readonly consumers = new Set<NatsEventConsumer>();
  private closed = false;
  private connected = true;
  private closing: Promise<void> | undefined;
  private readonly internals: Internals;
  private readonly unobserve: () => void;

  /** Use `connectNatsBus`. */
  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    jsm: JetStreamManager,
    readonly stream: string,
    opts: NatsBusOptions,
  ) {
    this.logger = opts.logger;
    this.publishTimeoutMs = opts.publishTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxPayloadBytes = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.internals = {
      nc,
      js,
      jsm,
      stream,
      logger: opts.logger,
      isConnected: () => this.connected && !nc.isClosed(),
    };
    this.unobserve = observeConnection(opts.name ?? 'switchboard', () => this.isConnected());
    void this.watchStatus();
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === Events.Disconnect) {
        this.connected = false;
        this.logger.warn('disconnected from NATS; reconnecting', { server: s.data });
      } else if (s.type === Events.Reconnect) {
        this.connected = true;
        this.logger.info('reconnected to NATS', { server: s.data });
        for (const c of this.consumers) c.reset();
      } else if (s.type === Events.Error) {
        this.logger.error('NATS connection error', { err: s.data });
      }
    }
  }

  /** Whether the connection to NATS is currently up (it reconnects by itself when it is not). */
  isConnected(): boolean {
    return this.connected && !this.closed && !this.nc.isClosed();
  }

  private assertOpen(what: string): void {
    if (this.closed || this.nc.isClosed()) throw new BusClosedError(what);
  }

  request(subject: string, payload: unknown, opts?: RequestOptions): Promise<unknown> {
    return observeRequest(subject, () => this.send(subject, payload, opts));
  }

  private async send(subject: string, payload: unknown, opts?: RequestOptions): Promise<unknown> {
    this.assertOpen(`send a request on "${subject}"`);
    assertSubject(subject, false);
    const text = encodePayload(subject, payload, this.maxPayloadBytes);
    const timeoutMs = opts?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let reply: string;
    try {
      const msg = await this.nc.request(subject, enc.encode(text), { timeout: timeoutMs });
      reply = dec.decode(msg.data);
    } catch (err) {
      const code = natsCode(err);
      if (code === ErrorCode.NoResponders) throw noRespondersError(subject);
      if (code === ErrorCode.Timeout) throw timeoutError(subject, timeoutMs);
      if (code === ErrorCode.ConnectionClosed || code === ErrorCode.ConnectionDraining) {
        throw new BusClosedError(`send a request on "${subject}"`);
      }
      throw new RemoteError(
        'unavailable',
        `request on "${subject}" failed: ${errorMessage(err)}`,
        'is NATS reachable?',
      );
    }
    return decodeReply(subject, reply, this.maxPayloadBytes);
  }

  serve(subject: string, queue: string, handler: (payload: unknown) => Promise<unknown>): Subscription {
    this.assertOpen(`serve "${subject}"`);
    assertSubject(subject, true);
    const work = new InFlight();
    const sub = this.nc.subscribe(subject, {
      queue,
      callback: (err, msg) => {
        if (err) {
          this.logger.error('subscription error', { subject, queue, err });
          return;
        }
        void work.run(async () => {
          const reply = await handleRequest(
            msg.subject,
            dec.decode(msg.data),
            handler,
            this.logger,
            this.maxPayloadBytes,
          );
          if (!msg.reply) return;
          try {
            msg.respond(enc.encode(reply));
          } catch (e) {
            this.logger.warn('could not send a reply', { subject: msg.subject, err: e });
          }
        });
      },
    });
    return this.track(async () => {
      await drainSubscription(sub);
      await work.drain();
    });
  }

  publish(subject: string, payload: unknown): void {
    this.assertOpen(`publish on "${subject}"`);
    assertSubject(subject, false);
    const text = encodePayload(subject, payload, this.maxPayloadBytes);
    this.nc.publish(subject, enc.encode(text));
  }

  subscribe(subject: string, handler: (payload: unknown, subject: string) => void): Subscription {
    this.assertOpen(`subscribe to "${subject}"`);
    assertSubject(subject, true);
    const work = new InFlight();
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.logger.error('subscription error', { subject, err });
          return;
        }
        void work.run(async () => {
          let payload: unknown;
          try {
            payload = decodePayload(msg.subject, dec.decode(msg.data), this.maxPayloadBytes);
          } catch (e) {
            this.logger.error('malformed broadcast message dropped', { subject: msg.subject, err: e });
            return;
          }
          try {
            const r: unknown = handler(payload, msg.subject);
            if (r instanceof Promise) await r;
          } catch (e) {
            this.logger.error('subscriber failed on a broadcast message', { subject: msg.subject, err: e });
          }
        });
      },
    });
    return this.track(async () => {
      await drainSubscription(sub);
      await work.drain();
    });
  }

  private track(drain: () => Promise<void>): Subscription {
    let once: Promise<void> | undefined;
    const entry = {
      drain: () => {
        once ??= drain();
        return once;
      },
    };
    this.subs.add(entry);
    return {
      unsubscribe: async () => {
        this.subs.delete(entry);
        await entry.drain();
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
    const text = encodePayload(subject, payload, this.maxPayloadBytes);
    let hdrs: MsgHdrs | undefined;
    if (opts?.committedAt !== undefined) {
      hdrs = headers();
      hdrs.set(COMMITTED_AT_HEADER, String(Math.round(opts.committedAt)));
    }
    try {
      const ack = await this.js.publish(subject, enc.encode(text), {
        msgID: msgId,
        timeout: this.publishTimeoutMs,
        ...(hdrs ? { headers: hdrs } : {}),
      });
      return ack.seq;
    } catch (err) {
      const code = natsCode(err);
      if (code === ErrorCode.NoResponders) {
        throw new RemoteError(
          'unavailable',
          `no JetStream stream stores "${subject}"`,
          `is JetStream enabled and does stream ${this.stream} cover the subject?`,
        );
      }
      if (code === ErrorCode.Timeout) {
        throw new RemoteError(
          'timeout',
          `JetStream did not acknowledge event "${subject}" within ${this.publishTimeoutMs} ms`,
          `is NATS up and is stream ${this.stream} healthy?`,
        );
      }
      if (code === ErrorCode.ConnectionClosed || code === ErrorCode.ConnectionDraining) {
        throw new BusClosedError(`publish event "${subject}"`);
      }
      throw new RemoteError('unavailable', `publishing event "${subject}" failed: ${errorMessage(err)}`);
    }
  }

  consumeEvents(opts: ConsumeOptions): Subscription {
    this.assertOpen(`consume "${opts.filter}"`);
    assertSubject(opts.filter, true);
    const consumer = new NatsEventConsumer(this.internals, opts);
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
    const info = await this.internals.jsm.streams.info(this.stream);
    return info.state.last_seq;
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    this.unobserve();
    const consumers = [...this.consumers];
    this.consumers.clear();
    const subs = [...this.subs];
    this.subs.clear();
    await Promise.all([...consumers.map((c) => c.stop()), ...subs.map((s) => s.drain())]);
    if (!this.nc.isClosed()) {
      await Promise.race([this.nc.flush().catch(() => undefined), sleep(1000)]);
      await this.nc.close();
    }
  }
}

function streamConfig(name: string, opts: NatsBusOptions): Partial<StreamConfig> {
  return {
    name,
    subjects: opts.subjects ?? ['events.>'],
    storage: StorageType.File,
    duplicate_window: nanos(opts.duplicateWindowMs ?? 120_000),
    max_age: nanos(opts.maxAgeMs ?? 7 * 24 * 3600_000),
    max_msgs: opts.maxMsgs ?? -1,
    num_replicas: opts.replicas ?? 1,
  };
}

async function ensureStream(jsm: JetStreamManager, name: string, opts: NatsBusOptions): Promise<void> {
  const want = streamConfig(name, opts);
  let existing;
  try {
    existing = (await jsm.streams.info(name)).config;
  } catch (err) {
    if (!(err instanceof NatsError) || err.api_error?.err_code !== 10059) throw err;
  }
  if (existing === undefined) {
    await jsm.streams.add(want);
    opts.logger.info('created JetStream stream', { stream: name, subjects: want.subjects });
    return;
  }
  const same =
    JSON.stringify([...existing.subjects].sort()) === JSON.stringify([...(want.subjects ?? [])].sort()) &&
    existing.duplicate_window === want.duplicate_window &&
    existing.max_age === want.max_age &&
    existing.max_msgs === want.max_msgs &&
    existing.num_replicas === want.num_replicas;
  if (!same) {
    const { storage: _storage, ...update } = { ...existing, ...want };
    await jsm.streams.update(name, update);
    opts.logger.info('updated JetStream stream limits', { stream: name });
  }
  if (existing.storage !== StorageType.File) {
    opts.logger.warn('JetStream stream does not use file storage; events do not survive a NATS restart', {
      stream: name,
    });
  }
}

/** Connects to NATS, checks JetStream and ensures the event stream. Fails with a message saying what to check. */
export async function connectNatsBus(opts: NatsBusOptions): Promise<NatsBus> {
  const stream = opts.stream ?? DEFAULT_STREAM;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.servers.split(',').map((s) => s.trim()),
      name: opts.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
  } catch (err) {
    throw new SwitchboardError(
      'unavailable',
      `cannot connect to NATS at ${opts.servers}: ${errorMessage(err)}`,
      'is NATS running and reachable at that address? check NATS_URL',
    );
  }
  try {
    const jsm = await nc.jetstreamManager();
    await ensureStream(jsm, stream, opts);
    return new NatsBus(nc, nc.jetstream(), jsm, stream, opts);
  } catch (err) {
    await nc.close();
    throw new SwitchboardError(
      'unavailable',
      `cannot set up JetStream stream ${stream} on ${opts.servers}: ${errorMessage(err)}`,
      'is JetStream enabled (nats-server -js) and do the stream subjects not overlap another stream?',
    );
  }
}

/** Header carrying an event's commit time (ms since the epoch) from the outbox relay to consumers. */
const COMMITTED_AT_HEADER = 'Sb-Committed-At';

function committedAtOf(h: MsgHdrs | undefined): number | undefined {
  const v = h?.get(COMMITTED_AT_HEADER);
  const n = v ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}
