/**
 * The legacy NaCl channel at the edge with a TypeScript client sealing exactly as tailscale v1.62
 * does: `/key` per capability version; register and a map stream over `/machine/<hex>`; a tampered
 * box, a body sealed by another machine, a replayed nonce and junk are refused with 400 and a reason,
 * and the server keeps serving.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  generateMachineKeyPair,
  generatePrivateKey,
  formatKey,
  LegacyBoxKey,
  MapFrameDecoder,
  parseKey,
  publicKeyFromPrivate,
  type MachinePublic,
} from '@switchboard/protocol';
import { adminCall, serve, type RunningServer } from '@switchboard/switchboard';
import { testLogger } from '@switchboard/testing';

let srv: RunningServer;
let dir: string;
let authKey: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-legacy-'));
  srv = await serve({
    inMemory: true,
    logger: testLogger('legacy-edge'),
    env: {
      LISTEN_ADDR: '127.0.0.1:0',
      STUN_PORT: '0',
      DATA_DIR: dir,
      LOG_LEVEL: 'silent',
      LEGACY_PROTOCOL: 'true',
    },
  });
  await adminCall({ socketPath: srv.adminSocket }, 'POST', '/api/v1/users', { name: 'old' });
  ({ key: authKey } = (await adminCall({ socketPath: srv.adminSocket }, 'POST', '/api/v1/preauthkeys', {
    user: 'old',
    reusable: true,
    expiration: '1h',
  })) as { key: string });
});

after(async () => {
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: Buffer;
}

function call(method: string, path: string, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: srv.port, method, path }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function serverLegacyKey(): Promise<MachinePublic> {
  const r = await call('GET', '/key?v=88');
  const k = JSON.parse(r.body.toString()) as { legacyPublicKey: string; publicKey: string };
  return parseKey('machine', k.legacyPublicKey);
}

const hexOf = (k: MachinePublic) => formatKey('machine', k).slice(5);

test('/key offers v1.62 only the legacy key, current clients both, and no-?v= clients bare hex', async () => {
  const old = JSON.parse((await call('GET', '/key?v=88')).body.toString()) as Record<string, string>;
  assert.equal(old.publicKey, `mkey:${'0'.repeat(64)}`);
  assert.match(old.legacyPublicKey ?? '', /^mkey:(?!0{64})[0-9a-f]{64}$/);
  const cur = JSON.parse((await call('GET', '/key?v=113')).body.toString()) as Record<string, string>;
  assert.equal(cur.legacyPublicKey, old.legacyPublicKey);
  assert.match(cur.publicKey ?? '', /^mkey:(?!0{64})[0-9a-f]{64}$/);
  assert.equal((await call('GET', '/key')).body.toString(), old.legacyPublicKey?.slice(5));
});

test('register and a map stream over the legacy channel, sealed both ways', async () => {
  const server = await serverLegacyKey();
  const machine = generateMachineKeyPair();
  const box = new LegacyBoxKey(machine.private, server);
  const nodeKey = formatKey('node', publicKeyFromPrivate('node', generatePrivateKey()));
  const reg = await call(
    'POST',
    `/machine/${hexOf(machine.public)}`,
    box.seal(
      Buffer.from(
        JSON.stringify({
          Version: 1,
          NodeKey: nodeKey,
          Auth: { AuthKey: authKey },
          Hostinfo: { Hostname: 'old' },
        }),
      ),
    ),
  );
  assert.equal(reg.status, 200, reg.body.toString());
  const rr = JSON.parse(box.open(reg.body).toString()) as { MachineAuthorized: boolean; Error: string };
  assert.equal(rr.Error, '');
  assert.equal(rr.MachineAuthorized, true);

  // A non-streaming full map: u32 LE length ‖ sealed zstd frame.
  const map = await call(
    'POST',
    `/machine/${hexOf(machine.public)}/map`,
    box.seal(
      Buffer.from(
        JSON.stringify({
          Version: 88,
          NodeKey: nodeKey,
          Compress: 'zstd',
          Stream: false,
          Hostinfo: { Hostname: 'old' },
        }),
      ),
    ),
  );
  assert.equal(map.status, 200, map.body.toString());
  const len = map.body.readUInt32LE(0);
  assert.equal(map.body.length, 4 + len);
  const payload = box.open(map.body.subarray(4));
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32LE(payload.length);
  const [frame] = new MapFrameDecoder().push(Buffer.concat([hdr, payload]));
  const mr = JSON.parse(Buffer.from(frame!.json).toString()) as { Node?: { Key: string; Cap: number } };
  assert.equal(mr.Node?.Key, nodeKey);
});

test('bad boxes, another machine key, a replay and junk are refused with a reason; the server goes on', async () => {
  const server = await serverLegacyKey();
  const machine = generateMachineKeyPair();
  const box = new LegacyBoxKey(machine.private, server);
  const body = box.seal(
    Buffer.from(
      JSON.stringify({
        Version: 1,
        NodeKey: formatKey('node', publicKeyFromPrivate('node', generatePrivateKey())),
        Auth: { AuthKey: authKey },
      }),
    ),
  );
  const path = `/machine/${hexOf(machine.public)}`;

  const tampered = Buffer.from(body);
  tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
  let r = await call('POST', path, tampered);
  assert.equal(r.status, 400);
  assert.match(r.body.toString(), /does not open/);

  // Sealed by one machine, sent under another's key.
  r = await call('POST', `/machine/${hexOf(generateMachineKeyPair().public)}`, body);
  assert.equal(r.status, 400);
  assert.match(r.body.toString(), /does not open/);

  r = await call('POST', path, Buffer.from('junk'));
  assert.equal(r.status, 400);
  assert.match(r.body.toString(), /shorter than nonce and tag/);

  r = await call('POST', path, box.seal(Buffer.from('{"Version":')));
  assert.equal(r.status, 400, r.body.toString());

  assert.equal((await call('POST', path, body)).status, 200);
  r = await call('POST', path, body);
  assert.equal(r.status, 400);
  assert.match(r.body.toString(), /replayed/);

  assert.equal((await call('GET', `${path}/map`)).status, 405);
  assert.equal((await call('GET', '/health')).status, 200);
});
