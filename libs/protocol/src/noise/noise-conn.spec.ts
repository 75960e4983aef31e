/**
 * NoiseConn over in-memory streams: record splitting and coalescing, partial reads, zero-length
 * records, backpressure, early-payload detection, and malformed input destroying the stream with a
 * clear error instead of throwing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { memoryDuplexPair } from '../testing/memory-duplex.js';
import { generateMachineKeyPair, formatKey } from '../keys.js';
import { encodeEarlyPayload } from '../early-payload.js';
import { acceptInitiation, initiate, type NoiseSession } from './handshake.js';
import { NoiseConn } from './noise-conn.js';

interface Sessions {
  client: NoiseSession;
  server: NoiseSession;
}

function sessions(): Sessions {
  const server = generateMachineKeyPair();
  const machine = generateMachineKeyPair();
  const hs = initiate(machine.private, server.public, 113);
  const acc = acceptInitiation(hs.initiation, server.private);
  return { client: hs.finish(acc.response), server: acc.session };
}

function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

/** Reads exactly `n` bytes (without destroying the stream afterwards). */
function readBytes(r: Duplex, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let have = 0;
    const onData = (chunk: Buffer): void => {
      parts.push(chunk);
      have += chunk.length;
      if (have >= n) {
        r.off('data', onData);
        r.off('error', reject);
        r.pause();
        const all = Buffer.concat(parts);
        if (all.length > n) r.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    r.on('data', onData);
    r.once('error', reject);
  });
}

/** Splits a raw record stream into frames, checking the 4096-byte cap. */
function framesOf(wire: Buffer): number[] {
  const sizes: number[] = [];
  for (let off = 0; off < wire.length;) {
    const total = 3 + wire.readUInt16BE(off + 1);
    assert.ok(total <= 4096, `frame of ${total} bytes`);
    assert.equal(wire[off], 4);
    sizes.push(total);
    off += total;
  }
  return sizes;
}

function connPair(chunkSize?: number): { client: NoiseConn; server: NoiseConn; rawServerSide: Duplex } {
  const s = sessions();
  const [a, b] = memoryDuplexPair({ chunkSize });
  return {
    client: new NoiseConn({ socket: a, session: s.client }),
    server: new NoiseConn({ socket: b, session: s.server }),
    rawServerSide: b,
  };
}

void describe('NoiseConn', () => {
  for (const chunkSize of [1, 7, 4096, undefined]) {
    void test(`large writes arrive intact with TCP chunks of ${chunkSize ?? 'any'} bytes`, async () => {
      const { client, server } = connPair(chunkSize);
      const msg = pattern(chunkSize === 1 ? 20_000 : 300_000, 3);
      client.write(msg);
      assert.deepEqual(await readBytes(server, msg.length), msg);
      const reply = pattern(10_000, 9);
      server.write(reply);
      assert.deepEqual(await readBytes(client, reply.length), reply);
      client.destroy();
      server.destroy();
    });
  }

  void test('writes are split into records of at most 4077 plaintext bytes', () => {
    const s = sessions();
    const [a] = memoryDuplexPair();
    const written: Buffer[] = [];
    const origWrite = a.write.bind(a);
    a.write = ((chunk: Buffer) => {
      written.push(Buffer.from(chunk));
      return origWrite(chunk);
    }) as typeof a.write;
    const conn = new NoiseConn({ socket: a, session: s.client });
    conn.write(pattern(4077));
    conn.write(pattern(4078));
    conn.write(pattern(10_000));
    assert.deepEqual(framesOf(Buffer.concat(written)), [4096, 4096, 20, 4096, 4096, 1865]);
    conn.destroy();
  });

  void test('small writes handed over together are coalesced into one record', () => {
    const s = sessions();
    const [a] = memoryDuplexPair();
    const written: Buffer[] = [];
    const origWrite = a.write.bind(a);
    a.write = ((chunk: Buffer) => {
      written.push(Buffer.from(chunk));
      return origWrite(chunk);
    }) as typeof a.write;
    const conn = new NoiseConn({ socket: a, session: s.client });
    conn.cork();
    for (let i = 0; i < 50; i++) conn.write(Buffer.from('frame' + i));
    conn.uncork();
    assert.equal(written.length, 1);
    assert.equal(framesOf(written[0]!).length, 1);
    conn.destroy();
  });

  void test('zero-length records are skipped', async () => {
    const { client, server } = connPair(5);
    client.writeEmptyRecord();
    client.write(Buffer.from('after empty'));
    client.writeEmptyRecord();
    client.write(Buffer.from('!'));
    assert.equal((await readBytes(server, 12)).toString(), 'after empty!');
    client.destroy();
    server.destroy();
  });

  void test('exposes the authenticated peer and version', () => {
    const server = generateMachineKeyPair();
    const machine = generateMachineKeyPair();
    const hs = initiate(machine.private, server.public, 131);
    const acc = acceptInitiation(hs.initiation, server.private);
    const [a, b] = memoryDuplexPair();
    const conn = new NoiseConn({ socket: b, session: acc.session });
    assert.equal(formatKey('machine', conn.peerMachineKey), formatKey('machine', machine.public));
    assert.equal(conn.protocolVersion, 131);
    assert.equal(conn.remoteAddress, '127.0.0.1');
    conn.destroy();
    a.destroy();
  });

  void test('bytes already buffered (upgrade head) are processed first', async () => {
    const s = sessions();
    const first = s.client.tx.sealRecord(Buffer.from('head-'));
    const second = s.client.tx.sealRecord(Buffer.from('tail'));
    const [a, b] = memoryDuplexPair();
    const conn = new NoiseConn({
      socket: b,
      session: s.server,
      head: Buffer.concat([first, second.subarray(0, 4)]),
    });
    a.write(second.subarray(4));
    assert.equal((await readBytes(conn, 9)).toString(), 'head-tail');
    conn.destroy();
  });

  void test('backpressure pauses the socket and resumes when read', async () => {
    const { client, server, rawServerSide } = connPair(16 * 1024);
    const big = pattern(1 << 20, 1);
    client.write(big);
    // Nobody reads `server` yet: once its buffer is full the socket must pause.
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(rawServerSide.isPaused(), 'underlying socket should be paused');
    assert.ok(server.readableLength < big.length);
    assert.deepEqual(await readBytes(server, big.length), big);
    client.destroy();
    server.destroy();
  });
});

void describe('NoiseConn rejects malformed input without throwing', () => {
  async function expectError(frames: Buffer, re: RegExp, code: string): Promise<void> {
    const s = sessions();
    const [a, b] = memoryDuplexPair();
    const conn = new NoiseConn({ socket: b, session: s.server });
    conn.on('data', () => assert.fail('no data expected'));
    a.write(frames);
    const [err] = (await once(conn, 'error')) as [Error & { code?: string }];
    assert.match(err.message, re);
    assert.equal(err.code, code);
    assert.ok(conn.destroyed);
    assert.ok(b.destroyed);
  }

  void test('a frame over 4096 bytes', async () => {
    await expectError(
      Buffer.from([4, 0x10, 0x00]),
      /requested read of 4099 bytes exceeds max allowed Noise frame size/,
      'noise_frame_invalid',
    );
  });

  void test('a type other than 4', async () => {
    const f = Buffer.alloc(3 + 16);
    f[0] = 2;
    f.writeUInt16BE(16, 1);
    await expectError(f, /unexpected type 2, want 4/, 'noise_frame_invalid');
  });

  void test('a record that does not authenticate', async () => {
    const f = Buffer.alloc(3 + 20, 1);
    f[0] = 4;
    f.writeUInt16BE(20, 1);
    await expectError(f, /authentication failed/, 'noise_decrypt_failed');
  });

  void test('a record shorter than the tag', async () => {
    await expectError(Buffer.from([4, 0, 3, 1, 2, 3]), /shorter than the tag/, 'noise_decrypt_failed');
  });

  void test('after the first decrypt failure later good records are not delivered', async () => {
    const s = sessions();
    const [a, b] = memoryDuplexPair();
    const conn = new NoiseConn({ socket: b, session: s.server });
    const good = s.client.tx.sealRecord(Buffer.from('good'));
    const bad = Buffer.from(good);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    let got = '';
    conn.on('data', (d: Buffer) => (got += d.toString()));
    a.write(Buffer.concat([bad, s.client.tx.sealRecord(Buffer.from('later'))]));
    await once(conn, 'error');
    assert.equal(got, '');
  });

  void test('EOF in the middle of a frame', async () => {
    const s = sessions();
    const [a, b] = memoryDuplexPair();
    const conn = new NoiseConn({ socket: b, session: s.server });
    a.end(s.client.tx.sealRecord(Buffer.from('hello')).subarray(0, 10));
    const [err] = (await once(conn, 'error')) as [Error];
    assert.match(err.message, /unexpected EOF in the middle of a Noise frame/);
  });

  void test('clean EOF ends the stream and delivers what came before', async () => {
    const s = sessions();
    const [a, b] = memoryDuplexPair();
    const conn = new NoiseConn({ socket: b, session: s.server });
    a.end(s.client.tx.sealRecord(Buffer.from('last words')));
    let got = '';
    for await (const d of conn) got += (d as Buffer).toString();
    assert.equal(got, 'last words');
  });
});

void describe('early payload detection (client side)', () => {
  const challenge = 'chalpub:' + 'ab'.repeat(32);

  void test('a payload split across records and TCP chunks is extracted, the rest is data', async () => {
    const s = sessions();
    const [a, b] = memoryDuplexPair({ chunkSize: 3 });
    const client = new NoiseConn({ socket: b, session: s.client, detectEarlyPayload: true });
    const early = encodeEarlyPayload({ nodeKeyChallenge: challenge });
    const h2 = Buffer.from('\x00\x00\x12\x04\x00\x00\x00\x00\x00settings...');
    a.write(s.server.tx.sealRecord(early.subarray(0, 4)));
    a.write(s.server.tx.sealRecord(Buffer.concat([early.subarray(4), h2.subarray(0, 5)])));
    a.write(s.server.tx.sealRecord(h2.subarray(5)));
    assert.deepEqual(await client.earlyPayload, { nodeKeyChallenge: challenge });
    assert.deepEqual(await readBytes(client, h2.length), h2);
    client.destroy();
  });

  void test('without the magic the first 9 bytes are replayed as data', async () => {
    const s = sessions();
    const [a, b] = memoryDuplexPair({ chunkSize: 2 });
    const client = new NoiseConn({ socket: b, session: s.client, detectEarlyPayload: true });
    const h2 = Buffer.from('\x00\x00\x12\x04\x00\x00\x00\x00\x00rest of settings');
    a.write(s.server.tx.sealRecord(h2.subarray(0, 4)));
    a.write(s.server.tx.sealRecord(h2.subarray(4)));
    assert.equal(await client.earlyPayload, null);
    assert.deepEqual(await readBytes(client, h2.length), h2);
    client.destroy();
  });

  void test('invalid early-payload JSON is fatal', async () => {
    const s = sessions();
    const [a, b] = memoryDuplexPair();
    const client = new NoiseConn({ socket: b, session: s.client, detectEarlyPayload: true });
    const bad = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0x54, 0x53, 0, 0, 0, 3]), Buffer.from('{x}')]);
    a.write(s.server.tx.sealRecord(bad));
    const [err] = (await once(client, 'error')) as [Error];
    assert.match(err.message, /early payload is not JSON/);
    await assert.rejects(client.earlyPayload, /early payload is not JSON/);
  });

  void test('an early payload over 10 MiB is refused', async () => {
    const s = sessions();
    const [a, b] = memoryDuplexPair();
    const client = new NoiseConn({ socket: b, session: s.client, detectEarlyPayload: true });
    a.write(s.server.tx.sealRecord(Buffer.from([0xff, 0xff, 0xff, 0x54, 0x53, 0x01, 0, 0, 0])));
    const [err] = (await once(client, 'error')) as [Error];
    assert.match(err.message, /invalid early payload length/);
  });
});
