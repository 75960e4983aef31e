import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import go from '../testdata/go-vectors.json' with { type: 'json' };
import {
  DerpFrameError,
  FrameReader,
  FrameType,
  MAGIC,
  MAX_CLIENT_FRAME_LEN,
  PROTOCOL_VERSION,
  BoxKey,
  bindingRequest,
  bindingResponse,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientInfo,
  encodeFrame,
  encodePeerGone,
  encodePeerPresent,
  encodeRestarting,
  encodeServerInfo,
  encodeServerKey,
  ipTo16,
  meshKeyEqual,
  openClientInfo,
  openServerInfo,
  parseBindingRequest,
  parseBindingResponse,
  parseClientInfoJson,
} from './index.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const client = new BoxKey(hex(go.clientPrivate));
const server = new BoxKey(hex(go.serverPrivate));

test('constants match tailscale.com/derp', () => {
  assert.equal(MAGIC.toString('hex'), go.magic);
  assert.equal(PROTOCOL_VERSION, go.protocolVersion);
  assert.equal(client.publicKey.toString('hex'), go.clientPublic);
  assert.equal(server.publicKey.toString('hex'), go.serverPublic);
});

test('shared key: OpenSSL X25519 + HSalsa20 equals tweetnacl box.before', () => {
  const ours = client.sharedKey(server.publicKey);
  assert.ok(ours);
  assert.deepEqual(Buffer.from(ours), Buffer.from(nacl.box.before(server.publicKey, client.secretKey)));
  assert.equal(client.sharedKey(new Uint8Array(32)), null, 'the zero key is low-order');
  assert.equal(client.sharedKey(new Uint8Array(31)), null);
});

test('ClientInfo sealed by Go opens, and ours seals byte-identically with the same nonce', () => {
  const payload = Buffer.concat([client.publicKey, hex(go.clientInfoBox)]);
  const opened = openClientInfo(server, payload);
  assert.deepEqual(opened.clientKey, client.publicKey);
  assert.deepEqual(opened.info, { meshKey: '', version: 2, canAckPings: true, isProber: false, appName: '' });
  const frame = encodeClientInfo(client, server.publicKey, { canAckPings: true }, hex(go.nonce));
  assert.equal(frame[0], FrameType.ClientInfo);
  assert.deepEqual(frame.subarray(5), payload);
});

test('ServerInfo sealed like Go (same nonce) and opened by the client side', () => {
  const shared = server.sharedKey(client.publicKey);
  assert.ok(shared);
  const frame = encodeServerInfo(shared, hex(go.nonce));
  assert.equal(frame.subarray(5).toString('hex'), go.serverInfoBox);
  const cshared = client.sharedKey(server.publicKey);
  assert.ok(cshared);
  assert.deepEqual(openServerInfo(cshared, frame.subarray(5)), JSON.parse(go.serverInfoJson));
});

test('ClientInfo refused: sealed to another server key, short, long, bad JSON fields', () => {
  const other = new BoxKey(Buffer.alloc(32, 7));
  const wrong = encodeClientInfo(client, other.publicKey).subarray(5);
  assert.throws(() => openClientInfo(server, wrong), /does not open/);
  assert.throws(() => openClientInfo(server, Buffer.alloc(55)), /short ClientInfo/);
  assert.throws(() => openClientInfo(server, Buffer.alloc((256 << 10) + 1)), /long ClientInfo/);
  assert.throws(() => parseClientInfoJson(Buffer.from('[]')), DerpFrameError);
  assert.throws(() => parseClientInfoJson(Buffer.from('{"AppName":"tab\\there"}')), /AppName/);
  assert.throws(() => parseClientInfoJson(Buffer.from('{"version":"2"}')), /version/);
});

test('ClientInfo JSON: Go field spellings, matched case-insensitively like encoding/json', () => {
  const info = parseClientInfoJson(Buffer.from(go.clientInfoMeshJson));
  assert.deepEqual(info, {
    meshKey: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
    version: 2,
    canAckPings: true,
    isProber: true,
    appName: 'bench',
  });
  assert.equal(parseClientInfoJson(Buffer.from('{"canackpings":true,"MESHKEY":"x"}')).meshKey, 'x');
  assert.ok(meshKeyEqual(info.meshKey, info.meshKey.toUpperCase()));
  assert.ok(!meshKeyEqual(info.meshKey, ''));
  assert.ok(!meshKeyEqual('', ''));
});

test('server frames decode as the Go client parses them', () => {
  const key = Buffer.alloc(32, 0xab);
  const sk = decodeServerFrame(FrameType.ServerKey, encodeServerKey(key).subarray(5));
  assert.deepEqual(sk, { type: 'server-key', key });
  assert.throws(() => decodeServerFrame(FrameType.ServerKey, Buffer.alloc(40)), /greeting/);
  // PeerGone without the reason byte is Disconnected (old servers).
  assert.deepEqual(decodeServerFrame(FrameType.PeerGone, key), { type: 'peer-gone', peer: key, reason: 0 });
  assert.deepEqual(decodeServerFrame(FrameType.PeerGone, encodePeerGone(key, 1).subarray(5)), {
    type: 'peer-gone',
    peer: key,
    reason: 1,
  });
  const ip = ipTo16('10.1.2.3');
  assert.ok(ip);
  const pp = encodePeerPresent(key, { ip, port: 41641 }, 0x01, 'app');
  // key + IP(16) + port(2) + flags(1) + name length(1) + name: derpserver peerPresentBaseLen + name
  assert.equal(pp.length - 5, 32 + 16 + 2 + 1 + 1 + 3);
  const d = decodeServerFrame(FrameType.PeerPresent, pp.subarray(5));
  assert.equal(d.type, 'peer-present');
  if (d.type !== 'peer-present') return;
  assert.equal(Buffer.from(d.addr?.ip ?? []).toString('hex'), '00000000000000000000ffff0a010203');
  assert.equal(d.addr?.port, 41641);
  assert.equal(d.flags, 1);
  assert.equal(d.appName, 'app');
  // Older servers: key only, key + addr, key + addr + flags.
  for (const len of [32, 50, 51]) {
    const r = decodeServerFrame(FrameType.PeerPresent, pp.subarray(5, 5 + len));
    assert.equal(r.type, 'peer-present');
  }
  assert.deepEqual(decodeServerFrame(FrameType.Restarting, encodeRestarting(500, 9000).subarray(5)), {
    type: 'restarting',
    reconnectInMs: 500,
    tryForMs: 9000,
  });
  assert.equal(decodeServerFrame(FrameType.RecvPacket, Buffer.alloc(31)).type, 'ignored');
  assert.equal(decodeServerFrame(0x0b, Buffer.alloc(3)).type, 'ignored');
});

test('client frames: exact sizes and bounds of the reference server', () => {
  const k = Buffer.alloc(32, 1);
  assert.equal(
    decodeClientFrame(FrameType.SendPacket, Buffer.concat([k, Buffer.alloc(65536)])).type,
    'send-packet',
  );
  assert.throws(
    () => decodeClientFrame(FrameType.SendPacket, Buffer.concat([k, Buffer.alloc(65537)])),
    /exceeds/,
  );
  assert.throws(() => decodeClientFrame(FrameType.SendPacket, Buffer.alloc(31)), /short/);
  assert.throws(() => decodeClientFrame(FrameType.NotePreferred, Buffer.alloc(2)), /1 byte/);
  assert.deepEqual(decodeClientFrame(FrameType.NotePreferred, Buffer.of(1)), {
    type: 'note-preferred',
    preferred: true,
  });
  assert.throws(() => decodeClientFrame(FrameType.WatchConns, Buffer.alloc(1)), /empty/);
  assert.throws(() => decodeClientFrame(FrameType.ClosePeer, Buffer.alloc(33)), /32 bytes/);
  assert.throws(() => decodeClientFrame(FrameType.Ping, Buffer.alloc(7)), /short Ping/);
  assert.throws(() => decodeClientFrame(FrameType.Ping, Buffer.alloc(1001)), /over 1000/);
  const ping = decodeClientFrame(FrameType.Ping, Buffer.from('0123456789'));
  assert.deepEqual(ping, { type: 'ping', data: Buffer.from('01234567') });
  assert.deepEqual(decodeClientFrame(0x30, Buffer.alloc(10)), {
    type: 'unknown',
    frameType: 0x30,
    length: 10,
  });
  assert.throws(() => decodeClientFrame(0x30, Buffer.alloc(65536 + 33)), /too large/);
});

test('FrameReader: frames split at every byte boundary and coalesced come out whole', () => {
  const frames = [encodeFrame(4, Buffer.alloc(40, 1)), encodeFrame(6), encodeFrame(0x12, Buffer.alloc(8, 9))];
  const all = Buffer.concat(frames);
  for (let cut = 0; cut <= all.length; cut++) {
    const got: string[] = [];
    const r = new FrameReader(1024, (t, p) => got.push(`${t}:${p.length}`));
    r.push(all.subarray(0, cut));
    r.push(all.subarray(cut));
    assert.deepEqual(got, ['4:40', '6:0', '18:8'], `cut at ${cut}`);
    assert.equal(r.pending, 0);
  }
  const one = new FrameReader(1024, () => undefined);
  for (const b of all) one.push(Buffer.of(b));
  assert.equal(one.pending, 0);
});

test('FrameReader refuses an oversized frame from its header, before buffering it', () => {
  const r = new FrameReader(MAX_CLIENT_FRAME_LEN, () => assert.fail('no frame expected'));
  const head = Buffer.alloc(5);
  head[0] = 4;
  head.writeUInt32BE(MAX_CLIENT_FRAME_LEN + 1, 1);
  assert.throws(() => r.push(head), /over the limit/);
  assert.throws(() => r.push(Buffer.alloc(1)), /over the limit/, 'stays failed');
});

test('STUN request and responses are byte-identical to tailscale.com/net/stun', () => {
  const tx = hex(go.stunTxId);
  assert.equal(bindingRequest(tx).toString('hex'), go.stunRequest);
  assert.equal(bindingRequest(tx).length, 40);
  assert.deepEqual(parseBindingRequest(hex(go.stunRequest)), tx);
  assert.equal(bindingResponse(tx, '198.51.100.7', 41641).toString('hex'), go.stunResponse4);
  assert.equal(bindingResponse(tx, '::ffff:198.51.100.7', 41641).toString('hex'), go.stunResponse4);
  assert.equal(bindingResponse(tx, '2001:db8::1234', 3478).toString('hex'), go.stunResponse6);
  assert.deepEqual(parseBindingResponse(hex(go.stunResponse4)), {
    txId: tx,
    ip: '198.51.100.7',
    port: 41641,
  });
  assert.equal(parseBindingResponse(hex(go.stunResponse6))?.ip, '2001:0db8:0000:0000:0000:0000:0000:1234');
});

test('STUN: requests without tailnode SOFTWARE or with a bad fingerprint are ignored', () => {
  const req = hex(go.stunRequest);
  const badFp = Buffer.from(req);
  badFp[39] = (badFp[39] as number) ^ 1;
  assert.equal(parseBindingRequest(badFp), null);
  const badSw = Buffer.from(req);
  badSw[24] = 0x58;
  assert.equal(parseBindingRequest(badSw), null);
  assert.equal(parseBindingRequest(req.subarray(0, 32)), null);
  assert.equal(parseBindingRequest(Buffer.alloc(19)), null);
});

test('ipTo16 parses IPv4, v4-mapped and IPv6 text', () => {
  assert.equal(Buffer.from(ipTo16('::1') ?? []).toString('hex'), '00000000000000000000000000000001');
  assert.equal(Buffer.from(ipTo16('fe80::1%eth0') ?? []).toString('hex'), 'fe800000000000000000000000000001');
  assert.equal(ipTo16('1.2.3.256'), null);
  assert.equal(ipTo16('nope'), null);
  assert.equal(ipTo16('1:2:3:4:5:6:7:8:9'), null);
});
