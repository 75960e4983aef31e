/**
 * HTTP/2 over Noise without a network: NoiseHttp2Server on one end of an in-memory pair, our
 * ControlClient on the other. Concurrent streams, peer identity per connection, the 1 MiB body
 * cap, handler failures, and map frames reaching the client one at a time (no buffering).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { ServerHttp2Stream } from 'node:http2';
import { configureLogging } from '@switchboard/common';
import { memoryDuplexPair } from './testing/memory-duplex.js';
import { formatKey, generateMachineKeyPair, type MachineKeyPair } from './keys.js';
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
import { encodeEarlyPayload } from './early-payload.js';
import { KEEP_ALIVE_FRAME, encodeMapResponse } from './map-framing.js';
import { initZstd } from './zstd.js';

configureLogging({ level: 'silent' });

const serverKey = generateMachineKeyPair();
let ack: (() => void) | undefined;
const seenPeers: NoisePeer[] = [];

async function handler(
  stream: ServerHttp2Stream,
  headers: Record<string, string | string[] | undefined>,
  peer: NoisePeer,
): Promise<void> {
  seenPeers.push(peer);
  switch (String(headers[':path'])) {
    case '/echo': {
      const body = await readRequestBody(stream, undefined, headers);
      respondJson(stream, 200, {
        sha: createHash('sha256').update(body).digest('hex'),
        len: body.length,
        machineKey: peer.machineKeyText,
        capVersion: peer.capVersion,
        connectionId: peer.connectionId,
      });
      return;
    }
    case '/throw':
      throw new Error('handler bug');
    case '/reject':
      await Promise.reject(new Error('async handler bug'));
      return;
    case '/ack':
      ack?.();
      respondText(stream, 200, 'ok');
      return;
    case '/machine/map': {
      await readRequestBody(stream);
      stream.respond({ ':status': 200 });
      for (let i = 0; i < 3; i++) {
        const acked = new Promise<void>((r) => (ack = r));
        await writeChunk(stream, encodeMapResponse({ Seq: i, Domain: 'd'.repeat(i * 20_000) }));
        // The client must see this frame before we write the next one: nothing may sit in a buffer.
        await acked;
      }
      await writeChunk(stream, KEEP_ALIVE_FRAME);
      stream.end();
      return;
    }
    default:
      respondText(stream, 404, 'no such endpoint');
  }
}

const h2 = new NoiseHttp2Server({ handler });

/** A Noise handshake, then our h2 server and our ControlClient on the two ends of a memory pair. */
async function open(
  machine: MachineKeyPair,
  version = 131,
  early = false,
  server = h2,
): Promise<ControlClient> {
  const hs = initiate(machine.private, serverKey.public, version);
  const acc = acceptInitiation(hs.initiation, serverKey.private);
  const [a, b] = memoryDuplexPair({ chunkSize: 1500 });
  const serverConn = new NoiseConn({ socket: b, session: acc.session });
  if (early) serverConn.write(encodeEarlyPayload({ nodeKeyChallenge: 'chalpub:' + '12'.repeat(32) }));
  server.serve(serverConn);
  const clientConn = new NoiseConn({ socket: a, session: hs.finish(acc.response), detectEarlyPayload: true });
  return ControlClient.fromConnection(await openControlSession(clientConn), machine.public, version);
}

const clients: ControlClient[] = [];
before(async () => {
  await initZstd();
});
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await h2.close();
});

void describe('HTTP/2 over Noise', () => {
  void test('concurrent streams of all sizes, with the peer identity of the connection', async () => {
    const machine = generateMachineKeyPair();
    const c = await open(machine, 131);
    clients.push(c);
    assert.equal(c.earlyNoise, null);
    const sizes = [0, 1, 4077, 4078, 16_384, 65_535, 65_536, 200_000, 1 << 20];
    const results = await Promise.all(
      sizes.map((n) => c.request('POST', '/echo', Buffer.alloc(n, n & 0xff))),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200);
      const j = JSON.parse(r.body.toString()) as {
        sha: string;
        len: number;
        machineKey: string;
        capVersion: number;
      };
      const n = sizes[i]!;
      assert.equal(j.len, n);
      assert.equal(
        j.sha,
        createHash('sha256')
          .update(Buffer.alloc(n, n & 0xff))
          .digest('hex'),
      );
      assert.equal(j.machineKey, formatKey('machine', machine.public));
      assert.equal(j.capVersion, 131);
    }
  });

  void test('two connections with the same machine key are served side by side', async () => {
    const machine = generateMachineKeyPair();
    const [c1, c2] = [await open(machine, 113, true), await open(machine, 113)];
    clients.push(c1, c2);
    assert.equal(c1.earlyNoise?.nodeKeyChallenge, 'chalpub:' + '12'.repeat(32));
    const [r1, r2] = await Promise.all([c1.request('POST', '/echo', 'a'), c2.request('POST', '/echo', 'b')]);
    const j1 = JSON.parse(r1.body.toString()) as { machineKey: string; connectionId: number };
    const j2 = JSON.parse(r2.body.toString()) as { machineKey: string; connectionId: number };
    assert.equal(j1.machineKey, j2.machineKey);
    assert.notEqual(j1.connectionId, j2.connectionId);
  });

  void test('bodies over 1 MiB get 413 with a message, and the connection stays usable', async () => {
    const c = await open(generateMachineKeyPair());
    clients.push(c);
    for (let i = 0; i < 3; i++) {
      const r = await c.request('POST', '/echo', Buffer.alloc((1 << 20) + 1 + i * 100_000));
      assert.equal(r.status, 413);
      assert.equal(r.body.toString(), 'request body exceeds 1048576 bytes\n');
    }
    const ok = await c.request('POST', '/echo', Buffer.alloc(60_000));
    assert.equal(ok.status, 200);
  });

  void test('handler exceptions become 500 answers', async () => {
    const c = await open(generateMachineKeyPair());
    clients.push(c);
    assert.equal((await c.request('GET', '/throw')).status, 500);
    assert.equal((await c.request('GET', '/reject')).status, 500);
    assert.equal((await c.request('GET', '/nope')).status, 404);
  });

  void test('map frames reach the client one by one as they are written', async () => {
    const c = await open(generateMachineKeyPair());
    clients.push(c);
    const seqs: Array<number | undefined> = [];
    const sizes: number[] = [];
    for await (const m of c.mapStream({ Version: 131, NodeKey: 'nodekey:' + '1'.repeat(64), Stream: true })) {
      seqs.push(m.keepAlive ? -1 : m.message.Seq);
      sizes.push(m.frameSize);
      if (!m.keepAlive) await c.request('POST', '/ack');
    }
    assert.deepEqual(seqs, [0, 1, 2, -1]);
    assert.ok(sizes[2]! < 2_000, 'frames are compressed');
  });

  void test('idle sessions are closed after idleTimeoutMs', async () => {
    const idle = new NoiseHttp2Server({ handler, idleTimeoutMs: 100 });
    const c = await open(generateMachineKeyPair(), 131, false, idle);
    assert.equal((await c.request('POST', '/echo', 'x')).status, 200);
    // http2's idle timer is unref'd; keep the loop alive while we wait.
    await Promise.race([c.closed, new Promise((r) => setTimeout(r, 3000))]);
    assert.ok(c.isClosed);
    for (let i = 0; i < 50 && idle.sessionCount > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(idle.sessionCount, 0);
  });

  void test('closing the server sends GOAWAY and the clients see the connection close', async () => {
    const c = await open(generateMachineKeyPair());
    assert.ok(h2.sessionCount >= 1);
    const local = new NoiseHttp2Server({ handler });
    assert.equal(local.sessionCount, 0);
    await local.close();
    await c.close();
    assert.ok(c.isClosed);
  });
});
