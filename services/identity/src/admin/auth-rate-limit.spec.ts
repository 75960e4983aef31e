import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthFailureLimiter, type Admission, type AttemptTicket } from './auth-rate-limit.js';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function admitted(a: Admission): AttemptTicket {
  if (!a.admitted) throw new Error(`expected admission, got refusal ${a.reason} (${a.retryAfterMs} ms)`);
  return a.ticket;
}

describe('AuthFailureLimiter', () => {
  test('the limit-th failure blocks the source for one window from that failure', () => {
    const c = clock();
    const l = new AuthFailureLimiter({ limit: 3, windowMs: 60_000, now: c.now });
    assert.deepEqual(admitted(l.admit('a')).failed(), { failures: 1, blocked: false });
    c.advance(10_000);
    assert.deepEqual(admitted(l.admit('a')).failed(), { failures: 2, blocked: false });
    c.advance(10_000);
    const third = admitted(l.admit('a')).failed();
    assert.equal(third.blocked, true);
    assert.equal(third.blockedUntil, c.now() + 60_000);

    c.advance(59_000);
    const r = l.admit('a');
    assert.equal(r.admitted, false);
    assert.ok(!r.admitted && r.reason === 'blocked' && r.retryAfterMs === 1000);
    c.advance(1000);
    assert.equal(admitted(l.admit('a')).failed().failures, 1, 'a finished block starts afresh');
  });

  test('refused attempts neither count nor extend the block, and a block is reported once', () => {
    const c = clock();
    const l = new AuthFailureLimiter({ limit: 2, now: c.now });
    admitted(l.admit('a')).failed();
    assert.equal(admitted(l.admit('a')).failed().blocked, true);
    for (let i = 0; i < 20; i++) {
      c.advance(1000);
      const r = l.admit('a');
      assert.ok(!r.admitted && r.reason === 'blocked');
      assert.equal(r.retryAfterMs, 60_000 - (i + 1) * 1000);
    }
  });

  test('failures older than the window are forgotten', () => {
    const c = clock();
    const l = new AuthFailureLimiter({ limit: 3, now: c.now });
    admitted(l.admit('a')).failed();
    admitted(l.admit('a')).failed();
    c.advance(60_000);
    assert.deepEqual(admitted(l.admit('a')).failed(), { failures: 1, blocked: false });
  });

  test('sources are counted separately', () => {
    const c = clock();
    const l = new AuthFailureLimiter({ limit: 1, now: c.now });
    assert.equal(admitted(l.admit('a')).failed().blocked, true);
    assert.equal(l.admit('a').admitted, false);
    assert.equal(l.admit('b').admitted, true);
  });

  test('checks in flight count against the budget, so a burst cannot outrun the limit', () => {
    const c = clock();
    const l = new AuthFailureLimiter({ limit: 3, now: c.now });
    const tickets = [l.admit('a'), l.admit('a'), l.admit('a')].map(admitted);
    const fourth = l.admit('a');
    assert.ok(!fourth.admitted && fourth.reason === 'in_flight' && fourth.retryAfterMs === 1000);
    tickets[0]!.succeeded();
    const again = admitted(l.admit('a'));
    assert.deepEqual(
      [tickets[1]!.failed().blocked, tickets[2]!.failed().blocked, again.failed().blocked],
      [false, false, true],
    );
    assert.ok(!l.admit('a').admitted);
  });

  test('a success does not reset recorded failures, and an idle clean source is not kept', () => {
    const c = clock();
    const l = new AuthFailureLimiter({ limit: 2, now: c.now });
    admitted(l.admit('clean')).succeeded();
    admitted(l.admit('clean')).released();
    assert.equal(l.size, 0);
    admitted(l.admit('a')).failed();
    admitted(l.admit('a')).succeeded();
    assert.equal(admitted(l.admit('a')).failed().blocked, true);
    assert.equal(l.size, 1);
  });

  test('finishing a ticket twice is a bug and throws', () => {
    const l = new AuthFailureLimiter({ limit: 2 });
    const t = admitted(l.admit('a'));
    t.succeeded();
    assert.throws(() => t.failed(), /finished twice/);
  });

  test('memory is bounded: stale entries go first, then the source whose last failure is oldest', () => {
    const c = clock();
    const l = new AuthFailureLimiter({ limit: 5, maxSources: 3, now: c.now });
    admitted(l.admit('old')).failed();
    c.advance(61_000);
    admitted(l.admit('b')).failed();
    admitted(l.admit('c')).failed();
    admitted(l.admit('d')).failed(); // drops the stale "old" without counting an eviction
    assert.equal(l.size, 3);
    assert.equal(l.evicted, 0);
    admitted(l.admit('b')).failed(); // b becomes the most recent failure
    admitted(l.admit('e')).failed(); // evicts c, the oldest live one
    assert.equal(l.size, 3);
    assert.equal(l.evicted, 1);
    assert.equal(admitted(l.admit('b')).failed().failures, 3, 'b was kept');
    assert.equal(admitted(l.admit('c')).failed().failures, 1, 'c was forgotten');
    for (let i = 0; i < 1000; i++) admitted(l.admit(`x${i}`)).failed();
    assert.equal(l.size, 3);
  });

  test('a failure whose entry was evicted while the key was checked is counted afresh', () => {
    const c = clock();
    const l = new AuthFailureLimiter({ limit: 2, maxSources: 1, now: c.now });
    const slow = admitted(l.admit('a'));
    admitted(l.admit('b')).failed(); // evicts a while its check runs
    assert.deepEqual(slow.failed(), { failures: 1, blocked: false });
    assert.equal(l.size, 1);
  });

  test('rejects a limit below 1', () => {
    assert.throws(() => new AuthFailureLimiter({ limit: 0 }), /at least 1/);
    assert.throws(() => new AuthFailureLimiter({ limit: 1.5 }), /whole number/);
  });
});
