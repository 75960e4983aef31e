/** zstd backends and map framing: round trips, frames compressed by Go, limits and streaming decode. */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import vectors from '../testdata/primitive-vectors.json' with { type: 'json' };
import {
  DEFAULT_ZSTD_LEVEL,
  availableZstdBackends,
  firstFrameContentSize,
  initZstd,
  zstdBackendName,
  zstdCompress,
  zstdDecompress,
  zstdRawFrame,
  type ZstdBackend,
} from './zstd.js';
import {
  KEEP_ALIVE_FRAME,
  KEEP_ALIVE_JSON,
  MapFrameDecoder,
  encodeMapFrame,
  encodeMapResponse,
  parseMapFrame,
} from './map-framing.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

let backends: ZstdBackend[] = [];
before(async () => {
  await initZstd();
  backends = await availableZstdBackends();
});

function sampleJson(peers: number): string {
  return JSON.stringify({
    Node: { ID: 1, Name: 'self.example.ts.net.' },
    Peers: Array.from({ length: peers }, (_, i) => ({
      ID: i + 2,
      Name: `peer-${i}.example.ts.net.`,
      Online: i % 2 === 0,
    })),
  });
}

void describe('zstd', () => {
  void test('initZstd picks a backend', () => {
    assert.ok(zstdBackendName() === 'node:zlib' || zstdBackendName() === 'wasm');
  });

  void test('every backend round-trips and decodes every other backend', () => {
    const plain = Buffer.from(sampleJson(500));
    for (const a of backends)
      for (const b of backends) {
        const z = a.compress(plain, DEFAULT_ZSTD_LEVEL);
        assert.ok(z.length < plain.length / 3, `${a.name} should compress`);
        assert.deepEqual(Buffer.from(b.decompress(z, 1 << 20)), plain, `${a.name} -> ${b.name}`);
      }
  });

  for (const v of vectors.zstd) {
    void test(`decodes a frame compressed by Go klauspost/compress (${v.name})`, () => {
      for (const b of backends)
        assert.equal(Buffer.from(b.decompress(hex(v.compressed), 1 << 20)).toString('hex'), v.plaintext);
    });
  }

  void test('stored-block frames are valid zstd for every backend, including multi-block ones', () => {
    for (const size of [0, 18, 128 * 1024, 300_000]) {
      const content = Buffer.alloc(size, 'a');
      const frame = zstdRawFrame(content);
      assert.equal(firstFrameContentSize(frame), size);
      for (const b of backends)
        assert.equal(Buffer.compare(Buffer.from(b.decompress(frame, 1 << 20)), content), 0);
    }
  });

  void test('decompression is bounded', () => {
    const big = zstdCompress(Buffer.alloc(2 << 20));
    for (const b of backends) assert.throws(() => b.decompress(big, 1 << 20), /exceeds the limit of 1048576/);
    // Also when the frame does not declare its size (Go's streaming frames may not).
    const undeclared = hex(vectors.zstd.find((z) => z.name === 'twoFrames')!.compressed);
    for (const b of backends) assert.throws(() => b.decompress(undeclared, 1000), /exceeds the limit/);
  });

  void test('rejects non-zstd input', () => {
    assert.throws(() => zstdDecompress(Buffer.from('{"KeepAlive":true}')), /magic number mismatch/);
    assert.throws(() => zstdDecompress(new Uint8Array(0)), /empty input/);
    const z = Buffer.from(zstdCompress(Buffer.from(sampleJson(10))));
    z[z.length - 3] = z[z.length - 3]! ^ 0xff;
    assert.throws(() => zstdDecompress(z), { code: 'zstd_failed' });
  });
});

void describe('map framing', () => {
  void test('the keep-alive frame is a u32 LE length and a zstd frame of {"KeepAlive":true}', () => {
    const f = Buffer.from(KEEP_ALIVE_FRAME);
    assert.equal(f.readUInt32LE(0), f.length - 4);
    assert.equal(f.readUInt32LE(4), 0xfd2fb528);
    for (const b of backends)
      assert.equal(Buffer.from(b.decompress(f.subarray(4), 100)).toString(), KEEP_ALIVE_JSON);
  });

  void test('encodeMapFrame writes a little-endian length', () => {
    const f = encodeMapFrame(sampleJson(3));
    assert.equal(f.readUInt32LE(0), f.length - 4);
    assert.equal(Buffer.from(zstdDecompress(f.subarray(4))).toString(), sampleJson(3));
  });

  void test('the streaming decoder handles frames split at every byte boundary', () => {
    const frames = [
      Buffer.from(KEEP_ALIVE_FRAME),
      encodeMapResponse({
        Node: { ID: 1, StableID: 'n1', Name: 'a.', User: 1, Key: 'nodekey:' + '0'.repeat(64), Addresses: [] },
      }),
      encodeMapFrame(sampleJson(200)),
      Buffer.from(KEEP_ALIVE_FRAME),
    ];
    const body = Buffer.concat(frames);
    for (const step of [1, 3, 4, 5, 1000, body.length]) {
      const dec = new MapFrameDecoder();
      const got = [];
      for (let i = 0; i < body.length; i += step) got.push(...dec.push(body.subarray(i, i + step)));
      dec.end();
      assert.equal(got.length, 4);
      assert.deepEqual(
        got.map((g) => g.frameSize),
        frames.map((f) => f.length),
      );
      assert.deepEqual(
        got.map((g) => g.keepAlive),
        [true, false, false, true],
      );
      assert.equal(parseMapFrame(got[1]!).Node?.StableID, 'n1');
      assert.equal(parseMapFrame(got[2]!).Peers?.length, 200);
    }
  });

  void test("a keep-alive compressed by Go's encoder is recognised too", () => {
    const z = hex(vectors.zstd.find((v) => v.name === 'keepAlive')!.compressed);
    const frame = Buffer.alloc(4 + z.length);
    frame.writeUInt32LE(z.length, 0);
    z.copy(frame, 4);
    const [f] = new MapFrameDecoder().push(frame);
    assert.equal(f?.keepAlive, true);
  });

  void test('limits and truncation', () => {
    const tooBig = Buffer.alloc(4);
    tooBig.writeUInt32LE(1000, 0);
    assert.throws(() => new MapFrameDecoder({ maxFrameSize: 999 }).push(tooBig), /exceeds the limit of 999/);
    assert.throws(() => new MapFrameDecoder().push(Buffer.alloc(4)), /empty map frame/);
    const dec = new MapFrameDecoder();
    dec.push(encodeMapFrame('{}').subarray(0, 6));
    assert.throws(() => dec.end(), /ended in the middle of a frame/);
    const plain = Buffer.alloc(12);
    plain.writeUInt32LE(8, 0);
    plain.write('{"a":12}', 4);
    assert.throws(() => new MapFrameDecoder().push(plain), /magic number mismatch/);
    const notObject = encodeMapFrame('[1,2]');
    assert.throws(() => parseMapFrame(new MapFrameDecoder().push(notObject)[0]!), /not a JSON object/);
  });
});
