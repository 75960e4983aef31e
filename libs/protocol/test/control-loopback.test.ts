/**
 * Our client against our server over real TCP on 127.0.0.1: /key, the /ts2021 upgrade, the raw
 * Noise exchange, register, the map stream, lite updates, error paths, and a few hundred
 * simultaneous clients.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { configureLogging } from '@switchboard/common';
import {
  ControlClient,
  ControlHttpError,
  dialNoise,
  fetchServerKey,
  formatKey,
  generateMachineKeyPair,
  initZstd,
  keysEqual,
  type MapResponse,
} from '../src/index.js';
import {
  checkMapStream,
  pattern,
  rawClient,
  startTestControlServer,
  type TestControlServer,
} from './support/fixtures.js';

configureLogging({ level: 'silent' });

const serverKey = generateMachineKeyPair();
const rawKey = generateMachineKeyPair();
let srv: TestControlServer;
let early: TestControlServer;

before(async () => {
  await initZstd();
  srv = await startTestControlServer({
    serverPrivate: serverKey.private,
    serverPublic: serverKey.public,
    rawPeer: rawKey.public,
    minCapVersion: 100,
  });
  early = await startTestControlServer({
    serverPrivate: serverKey.private,
    serverPublic: serverKey.public,
    earlyPayload: true,
  });
});

after(async () => {
  await srv.close();
  await early.close();
});

void describe('ts2021 over loopback TCP', () => {
  void test('fetchServerKey reads the Noise key', async () => {
    const keys = await fetchServerKey(srv.url + '/', { capVersion: 113 });
    assert.ok(keysEqual(keys.publicKey, serverKey.public));
    assert.equal(keys.legacyPublicKey, undefined);
  });

  void test('raw Noise exchange with multi-record messages and zero-length records', async () => {
    const conn = await dialNoise({
      url: srv.url,
      machinePrivate: rawKey.private,
      serverPublic: serverKey.public,
      capVersion: 113,
    });
    await rawClient(conn);
    conn.destroy();
  });

  void test('register, map stream, one-shot map and lite update', async () => {
    const machine = generateMachineKeyPair();
    const c = await ControlClient.connect({
      url: srv.url,
      machinePrivate: machine.private,
      serverPublic: serverKey.public,
      capVersion: 113,
    });
    try {
      assert.equal(c.earlyNoise, null);
      const nodeKey = 'nodekey:' + '42'.repeat(32);
      const reg = await c.register({
        Version: 113,
        NodeKey: nodeKey,
        Auth: { AuthKey: 'tskey-1' },
        Hostinfo: { Hostname: 'loop', OS: 'linux' },
        Expiry: '0001-01-01T00:00:00Z',
      });
      assert.equal(reg.Error, '');
      assert.equal(reg.Login.Provider, 'authkey:tskey-1');
      assert.equal(reg.User.DisplayName, 'loop');
      const noCreds = await c.register({
        Version: 113,
        NodeKey: nodeKey,
        Auth: { AuthKey: '', Provider: '', LoginName: '', Oauth2Token: null },
      });
      assert.equal(noCreds.Error, 'no credentials');

      const mapReq = {
        Version: 113,
        NodeKey: nodeKey,
        DiscoKey: 'discokey:' + '07'.repeat(32),
        Compress: 'zstd',
        KeepAlive: true,
        Stream: true,
      };
      const msgs: MapResponse[] = [];
      let wire = 0;
      for await (const m of c.mapStream(mapReq)) {
        msgs.push(m.message);
        wire += m.frameSize;
      }
      checkMapStream(msgs, nodeKey, formatKey('machine', machine.public));
      assert.ok(wire < 60_000, `300 peers compress well (${wire} bytes)`);

      await c.liteUpdate({ ...mapReq, Endpoints: ['192.0.2.1:41641'] });
      const once = await c.mapOnce({ ...mapReq, Stream: true });
      assert.equal(once.Node?.Key, nodeKey, 'mapOnce returns the first real map, skipping keep-alives');
      const bad = await c.request(
        'POST',
        '/machine/map',
        JSON.stringify({ ...mapReq, NodeKey: 'nodekey:xyz' }),
      );
      assert.equal(bad.status, 400, 'a ValidationError thrown by a handler becomes 400');
      assert.match(bad.body.toString(), /^MapRequest\.NodeKey: key hex has the wrong size/);
    } finally {
      await c.close();
    }
  });

  void test('large bodies both ways and the 1 MiB cap', async () => {
    const c = await ControlClient.connect({
      url: early.url,
      machinePrivate: generateMachineKeyPair().private,
      serverPublic: serverKey.public,
    });
    try {
      assert.match(c.earlyNoise?.nodeKeyChallenge ?? '', /^chalpub:[0-9a-f]{64}$/);
      const big = await c.request('POST', '/big?n=2000000', undefined, { maxResponseBytes: 4 << 20 });
      assert.deepEqual(big.body, pattern(2_000_000, 99));
      const echo = await c.request('POST', '/echo', pattern(1 << 20, 1));
      assert.equal(echo.status, 200);
      assert.equal(echo.headers['x-capver'], '148');
      const tooBig = await c.request('POST', '/echo', pattern((1 << 20) + 1, 1));
      assert.equal(tooBig.status, 413);
      await assert.rejects(c.request('POST', '/big?n=3000000'), /response body exceeds 1048576 bytes/);
    } finally {
      await c.close();
    }
  });

  void test('an old client gets the Noise error frame text', async () => {
    await assert.rejects(
      dialNoise({
        url: srv.url,
        machinePrivate: generateMachineKeyPair().private,
        serverPublic: serverKey.public,
        capVersion: 87,
      }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'noise_server_error');
        assert.match(
          e.message,
          /^server error: "unsupported client: capability version 87 is older than the minimum 100/,
        );
        return true;
      },
    );
  });

  void test('a wrong server key fails the handshake with a hint', async () => {
    await assert.rejects(
      dialNoise({
        url: srv.url,
        machinePrivate: generateMachineKeyPair().private,
        serverPublic: generateMachineKeyPair().public,
      }),
      /server closed the connection after the 101 without a Noise response/,
    );
  });

  void test('a server that does not upgrade gives "unexpected HTTP response"', async () => {
    const plain = http.createServer((_req, res) =>
      res.writeHead(404, { 'content-type': 'text/plain' }).end('nothing here'),
    );
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
      await assert.rejects(
        dialNoise({ url, machinePrivate: generateMachineKeyPair().private, serverPublic: serverKey.public }),
        /unexpected HTTP response: 404 Not Found: nothing here/,
      );
      await assert.rejects(
        fetchServerKey(url),
        (e: unknown) => e instanceof ControlHttpError && e.status === 404,
      );
    } finally {
      plain.close();
    }
  });

  void test('a plain POST /ts2021 without the upgrade headers gets 400 with a reason', async () => {
    const res = await fetch(srv.url + '/ts2021', { method: 'POST' });
    assert.equal(res.status, 400);
    assert.equal(await res.text(), 'missing next protocol\n');
  });

  void test('300 clients connect and register at the same time', async () => {
    const n = 300;
    const t0 = Date.now();
    const clients = await Promise.all(
      Array.from({ length: n }, () =>
        ControlClient.connect({
          url: srv.url,
          machinePrivate: generateMachineKeyPair().private,
          serverPublic: serverKey.public,
          capVersion: 113,
        }),
      ),
    );
    const regs = await Promise.all(
      clients.map((c, i) =>
        c.register({
          Version: 113,
          NodeKey: 'nodekey:' + (i + 1).toString(16).padStart(64, '0'),
          Auth: { AuthKey: 'k' },
          Hostinfo: { Hostname: `h${i}` },
        }),
      ),
    );
    assert.ok(regs.every((r, i) => r.User.DisplayName === `h${i}`));
    const elapsed = Date.now() - t0;
    await Promise.all(clients.map((c) => c.close()));
    assert.ok(elapsed < 20_000, `took ${elapsed} ms`);
  });
});
