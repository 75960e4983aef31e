/** Runs the bus contract against the in-process bus, plus what is specific to it. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createInProcessBus, type Bus } from '../src/index.js';
import { runBusContract, waitFor } from './bus-contract.js';
import { testLogger } from './test-logger.js';

const logger = testLogger('in-process-bus-test');

runBusContract('in-process', async ({ maxEvents }) => {
  const prefix = `t${randomUUID().slice(0, 8)}.`;
  const buses: Bus[] = [];
  return {
    prefix,
    newBus: async () => {
      const b = createInProcessBus({ logger, maxEvents, eventSubjects: [`${prefix}events.>`] });
      buses.push(b);
      return b;
    },
    teardown: async () => {
      await Promise.all(buses.map((b) => b.close()));
    },
  };
});

void describe('in-process bus specifics', () => {
  void it('consumes events published from inside a handler without re-entrancy', async () => {
    const bus = createInProcessBus({ logger });
    const seen: number[] = [];
    let depth = 0;
    const sub = bus.consumeEvents({
      filter: 'events.>',
      fromSeq: 1,
      handler: async (e) => {
        assert.equal(depth, 0);
        depth++;
        seen.push(e.seq);
        if (e.seq < 5) await bus.publishEvent('events.chain', {}, `chain-${e.seq}`);
        depth--;
      },
    });
    await bus.publishEvent('events.chain', {}, 'chain-0');
    await waitFor(() => seen.length === 5);
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    await sub.unsubscribe();
    await bus.close();
  });

  void it('the duplicate window expires', async () => {
    const bus = createInProcessBus({ logger, duplicateWindowMs: 20 });
    const a = await bus.publishEvent('events.x', {}, 'same');
    assert.equal(await bus.publishEvent('events.x', {}, 'same'), a);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(await bus.publishEvent('events.x', {}, 'same'), a + 1);
    await bus.close();
  });

  void it('keeps a long log bounded and consumers caught up', async () => {
    const bus = createInProcessBus({ logger, maxEvents: 100 });
    for (let i = 0; i < 5000; i++) await bus.publishEvent('events.bulk', { i }, `b${i}`);
    const got: number[] = [];
    const gaps: number[] = [];
    const sub = bus.consumeEvents({
      filter: 'events.bulk',
      fromSeq: 1,
      handler: async (e) => void got.push(e.seq),
      onGap: async (g) => void gaps.push(g.firstAvailableSeq),
    });
    await waitFor(() => got.length === 100);
    assert.deepEqual(gaps, [4901]);
    assert.equal(got[0], 4901);
    await sub.unsubscribe();
    await bus.close();
  });

  void it('unsubscribe from inside its own handler does not deadlock', async () => {
    const bus = createInProcessBus({ logger });
    let calls = 0;
    const sub = bus.consumeEvents({
      filter: 'events.>',
      fromSeq: 1,
      handler: async () => {
        calls++;
        await sub.unsubscribe();
      },
    });
    await bus.publishEvent('events.a', {}, 'a');
    await bus.publishEvent('events.b', {}, 'b');
    await waitFor(() => calls === 1);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(calls, 1);
    await bus.close();
  });
});
