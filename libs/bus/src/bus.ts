/**
 * The bus contract every service talks through. Two implementations carry the same contract:
 * NATS (core request/reply in queue groups + JetStream for the durable event log) and an in-process
 * bus for the one-process mode. Subject strings are never written outside libs/contracts.
 */

/** One durable event as a consumer sees it: `seq` is the event log's gap-free sequence number. */
export interface BusEvent {
  seq: number;
  subject: string;
  payload: unknown;
  /** When the change was committed at its source (ms since the epoch), if the publisher said (metrics). */
  committedAt?: number;
}

export interface PublishEventOptions {
  /** When the change was committed (ms since the epoch); travels with the event for latency metrics. */
  committedAt?: number;
}

export interface Subscription {
  /** Stops delivery; resolves once the subscription is drained. */
  unsubscribe(): Promise<void>;
}

export interface RequestOptions {
  /** Defaults to 5000 ms. */
  timeoutMs?: number;
}

export interface ConsumeOptions {
  /** Subject filter; `events.>` style wildcards are allowed. */
  filter: string;
  /**
   * First sequence to deliver (inclusive). If it is older than the oldest event the log still holds,
   * `onGap` is called with the first available sequence and delivery starts there.
   */
  fromSeq: number;
  handler: (event: BusEvent) => Promise<void>;
  /** Called when events were lost to retention (or a reconnect could not resume); the consumer must resync. */
  onGap?: (info: { expectedSeq: number; firstAvailableSeq: number }) => Promise<void>;
}

export interface Bus {
  /** Sends a request to one member of the queue group serving `subject`; rejects with RemoteError on an error reply. */
  request(subject: string, payload: unknown, opts?: RequestOptions): Promise<unknown>;
  /** Serves requests on `subject` as a member of `queue`. A thrown SwitchboardError is sent back with its code. */
  serve(subject: string, queue: string, handler: (payload: unknown) => Promise<unknown>): Subscription;
  /** Best-effort broadcast (core NATS): every subscriber receives it, nothing is stored. */
  publish(subject: string, payload: unknown): void;
  subscribe(subject: string, handler: (payload: unknown, subject: string) => void): Subscription;
  /**
   * Appends to the durable event log. `msgId` deduplicates: publishing the same id twice within the
   * duplicate window stores it once and returns the first sequence. Resolves once the event is stored.
   */
  publishEvent(subject: string, payload: unknown, msgId: string, opts?: PublishEventOptions): Promise<number>;
  /** Delivers events in sequence order, one at a time (the handler's promise is awaited). */
  consumeEvents(opts: ConsumeOptions): Subscription;
  /** Sequence of the newest stored event (0 when empty). */
  lastEventSeq(): Promise<number>;
  close(): Promise<void>;
}
