/**
 * The /ts2021 upgrade handler, driven with in-memory sockets: the exact 101, the Noise response,
 * the early payload, HTTP 400/405/501 refusals, and Noise error frames for bad initiations and old
 * capability versions.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { configureLogging } from '@switchboard/common';
import { memoryDuplexPair } from './testing/memory-duplex.js';
import { formatKey, generateMachineKeyPair, publicKeyFromPrivate } from './keys.js';
import { initiate } from './noise/handshake.js';
import { NoiseConn } from './noise/noise-conn.js';
import {
  createTs2021UpgradeHandler,
  type Ts2021ConnectionInfo,
  type Ts2021ServerOptions,
} from './ts2021-server.js';

configureLogging({ level: 'silent' });

function fakeRequest(opts: {
  method?: string;
  url?: string;
  headers?: Record<string, string>;
}): IncomingMessage {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;
  return { method: opts.method ?? 'POST', url: opts.url ?? '/ts2021', headers } as unknown as IncomingMessage;
}

/** Collects everything written to `sock` until it ends or `ms` pass. */
function collect(sock: Duplex, ms = 300): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const done = (): void => resolve(Buffer.concat(parts));
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('end', done);
    sock.on('close', done);
    setTimeout(done, ms);
  });
}

const RESPONSE_101 =
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n';

function setup(extra: Partial<Ts2021ServerOptions> = {}) {
  const server = generateMachineKeyPair();
  const machine = generateMachineKeyPair();
  const accepted: Array<{ conn: NoiseConn; info: Ts2021ConnectionInfo }> = [];
  const handler = createTs2021UpgradeHandler({
    serverPrivate: server.private,
    onConnection: (conn, info) => accepted.push({ conn, info }),
    ...extra,
  });
  return { server, machine, accepted, handler };
}

function validHeaders(init: Uint8Array): Record<string, string> {
  return {
    Upgrade: 'tailscale-control-protocol',
    Connection: 'upgrade',
    'X-Tailscale-Handshake': Buffer.from(init).toString('base64'),
  };
}

void describe('ts2021 upgrade: accepted', () => {
  void test('answers 101 then the 51-byte Noise response, and hands over an authenticated NoiseConn', async () => {
    const { server, machine, accepted, handler } = setup();
    const hs = initiate(machine.private, server.public, 131);
    const [client, sock] = memoryDuplexPair();
    const out = collect(client);
    assert.equal(handler(fakeRequest({ headers: validHeaders(hs.initiation) }), sock, Buffer.alloc(0)), true);
    const bytes = await out;
    assert.equal(bytes.subarray(0, RESPONSE_101.length).toString('latin1'), RESPONSE_101);
    const resp = bytes.subarray(RESPONSE_101.length);
    assert.equal(resp.length, 51);
    const session = hs.finish(resp);
    assert.equal(accepted.length, 1);
    const { conn, info } = accepted[0]!;
    assert.equal(info.version, 131);
    assert.equal(formatKey('machine', info.machineKey), formatKey('machine', machine.public));
    assert.equal(conn.protocolVersion, 131);
    assert.deepEqual(session.handshakeHash, conn.handshakeHash);
    conn.destroy();
  });

  void test('the upgrade token is compared case-insensitively and GET is accepted', async () => {
    const { server, machine, accepted, handler } = setup();
    const hs = initiate(machine.private, server.public, 113);
    const [client, sock] = memoryDuplexPair();
    const out = collect(client);
    const headers = { ...validHeaders(hs.initiation), Upgrade: 'Tailscale-Control-Protocol' };
    handler(fakeRequest({ method: 'GET', headers }), sock, Buffer.alloc(0));
    const session = hs.finish((await out).subarray(RESPONSE_101.length));
    const conn = accepted[0]!.conn;
    const got = new Promise<string>((r) => conn.once('data', (d: Buffer) => r(d.toString())));
    client.write(session.tx.sealRecord(Buffer.from('hello server')));
    assert.equal(await got, 'hello server');
    conn.destroy();
  });

  void test('sends an early payload with a per-connection challenge, in the same write as the response', async () => {
    const { server, machine, accepted, handler } = setup({ earlyPayload: true });
    const hs = initiate(machine.private, server.public, 113);
    const [client, sock] = memoryDuplexPair();
    const writes: Buffer[] = [];
    client.on('data', (d: Buffer) => writes.push(d));
    handler(fakeRequest({ headers: validHeaders(hs.initiation) }), sock, Buffer.alloc(0));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(writes.length, 1, '101 + response + early payload go out in one write');
    const bytes = writes[0]!;
    const session = hs.finish(bytes.subarray(RESPONSE_101.length, RESPONSE_101.length + 51));
    const rec = bytes.subarray(RESPONSE_101.length + 51);
    assert.equal(rec[0], 4);
    const plain = session.rx.open(rec.subarray(3, 3 + rec.readUInt16BE(1)));
    assert.deepEqual([...plain.subarray(0, 5)], [0xff, 0xff, 0xff, 0x54, 0x53]);
    const json = JSON.parse(plain.subarray(9, 9 + plain.readUInt32BE(5)).toString()) as {
      nodeKeyChallenge: string;
    };
    const info = accepted[0]!.info;
    assert.ok(info.challengePrivate);
    assert.equal(
      json.nodeKeyChallenge,
      formatKey('challenge', publicKeyFromPrivate('challenge', info.challengePrivate)),
    );
    accepted[0]!.conn.destroy();
  });
});

void describe('ts2021 upgrade: refused', () => {
  const httpCases: Array<[string, Record<string, string>, string, RegExp]> = [
    [
      'no Upgrade header',
      { 'X-Tailscale-Handshake': 'AAAA' },
      'POST',
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\n\r\nmissing next protocol\n$/,
    ],
    [
      'another protocol',
      { Upgrade: 'h2c', 'X-Tailscale-Handshake': 'AAAA' },
      'POST',
      /400 Bad Request[^]*unknown next protocol\n$/,
    ],
    [
      'websocket',
      { Upgrade: 'websocket' },
      'GET',
      /^HTTP\/1\.1 501 Not Implemented[^]*websocket transport for \/ts2021 is not supported/,
    ],
    [
      'no handshake header',
      { Upgrade: 'tailscale-control-protocol' },
      'POST',
      /400 Bad Request[^]*missing Tailscale handshake header\n$/,
    ],
    [
      'bad base64',
      { Upgrade: 'tailscale-control-protocol', 'X-Tailscale-Handshake': 'not*base64' },
      'POST',
      /invalid tailscale handshake header\n$/,
    ],
    [
      'unpadded base64',
      { Upgrade: 'tailscale-control-protocol', 'X-Tailscale-Handshake': 'AAA' },
      'POST',
      /invalid tailscale handshake header\n$/,
    ],
    [
      'PUT',
      { Upgrade: 'tailscale-control-protocol', 'X-Tailscale-Handshake': 'AAAA' },
      'PUT',
      /405 Method Not Allowed/,
    ],
  ];
  for (const [name, headers, method, re] of httpCases) {
    void test(`${name} gets an HTTP error with a one-line reason`, async () => {
      const { handler, accepted } = setup();
      const [client, sock] = memoryDuplexPair();
      const out = collect(client);
      assert.equal(handler(fakeRequest({ method, headers }), sock, Buffer.alloc(0)), true);
      const text = (await out).toString('utf8');
      assert.match(text, re);
      assert.match(text, /Connection: close\r\n/);
      assert.equal(accepted.length, 0);
    });
  }

  void test('other paths are left alone', () => {
    const { handler } = setup();
    const [, sock] = memoryDuplexPair();
    assert.equal(handler(fakeRequest({ url: '/other' }), sock, Buffer.alloc(0)), false);
    assert.ok(!sock.destroyed);
  });

  void test('a malformed initiation gets 101 and a Noise error frame (like controlhttpserver)', async () => {
    const { handler } = setup();
    const [client, sock] = memoryDuplexPair();
    const out = collect(client);
    const headers = validHeaders(new Uint8Array(100));
    handler(fakeRequest({ headers }), sock, Buffer.alloc(0));
    const bytes = await out;
    assert.equal(bytes.subarray(0, RESPONSE_101.length).toString(), RESPONSE_101);
    const frame = bytes.subarray(RESPONSE_101.length);
    assert.equal(frame[0], 3);
    assert.equal(frame.subarray(3, 3 + frame.readUInt16BE(1)).toString(), 'wrong handshake initiation size');
  });

  void test('an old capability version is refused with an error frame naming both versions', async () => {
    const { server, machine, handler, accepted } = setup({ minCapVersion: 113 });
    const [client, sock] = memoryDuplexPair();
    const out = collect(client);
    handler(
      fakeRequest({ headers: validHeaders(initiate(machine.private, server.public, 87).initiation) }),
      sock,
      Buffer.alloc(0),
    );
    const frame = (await out).subarray(RESPONSE_101.length);
    assert.equal(frame[0], 3);
    const text = frame.subarray(3).toString();
    assert.match(text, /capability version 87/);
    assert.match(text, /minimum 113/);
    assert.equal(accepted.length, 0);
  });

  void test('a handshake for another server key is closed without an error frame', async () => {
    const { machine, handler, accepted } = setup();
    const other = generateMachineKeyPair();
    const [client, sock] = memoryDuplexPair();
    const out = collect(client);
    handler(
      fakeRequest({ headers: validHeaders(initiate(machine.private, other.public, 113).initiation) }),
      sock,
      Buffer.alloc(0),
    );
    assert.equal((await out).toString(), RESPONSE_101);
    assert.ok(sock.writableEnded);
    assert.equal(accepted.length, 0);
  });

  void test('an onConnection callback that throws does not escape', async () => {
    const { server, machine } = setup();
    const handler = createTs2021UpgradeHandler({
      serverPrivate: server.private,
      onConnection: () => {
        throw new Error('boom');
      },
    });
    const [, sock] = memoryDuplexPair();
    handler(
      fakeRequest({ headers: validHeaders(initiate(machine.private, server.public, 113).initiation) }),
      sock,
      Buffer.alloc(0),
    );
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(sock.destroyed);
  });
});
