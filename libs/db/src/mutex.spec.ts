import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Mutex } from './mutex.js';

void describe('Mutex', () => {
  void it('runs callers one at a time in call order, also after failures', async () => {
    const m = new Mutex();
    const log: string[] = [];
    const task = (name: string, ms: number, fail = false) =>
      m.run(async () => {
        log.push(`${name}+`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`${name}-`);
        if (fail) throw new Error(name);
      });
    const results = await Promise.allSettled([task('a', 20), task('b', 1, true), task('c', 5)]);
    assert.deepEqual(log, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
  });
  void it('release is idempotent', async () => {
    const m = new Mutex();
    const release = await m.acquire();
    release();
    release();
    let ran = 0;
    await Promise.all([m.run(async () => void ran++), m.run(async () => void ran++)]);
    assert.equal(ran, 2);
  });
});
