/**
 * The outbox and its relay against real Postgres and PGlite, with the in-process bus and with real
 * NATS: exactly-once in effect, id (= commit) order, batching, crash safety, several relays, and a
 * bus outage (through a TCP proxy that cuts the relay's NATS connection).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { connectNatsBus, createInProcessBus, type Bus, type BusEvent } from '@switchboard/bus';
import { OutboxRelay, appendOutbox, migrate, openDb, type Db } from '../src/index.js';
import { backends, dropSchema, logger, NATS_URL, PG_URL, sleep, uniqueSchema, waitFor } from './helpers.js';
import { capturingLogger, TcpProxy, type LogLine } from '@switchboard/testing';

interface BusKind {
  name: 'in-process' | 'nats';
  /** Creates a bus (through `servers` for NATS when given); all buses of a kind share one log. */
  make(servers?: string): Promise<Bus>;
  prefix: string;
  teardown(): Promise<void>;
}

function busKinds(): BusKind[] {
  const id = randomUUID().replaceAll('-', '').slice(0, 10);
  const prefix = `t${id}.`;
  const stream = `SBTEST_OUTBOX_${id}`;
  const inProcess = createInProcessBus({ logger, eventSubjects: [`${prefix}events.>`] });
  const natsBuses: Bus[] = [];
  return [
    {
      name: 'in-process',
      prefix,
      make: async () => inProcess,
      teardown: () => inProcess.close(),
    },
    {
      name: 'nats',
      prefix,
      make: async (servers) => {
        const b = await connectNatsBus({
          servers: servers ?? NATS_URL,
          name: 'outbox-test',
          stream,
          subjects: [`${prefix}events.>`],
          publishTimeoutMs: 500,
          logger,
        });
        natsBuses.push(b);
        return b;
      },
      teardown: async () => {
        await Promise.all(natsBuses.map((b) => b.close()));
        const nc = await connect({ servers: NATS_URL });
        const jsm = await nc.jetstreamManager();
        await jsm.streams.delete(stream).catch(() => false);
        await nc.close();
      },
    },
  ];
}

/** Collects events on `filter` from the current end of the log. */
async function collect(bus: Bus, filter: string): Promise<{ events: BusEvent[]; stop(): Promise<void> }> {
  const events: BusEvent[] = [];
  const sub = bus.consumeEvents({
    filter,
    fromSeq: (await bus.lastEventSeq()) + 1,
    handler: async (e) => void events.push(e),
  });
  return { events, stop: () => sub.unsubscribe() };
}

for (const backend of backends) {
  for (const kind of busKinds()) {
    void describe(`outbox on ${backend.name} with the ${kind.name} bus`, () => {
      let db: Db;
      let bus: Bus;
      let emptyDir: string;
      const schemas: string[] = [];
      const subject = (s: string) => `${kind.prefix}events.${s}`;

      const freshSchema = async () => {
        const schema = uniqueSchema('ob');
        schemas.push(schema);
        await migrate(db, { schema, dir: emptyDir, logger });
        await db.query(`CREATE TABLE "${schema}".items (n int PRIMARY KEY)`);
        return schema;
      };

      before(async () => {
        db = await backend.open();
        bus = await kind.make();
        emptyDir = await mkdtemp(join(tmpdir(), 'sb-empty-migrations-'));
      });
      after(async () => {
        for (const s of schemas) await dropSchema(db, s);
        await db.close();
        await kind.teardown();
        await rm(emptyDir, { recursive: true, force: true });
      });

      void it('publishes committed rows once each, in order, in batches; rolled-back rows never', async () => {
        const schema = await freshSchema();
        const events = await collect(bus, subject(`${schema}.>`));
        const relay = new OutboxRelay({ db, schema, bus, logger, pollMs: 20, batchSize: 50 });
        relay.start();
        const expected: number[] = [];
        for (let n = 0; n < 130; n++) {
          const commit = n % 10 !== 3;
          await db
            .transaction(async (tx) => {
              await tx.query(`INSERT INTO "${schema}".items VALUES ($1)`, [n]);
              await appendOutbox(tx, schema, subject(`${schema}.item-added`), { n, nested: { at: 'x' } });
              if (!commit) throw new Error('rolled back');
            })
            .catch(() => undefined);
          if (commit) expected.push(n);
          if (n % 20 === 0) relay.kick();
        }
        // appendOutbox on the Db itself opens its own transaction
        await appendOutbox(db, schema, subject(`${schema}.item-added`), { n: 1000, nested: { at: 'x' } });
        expected.push(1000);
        await relay.waitDrained();
        await waitFor(() => events.events.length >= expected.length, 10_000, 'events');
        await sleep(50);
        assert.deepEqual(
          events.events.map((e) => (e.payload as { n: number }).n),
          expected,
        );
        assert.deepEqual(events.events[0]!.payload, { n: 0, nested: { at: 'x' } });
        assert.equal(relay.published, expected.length);
        const { rows } = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${schema}".outbox WHERE published_at IS NULL`,
        );
        assert.equal(rows[0]!.n, 0);
        await relay.stop();
        await events.stop();
      });

      void it('republishes rows published before a crash without duplicating them', async () => {
        const schema = await freshSchema();
        for (let n = 0; n < 5; n++) await appendOutbox(db, schema, subject(`${schema}.crash`), { n });
        const { rows } = await db.query<{ id: number; subject: string; payload: unknown }>(
          `SELECT id, subject, payload FROM "${schema}".outbox ORDER BY id`,
        );
        const before = await bus.lastEventSeq();
        const origin = (await db.query<{ id: string }>(`SELECT id FROM "${schema}".outbox_origin`)).rows[0]!
          .id;
        // the previous relay published the first three, then died before marking them
        for (const r of rows.slice(0, 3))
          await bus.publishEvent(r.subject, r.payload, `${schema}:${origin}:${r.id}`);
        const relay = new OutboxRelay({ db, schema, bus, logger, pollMs: 20 });
        relay.start();
        await relay.waitDrained();
        await relay.stop();
        assert.equal((await bus.lastEventSeq()) - before, 5, 'five events stored, not eight');
      });

      void it('keeps commit order under concurrent writers and several relays publish each row once', async () => {
        const schema = await freshSchema();
        const events = await collect(bus, subject(`${schema}.>`));
        const relayDbs =
          backend.name === 'postgres'
            ? await Promise.all([1, 2].map(() => openDb({ url: PG_URL, logger })))
            : [db, db];
        const relays = [db, ...relayDbs].map(
          (d) => new OutboxRelay({ db: d, schema, bus, logger, pollMs: 5, batchSize: 7 }),
        );
        relays.forEach((r) => r.start());
        try {
          await Promise.all(
            Array.from({ length: 40 }, (_, n) =>
              db.transaction(async (tx) => {
                await tx.query(`INSERT INTO "${schema}".items VALUES ($1)`, [n]);
                await sleep(Math.random() * 10);
                await appendOutbox(tx, schema, subject(`${schema}.concurrent`), { n });
                await sleep(Math.random() * 10);
              }),
            ),
          );
          await relays[0]!.waitDrained();
          const { rows } = await db.query<{ payload: { n: number } }>(
            `SELECT payload FROM "${schema}".outbox ORDER BY id`,
          );
          await waitFor(() => events.events.length >= 40, 10_000, 'events');
          await sleep(50);
          assert.deepEqual(
            events.events.map((e) => (e.payload as { n: number }).n),
            rows.map((r) => r.payload.n),
            'published in id order',
          );
          assert.equal(
            relays.reduce((a, r) => a + r.published, 0),
            40,
            'each row published by exactly one relay',
          );
        } finally {
          await Promise.all(relays.map((r) => r.stop()));
          for (const d of relayDbs) if (d !== db) await d.close();
          await events.stop();
        }
      });

      void it('stop() waits for the round in flight', async () => {
        const schema = await freshSchema();
        let inPublish = false;
        const slowBus: Bus = Object.assign(Object.create(bus) as Bus, {
          publishEvent: async (s: string, p: unknown, id: string) => {
            inPublish = true;
            await sleep(80);
            const seq = await bus.publishEvent(s, p, id);
            inPublish = false;
            return seq;
          },
        });
        await appendOutbox(db, schema, subject(`${schema}.slow`), { n: 1 });
        const relay = new OutboxRelay({ db, schema, bus: slowBus, logger, pollMs: 1000 });
        relay.start();
        await waitFor(() => inPublish, 5000, 'publish started');
        await relay.stop();
        assert.equal(inPublish, false);
        assert.equal(await relay.pending(), 0, 'the row was marked before stop() resolved');
      });

      if (kind.name === 'nats') {
        void it('survives a bus outage: backs off, logs the schema, then publishes everything in order', async () => {
          const schema = await freshSchema();
          const u = new URL(NATS_URL.replace(/^nats:/, 'http:'));
          const proxy = new TcpProxy(u.hostname, Number(u.port || 4222));
          await proxy.listen();
          const relayBus = await kind.make(`nats://127.0.0.1:${proxy.port}`);
          const events = await collect(bus, subject(`${schema}.>`));
          const capture = { errors: [] as LogLine[] };
          const relay = new OutboxRelay({
            db,
            schema,
            bus: relayBus,
            logger: capturingLogger(capture.errors, {}, { minLevel: 'error' }),
            pollMs: 20,
            maxBackoffMs: 200,
          });
          relay.start();
          try {
            for (let n = 0; n < 5; n++) await appendOutbox(db, schema, subject(`${schema}.outage`), { n });
            relay.kick();
            await relay.waitDrained();
            proxy.cut();
            for (let n = 5; n < 20; n++) {
              await appendOutbox(db, schema, subject(`${schema}.outage`), { n });
              relay.kick();
            }
            await waitFor(() => capture.errors.length >= 2, 10_000, 'relay errors');
            assert.ok((await relay.pending()) > 0);
            const e = capture.errors[0]!;
            assert.match(e.msg, /outbox relay/);
            assert.equal(e.fields.schema, schema);
            proxy.restore();
            await relay.waitDrained(20_000);
            await waitFor(() => events.events.length >= 20, 10_000, 'events after the outage');
            await sleep(100);
            assert.deepEqual(
              events.events.map((ev) => (ev.payload as { n: number }).n),
              [...Array(20).keys()],
            );
          } finally {
            await relay.stop();
            await events.stop();
            await proxy.close();
          }
        });
      }
    });
  }
}
