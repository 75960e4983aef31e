/**
 * Runs the bus contract against real NATS with JetStream (NATS_URL, default nats://127.0.0.1:4222),
 * plus NATS-specific behaviour: malformed requests, stream setup, reconnects through a TCP proxy.
 * Each run uses its own stream and subject prefix and deletes the stream afterwards.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, nanos, StorageType, type NatsConnection } from 'nats';
import { RemoteError } from '@switchboard/common';
import {
  BUS_MAX_JSON_DEPTH,
  connectNatsBus,
  decodeReply,
  type NatsBus,
  type NatsBusOptions,
} from '../src/index.js';
import { runBusContract, sleep, waitFor } from './bus-contract.js';
import { TcpProxy } from '@switchboard/testing';
import { testLogger } from './test-logger.js';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const logger = testLogger('nats-bus-test');

function natsTarget(): { host: string; port: number } {
  const u = new URL(NATS_URL.split(',')[0]!.replace(/^nats:/, 'http:'));
  return { host: u.hostname, port: Number(u.port || 4222) };
}

async function deleteStream(stream: string): Promise<void> {
  const nc = await connect({ servers: NATS_URL });
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}

function uniqueRun(): { prefix: string; stream: string } {
  const id = randomUUID().replaceAll('-', '').slice(0, 10);
  return { prefix: `t${id}.`, stream: `SBTEST_${id}` };
}

runBusContract('nats', async ({ maxEvents }) => {
  const { prefix, stream } = uniqueRun();
  const buses: NatsBus[] = [];
  return {
    prefix,
    newBus: async () => {
      const b = await connectNatsBus({
        servers: NATS_URL,
        name: 'bus-contract-test',
        stream,
        subjects: [`${prefix}events.>`],
        maxMsgs: maxEvents,
        logger,
      });
      buses.push(b);
      return b;
    },
    teardown: async () => {
      await Promise.all(buses.map((b) => b.close()));
      await deleteStream(stream);
    },
  };
});

void describe('nats bus specifics', () => {
  const { prefix, stream } = uniqueRun();
  const base: NatsBusOptions = {
    servers: NATS_URL,
    name: 'nats-bus-test',
    stream,
    subjects: [`${prefix}events.>`],
    logger,
  };
  let bus: NatsBus;
  let nc: NatsConnection;
  let proxy: TcpProxy;

  before(async () => {
    bus = await connectNatsBus(base);
    nc = await connect({ servers: NATS_URL });
    const t = natsTarget();
    proxy = new TcpProxy(t.host, t.port);
    await proxy.listen();
  });
  after(async () => {
    await bus.close();
    await nc.close();
    await proxy.close();
    await deleteStream(stream);
  });

  void it('creates the stream with file storage, a 2-minute duplicate window and 7-day retention', async () => {
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(stream);
    assert.equal(info.config.storage, StorageType.File);
    assert.equal(info.config.duplicate_window, nanos(120_000));
    assert.equal(info.config.max_age, nanos(7 * 24 * 3600_000));
    assert.deepEqual(info.config.subjects, [`${prefix}events.>`]);
    // reconnecting with other limits updates them
    const b2 = await connectNatsBus({ ...base, maxAgeMs: 3600_000 });
    assert.equal((await jsm.streams.info(stream)).config.max_age, nanos(3600_000));
    await b2.close();
    const b3 = await connectNatsBus(base);
    await b3.close();
  });

  void it('answers a malformed (non-JSON) request with invalid_input', async () => {
    const s = `${prefix}rpc.malformed`;
    let called = false;
    const sub = bus.serve(s, 'q', async () => {
      called = true;
      return 1;
    });
    await sleep(20);
    const msg = await nc.request(s, new TextEncoder().encode('{not json'), { timeout: 2000 });
    assert.throws(
      () => decodeReply(s, new TextDecoder().decode(msg.data)),
      (err: unknown) => err instanceof RemoteError && err.code === 'invalid_input',
    );
    assert.equal(called, false);
    await sub.unsubscribe();
  });

  void it('raw messages nested past the limit are refused, logged and skipped; nothing stops serving', async () => {
    const raw = (depth: number) => new TextEncoder().encode(`{"x":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    // a request: answered with invalid_input naming the limit, the handler never called
    const s = `${prefix}rpc.deep`;
    let calls = 0;
    const sub = bus.serve(s, 'q', async () => ++calls);
    await sleep(100);
    for (const depth of [BUS_MAX_JSON_DEPTH, 20_000]) {
      const msg = await nc.request(s, raw(depth), { timeout: 2000 });
      assert.throws(
        () => decodeReply(s, new TextDecoder().decode(msg.data)),
        (err: unknown) =>
          err instanceof RemoteError &&
          err.code === 'invalid_input' &&
          err.message.startsWith(`message on "${s}": JSON nested deeper than ${BUS_MAX_JSON_DEPTH} levels`),
      );
    }
    assert.equal(calls, 0);
    assert.equal(await bus.request(s, {}), 1, 'the server goes on serving');
    await sub.unsubscribe();

    // a broadcast: dropped, the subscriber gets the next one
    const b = `${prefix}bcast.deep`;
    const got: unknown[] = [];
    const bsub = bus.subscribe(b, (p) => got.push(p));
    // wait until the subscription is live at the server, so that the deep message does reach it
    for (let i = 0; got.length === 0 && i < 500; i++) {
      nc.publish(b, new TextEncoder().encode('{"n":1}'));
      await sleep(10);
    }
    nc.publish(b, raw(20_000));
    nc.publish(b, new TextEncoder().encode('{"n":2}'));
    const after = () => got.filter((p) => (p as { n: number }).n !== 1);
    await waitFor(() => after().length === 1, 5000, 'the broadcast after the deep one');
    assert.deepEqual(after(), [{ n: 2 }], 'the deep message was dropped, the next one delivered');
    await bsub.unsubscribe();

    // an event in the stream: skipped, the consumer goes on with the next
    const e = `${prefix}events.deep`;
    const js = nc.jetstream();
    const from = (await bus.lastEventSeq()) + 1;
    await js.publish(e, raw(20_000));
    await js.publish(e, new TextEncoder().encode('{"n":3}'));
    const events: unknown[] = [];
    const esub = bus.consumeEvents({
      filter: e,
      fromSeq: from,
      handler: async (ev) => void events.push(ev.payload),
    });
    await waitFor(() => events.length === 1, 5000, 'the event after the deep one');
    assert.deepEqual(events, [{ n: 3 }]);
    await esub.unsubscribe();

    // a reply: the requester gets an internal error naming the limit
    const r = `${prefix}rpc.deepreply`;
    const responder = nc.subscribe(r, { callback: (_err, m) => m.respond(raw(20_000)) });
    await nc.flush();
    await assert.rejects(bus.request(r, {}), (err: unknown) => {
      assert.ok(err instanceof RemoteError, String(err));
      assert.equal(err.code, 'internal');
      assert.match(
        err.message,
        new RegExp(`^malformed reply on "${r}": JSON nested deeper than ${BUS_MAX_JSON_DEPTH} levels`),
      );
      return true;
    });
    responder.unsubscribe();
  });

  void it('fails to connect with a message saying what to check', async () => {
    await assert.rejects(
      connectNatsBus({ ...base, servers: 'nats://127.0.0.1:1' }),
      (err: unknown) =>
        err instanceof Error && /NATS/.test(err.message) && (err as RemoteError).hint !== undefined,
    );
  });

  void it('an event consumer survives a connection loss and resumes without loss or duplicates', async () => {
    const viaProxy = await connectNatsBus({ ...base, servers: `nats://127.0.0.1:${proxy.port}` });
    const s = `${prefix}events.reconnect`;
    const got: number[] = [];
    const gaps: unknown[] = [];
    const from = (await bus.lastEventSeq()) + 1;
    const sub = viaProxy.consumeEvents({
      filter: s,
      fromSeq: from,
      handler: async (e) => void got.push((e.payload as { i: number }).i),
      onGap: async (g) => void gaps.push(g),
    });
    for (let i = 0; i < 5; i++) await bus.publishEvent(s, { i }, `rc-${i}`);
    await waitFor(() => got.length === 5, 5000, 'before the outage');
    proxy.cut();
    for (let i = 5; i < 15; i++) await bus.publishEvent(s, { i }, `rc-${i}`);
    await sleep(300);
    proxy.restore();
    await waitFor(() => got.length === 15, 15_000, 'after the outage');
    for (let i = 15; i < 20; i++) await bus.publishEvent(s, { i }, `rc-${i}`);
    await waitFor(() => got.length === 20, 5000, 'live after the outage');
    assert.deepEqual(got, [...Array(20).keys()]);
    assert.deepEqual(gaps, []);
    await sub.unsubscribe();
    await viaProxy.close();
  });

  void it('calls onGap when events it missed during an outage were dropped by retention', async () => {
    const small = uniqueRun();
    const opts = { ...base, stream: small.stream, subjects: [`${small.prefix}events.>`], maxMsgs: 5 };
    const direct = await connectNatsBus(opts);
    const viaProxy = await connectNatsBus({ ...opts, servers: `nats://127.0.0.1:${proxy.port}` });
    try {
      const s = `${small.prefix}events.gap`;
      const got: number[] = [];
      const gaps: { expectedSeq: number; firstAvailableSeq: number }[] = [];
      const sub = viaProxy.consumeEvents({
        filter: s,
        fromSeq: 1,
        handler: async (e) => void got.push(e.seq),
        onGap: async (g) => void gaps.push(g),
      });
      for (let i = 0; i < 3; i++) await direct.publishEvent(s, { i }, `g-${i}`);
      await waitFor(() => got.length === 3, 5000, 'before the outage');
      proxy.cut();
      for (let i = 3; i < 15; i++) await direct.publishEvent(s, { i }, `g-${i}`);
      await sleep(300);
      proxy.restore();
      await waitFor(() => got.length === 8, 15_000, 'after the outage');
      assert.deepEqual(gaps, [{ expectedSeq: 4, firstAvailableSeq: 11 }]);
      assert.deepEqual(got, [1, 2, 3, 11, 12, 13, 14, 15]);
      await sub.unsubscribe();
    } finally {
      await viaProxy.close();
      await direct.close();
      await deleteStream(small.stream);
    }
  });

  void it('requests during an outage time out with a useful message, then work again', async () => {
    const viaProxy = await connectNatsBus({ ...base, servers: `nats://127.0.0.1:${proxy.port}` });
    const s = `${prefix}rpc.outage`;
    const sub = bus.serve(s, 'q', async () => 'pong');
    await sleep(20);
    assert.equal(await viaProxy.request(s, {}), 'pong');
    proxy.cut();
    await assert.rejects(
      viaProxy.request(s, {}, { timeoutMs: 200 }),
      (err: unknown) => err instanceof RemoteError && ['timeout', 'unavailable'].includes(err.code),
    );
    proxy.restore();
    await waitFor(() => viaProxy.isConnected(), 10_000, 'reconnect');
    assert.equal(await viaProxy.request(s, {}), 'pong');
    await sub.unsubscribe();
    await viaProxy.close();
  });

  void it('an event consumer deleted on the server is recreated without loss', async () => {
    const s = `${prefix}events.deleted`;
    const got: number[] = [];
    const sub = bus.consumeEvents({
      filter: s,
      fromSeq: (await bus.lastEventSeq()) + 1,
      handler: async (e) => void got.push((e.payload as { i: number }).i),
    });
    for (let i = 0; i < 3; i++) await bus.publishEvent(s, { i }, `del-${i}`);
    await waitFor(() => got.length === 3, 5000, 'before the deletion');
    const jsm = await nc.jetstreamManager();
    for (const c of await jsm.consumers.list(stream).next()) {
      if (c.config.filter_subject === s) await jsm.consumers.delete(stream, c.name);
    }
    for (let i = 3; i < 8; i++) await bus.publishEvent(s, { i }, `del-${i}`);
    await waitFor(() => got.length === 8, 20_000, 'after the deletion');
    assert.deepEqual(got, [...Array(8).keys()]);
    await sub.unsubscribe();
  });

  void it('unsubscribing and closing leave no consumers behind on the stream', async () => {
    const b = await connectNatsBus(base);
    const subs = [0, 1, 2].map(() =>
      b.consumeEvents({ filter: `${prefix}events.>`, fromSeq: 1, handler: async () => undefined }),
    );
    const jsm = await nc.jetstreamManager();
    const count = async () => (await jsm.consumers.list(stream).next()).length;
    for (let i = 0; i < 200 && (await count()) < 3; i++) await sleep(25);
    assert.ok((await count()) >= 3);
    await subs[0]!.unsubscribe();
    await b.close();
    assert.equal((await jsm.consumers.list(stream).next()).length, 0);
  });
});

void describe('nats bus close during an outage', () => {
  void it('close() does not hang while the server is unreachable', async () => {
    const { prefix, stream } = uniqueRun();
    const t = natsTarget();
    const proxy = new TcpProxy(t.host, t.port);
    await proxy.listen();
    const b = await connectNatsBus({
      servers: `nats://127.0.0.1:${proxy.port}`,
      name: 'close-outage-test',
      stream,
      subjects: [`${prefix}events.>`],
      logger,
    });
    try {
      b.serve(`${prefix}rpc.x`, 'q', async () => 1);
      b.subscribe(`${prefix}bcast`, () => undefined);
      b.consumeEvents({ filter: `${prefix}events.>`, fromSeq: 1, handler: async () => undefined });
      await sleep(100);
      proxy.cut();
      await waitFor(() => !b.isConnected(), 5000, 'disconnect noticed');
      const started = Date.now();
      await b.close();
      assert.ok(Date.now() - started < 4000, `close took ${Date.now() - started} ms`);
    } finally {
      await proxy.close();
      await deleteStream(stream);
    }
  });
});
