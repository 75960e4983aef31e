/**
 * Fuzz tier (fast-check) for the DERP decoders a relay runs on untrusted bytes: the frame reader
 * with arbitrary chunking, the client-frame decoder, ClientInfo opening and the STUN parser.
 * Property: they return a value or throw DerpFrameError (or, for STUN, return null); never any
 * other error, and the reader never holds more than one frame's bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fuzzParams } from '@switchboard/testing';
import {
  BoxKey,
  DerpFrameError,
  FRAME_HEADER_LEN,
  FrameReader,
  bindingRequest,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientInfo,
  openClientInfo,
  parseBindingRequest,
  sealWithShared,
} from './index.js';

const server = new BoxKey(Buffer.alloc(32, 3));
const client = new BoxKey(Buffer.alloc(32, 4));

function onlyFrameErrors(f: () => void): void {
  try {
    f();
  } catch (err) {
    if (!(err instanceof DerpFrameError)) assert.fail(`expected DerpFrameError, got ${String(err)}`);
  }
}

const frameType = fc.oneof(
  fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0a, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15),
  fc.nat(255),
);

test('client and server frame decoders: a value or DerpFrameError', () => {
  fc.assert(
    fc.property(frameType, fc.uint8Array({ maxLength: 200 }), (t, p) => {
      onlyFrameErrors(() => decodeClientFrame(t, Buffer.from(p)));
      onlyFrameErrors(() => decodeServerFrame(t, Buffer.from(p)));
    }),
    fuzzParams(2),
  );
});

test('FrameReader: any bytes in any chunking; frames are bounded and the buffer never exceeds one', () => {
  const max = 300;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(frameType, fc.uint8Array({ maxLength: 80 })), { maxLength: 8 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.array(fc.nat(400), { maxLength: 6 }),
      (frames, noise, cuts) => {
        const parts = frames.map(([t, p]) => {
          const h = Buffer.alloc(5);
          h[0] = t;
          h.writeUInt32BE(p.length, 1);
          return Buffer.concat([h, p]);
        });
        const all = Buffer.concat([...parts, noise]);
        const got: number[] = [];
        const r = new FrameReader(max, (_t, p) => {
          assert.ok(p.length <= max);
          got.push(p.length);
        });
        let off = 0;
        onlyFrameErrors(() => {
          for (const c of [...cuts.sort((a, b) => a - b), all.length]) {
            const end = Math.min(all.length, Math.max(off, c));
            r.push(all.subarray(off, end));
            off = end;
            assert.ok(r.pending <= FRAME_HEADER_LEN + max);
          }
        });
        assert.deepEqual(got.slice(0, frames.length), frames.map(([, p]) => p.length).slice(0, got.length));
      },
    ),
    fuzzParams(2),
  );
});

test('openClientInfo: arbitrary and mutated ClientInfo payloads open or fail with DerpFrameError', () => {
  const valid = encodeClientInfo(client, server.publicKey, { canAckPings: true }).subarray(5);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        fc.tuple(fc.nat(valid.length - 1), fc.nat(255)).map(([i, v]) => {
          const b = Buffer.from(valid);
          b[i] = v;
          return b;
        }),
        fc.nat(valid.length).map((n) => valid.subarray(0, n)),
        fc
          .oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 3 }))
          .map((s) => Buffer.concat([client.publicKey, sealJson(s)])),
      ),
      (payload) => onlyFrameErrors(() => openClientInfo(server, payload)),
    ),
    fuzzParams(1),
  );
});

/** Seals arbitrary text the way ClientInfo JSON is sealed, so the JSON parser sees it. */
function sealJson(text: string): Buffer {
  const shared = client.sharedKey(server.publicKey);
  assert.ok(shared);
  return sealWithShared(shared, Buffer.from(text));
}

test('STUN parser: arbitrary and mutated datagrams give a transaction id or null', () => {
  const req = bindingRequest(Buffer.alloc(12, 5));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b)),
        fc.tuple(fc.nat(req.length - 1), fc.nat(255)).map(([i, v]) => {
          const b = Buffer.from(req);
          b[i] = v;
          return b;
        }),
      ),
      (msg) => {
        const r = parseBindingRequest(msg);
        assert.ok(r === null || r.length === 12);
      },
    ),
    fuzzParams(2),
  );
});
