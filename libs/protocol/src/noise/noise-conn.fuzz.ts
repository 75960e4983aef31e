/**
 * Fuzz tier (fast-check) for NoiseConn's record reader. Byte streams of valid records, corrupted
 * records, truncated frames, oversized length headers, wrong frame types, zero-length records and
 * garbage, cut into arbitrary TCP chunks and ended with EOF. The reader must never throw into the
 * event loop: it delivers exactly the plaintext of the valid prefix, then either ends cleanly (all
 * valid) or fails once with a ProtocolError and destroys itself and its socket. Valid traffic
 * written through a NoiseConn and chunked arbitrarily round-trips exactly, and the client's
 * early-payload detection settles on arbitrary plaintext the way the format says.
 *
 * Runs: FUZZ_RUNS (per property, default 100), FUZZ_SEED / FUZZ_PATH to replay a failure.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fuzzParams, watchUncaught } from '@switchboard/testing';
import { ProtocolError } from '../errors.js';
import { generateMachineKeyPair } from '../keys.js';
import { memoryDuplexPair } from '../testing/memory-duplex.js';
import { MAX_EARLY_PAYLOAD_LEN, parseEarlyPayloadJson } from '../early-payload.js';
import { acceptInitiation, initiate, type NoiseSession } from './handshake.js';
import { MAX_FRAME_SIZE, MAX_PLAINTEXT_SIZE } from './messages.js';
import { NoiseConn } from './noise-conn.js';

function sessions(): { client: NoiseSession; server: NoiseSession } {
  const server = generateMachineKeyPair();
  const machine = generateMachineKeyPair();
  const hs = initiate(machine.private, server.public, 113);
  const acc = acceptInitiation(hs.initiation, server.private);
  return { client: hs.finish(acc.response), server: acc.session };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

// ---- generators ------------------------------------------------------------------------------

/** Plaintext of one record: mostly small, sometimes empty, sometimes the maximum. */
const plaintextArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 64, maxLength: 2048 }) },
  { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: MAX_PLAINTEXT_SIZE - 2, max: MAX_PLAINTEXT_SIZE })
      .map((n) => new Uint8Array(n).fill(n & 0xff)),
  },
);

type Item =
  | { kind: 'record'; plaintext: Uint8Array }
  | { kind: 'corrupt'; plaintext: Uint8Array; at: number; xor: number }
  | { kind: 'wrongType'; plaintext: Uint8Array; type: number }
  | { kind: 'truncated'; plaintext: Uint8Array; keep: number }
  | { kind: 'oversized'; length: number; tail: Uint8Array }
  | { kind: 'garbage'; bytes: Uint8Array };

const invalidItemArb: fc.Arbitrary<Item> = fc.oneof(
  fc.record({
    kind: fc.constant('corrupt' as const),
    plaintext: plaintextArb,
    at: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    kind: fc.constant('wrongType' as const),
    plaintext: plaintextArb,
    type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== 4),
  }),
  fc.record({ kind: fc.constant('truncated' as const), plaintext: plaintextArb, keep: fc.nat() }),
  fc.record({
    kind: fc.constant('oversized' as const),
    length: fc.integer({ min: MAX_FRAME_SIZE - 3 + 1, max: 0xffff }),
    tail: fc.uint8Array({ maxLength: 32 }),
  }),
  fc.record({
    kind: fc.constant('garbage' as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 256 }),
  }),
);

const validItemArb: fc.Arbitrary<Item> = fc.record({
  kind: fc.constant('record' as const),
  plaintext: plaintextArb,
});

/** Interleaved valid and invalid items; about one stream in three is entirely valid. */
const itemsArb: fc.Arbitrary<Item[]> = fc.oneof(
  fc.array(validItemArb, { maxLength: 12 }),
  fc.array(fc.oneof({ weight: 3, arbitrary: validItemArb }, { weight: 1, arbitrary: invalidItemArb }), {
    minLength: 1,
    maxLength: 12,
  }),
);

/** Where to cut the wire: random cut points, or fixed-size pieces (1-byte reads included). */
type Chunking = { mode: 'cuts'; cuts: number[] } | { mode: 'every'; size: number };
const chunkingArb: fc.Arbitrary<Chunking> = fc.oneof(
  fc.record({ mode: fc.constant('cuts' as const), cuts: fc.array(fc.nat(), { maxLength: 40 }) }),
  fc.record({
    mode: fc.constant('every' as const),
    size: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 9, max: 5000 })),
  }),
);

function cut(wire: Buffer, c: Chunking): Buffer[] {
  if (wire.length === 0) return [];
  const out: Buffer[] = [];
  if (c.mode === 'every') {
    for (let i = 0; i < wire.length; i += c.size) out.push(wire.subarray(i, i + c.size));
    return out;
  }
  const points = [...new Set(c.cuts.map((p) => p % (wire.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const p of [...points, wire.length]) {
    if (p > prev) out.push(wire.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  return out;
}

/** Encodes the items with the client's sending cipher; returns the wire and the expected outcome. */
function encode(items: Item[], tx: NoiseSession['tx']): { wire: Buffer; prefix: Buffer; valid: boolean } {
  const parts: Buffer[] = [];
  const prefix: Buffer[] = [];
  let valid = true;
  for (const it of items) {
    switch (it.kind) {
      case 'record': {
        parts.push(tx.sealRecord(it.plaintext));
        if (valid) prefix.push(Buffer.from(it.plaintext));
        break;
      }
      case 'corrupt': {
        const r = Buffer.from(tx.sealRecord(it.plaintext));
        const at = it.at % r.length;
        r[at] = r[at]! ^ it.xor;
        parts.push(r);
        valid = false;
        break;
      }
      case 'wrongType': {
        const r = Buffer.from(tx.sealRecord(it.plaintext));
        r[0] = it.type;
        parts.push(r);
        valid = false;
        break;
      }
      case 'truncated': {
        const r = tx.sealRecord(it.plaintext);
        parts.push(r.subarray(0, 1 + (it.keep % (r.length - 1))));
        valid = false;
        break;
      }
      case 'oversized': {
        const h = Buffer.from([4, it.length >> 8, it.length & 0xff]);
        parts.push(h, Buffer.from(it.tail));
        valid = false;
        break;
      }
      case 'garbage':
        parts.push(Buffer.from(it.bytes));
        valid = false;
        break;
    }
  }
  return { wire: Buffer.concat(parts), prefix: Buffer.concat(prefix), valid };
}

interface Observed {
  data: Buffer;
  errors: unknown[];
  ended: boolean;
  dataAfterError: boolean;
  timedOut: boolean;
}

/** Waits for 'close' (or a timeout: a reader that neither ends nor fails after EOF is stuck). */
function observe(conn: NoiseConn, pauses: boolean[], timeoutMs = 3000): Promise<Observed> {
  const parts: Buffer[] = [];
  const o: Observed = {
    data: Buffer.alloc(0),
    errors: [],
    ended: false,
    dataAfterError: false,
    timedOut: false,
  };
  let n = 0;
  conn.on('data', (d: Buffer) => {
    if (o.errors.length > 0) o.dataAfterError = true;
    parts.push(d);
    // Pause now and then so backpressure reaches the socket.
    if (pauses.length > 0 && pauses[n++ % pauses.length]) {
      conn.pause();
      setImmediate(() => conn.resume());
    }
  });
  conn.on('error', (e) => void o.errors.push(e));
  conn.on('end', () => (o.ended = true));
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      o.timedOut = true;
      finish();
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(t);
      o.data = Buffer.concat(parts);
      resolve(o);
    };
    conn.once('close', finish);
  });
}

function describeBytes(b: Buffer): string {
  return `${b.length} bytes ${b.subarray(0, 24).toString('hex')}${b.length > 24 ? '…' : ''}`;
}

void describe('fuzz: NoiseConn record reader', () => {
  void test('arbitrary record streams in arbitrary chunks: valid prefix delivered, then end or one ProtocolError', async () => {
    await fc.assert(
      fc.asyncProperty(
        itemsArb,
        chunkingArb,
        fc.boolean(),
        fc.constantFrom<number | undefined>(undefined, 1, 64, 4096),
        fc.array(fc.boolean(), { maxLength: 8 }),
        async (items, chunking, firstAsHead, highWaterMark, pauses) => {
          const s = sessions();
          const { wire, prefix, valid } = encode(items, s.client.tx);
          const chunks = cut(wire, chunking);
          const [, b] = memoryDuplexPair();
          const uncaught = watchUncaught();
          try {
            const head = firstAsHead ? chunks.shift() : undefined;
            const conn = new NoiseConn({ socket: b, session: s.server, head, highWaterMark });
            const seen = observe(conn, pauses);
            for (const [i, c] of chunks.entries()) {
              if (b.destroyed) break;
              b.push(c);
              if (i % 3 === 0) await tick();
            }
            if (!b.destroyed) b.push(null);
            const o = await seen;
            assert.equal(o.timedOut, false, 'the reader neither ended nor failed after EOF');
            assert.deepEqual(uncaught.errors, [], 'nothing thrown into the event loop');
            // Never anything beyond the valid prefix. A reader that keeps up gets all of it; bytes
            // still buffered in the NoiseConn (head before any reader, a paused reader) are dropped
            // by destroy(err), like any Node stream.
            const keptUp = !firstAsHead && !pauses.includes(true);
            assert.ok(
              o.data.length <= prefix.length && prefix.subarray(0, o.data.length).equals(o.data),
              `delivered ${describeBytes(o.data)}, not a prefix of the valid prefix ${describeBytes(prefix)}`,
            );
            if (keptUp || valid)
              assert.ok(
                o.data.equals(prefix),
                `delivered ${describeBytes(o.data)}, expected the valid prefix ${describeBytes(prefix)}`,
              );
            if (valid) {
              assert.deepEqual(o.errors, []);
              assert.ok(o.ended, 'a valid stream ends cleanly');
            } else {
              assert.equal(o.errors.length, 1, 'exactly one error');
              const err = o.errors[0];
              assert.ok(err instanceof ProtocolError, `a ProtocolError, got ${String(err)}`);
              assert.ok(
                ['noise_frame_invalid', 'noise_decrypt_failed'].includes(err.code),
                `unexpected code ${err.code}`,
              );
              assert.equal(o.ended, false);
              assert.equal(o.dataAfterError, false);
              assert.ok(conn.destroyed, 'the NoiseConn is destroyed');
              assert.ok(b.destroyed, 'the socket is destroyed');
            }
          } finally {
            uncaught.stop();
            b.destroy();
          }
        },
      ),
      fuzzParams(),
    );
  });

  void test('arbitrary bytes after the handshake fail with a ProtocolError, never an exception', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 9000 }),
        chunkingArb,
        async (bytes, chunking) => {
          const s = sessions();
          const [, b] = memoryDuplexPair();
          const uncaught = watchUncaught();
          try {
            const conn = new NoiseConn({ socket: b, session: s.server });
            const seen = observe(conn, []);
            for (const c of cut(Buffer.from(bytes), chunking)) if (!b.destroyed) b.push(c);
            if (!b.destroyed) b.push(null);
            const o = await seen;
            assert.equal(o.timedOut, false);
            assert.deepEqual(uncaught.errors, []);
            assert.equal(o.data.length, 0, 'random bytes never authenticate');
            assert.equal(o.errors.length, 1);
            assert.ok(o.errors[0] instanceof ProtocolError, `a ProtocolError, got ${String(o.errors[0])}`);
            assert.ok(b.destroyed);
          } finally {
            uncaught.stop();
            b.destroy();
          }
        },
      ),
      fuzzParams(),
    );
  });

  void test('writes of any size, corked or not, with empty records, round-trip over any chunking', async () => {
    type Op =
      { kind: 'write'; data: Uint8Array } | { kind: 'empty' } | { kind: 'corked'; data: Uint8Array[] };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('write' as const),
          data: fc.oneof(plaintextArb, fc.uint8Array({ minLength: 4000, maxLength: 20_000 })),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('empty' as const) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('corked' as const),
          data: fc.array(plaintextArb, { maxLength: 8 }),
        }),
      },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { maxLength: 15 }),
        fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 17, max: 9000 })),
        fc.constantFrom<number | undefined>(undefined, 1, 100, 4096),
        fc.array(fc.boolean(), { maxLength: 8 }),
        async (ops, chunkSize, highWaterMark, pauses) => {
          const s = sessions();
          const [a, b] = memoryDuplexPair({ chunkSize });
          const uncaught = watchUncaught();
          try {
            const client = new NoiseConn({ socket: a, session: s.client, highWaterMark });
            const server = new NoiseConn({ socket: b, session: s.server, highWaterMark });
            const seen = observe(server, pauses, 10_000);
            const clientErrors: unknown[] = [];
            client.on('error', (e) => void clientErrors.push(e));
            client.resume(); // reads the (empty) other direction, so the client can end too
            const clientClosed = new Promise((r) => client.once('close', r));
            const expected: Buffer[] = [];
            for (const op of ops) {
              if (op.kind === 'write') {
                client.write(op.data);
                expected.push(Buffer.from(op.data));
              } else if (op.kind === 'empty') {
                client.writeEmptyRecord();
              } else {
                client.cork();
                for (const d of op.data) {
                  client.write(d);
                  expected.push(Buffer.from(d));
                }
                client.uncork();
              }
            }
            client.end();
            const o = await seen;
            await Promise.race([clientClosed, new Promise((r) => setTimeout(r, 3000))]);
            const want = Buffer.concat(expected);
            assert.ok(client.destroyed, 'the client closes once both directions ended');
            assert.deepEqual(clientErrors, []);
            assert.equal(o.timedOut, false, 'the stream did not finish');
            assert.deepEqual(uncaught.errors, []);
            assert.deepEqual(o.errors, []);
            assert.ok(o.ended);
            assert.ok(o.data.equals(want), `got ${describeBytes(o.data)}, want ${describeBytes(want)}`);
          } finally {
            uncaught.stop();
            a.destroy();
            b.destroy();
          }
        },
      ),
      fuzzParams(0.5),
    );
  });

  void test('client early-payload detection on arbitrary plaintext: payload, null or one ProtocolError', async () => {
    // The plaintext the server sends: an early-payload header (magic + length) with an arbitrary
    // body, a near-miss of the magic, or anything; split into records and TCP chunks.
    const magic = [0xff, 0xff, 0xff, 0x54, 0x53];
    const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    const jsonBody = fc.oneof(
      fc.json({ maxDepth: 3 }).map((j) => Buffer.from(j)),
      fc.constant(Buffer.from(`{"nodeKeyChallenge":"chalpub:${'ab'.repeat(32)}"}`)),
      fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
    );
    const plaintextArb2: fc.Arbitrary<Buffer> = fc.oneof(
      fc
        .tuple(jsonBody, fc.integer({ min: -3, max: 3 }), fc.uint8Array({ maxLength: 100 }))
        .map(([body, lenDelta, rest]) =>
          Buffer.concat([
            Buffer.from([...magic, ...u32(Math.max(0, body.length + lenDelta))]),
            body,
            Buffer.from(rest),
          ]),
        ),
      fc
        .tuple(
          fc.integer({ min: MAX_EARLY_PAYLOAD_LEN - 1, max: 0xffffffff }),
          fc.uint8Array({ maxLength: 20 }),
        )
        .map(([len, rest]) => Buffer.concat([Buffer.from([...magic, ...u32(len)]), Buffer.from(rest)])),
      fc.tuple(fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 50 })).map(([i, rest]) => {
        const m = Buffer.from(magic);
        m[i] = m[i]! ^ 1;
        return Buffer.concat([m, Buffer.from(rest)]);
      }),
      fc.uint8Array({ maxLength: 60 }).map((u) => Buffer.from(u)),
    );
    await fc.assert(
      fc.asyncProperty(
        plaintextArb2,
        fc.array(fc.nat(), { maxLength: 6 }),
        chunkingArb,
        async (plaintext, recordCuts, chunking) => {
          // The model of what the client must make of it.
          let want: { early: 'none' | 'payload' | 'error'; rest: Buffer };
          const isMagic = plaintext.length >= 9 && magic.every((m, i) => plaintext[i] === m);
          if (!isMagic) want = { early: 'none', rest: plaintext };
          else {
            const len = plaintext.readUInt32BE(5);
            if (len > MAX_EARLY_PAYLOAD_LEN || plaintext.length < 9 + len)
              want = { early: 'error', rest: Buffer.alloc(0) };
            else {
              let ok = true;
              try {
                parseEarlyPayloadJson(plaintext.subarray(9, 9 + len));
              } catch {
                ok = false;
              }
              want = ok
                ? { early: 'payload', rest: plaintext.subarray(9 + len) }
                : { early: 'error', rest: Buffer.alloc(0) };
            }
          }
          const s = sessions();
          const records: Buffer[] = [];
          const points = [...new Set(recordCuts.map((p) => p % (plaintext.length + 1)))].sort(
            (x, y) => x - y,
          );
          let prev = 0;
          for (const p of [...points, plaintext.length]) {
            records.push(s.server.tx.sealRecord(plaintext.subarray(prev, Math.max(prev, p))));
            prev = Math.max(prev, p);
          }
          const [, b] = memoryDuplexPair();
          const uncaught = watchUncaught();
          try {
            const conn = new NoiseConn({ socket: b, session: s.client, detectEarlyPayload: true });
            const early = conn.earlyPayload.then(
              (v) => ({ ok: true as const, v }),
              (e: unknown) => ({ ok: false as const, e }),
            );
            const seen = observe(conn, []);
            for (const c of cut(Buffer.concat(records), chunking)) if (!b.destroyed) b.push(c);
            if (!b.destroyed) b.push(null);
            const o = await seen;
            const e = await early;
            assert.equal(o.timedOut, false);
            assert.deepEqual(uncaught.errors, []);
            if (want.early === 'error') {
              assert.equal(e.ok, false, 'earlyPayload rejects');
              assert.equal(o.errors.length, 1);
              assert.ok(o.errors[0] instanceof ProtocolError, `a ProtocolError, got ${String(o.errors[0])}`);
              assert.equal(o.errors[0].code, 'early_payload_invalid');
              assert.equal(o.data.length, 0);
            } else {
              assert.ok(e.ok, `earlyPayload resolves, got ${e.ok ? '' : String(e.e)}`);
              assert.equal(e.v === null, want.early === 'none');
              assert.deepEqual(o.errors, []);
              assert.ok(
                o.data.equals(want.rest),
                `got ${describeBytes(o.data)}, want ${describeBytes(want.rest)}`,
              );
            }
          } finally {
            uncaught.stop();
            b.destroy();
          }
        },
      ),
      fuzzParams(),
    );
  });
});
