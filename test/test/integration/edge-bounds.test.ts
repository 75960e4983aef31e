/**
 * Edge hardening, part 2 (regression tests for the findings): every stage a client controls is
 * bounded. Noise connections that send no HTTP/2 preface, or hold no stream, are closed; TCP
 * connections are capped per source; a node holds one live map stream however many it opens; a
 * connection has a small bound on requests in progress; request bodies have a deadline; PING,
 * SETTINGS and rapid-reset floods close the connection; what one connection can make the server
 * log is rate-limited. Each bound is asserted with its status or closure, its metric and its log.
 * The whole server runs in one process (serve()) with small bounds; clients speak the real protocol.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientHttp2Stream } from 'node:http2';
import { adminCall, serve, type RunningServer } from '@switchboard/switchboard';
import { dialNoise, fetchServerKey, type MachinePublic, type NoiseConn } from '@switchboard/protocol';
import { capturingLogger, type LogLine } from '@switchboard/testing';
import { SimNode } from '../../src/sim-node.js';

const PER_SOURCE = 40;
const PREFACE_MS = 400;
const IDLE_MS = 700;
const BODY_MS = 600;
const REQUESTS = 4;

async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Raw HTTP/2 frames for flood tests: 9-byte header and payload. */
function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const SETTINGS = (): Buffer => frame(4, 0, 0);
const PING = (i: number): Buffer => {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(i, 4);
  return frame(6, 0, 0, p);
};
// HPACK: :method POST, :scheme https (static table), :authority x and :path /machine/map
// (literals with indexed names; nghttp2 refuses a request without an authority);
// END_HEADERS only, so the server waits for a body that the RST_STREAM then cancels.
const MAP_PATH = Buffer.from('/machine/map', 'latin1');
const HEADERS = (id: number): Buffer =>
  frame(
    1,
    0x4,
    id,
    Buffer.concat([Buffer.from([0x83, 0x87, 0x01, 1, 0x78, 0x04, MAP_PATH.length]), MAP_PATH]),
  );
const RST = (id: number): Buffer => {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(8, 0);
  return frame(3, 0, id, p);
};

describe(
  'edge bounds: timeouts, connection caps, stream and request bounds, floods',
  { timeout: 120_000 },
  () => {
    let srv: RunningServer;
    let dir: string;
    let url: string;
    let key: string;
    let serverPublic: MachinePublic;
    const lines: LogLine[] = [];
    const nodes: SimNode[] = [];
    const conns: NoiseConn[] = [];

    const admin = (method: string, path: string, body?: unknown) =>
      adminCall({ socketPath: srv.adminSocket }, method, path, body);

    async function metric(name: string): Promise<number> {
      const text = await (await fetch(`${url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(name + ' '));
      return line ? Number(line.slice(name.length + 1)) : NaN;
    }
    const hits = (reason: string): Promise<number> =>
      metric(`switchboard_edge_limit_hits_total{reason="${reason}"}`);

    async function rawNoise(): Promise<NoiseConn> {
      const conn = await dialNoise({
        url,
        machinePrivate: new SimNode({ url }).machinePrivate,
        serverPublic,
        capVersion: 113,
      });
      conn.on('error', () => undefined);
      conn.on('data', () => undefined); // flowing, so the server's close reaches 'close'
      conns.push(conn);
      return conn;
    }
    const closed = (c: NoiseConn): Promise<void> =>
      new Promise((r) => (c.destroyed ? r() : c.once('close', () => r())));

    /** Writes frames after the client preface; resolves when the server has closed the connection. */
    async function flood(frames: (i: number) => Buffer, count: number): Promise<{ goawayCode?: number }> {
      const conn = await rawNoise();
      let received = Buffer.alloc(0);
      conn.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
      const done = closed(conn);
      conn.write(Buffer.concat([PREFACE, SETTINGS()]));
      for (let i = 0; i < count && !conn.destroyed; i += 100) {
        const batch: Buffer[] = [];
        for (let j = i; j < Math.min(count, i + 100); j++) batch.push(frames(j));
        conn.write(Buffer.concat(batch));
        await new Promise((r) => setImmediate(r));
      }
      await Promise.race([
        done,
        new Promise((_, rej) =>
          setTimeout(() => rej(new Error('flood connection still open after 10 s')), 10_000),
        ),
      ]);
      // The server's frames: find its GOAWAY and read the error code.
      for (let off = 0; off + 9 <= received.length; off += 9 + received.readUIntBE(off, 3))
        if (received[off + 3] === 7 && off + 17 <= received.length)
          return { goawayCode: received.readUInt32BE(off + 13) };
      return {};
    }

    async function joinNode(name: string): Promise<SimNode> {
      const n = new SimNode({ url, hostname: name, serverPublic });
      nodes.push(n);
      await n.connect();
      const r = await n.register(key);
      assert.equal(r.Error ?? '', '', `register ${name}: ${r.Error}`);
      return n;
    }

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sb-edge-bounds-'));
      srv = await serve({
        inMemory: true,
        logger: capturingLogger(lines, {}, { minLevel: 'info' }),
        env: {
          LISTEN_ADDR: '127.0.0.1:0',
          STUN_PORT: '0',
          DATA_DIR: dir,
          LOG_LEVEL: 'warn',
          EDGE_MAX_CONNECTIONS_PER_SOURCE: String(PER_SOURCE),
          EDGE_PREFACE_TIMEOUT_MS: String(PREFACE_MS),
          EDGE_IDLE_TIMEOUT_MS: String(IDLE_MS),
          EDGE_BODY_TIMEOUT_MS: String(BODY_MS),
          EDGE_MAX_REQUESTS_PER_CONNECTION: String(REQUESTS),
        },
      });
      url = `http://127.0.0.1:${srv.port}`;
      serverPublic = (await fetchServerKey(url)).publicKey;
      await admin('POST', '/api/v1/users', { name: 'bounds' });
      key = (
        (await admin('POST', '/api/v1/preauthkeys', { user: 'bounds', reusable: true })) as { key: string }
      ).key;
    });

    after(async () => {
      for (const c of conns) c.destroy();
      await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('Noise connections that send no HTTP/2 preface are closed after EDGE_PREFACE_TIMEOUT_MS', async () => {
      const before = await hits('preface_timeout');
      const silent = await Promise.all(Array.from({ length: 20 }, () => rawNoise()));
      const start = Date.now();
      await Promise.all(silent.map(closed));
      const took = Date.now() - start;
      assert.ok(took >= PREFACE_MS - 100, `closed after ${took} ms, before the timeout`);
      assert.equal((await hits('preface_timeout')) - before, 20);
      assert.ok(lines.some((l) => l.msg.includes('sent no HTTP/2 preface in time')));
      await until(
        'the edge to let go of them',
        async () => (await metric('switchboard_edge_connections')) <= 1,
      );
    });

    test('a connection without streams is closed after EDGE_IDLE_TIMEOUT_MS; one with a map stream is kept', async () => {
      const before = await hits('idle_no_streams');
      const streaming = await joinNode('keeps-stream');
      await streaming.startStream();
      const idle = new SimNode({ url, serverPublic });
      nodes.push(idle);
      const c = await idle.connect();
      await Promise.race([
        c.closed,
        new Promise((_, rej) => setTimeout(() => rej(new Error('idle connection still open')), 5000)),
      ]);
      assert.equal((await hits('idle_no_streams')) - before, 1);
      await new Promise((r) => setTimeout(r, IDLE_MS + 300));
      assert.equal(streaming.client!.isClosed, false, 'a connection holding a map stream must stay open');
      streaming.stopStream();
    });

    test('TCP connections beyond EDGE_MAX_CONNECTIONS_PER_SOURCE are closed at once, logged a few times', async () => {
      const before = await hits('max_connections_per_source');
      const warnBefore = lines.filter((l) => l.msg.includes('EDGE_MAX_CONNECTIONS_PER_SOURCE')).length;
      const held: net.Socket[] = [];
      const connect = (): Promise<net.Socket> =>
        new Promise((resolve, reject) => {
          const s = net.connect(srv.port, '127.0.0.1', () => resolve(s));
          s.on('error', reject);
        });
      try {
        const base = await metric('switchboard_edge_connections');
        for (let i = base; i < PER_SOURCE; i++) held.push(await connect());
        await until(
          'the edge to count them',
          async () => (await metric('switchboard_edge_connections')) === PER_SOURCE,
        );
        // Each further connection is accepted by the kernel and closed by the edge without a byte.
        const refused = await Promise.all(
          Array.from({ length: 60 }, async () => {
            const s = await connect().catch(() => null);
            if (!s) return true;
            return new Promise<boolean>((r) => {
              s.on('data', () => r(false));
              s.on('close', () => r(true));
            });
          }),
        );
        assert.ok(refused.every(Boolean));
        assert.ok(
          held.every((s) => !s.destroyed),
          'connections under the bound are kept',
        );
      } finally {
        held.forEach((s) => s.destroy());
      }
      assert.equal((await hits('max_connections_per_source')) - before, 60);
      const warned =
        lines.filter((l) => l.msg.includes('EDGE_MAX_CONNECTIONS_PER_SOURCE')).length - warnBefore;
      assert.ok(warned >= 1 && warned <= 20, `expected a few warnings, got ${warned} for 60 refusals`);
      await until('the held sockets to go', async () => (await metric('switchboard_edge_connections')) <= 1);
    });

    test('one node key opening many map streams holds one live stream; the stalled older ones are reset', async () => {
      const n = await joinNode('many-streams');
      const streamsBefore = await metric('switchboard_fanout_streams');
      const body = JSON.stringify(n.mapRequest());
      const opened: ClientHttp2Stream[] = [];
      const extra: SimNode[] = [];
      for (let c = 0; c < 5; c++) {
        const same = new SimNode({ url, serverPublic, machinePrivate: n.machinePrivate });
        extra.push(same);
        nodes.push(same);
        const client = await same.connect();
        for (let i = 0; i < REQUESTS; i++) {
          const s = client.session.request({ ':method': 'POST', ':path': '/machine/map' });
          s.on('error', () => undefined);
          s.pause(); // never read: the server's full maps pile up unless it lets go
          s.end(body);
          opened.push(s);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      await until(
        'streams to settle',
        async () => (await metric('switchboard_fanout_streams')) === streamsBefore + 1,
      );
      await until(
        'superseded streams to be closed',
        () => opened.filter((s) => s.closed || s.destroyed).length >= opened.length - 1,
        8000,
      );
      assert.equal((await metric('switchboard_fanout_streams')) - streamsBefore, 1);
      for (const e of extra) await e.close();
    });

    test('requests in progress on one connection beyond the bound get 429; stalled bodies get 408', async () => {
      const n = new SimNode({ url, serverPublic });
      nodes.push(n);
      const c = await n.connect();
      const before = await hits('max_requests_per_connection');
      const statuses = await Promise.all(
        Array.from({ length: REQUESTS + 3 }, (_, i) => {
          const s = c.session.request({ ':method': 'POST', ':path': '/machine/register' });
          s.on('error', () => undefined);
          s.write('{"Version":'); // and never finish the body
          return new Promise<{ i: number; status: number; body: string }>((resolve) => {
            let status = 0;
            let text = '';
            s.on('response', (h) => (status = Number(h[':status'])));
            s.on('data', (d: Buffer) => (text += d.toString()));
            s.on('close', () => resolve({ i, status, body: text }));
          });
        }),
      );
      const tooMany = statuses.filter((s) => s.status === 429);
      const timedOut = statuses.filter((s) => s.status === 408);
      assert.equal(tooMany.length, 3, JSON.stringify(statuses));
      assert.equal(timedOut.length, REQUESTS, JSON.stringify(statuses));
      assert.match(tooMany[0]!.body, /too many requests in progress on this connection \(limit 4\)/);
      assert.match(timedOut[0]!.body, /request body not received within 600 ms/);
      for (const s of statuses) assert.doesNotMatch(s.body, /\n\s+at |\.js:\d+/);
      assert.equal((await hits('max_requests_per_connection')) - before, 3);
      // The connection itself is fine afterwards.
      const r = await c.request('POST', '/machine/no-such-endpoint');
      assert.equal(r.status, 404);
    });

    test('a PING flood closes the connection', async () => {
      const before = await hits('ping_flood');
      const { goawayCode } = await flood(PING, 10_000);
      assert.equal(goawayCode, 11, 'the server says GOAWAY ENHANCE_YOUR_CALM');
      assert.equal((await hits('ping_flood')) - before, 1);
    });

    test('a SETTINGS flood closes the connection', async () => {
      const before = await hits('settings_flood');
      const { goawayCode } = await flood(() => SETTINGS(), 10_000);
      assert.equal(goawayCode, 11, 'the server says GOAWAY ENHANCE_YOUR_CALM');
      assert.equal((await hits('settings_flood')) - before, 1);
    });

    test('rapid reset (HEADERS then RST_STREAM, over and over) closes the connection, with a few log lines', async () => {
      const before = await hits('reset_flood');
      const linesBefore = lines.length;
      const { goawayCode } = await flood((i) => Buffer.concat([HEADERS(2 * i + 1), RST(2 * i + 1)]), 10_000);
      assert.equal(goawayCode, 11, 'the server says GOAWAY ENHANCE_YOUR_CALM');
      assert.equal((await hits('reset_flood')) - before, 1);
      const logged = lines.length - linesBefore;
      assert.ok(logged <= 12, `one connection made the server log ${logged} lines`);
    });

    test('after all that the server serves a new node', async () => {
      const n = await joinNode('after-bounds');
      const first = await n.startStream();
      assert.ok(first.Node);
      n.stopStream();
    });
  },
);
