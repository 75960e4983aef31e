import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LimitedLogger, TokenBucket } from './rate-limit.js';
import type { LogFields, Logger } from './logger.js';

function recorder(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger: Logger = {
    debug: (m: string) => lines.push('debug ' + m),
    info: (m: string) => lines.push('info ' + m),
    warn: (m: string, f?: LogFields) => lines.push('warn ' + m + (f ? ' ' + JSON.stringify(f) : '')),
    error: (m: string) => lines.push('error ' + m),
    child: () => logger,
    isLevelEnabled: () => true,
  };
  return { logger, lines };
}

void describe('TokenBucket', () => {
  void test('allows the burst, then the rate', () => {
    let now = 0;
    const b = new TokenBucket(3, 2, () => now);
    assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
    assert.equal(b.msUntil(), 500);
    now = 500;
    assert.equal(b.take(), true);
    assert.equal(b.take(), false);
    now = 100_000;
    assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
  });

  void test('refuses nonsense parameters', () => {
    assert.throws(() => new TokenBucket(0, 1), RangeError);
  });
});

void describe('LimitedLogger', () => {
  void test('passes the first lines of a window, then reports what it suppressed', () => {
    let now = 0;
    const { logger, lines } = recorder();
    const log = new LimitedLogger(logger, { linesPerWindow: 3, windowMs: 1000, now: () => now });
    for (let i = 0; i < 100; i++) log.warn('bad frame');
    log.debug('always');
    assert.equal(lines.filter((l) => l === 'warn bad frame').length, 3);
    assert.equal(lines.filter((l) => l.includes('suppressed for the rest')).length, 1);
    assert.ok(lines.includes('debug always'));
    assert.equal(log.suppressedCount, 97);
    now = 1000;
    log.error('again');
    assert.ok(lines.some((l) => l.includes('"suppressed":97')));
    assert.equal(lines.at(-1), 'error again');
  });
});
