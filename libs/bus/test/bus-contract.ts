/**
 * The bus contract suite: the same tests run against the NATS bus and the in-process bus, so the
 * one-process mode behaves like the distributed one. Each implementation supplies a harness.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RemoteError, SwitchboardError, ValidationError } from '@switchboard/common';
import { BUS_MAX_JSON_DEPTH, type Bus, type BusEvent } from '../src/index.js';

export interface BusHarness {
  /** Subject prefix unique to this run; event subjects are `${prefix}events.…`. */
  prefix: string;
  /** A bus connected to the same server / log as the others from this harness. */
  newBus(): Promise<Bus>;
  /** Closes every bus and removes what the run created (streams). */
  teardown(): Promise<void>;
}

export type HarnessFactory = (opts: { maxEvents?: number }) => Promise<BusHarness>;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until it holds or `timeoutMs` passes. */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function rejectsWithCode(
  p: Promise<unknown>,
  code: string,
  cls: abstract new (...a: never[]) => Error,
) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.equal((err as SwitchboardError).code, code);
    return true;
  });
}

/** What the contract's groups share: the harness and bus the suite's `before` sets up, and unique subjects. */
class ContractContext {
  h!: BusHarness;
  bus!: Bus;
  n = 0;
  constructor(readonly factory: HarnessFactory) {}
  /** A request/broadcast subject no other test uses. */
  subj = (s: string): string => `${this.h.prefix}${s}.${++this.n}`;
  /** An event subject (inside the stream's subjects). */
  evSubj = (s: string): string => `${this.h.prefix}events.${s}`;
}

export function runBusContract(name: string, factory: HarnessFactory): void {
  void describe(`Bus contract: ${name}`, () => {
    const c = new ContractContext(factory);
    before(async () => {
      c.h = await factory({});
      c.bus = await c.h.newBus();
    });
    after(async () => {
      await c.h.teardown();
    });
    requestReplyContract(c);
    routingContract(c);
    eventLogContract(c);
    lifecycleContract(c);
  });
}

/** JSON payloads, error envelopes, and what the sender refuses. */
function requestReplyContract(c: ContractContext): void {
  void describe('request/reply: payloads and errors', () => {
    void it('request/reply round-trips JSON payloads', async () => {
      const s = c.subj('echo');
      const sub = c.bus.serve(s, 'q', async (p) => ({ got: p, at: new Date(0) }));
      const r = await c.bus.request(s, { a: 1, nested: [true, null, 'x'], u: undefined });
      assert.deepEqual(r, { got: { a: 1, nested: [true, null, 'x'] }, at: '1970-01-01T00:00:00.000Z' });
      assert.equal(await c.bus.request(s, undefined).then((x) => (x as { got: unknown }).got), null);
      await sub.unsubscribe();
    });

    void it('a handler returning undefined replies with undefined', async () => {
      const s = c.subj('void');
      const sub = c.bus.serve(s, 'q', async () => undefined);
      assert.equal(await c.bus.request(s, {}), undefined);
      await sub.unsubscribe();
    });

    void it('error envelopes carry SwitchboardError code, message, hint and details', async () => {
      const s = c.subj('err');
      const sub = c.bus.serve(s, 'q', async (p) => {
        const kind = (p as { kind: string }).kind;
        if (kind === 'domain')
          throw new SwitchboardError('not_found', 'node 7 not found', 'list nodes', { id: 7 });
        if (kind === 'validation') throw new ValidationError('bad key');
        if (kind === 'bigint') return { n: 1n };
        throw new Error('secret internals');
      });
      await assert.rejects(c.bus.request(s, { kind: 'domain' }), (err: unknown) => {
        assert.ok(err instanceof RemoteError);
        assert.equal(err.code, 'not_found');
        assert.equal(err.message, 'node 7 not found');
        assert.equal(err.hint, 'list nodes');
        assert.deepEqual(err.details, { id: 7 });
        return true;
      });
      await rejectsWithCode(c.bus.request(s, { kind: 'validation' }), 'invalid_input', RemoteError);
      await assert.rejects(c.bus.request(s, { kind: 'plain' }), (err: unknown) => {
        assert.ok(err instanceof RemoteError);
        assert.equal(err.code, 'internal');
        assert.match(err.message, new RegExp(s.replaceAll('.', '\\.')));
        assert.doesNotMatch(err.message, /secret/);
        return true;
      });
      await rejectsWithCode(c.bus.request(s, { kind: 'bigint' }), 'internal', RemoteError);
      await sub.unsubscribe();
    });

    void it('refuses payloads JSON cannot carry, at the sender', async () => {
      const s = c.subj('bad');
      const sub = c.bus.serve(s, 'q', async () => 1);
      await rejectsWithCode(c.bus.request(s, { n: 1n }), 'invalid_input', ValidationError);
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await rejectsWithCode(
        c.bus.publishEvent(c.evSubj('bad'), cyclic, 'x'),
        'invalid_input',
        ValidationError,
      );
      assert.throws(() => c.bus.publish(s, () => 1), ValidationError);
      await rejectsWithCode(c.bus.request(s, 'x'.repeat(2 * 1024 * 1024)), 'invalid_input', ValidationError);
      await sub.unsubscribe();
    });

    void it('refuses payloads nested deeper than receivers accept, at the sender; a too-deep reply is internal', async () => {
      const nest = (depth: number): unknown => {
        let v: unknown = 1;
        for (let i = 0; i < depth; i++) v = [v];
        return v;
      };
      const s = c.subj('deep');
      let calls = 0;
      const sub = c.bus.serve(s, 'q', async (p) => {
        calls++;
        return (p as { depth?: number }).depth ? nest((p as { depth: number }).depth) : 'ok';
      });
      const tooDeep = { x: nest(BUS_MAX_JSON_DEPTH) };
      const isDepthError = (err: unknown) =>
        err instanceof ValidationError &&
        err.code === 'invalid_input' &&
        err.message ===
          `payload for "${s}" is nested deeper than ${BUS_MAX_JSON_DEPTH} levels, which receivers refuse`;
      await assert.rejects(c.bus.request(s, tooDeep), isDepthError);
      assert.throws(() => c.bus.publish(s, tooDeep), isDepthError);
      await assert.rejects(
        c.bus.publishEvent(c.evSubj('deep'), tooDeep, 'deep-x'),
        (err: unknown) => err instanceof ValidationError && /nested deeper than/.test(err.message),
      );
      assert.equal(calls, 0);
      assert.deepEqual(
        await c.bus.request(s, { x: nest(BUS_MAX_JSON_DEPTH - 1) }),
        'ok',
        'just under the limit goes through',
      );
      await assert.rejects(c.bus.request(s, { depth: BUS_MAX_JSON_DEPTH + 10 }), (err: unknown) => {
        assert.ok(err instanceof RemoteError, String(err));
        assert.equal(err.code, 'internal');
        assert.match(err.message, /the reply cannot be sent \(payload for .* is nested deeper than/);
        return true;
      });
      assert.equal(await c.bus.request(s, {}), 'ok', 'the server keeps serving');
      await sub.unsubscribe();
    });
  });
}

/** Who gets a request or a broadcast, and what happens when nobody does. */
function routingContract(c: ContractContext): void {
  void describe('routing: responders, queue groups, broadcast', () => {
    void it('no responders → unavailable naming the subject; no reply in time → timeout', async () => {
      const s = c.subj('nobody');
      await assert.rejects(c.bus.request(s, {}), (err: unknown) => {
        assert.ok(err instanceof RemoteError);
        assert.equal(err.code, 'unavailable');
        assert.ok(err.message.includes(s));
        assert.match(err.hint ?? '', /running/);
        return true;
      });
      const slow = c.subj('slow');
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const sub = c.bus.serve(slow, 'q', async () => gate);
      await assert.rejects(c.bus.request(slow, {}, { timeoutMs: 100 }), (err: unknown) => {
        assert.ok(err instanceof RemoteError);
        assert.equal(err.code, 'timeout');
        assert.ok(err.message.includes(slow));
        return true;
      });
      release();
      await sub.unsubscribe();
    });

    void it('a queue group hands each request to one member, spreading the load', async () => {
      const s = c.subj('spread');
      const counts = [0, 0, 0];
      const subs = counts.map((_, i) =>
        c.bus.serve(s, 'workers', async () => {
          counts[i]!++;
          return i;
        }),
      );
      await sleep(50);
      for (let i = 0; i < 60; i++) await c.bus.request(s, i);
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        60,
      );
      for (const c of counts) assert.ok(c > 0, `every member served some requests: ${counts.join(',')}`);
      await Promise.all(subs.map((x) => x.unsubscribe()));
    });

    void it('broadcast reaches every subscriber, wildcards included, asynchronously', async () => {
      const base = c.subj('bcast');
      const a: unknown[] = [];
      const b: unknown[] = [];
      const w: string[] = [];
      const s1 = c.bus.subscribe(`${base}.x`, (p) => a.push(p));
      const s2 = c.bus.subscribe(`${base}.x`, (p) => b.push(p));
      const s3 = c.bus.subscribe(`${base}.*`, (_p, subject) => w.push(subject));
      const s4 = c.bus.subscribe(`${base}.>`, () => {
        throw new Error('a failing subscriber does not disturb others');
      });
      await sleep(50);
      c.bus.publish(`${base}.x`, { v: 1 });
      assert.equal(a.length, 0, 'delivery never happens inside publish()');
      c.bus.publish(`${base}.y`, { v: 2 });
      await waitFor(() => a.length === 1 && b.length === 1 && w.length === 2, 5000, 'broadcast');
      assert.deepEqual(a, [{ v: 1 }]);
      assert.deepEqual(w.sort(), [`${base}.x`, `${base}.y`]);
      await Promise.all([s1, s2, s3, s4].map((x) => x.unsubscribe()));
      c.bus.publish(`${base}.x`, { v: 3 });
      await sleep(50);
      assert.equal(a.length, 1, 'nothing after unsubscribe');
    });
  });
}

/** Publishing events (deduplicated) and consuming them in order. */
function eventLogContract(c: ContractContext): void {
  void describe('event log', () => {
    void it('publishEvent deduplicates on msgId and returns the first sequence', async () => {
      const s = c.evSubj('dedup');
      const id = `dedup-${Date.now()}-${Math.random()}`;
      const first = await c.bus.publishEvent(s, { n: 1 }, id);
      const again = await c.bus.publishEvent(s, { n: 1 }, id);
      assert.equal(again, first);
      const other = await c.bus.publishEvent(s, { n: 2 }, `${id}-2`);
      assert.equal(other, first + 1);
      assert.equal(await c.bus.lastEventSeq(), other);
    });

    void it('refuses events outside the stream subjects as unavailable', async () => {
      await rejectsWithCode(c.bus.publishEvent(c.subj('notevents'), {}, 'x'), 'unavailable', RemoteError);
    });

    void it('delivers events in order from a sequence, one at a time, filtered', async () => {
      const s = c.evSubj(`order.${++c.n}`);
      const start = (await c.bus.lastEventSeq()) + 1;
      const seqs: number[] = [];
      for (let i = 0; i < 50; i++) {
        seqs.push(await c.bus.publishEvent(`${s}.${i % 2 ? 'odd' : 'even'}`, { i }, `order-${c.n}-${i}`));
        await c.bus.publishEvent(c.evSubj(`noise.${c.n}`), { i }, `noise-${c.n}-${i}`);
      }
      const got: BusEvent[] = [];
      let concurrent = 0;
      let maxConcurrent = 0;
      const sub = c.bus.consumeEvents({
        filter: `${s}.>`,
        fromSeq: start,
        handler: async (e) => {
          maxConcurrent = Math.max(maxConcurrent, ++concurrent);
          await sleep(Math.random() < 0.1 ? 5 : 0);
          got.push(e);
          concurrent--;
        },
      });
      await waitFor(() => got.length === 50, 10_000, 'ordered events');
      assert.deepEqual(
        got.map((e) => e.seq),
        seqs,
      );
      assert.deepEqual(
        got.map((e) => (e.payload as { i: number }).i),
        [...Array(50).keys()],
      );
      assert.equal(got[1]!.subject, `${s}.odd`);
      assert.equal(maxConcurrent, 1);
      // from a later sequence
      const tail: number[] = [];
      const sub2 = c.bus.consumeEvents({
        filter: `${s}.even`,
        fromSeq: seqs[40]!,
        handler: async (e) => void tail.push((e.payload as { i: number }).i),
      });
      await waitFor(() => tail.length === 5, 5000, 'tail');
      assert.deepEqual(tail, [40, 42, 44, 46, 48]);
      // live events keep coming
      await c.bus.publishEvent(`${s}.even`, { i: 100 }, `order-${c.n}-100`);
      await waitFor(() => tail.length === 6 && got.length === 51, 5000, 'live event');
      await Promise.all([sub.unsubscribe(), sub2.unsubscribe()]);
    });

    void it('a consumer starting at lastEventSeq()+1 sees only new events; handler errors do not stop it', async () => {
      const s = c.evSubj(`live.${++c.n}`);
      await c.bus.publishEvent(s, { old: true }, `live-old-${c.n}`);
      const got: unknown[] = [];
      const sub = c.bus.consumeEvents({
        filter: s,
        fromSeq: (await c.bus.lastEventSeq()) + 1,
        handler: async (e) => {
          const p = e.payload as { i: number };
          if (p.i === 1) throw new Error('boom');
          got.push(p.i);
        },
      });
      for (let i = 0; i < 4; i++) await c.bus.publishEvent(s, { i }, `live-${c.n}-${i}`);
      await waitFor(() => got.length === 3, 5000, 'live events');
      assert.deepEqual(got, [0, 2, 3]);
      await sub.unsubscribe();
    });

    void it('a slow handler gets every event, in order, and unsubscribe waits for it', async () => {
      const s = c.evSubj(`slow.${++c.n}`);
      const from = (await c.bus.lastEventSeq()) + 1;
      const got: number[] = [];
      let inHandler = false;
      const sub = c.bus.consumeEvents({
        filter: s,
        fromSeq: from,
        handler: async (e) => {
          inHandler = true;
          await sleep(30);
          got.push((e.payload as { i: number }).i);
          inHandler = false;
        },
      });
      for (let i = 0; i < 10; i++) await c.bus.publishEvent(s, { i }, `slow-${c.n}-${i}`);
      await waitFor(() => got.length === 10, 10_000, 'slow handler');
      assert.deepEqual(got, [...Array(10).keys()]);
      await c.bus.publishEvent(s, { i: 10 }, `slow-${c.n}-10`);
      await waitFor(() => inHandler, 5000, 'handler running');
      await sub.unsubscribe();
      assert.equal(inHandler, false, 'unsubscribe resolved after the running handler finished');
      assert.equal(got.length, 11);
    });
  });
}

/** Draining servers, retention gaps, and close(). */
function lifecycleContract(c: ContractContext): void {
  void describe('lifecycle and retention', () => {
    void it('unsubscribing a server waits for in-flight requests', async () => {
      const s = c.subj('drain');
      let started = false;
      let done = false;
      const sub = c.bus.serve(s, 'q', async () => {
        started = true;
        await sleep(100);
        done = true;
        return 'ok';
      });
      const p = c.bus.request(s, {});
      await waitFor(() => started, 5000, 'handler started');
      await sub.unsubscribe();
      assert.equal(done, true);
      assert.equal(await p, 'ok');
    });

    void it('detects a gap when events were dropped by retention', async () => {
      const small = await c.factory({ maxEvents: 5 });
      try {
        const b = await small.newBus();
        const s = `${small.prefix}events.gap`;
        for (let i = 0; i < 12; i++) await b.publishEvent(s, { i }, `gap-${i}`);
        const gaps: { expectedSeq: number; firstAvailableSeq: number }[] = [];
        const got: number[] = [];
        const sub = b.consumeEvents({
          filter: `${small.prefix}events.>`,
          fromSeq: 2,
          handler: async (e) => void got.push(e.seq),
          onGap: async (g) => void gaps.push(g),
        });
        await waitFor(() => got.length === 5, 5000, 'events after gap');
        assert.deepEqual(gaps, [{ expectedSeq: 2, firstAvailableSeq: 8 }]);
        assert.deepEqual(got, [8, 9, 10, 11, 12]);
        // no gap when starting inside the retained range
        const gaps2: unknown[] = [];
        const got2: number[] = [];
        const sub2 = b.consumeEvents({
          filter: `${small.prefix}events.>`,
          fromSeq: 10,
          handler: async (e) => void got2.push(e.seq),
          onGap: async (g) => void gaps2.push(g),
        });
        await waitFor(() => got2.length === 3, 5000, 'events in range');
        assert.deepEqual(gaps2, []);
        await Promise.all([sub.unsubscribe(), sub2.unsubscribe()]);
      } finally {
        await small.teardown();
      }
    });

    void it('close() stops consumers and servers, waits for handlers, and refuses further use', async () => {
      const b = await c.h.newBus();
      const s = c.subj('closing');
      const es = c.evSubj(`closing.${c.n}`);
      let started = false;
      let handled = false;
      b.serve(s, 'q', async () => {
        started = true;
        await sleep(100);
        handled = true;
        return 1;
      });
      const events: number[] = [];
      b.consumeEvents({ filter: es, fromSeq: 1, handler: async (e) => void events.push(e.seq) });
      b.subscribe(s, () => undefined);
      await sleep(50);
      const inflight = b.request(s, {}).catch(() => undefined);
      await waitFor(() => started, 5000, 'handler started');
      await b.close();
      assert.equal(handled, true, 'close waited for the running request handler');
      await inflight;
      await b.close(); // idempotent
      await rejectsWithCode(b.request(s, {}), 'unavailable', SwitchboardError);
      await rejectsWithCode(b.publishEvent(es, {}, 'z'), 'unavailable', SwitchboardError);
      assert.throws(() => b.publish(s, {}), SwitchboardError);
      assert.throws(() => b.serve(s, 'q', async () => 1), SwitchboardError);
      assert.throws(() => b.consumeEvents({ filter: es, fromSeq: 1, handler: async () => undefined }));
      await rejectsWithCode(c.bus.request(s, {}), 'unavailable', RemoteError);
    });
  });
}
