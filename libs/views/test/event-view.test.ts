/**
 * EventView against the in-process bus and real NATS/JetStream: snapshot at the noted sequence, then
 * the log from there (the overlap applied version-gated), catch-up for read-your-writes, a resync
 * when retention drops events the view had not read, and a start that waits for a late owner.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect } from 'nats';
import { RemoteError } from '@switchboard/common';
import { connectNatsBus, createInProcessBus, NatsBus, type Bus } from '@switchboard/bus';
import { NATS_URL, testLogger, waitFor } from '@switchboard/testing';
import { EventView, VersionedMap } from '../src/index.js';

const logger = testLogger('event-view-test');
/** Each bus gets its own subject prefix (JetStream streams may not overlap). */
const prefixes = new Map<Bus, string>();
const prefixOf = (bus: Bus): string => prefixes.get(bus) ?? 'events';

interface Rec {
  id: number;
  version: number;
}

async function deleteStream(stream: string): Promise<void> {
  const nc = await connect({ servers: NATS_URL });
  try {
    await (await nc.jetstreamManager()).streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}

/** An "owner" service: state it would return from its snapshot RPC, and the events it publishes. */
class Owner {
  readonly state = new Map<number, Rec>();
  private n = 0;
  constructor(private readonly bus: Bus) {}
  async put(id: number): Promise<number> {
    const r = { id, version: (this.state.get(id)?.version ?? 0) + 1 };
    this.state.set(id, r);
    const prefix = prefixOf(this.bus);
    return this.bus.publishEvent(`${prefix}.upserted`, r, `${prefix}:${++this.n}`);
  }
}

function makeView(bus: Bus, owner: Owner, opts: { failLoads?: number; gate?: Promise<void> } = {}) {
  const prefix = prefixOf(bus);
  const recs = new VersionedMap<number, Rec>();
  let loads = 0;
  let fails = opts.failLoads ?? 0;
  const view = new EventView({
    bus,
    name: 'test',
    filter: `${prefix}.>`,
    logger,
    maxBackoffMs: 50,
    load: async () => {
      if (fails-- > 0) throw new RemoteError('unavailable', 'owner not up yet');
      loads++;
      recs.replace([...owner.state].map(([k, v]) => [k, { ...v }] as const));
    },
    apply: async (ev) => {
      if (!ev.subject.startsWith(prefix)) return;
      await opts.gate;
      const r = ev.payload as Rec;
      recs.upsert(r.id, r);
    },
  });
  return { view, recs, loads: () => loads };
}

for (const kind of ['in-process', 'nats'] as const) {
  describe(`EventView on the ${kind} bus`, () => {
    const buses: Bus[] = [];
    const open = async (maxEvents?: number): Promise<Bus> => {
      const prefix = `t${randomUUID().replaceAll('-', '').slice(0, 8)}.events`;
      const b =
        kind === 'nats'
          ? await connectNatsBus({
              servers: NATS_URL,
              name: 'event-view-test',
              logger,
              stream: `SBVIEW_${randomUUID().replaceAll('-', '').slice(0, 10)}`,
              subjects: [`${prefix}.>`],
              maxAgeMs: 600_000,
              ...(maxEvents !== undefined ? { maxMsgs: maxEvents } : {}),
            })
          : createInProcessBus({
              logger,
              eventSubjects: [`${prefix}.>`],
              ...(maxEvents !== undefined ? { maxEvents } : {}),
            });
      prefixes.set(b, prefix);
      buses.push(b);
      return b;
    };
    after(async () => {
      for (const b of buses) {
        if (b instanceof NatsBus) await deleteStream(b.stream);
        await b.close();
      }
    });

    test('loads the snapshot, follows the log and catches up for read-your-writes', async () => {
      const bus = await open();
      const owner = new Owner(bus);
      await owner.put(1);
      await owner.put(2);
      const { view, recs } = makeView(bus, owner);
      await view.start();
      assert.equal(recs.size, 2);
      await owner.put(3);
      await owner.put(1);
      assert.equal(await view.catchUp(5000), true);
      assert.equal(recs.get(3)?.version, 1);
      assert.equal(recs.get(1)?.version, 2);
      assert.equal(view.lastSeq, await bus.lastEventSeq());
      await view.stop();
    });

    test('start retries until the owner answers; whenReady waits for it', async () => {
      const bus = await open();
      const owner = new Owner(bus);
      await owner.put(7);
      const { view, recs } = makeView(bus, owner, { failLoads: 3 });
      void view.start();
      assert.equal(view.ready, false);
      await view.whenReady(5000);
      assert.equal(recs.get(7)?.version, 1);
      await view.stop();
    });

    test('whenReady rejects with unavailable when the view cannot load in time', async () => {
      const bus = await open();
      const { view } = makeView(bus, new Owner(bus), { failLoads: 1_000 });
      void view.start().catch(() => undefined);
      await assert.rejects(view.whenReady(150), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'unavailable');
        return true;
      });
      await view.stop();
    });

    test('a gap (events dropped before the view read them) reloads the snapshot', async () => {
      const bus = await open(3);
      const owner = new Owner(bus);
      await owner.put(1);
      let release: () => void = () => undefined;
      const gate = new Promise<void>((r) => (release = r));
      const { view, recs, loads } = makeView(bus, owner, { gate });
      await view.start();
      // The view blocks on the next event while retention drops the ones behind it.
      await owner.put(2);
      for (let i = 10; i < 20; i++) await owner.put(i);
      const seq = await bus.lastEventSeq();
      release();
      // In process the gap is certain; over NATS the client may already hold the events in its
      // fetch buffer (then there is no gap to see). Either way the view must end up complete.
      const minLoads = kind === 'in-process' ? 2 : 1;
      await waitFor(() => loads() >= minLoads && view.lastSeq >= seq && recs.size === 12, {
        what: 'the view to be complete again',
        timeoutMs: 10_000,
      });
      assert.equal(recs.size, 12);
      await view.stop();
    });
  });
}
