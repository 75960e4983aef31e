/**
 * Regression test for the edge-hardening issue's first finding: when many clients dropped at once,
 * node:http2 threw ERR_INTERNAL_ASSERTION from JSStreamSocket.doWrite (a shutdown of the write
 * side raced nghttp2's RST_STREAM writes) and took down the process; a socket that vanished with
 * an error left its HTTP/2 session open forever. Here 1,000 map-like streams with writes in flight
 * over real loopback TCP are dropped at once by RST, by FIN, and by the server's socket failing;
 * every session must close, nothing may be thrown, and the server must still answer a new client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { configureLogging } from '@switchboard/common';
import { watchUncaught } from '@switchboard/testing';
import {
  NoiseHttp2Server,
  createTs2021UpgradeHandler,
  dialControl,
  generateMachineKeyPair,
  type ControlConnection,
} from '../src/index.js';

configureLogging({ level: 'silent' });

const CONNECTIONS = 250;
const STREAMS_PER_CONNECTION = 4; // 1,000 streams per scenario
const serverKey = generateMachineKeyPair();
const frame = Buffer.alloc(3000, 7);

let activeStreams = 0;
let serverSockets: Duplex[] = [];
let httpServer: http.Server;
let h2: NoiseHttp2Server;
let url: string;
let uncaught: ReturnType<typeof watchUncaught>;

before(async () => {
  uncaught = watchUncaught();
  h2 = new NoiseHttp2Server({
    handler: (stream, headers) => {
      if (headers[':path'] === '/hello') {
        stream.respond({ ':status': 200 });
        stream.end('hello');
        return;
      }
      // A map stream: frames written continuously, so writes are in flight when the drop comes.
      stream.respond({ ':status': 200 });
      activeStreams++;
      const timer = setInterval(() => {
        if (stream.destroyed || stream.closed) return;
        stream.write(frame);
      }, 2);
      stream.once('close', () => {
        clearInterval(timer);
        activeStreams--;
      });
    },
  });
  const upgrade = createTs2021UpgradeHandler({
    serverPrivate: serverKey.private,
    onConnection: (conn) => h2.serve(conn),
  });
  httpServer = http.createServer((_req, res) => res.end());
  httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    serverSockets.push(socket);
    upgrade(req, socket, head);
  });
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
});

after(async () => {
  uncaught.stop();
  await h2.close(1000);
  httpServer.closeAllConnections();
  await new Promise<void>((r) => httpServer.close(() => r()));
});

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const dial = (): Promise<ControlConnection> =>
  dialControl({
    url,
    machinePrivate: generateMachineKeyPair().private,
    serverPublic: serverKey.public,
    capVersion: 113,
    timeoutMs: 60_000,
  });

/** Opens CONNECTIONS clients with STREAMS_PER_CONNECTION streaming requests each. */
async function openFleet(): Promise<ControlConnection[]> {
  serverSockets = [];
  const fleet: ControlConnection[] = [];
  for (let i = 0; i < CONNECTIONS; i += 25) {
    const batch = await Promise.all(Array.from({ length: Math.min(25, CONNECTIONS - i) }, dial));
    for (const c of batch) {
      c.session.on('error', () => undefined);
      c.conn.on('error', () => undefined);
      for (let j = 0; j < STREAMS_PER_CONNECTION; j++) {
        const s = c.session.request({ ':method': 'POST', ':path': '/machine/map' });
        s.on('error', () => undefined);
        s.on('data', () => undefined);
        s.end();
      }
      fleet.push(c);
    }
  }
  await until('every stream to start', () => activeStreams === CONNECTIONS * STREAMS_PER_CONNECTION, 60_000);
  await new Promise((r) => setTimeout(r, 200)); // let writes pile up
  return fleet;
}

/** The client socket under a ControlConnection (dialNoise's TCP socket). */
function clientSocket(c: ControlConnection): Socket {
  return (c.conn as unknown as { socket: Socket }).socket;
}

async function dropAndCheck(drop: (fleet: ControlConnection[]) => void): Promise<void> {
  const fleet = await openFleet();
  drop(fleet);
  await until('every stream to close', () => activeStreams === 0, 20_000);
  await until('every HTTP/2 session to close', () => h2.sessionCount === 0, 20_000);
  assert.deepEqual(uncaught.errors, [], 'nothing may be thrown into the event loop');
  const c = await dial();
  const s = c.session.request({ ':method': 'GET', ':path': '/hello' });
  s.end();
  const status = await new Promise<unknown>((resolve, reject) => {
    s.once('response', (h) => resolve(h[':status']));
    s.once('error', reject);
  });
  assert.equal(status, 200);
  c.session.destroy();
  c.conn.destroy();
  await until('the check client to go', () => h2.sessionCount === 0, 5_000);
}

void describe('1,000 streams with writes in flight, dropped at once', () => {
  void test('by RST from every client', () =>
    dropAndCheck((fleet) => fleet.forEach((c) => clientSocket(c).resetAndDestroy())));

  void test('by FIN from every client', () =>
    dropAndCheck((fleet) => fleet.forEach((c) => clientSocket(c).end())));

  void test('by every server socket failing (the peer vanished)', () =>
    dropAndCheck(() => {
      for (const s of serverSockets)
        s.destroy(Object.assign(new Error('connection timed out'), { code: 'ETIMEDOUT' }));
    }));
});
