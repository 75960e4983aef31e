import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricSet, runChecks } from './index.js';

describe('MetricSet', () => {
  test('get-or-create shares a counter; a different type under the same name is refused', async () => {
    const m = new MetricSet();
    m.counter('x_total', 'x', ['outcome']).inc({ outcome: 'ok' });
    m.counter('x_total', 'x', ['outcome']).inc({ outcome: 'ok' }, 2);
    assert.match(await m.text(), /^x_total\{outcome="ok"\} 3$/m);
    assert.match(await m.text(), /^# TYPE x_total counter$/m);
    assert.throws(() => m.histogram('x_total', 'x'), /another type/);
  });

  test('observed series sum their sources per label set and drop a removed source', async () => {
    const m = new MetricSet();
    const a = m.observeGauge('streams', 'held', [], () => 2);
    m.observeGauge('streams', 'held', [], () => 3);
    m.observeCounter('hits_total', 'h', ['reason'], () => [
      { labels: { reason: 'a' }, value: 4 },
      { labels: { reason: 'b' }, value: 0 },
    ]);
    let text = await m.text();
    assert.match(text, /^streams 5$/m);
    assert.match(text, /^hits_total\{reason="a"\} 4$/m);
    assert.match(text, /^hits_total\{reason="b"\} 0$/m);
    a();
    text = await m.text();
    assert.match(text, /^streams 3$/m);
  });

  test('a source that throws is left out, the others still count', async () => {
    const m = new MetricSet();
    m.observeGauge('g', 'g', [], () => {
      throw new Error('gone');
    });
    m.observeGauge('g', 'g', [], () => 1);
    assert.match(await m.text(), /^g 1$/m);
  });
});

describe('runChecks', () => {
  test('ready only when every check passes; reasons are named', async () => {
    const r = await runChecks({
      a: () => true,
      b: async () => 'database down',
      c: () => Promise.reject(new Error('boom')),
    });
    assert.equal(r.ready, false);
    assert.deepEqual(r.checks.a, { ok: true });
    assert.deepEqual(r.checks.b, { ok: false, reason: 'database down' });
    assert.deepEqual(r.checks.c, { ok: false, reason: 'boom' });
    const hung = await runChecks({ h: () => new Promise<boolean>(() => undefined) }, 20);
    assert.equal(hung.ready, false);
    assert.match(hung.checks.h?.reason ?? '', /no answer within 20 ms/);
    assert.equal((await runChecks({ a: () => true })).ready, true);
  });
});
