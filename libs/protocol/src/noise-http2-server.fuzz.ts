/**
 * Fuzz tier (fast-check) for HTTP/2 over Noise on the server side. After a real Noise handshake
 * (in-memory pair), one to three clients at once send raw bytes through their NoiseConn: frame
 * sequences with valid 9-byte headers and random types, flags, stream ids and payloads, mutated
 * client prefaces, mutated well-formed request sequences, random bytes. Then they half-close,
 * drop or wait, all at the same moment. Properties: nothing is thrown into the event loop; what
 * the server sends is a well-formed frame sequence that starts with SETTINGS; well-formed
 * requests are all answered; every session ends once its client is gone (no leak); and afterwards
 * a fresh, well-behaved client gets an answer from the same NoiseHttp2Server instance.
 *
 * Runs: FUZZ_RUNS (per property, scaled down here: each run is several connections), FUZZ_SEED /
 * FUZZ_PATH to replay a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { ServerHttp2Stream } from 'node:http2';
import fc from 'fast-check';
import { configureLogging } from '@switchboard/common';
import { fuzzParams, watchUncaught } from '@switchboard/testing';
import { memoryDuplexPair } from './testing/memory-duplex.js';
import { generateMachineKeyPair } from './keys.js';
import { acceptInitiation, initiate } from './noise/handshake.js';
import { NoiseConn } from './noise/noise-conn.js';
import {
  NoiseHttp2Server,
  readRequestBody,
  respondJson,
  respondText,
  writeChunk,
  type NoisePeer,
} from './noise-http2-server.js';
import { ControlClient } from './client/control-client.js';
import { openControlSession } from './client/dial.js';
import { initZstd } from './zstd.js';

configureLogging({ level: 'silent' });

/** A run that hangs (a session that never closes, an answer that never comes) fails after this. */
const RUN_TIMEOUT_MS = 8000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Fails with `what` when `p` has not settled within `ms` (a ref'd timer: the loop stays alive). */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(
      () => reject(new assert.AssertionError({ message: `${what}: nothing within ${ms} ms` })),
      ms,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(5);
  }
  return true;
}

// ---- the server under test ---------------------------------------------------------------------

const serverKey = generateMachineKeyPair();

async function handler(
  stream: ServerHttp2Stream,
  headers: Record<string, string | string[] | undefined>,
  _peer: NoisePeer,
): Promise<void> {
  switch (String(headers[':path'])) {
    case '/echo': {
      const body = await readRequestBody(stream, 64 * 1024, headers);
      respondJson(stream, 200, { len: body.length, sha: createHash('sha256').update(body).digest('hex') });
      return;
    }
    case '/big': {
      // A response larger than the stream window, so the server is mid-write when a client drops.
      stream.respond({ ':status': 200 });
      for (let i = 0; i < 16; i++) await writeChunk(stream, Buffer.alloc(16 * 1024, i));
      stream.end();
      return;
    }
    case '/throw':
      throw new Error('handler bug');
    default:
      respondText(stream, 404, 'no such endpoint');
  }
}

const h2 = new NoiseHttp2Server({ handler });

before(async () => {
  await initZstd();
});
after(async () => {
  await h2.close(1000);
});

// ---- HTTP/2 frames by hand ---------------------------------------------------------------------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const T = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;
const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK string literal, no Huffman (strings here are shorter than 127 bytes). */
function hpackString(s: string): Buffer {
  const b = Buffer.from(s, 'utf8').subarray(0, 126);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/** A request header block: static-table :method/:scheme, literal :path and :authority. */
function requestBlock(method: 'GET' | 'POST', path: string): Buffer {
  return Buffer.concat([
    Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x87]), // :method, :scheme https
    Buffer.from([0x04]), // literal without indexing, name = :path (static index 4)
    hpackString(path),
    Buffer.from([0x01]), // :authority
    hpackString('fuzz'),
  ]);
}

interface Request {
  streamId: number;
  method: 'GET' | 'POST';
  path: string;
  body: Uint8Array;
}

const requestArb = (streamId: number): fc.Arbitrary<Request> =>
  fc.record({
    streamId: fc.constant(streamId),
    method: fc.constantFrom('GET' as const, 'POST' as const),
    path: fc.constantFrom('/echo', '/throw', '/nope', '/', '/big'),
    body: fc.uint8Array({ maxLength: 300 }),
  });

function encodeRequest(r: Request): Buffer {
  const block = requestBlock(r.method, r.path);
  if (r.body.length === 0) return frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, r.streamId, block);
  return Buffer.concat([
    frame(T.HEADERS, F.END_HEADERS, r.streamId, block),
    frame(T.DATA, F.END_STREAM, r.streamId, r.body),
  ]);
}

/** Frames a client may send at any point without breaking the connection. */
const harmlessFrameArb: fc.Arbitrary<{ bytes: Buffer; pings: number }> = fc.oneof(
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((p) => ({ bytes: frame(T.PING, 0, 0, p), pings: 1 })),
  fc.integer({ min: 1, max: 1 << 20 }).map((inc) => ({
    bytes: frame(
      T.WINDOW_UPDATE,
      0,
      0,
      Buffer.from([inc >>> 24, (inc >>> 16) & 0xff, (inc >>> 8) & 0xff, inc & 0xff]),
    ),
    pings: 0,
  })),
);

/** A well-formed client session: preface, SETTINGS, requests on 1, 3, 5, … and harmless frames. */
interface WellFormed {
  bytes: Buffer;
  streams: number[];
  pings: number;
}
const wellFormedArb: fc.Arbitrary<WellFormed> = fc
  .integer({ min: 0, max: 6 })
  .chain((n) =>
    fc.tuple(
      fc.tuple(...Array.from({ length: n }, (_, i) => requestArb(2 * i + 1))),
      fc.array(fc.tuple(fc.nat({ max: n }), harmlessFrameArb), { maxLength: 4 }),
    ),
  )
  .map(([reqs, extras]) => {
    const parts: Buffer[] = [PREFACE, frame(T.SETTINGS, 0, 0, Buffer.alloc(0))];
    let pings = 0;
    for (let i = 0; i <= reqs.length; i++) {
      for (const [at, x] of extras)
        if (at === i) {
          parts.push(x.bytes);
          pings += x.pings;
        }
      const r = reqs[i];
      if (r) parts.push(encodeRequest(r));
    }
    return { bytes: Buffer.concat(parts), streams: reqs.map((r) => r.streamId), pings };
  });

const streamIdArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(0, 1, 3, 5, 2, 4) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x7fffffff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) }, // reserved bit set too
);

/** Payloads that look like their frame type: settings entries, window increments, header blocks. */
const plausiblePayloadArb = (type: number): fc.Arbitrary<Uint8Array> => {
  switch (type) {
    case T.SETTINGS:
      return fc
        .array(fc.tuple(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffffffff })), {
          maxLength: 6,
        })
        .map((kv) => {
          const b = Buffer.alloc(kv.length * 6);
          kv.forEach(([k, v], i) => {
            b.writeUInt16BE(k, i * 6);
            b.writeUInt32BE(v, i * 6 + 2);
          });
          return b;
        });
    case T.WINDOW_UPDATE:
    case T.RST_STREAM:
      return fc
        .integer({ min: 0, max: 0xffffffff })
        .map((v) => Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]));
    case T.HEADERS:
    case T.CONTINUATION:
    case T.PUSH_PROMISE:
      return fc.oneof(
        fc.constantFrom('/echo', '/nope').map((p) => requestBlock('GET', p)),
        fc.constantFrom('/echo', '/nope').map((p) => requestBlock('POST', p).subarray(0, 5)),
        fc.uint8Array({ maxLength: 40 }),
      );
    case T.PING:
      return fc.uint8Array({ minLength: 7, maxLength: 9 });
    case T.PRIORITY:
      return fc.uint8Array({ minLength: 4, maxLength: 6 });
    case T.GOAWAY:
      return fc.uint8Array({ minLength: 7, maxLength: 24 });
    default:
      return fc.uint8Array({ maxLength: 64 });
  }
};

/** One frame with a valid 9-byte header: random type, flags and stream id; payload to match. */
const randomFrameArb: fc.Arbitrary<Buffer> = fc
  .oneof(
    { weight: 5, arbitrary: fc.integer({ min: 0, max: 9 }) },
    { weight: 1, arbitrary: fc.integer({ min: 10, max: 255 }) },
  )
  .chain((type) =>
    fc.tuple(
      fc.constant(type),
      fc.oneof(
        fc.constantFrom(0, F.END_STREAM, F.END_HEADERS, F.END_HEADERS | F.END_STREAM, F.PADDED, F.PRIORITY),
        fc.integer({ min: 0, max: 255 }),
      ),
      streamIdArb,
      fc.oneof(
        { weight: 3, arbitrary: plausiblePayloadArb(type) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
      ),
    ),
  )
  .map(([type, flags, sid, payload]) => frame(type, flags, sid, payload));

/** A byte edit: flip, delete a range, insert random bytes, or insert a random frame. */
type Edit =
  | { op: 'flip'; at: number; xor: number }
  | { op: 'delete'; at: number; len: number }
  | { op: 'insert'; at: number; bytes: Uint8Array };
const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 12 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 16 }), randomFrameArb),
  }),
);

function applyEdits(bytes: Buffer, edits: Edit[]): Buffer {
  let b = Buffer.from(bytes);
  for (const e of edits) {
    const at = e.at % (b.length + 1);
    if (e.op === 'flip') {
      if (b.length === 0) continue;
      const i = at % b.length;
      b[i] = b[i]! ^ e.xor;
    } else if (e.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.len)]);
    else b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at)]);
  }
  return b;
}

/** What one fuzzing client sends. */
const clientBytesArb: fc.Arbitrary<Buffer> = fc.oneof(
  // a mutated client preface, then random frames
  fc
    .tuple(fc.array(editArb, { minLength: 1, maxLength: 3 }), fc.array(randomFrameArb, { maxLength: 6 }))
    .map(([edits, frames]) => Buffer.concat([applyEdits(PREFACE, edits), ...frames])),
  // a valid preface and SETTINGS, then random frames
  fc
    .array(randomFrameArb, { minLength: 1, maxLength: 12 })
    .map((frames) => Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0, Buffer.alloc(0)), ...frames])),
  // a mutated well-formed session
  fc
    .tuple(wellFormedArb, fc.array(editArb, { minLength: 1, maxLength: 4 }))
    .map(([w, edits]) => applyEdits(w.bytes, edits)),
  // random frames without a preface, and plain random bytes
  fc.array(randomFrameArb, { maxLength: 6 }).map((f) => Buffer.concat(f)),
  fc.uint8Array({ minLength: 1, maxLength: 2000 }).map((u) => Buffer.from(u)),
);

/** How a client's bytes are handed to its NoiseConn (each write becomes one or more records). */
const writeCutsArb = fc.array(fc.nat(), { maxLength: 8 });

function cutAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    if (p > prev) out.push(bytes.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  return out;
}

// ---- one raw client ----------------------------------------------------------------------------

interface RawClient {
  conn: NoiseConn;
  /** What the server sent (decrypted). */
  received: () => Buffer;
  closed: () => boolean;
}

function rawClient(chunkSize: number | undefined): RawClient {
  const machine = generateMachineKeyPair();
  const hs = initiate(machine.private, serverKey.public, 131);
  const acc = acceptInitiation(hs.initiation, serverKey.private);
  const [a, b] = memoryDuplexPair({ chunkSize });
  h2.serve(new NoiseConn({ socket: b, session: acc.session }));
  const conn = new NoiseConn({ socket: a, session: hs.finish(acc.response) });
  const parts: Buffer[] = [];
  let closed = false;
  conn.on('data', (d: Buffer) => parts.push(d));
  conn.on('error', () => undefined); // the server may reset us; that is fine
  conn.on('close', () => (closed = true));
  return { conn, received: () => Buffer.concat(parts), closed: () => closed };
}

interface ServerFrame {
  type: number;
  flags: number;
  streamId: number;
  length: number;
}

/** Splits what the server sent into frames; fails on anything that is not a whole, known frame. */
function serverFrames(bytes: Buffer, complete: boolean): ServerFrame[] {
  const out: ServerFrame[] = [];
  let off = 0;
  while (off + 9 <= bytes.length) {
    const length = bytes.readUIntBE(off, 3);
    const type = bytes[off + 3]!;
    if (off + 9 + length > bytes.length) break;
    assert.ok(type <= T.CONTINUATION, `server sent a frame of unknown type ${type}`);
    out.push({ type, flags: bytes[off + 4]!, streamId: bytes.readUInt32BE(off + 5) & 0x7fffffff, length });
    off += 9 + length;
  }
  if (complete)
    assert.equal(off, bytes.length, `server output ends inside a frame (${bytes.length - off} bytes left)`);
  if (out.length > 0) {
    assert.equal(out[0]!.type, T.SETTINGS, 'the server preface is a SETTINGS frame');
    assert.equal(out[0]!.streamId, 0);
    assert.equal(out[0]!.length % 6, 0);
  }
  return out;
}

/** A well-behaved client on the same server: must be answered. */
async function freshClientAnswers(): Promise<void> {
  const machine = generateMachineKeyPair();
  const hs = initiate(machine.private, serverKey.public, 131);
  const acc = acceptInitiation(hs.initiation, serverKey.private);
  const [a, b] = memoryDuplexPair({ chunkSize: 1500 });
  h2.serve(new NoiseConn({ socket: b, session: acc.session }));
  const clientConn = new NoiseConn({ socket: a, session: hs.finish(acc.response), detectEarlyPayload: true });
  const c = ControlClient.fromConnection(
    await within(4000, 'a fresh client starts HTTP/2', openControlSession(clientConn, { timeoutMs: 3000 })),
    machine.public,
    131,
  );
  try {
    const body = Buffer.from('still serving');
    const r = await within(3000, 'a fresh client is answered', c.request('POST', '/echo', body));
    assert.equal(r.status, 200, 'a fresh client is answered');
    assert.equal((JSON.parse(r.body.toString()) as { len: number }).len, body.length);
  } finally {
    await within(4000, 'a fresh client closes its connection', c.close());
  }
}

type Ending = 'end' | 'destroy' | 'wait';

/** Drives the given raw clients, then checks the server survived, leaked nothing and still answers. */
async function exercise(
  inputs: Array<{ bytes: Buffer; cuts: number[] }>,
  chunkSize: number | undefined,
  ending: Ending,
  onQuiet?: (clients: RawClient[]) => Promise<void>,
  opts: { quiet: boolean } = { quiet: true },
): Promise<void> {
  const baseline = h2.sessionCount;
  const uncaught = watchUncaught();
  const clients: RawClient[] = [];
  try {
    for (const input of inputs) {
      const c = rawClient(chunkSize);
      clients.push(c);
      for (const piece of cutAt(input.bytes, input.cuts)) if (!c.conn.destroyed) c.conn.write(piece);
    }
    // Let the server react: until every connection closed or the server has been quiet a moment.
    let lastLen = -1;
    for (let i = 0; opts.quiet && i < 40; i++) {
      await sleep(5);
      const len = clients.reduce((n, c) => n + c.received().length, 0);
      if (clients.every((c) => c.closed()) || len === lastLen) break;
      lastLen = len;
    }
    if (onQuiet) await onQuiet(clients);
    // Every client goes at the same moment.
    for (const c of clients)
      if (ending === 'end') c.conn.end();
      else if (ending === 'destroy') c.conn.destroy();
    if (ending === 'wait') {
      await sleep(20);
      for (const c of clients) c.conn.destroy();
    }
    const drained = await until(() => h2.sessionCount === baseline, 3000);
    assert.ok(drained, `sessions left open after their clients left: ${h2.sessionCount - baseline}`);
    for (const c of clients) serverFrames(c.received(), c.closed() && ending !== 'destroy');
    assert.deepEqual(uncaught.errors, [], 'nothing thrown into the event loop');
    await freshClientAnswers();
    assert.ok(
      await until(() => h2.sessionCount === baseline, 3000),
      `the fresh client's session is left open after it closed (${h2.sessionCount - baseline})`,
    );
    assert.deepEqual(uncaught.errors, [], 'nothing thrown into the event loop');
  } finally {
    uncaught.stop();
    for (const c of clients) c.conn.destroy();
  }
}

const chunkSizeArb = fc.constantFrom<number | undefined>(undefined, 1, 7, 1500);
const endingArb = fc.constantFrom<Ending>('end', 'destroy', 'wait');

void describe('fuzz: HTTP/2 over Noise server', () => {
  void test('many clients dropping at once while the server is writing leave it serving', async () => {
    const sessionArb = fc
      .tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom('/big', '/echo'))
      .map(([n, path]) =>
        Buffer.concat([
          PREFACE,
          frame(T.SETTINGS, 0, 0, Buffer.alloc(0)),
          ...Array.from({ length: n }, (_, i) =>
            encodeRequest({ streamId: 2 * i + 1, method: 'GET', path, body: new Uint8Array(0) }),
          ),
        ]),
      );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ bytes: sessionArb, cuts: writeCutsArb }), { minLength: 2, maxLength: 12 }),
        fc.constantFrom<number | undefined>(undefined, 1500),
        fc.constantFrom<Ending>('end', 'destroy'),
        fc.integer({ min: 0, max: 15 }),
        (inputs, chunkSize, ending, delayMs) =>
          exercise(inputs, chunkSize, ending, () => sleep(delayMs), { quiet: false }),
      ),
      fuzzParams(0.2, RUN_TIMEOUT_MS),
    );
  });

  void test('arbitrary and mutated frame sequences never crash the server, leak a session or stop it serving', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ bytes: clientBytesArb, cuts: writeCutsArb }), { minLength: 1, maxLength: 3 }),
        chunkSizeArb,
        endingArb,
        (inputs, chunkSize, ending) => exercise(inputs, chunkSize, ending),
      ),
      fuzzParams(0.3, RUN_TIMEOUT_MS),
    );
  });

  void test('well-formed sessions written in arbitrary pieces get every request answered and every PING acked', async () => {
    await fc.assert(
      fc.asyncProperty(wellFormedArb, writeCutsArb, chunkSizeArb, endingArb, (w, cuts, chunkSize, ending) =>
        exercise([{ bytes: w.bytes, cuts }], chunkSize, ending, async ([c]) => {
          const answered = (): ServerFrame[] =>
            serverFrames(c!.received(), false).filter(
              (f) => f.type === T.HEADERS || (f.type === T.PING && f.flags & F.ACK),
            );
          const done = (): boolean => {
            const f = answered();
            return (
              w.streams.every((s) => f.some((x) => x.type === T.HEADERS && x.streamId === s)) &&
              f.filter((x) => x.type === T.PING).length === w.pings
            );
          };
          assert.ok(
            await until(done, 3000),
            `not every request answered: ${JSON.stringify(answered())}, want streams ${w.streams.join(',')} and ${w.pings} PING acks`,
          );
          assert.equal(c!.closed(), false, 'a well-formed session stays open');
        }),
      ),
      fuzzParams(0.3, RUN_TIMEOUT_MS),
    );
  });

  // Regressions found by this tier (counterexamples, shrunk by fast-check).
  void test('regression: a client that sends one byte and drops does not crash the server (JSStreamSocket doWrite assertion)', async () => {
    // Before the fix: nghttp2 wrote an RST_STREAM/GOAWAY after the readable side ended and
    // JSStreamSocket.doWrite threw ERR_INTERNAL_ASSERTION as an uncaught exception.
    for (const chunkSize of [1500, undefined])
      await exercise([{ bytes: Buffer.from([0]), cuts: [] }], chunkSize, 'destroy');
  });

  void test('regression: two clients fetching a large answer and half-closing at once leave the server serving', async () => {
    const session = Buffer.concat([
      PREFACE,
      frame(T.SETTINGS, 0, 0, Buffer.alloc(0)),
      encodeRequest({ streamId: 1, method: 'GET', path: '/big', body: new Uint8Array(0) }),
    ]);
    await within(
      RUN_TIMEOUT_MS,
      'the run',
      exercise(
        [
          { bytes: session, cuts: [] },
          { bytes: session, cuts: [] },
        ],
        undefined,
        'end',
        () => sleep(0),
        { quiet: false },
      ),
    );
  });

  void test('regression: a well-behaved client that closes leaves no session behind', async () => {
    const baseline = h2.sessionCount;
    await within(RUN_TIMEOUT_MS, 'the run', freshClientAnswers());
    assert.ok(await until(() => h2.sessionCount === baseline, 3000), 'the session closes with its client');
  });
});
