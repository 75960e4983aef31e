/**
 * Handshake tests: byte-for-byte agreement with a transcript recorded from Tailscale's Go
 * controlbase (testdata/handshake-transcript.json, fixed keys), plus both sides of our own
 * implementation talking to each other and rejecting malformed messages.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import transcript from '../../testdata/handshake-transcript.json' with { type: 'json' };
import { generateMachineKeyPair, parseKey, publicKeyFromPrivate, formatKey } from '../keys.js';
import {
  HandshakeRejection,
  acceptInitiation,
  initiate,
  parseInitiationHeader,
  type NoiseSession,
} from './handshake.js';
import { MAX_PLAINTEXT_SIZE, encodeErrorFrame, readHandshakeReply } from './messages.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function sealMessages(session: NoiseSession, plaintexts: string[]): string {
  const parts: Buffer[] = [];
  for (const p of plaintexts) {
    const bytes = hex(p);
    // Go's Conn.Write splits one Write into records of at most 4077 bytes.
    for (let i = 0; i < bytes.length; i += MAX_PLAINTEXT_SIZE)
      parts.push(session.tx.sealRecord(bytes.subarray(i, i + MAX_PLAINTEXT_SIZE)));
  }
  return Buffer.concat(parts).toString('hex');
}

void describe('handshake transcript from Go controlbase', () => {
  const clientStatic = parseKey('private', transcript.clientStaticPrivate);
  const serverStatic = parseKey('private', transcript.serverStaticPrivate);
  const serverPublic = parseKey('machine', transcript.serverStaticPublic);
  const clientEph = parseKey('private', transcript.clientEphemeralPrivate);
  const serverEph = parseKey('private', transcript.serverEphemeralPrivate);

  void test('static public keys agree', () => {
    assert.equal(
      formatKey('machine', publicKeyFromPrivate('machine', clientStatic)),
      transcript.clientStaticPublic,
    );
    assert.equal(
      formatKey('machine', publicKeyFromPrivate('machine', serverStatic)),
      transcript.serverStaticPublic,
    );
  });

  void test('client produces the same initiation, accepts the response, and seals the same records', () => {
    const hs = initiate(clientStatic, serverPublic, transcript.version, { ephemeralPrivate: clientEph });
    assert.equal(toHex(hs.initiation), transcript.initiation);
    const session = hs.finish(hex(transcript.response));
    assert.equal(toHex(session.handshakeHash), transcript.handshakeHash);
    assert.equal(sealMessages(session, transcript.clientToServer.plaintexts), transcript.clientToServer.wire);
    // and opens what the Go server sent
    const wire = hex(transcript.serverToClient.wire);
    const got: Buffer[] = [];
    for (let off = 0; off < wire.length;) {
      const len = wire.readUInt16BE(off + 1);
      got.push(session.rx.open(wire.subarray(off + 3, off + 3 + len)));
      off += 3 + len;
    }
    assert.equal(Buffer.concat(got).toString('hex'), transcript.serverToClient.plaintexts.join(''));
  });

  void test('server accepts the Go initiation and produces the same response and records', () => {
    const acc = acceptInitiation(hex(transcript.initiation), serverStatic, { ephemeralPrivate: serverEph });
    assert.equal(acc.version, transcript.version);
    assert.equal(formatKey('machine', acc.machineKey), transcript.clientStaticPublic);
    assert.equal(toHex(acc.response), transcript.response);
    assert.equal(toHex(acc.session.handshakeHash), transcript.handshakeHash);
    assert.equal(
      sealMessages(acc.session, transcript.serverToClient.plaintexts),
      transcript.serverToClient.wire,
    );
  });
});

void describe('handshake between our client and server', () => {
  void test('agrees on keys in both directions and authenticates the machine key', () => {
    const server = generateMachineKeyPair();
    const machine = generateMachineKeyPair();
    const hs = initiate(machine.private, server.public, 148);
    assert.equal(hs.initiation.length, 101);
    assert.deepEqual([...hs.initiation.subarray(0, 5)], [0, 148, 1, 0, 96]);
    const acc = acceptInitiation(hs.initiation, server.private);
    assert.equal(acc.version, 148);
    assert.deepEqual(acc.machineKey, machine.public);
    assert.equal(acc.response.length, 51);
    assert.deepEqual([...acc.response.subarray(0, 3)], [2, 0, 48]);
    const client = hs.finish(acc.response);
    assert.deepEqual(client.handshakeHash, acc.session.handshakeHash);
    for (let i = 0; i < 3; i++) {
      const up = client.tx.sealRecord(Buffer.from(`up ${i}`));
      assert.equal(acc.session.rx.open(up.subarray(3)).toString(), `up ${i}`);
      const down = acc.session.tx.sealRecord(Buffer.from(`down ${i}`));
      assert.equal(client.rx.open(down.subarray(3)).toString(), `down ${i}`);
    }
  });

  void test('a client that expects a different server key fails on the response', () => {
    const server = generateMachineKeyPair();
    const wrong = generateMachineKeyPair();
    const machine = generateMachineKeyPair();
    const hs = initiate(machine.private, wrong.public, 113);
    // The real server cannot even decrypt the machine key.
    assert.throws(() => acceptInitiation(hs.initiation, server.private), /decrypting machine key/);
  });

  void test('a forged response tag is rejected', () => {
    const server = generateMachineKeyPair();
    const machine = generateMachineKeyPair();
    const hs = initiate(machine.private, server.public, 113);
    const resp = Buffer.from(acceptInitiation(hs.initiation, server.private).response);
    resp[50] = resp[50]! ^ 0x80;
    assert.throws(() => hs.finish(resp), /decrypting payload/);
    assert.throws(() => hs.finish(resp), /used twice/);
  });

  void test('the version is bound into the prologue', () => {
    const server = generateMachineKeyPair();
    const machine = generateMachineKeyPair();
    const init = Buffer.from(initiate(machine.private, server.public, 113).initiation);
    init.writeUInt16BE(112, 0);
    assert.throws(() => acceptInitiation(init, server.private), { code: 'noise_handshake_failed' });
  });

  void test('low-order ephemeral keys are rejected, not turned into all-zero secrets', () => {
    const server = generateMachineKeyPair();
    const machine = generateMachineKeyPair();
    const init = Buffer.from(initiate(machine.private, server.public, 113).initiation);
    init.fill(0, 5, 37);
    assert.throws(() => acceptInitiation(init, server.private), /computing es/);
  });
});

void describe('initiation validation (controlbase error texts)', () => {
  const valid = (): Buffer => {
    const s = generateMachineKeyPair();
    return Buffer.from(initiate(generateMachineKeyPair().private, s.public, 113).initiation);
  };

  void test('wrong size', () => {
    assert.throws(
      () => parseInitiationHeader(new Uint8Array(100)),
      (e: unknown) => {
        assert.ok(e instanceof HandshakeRejection);
        assert.equal(e.errorFrameText, 'wrong handshake initiation size');
        return true;
      },
    );
  });

  void test('wrong type', () => {
    const m = valid();
    m[2] = 2;
    assert.throws(() => parseInitiationHeader(m), { errorFrameText: 'unexpected handshake message type' });
  });

  void test('wrong length field', () => {
    const m = valid();
    m.writeUInt16BE(95, 3);
    assert.throws(() => parseInitiationHeader(m), { errorFrameText: 'wrong handshake initiation length' });
  });

  void test('version out of range is refused on the client', () => {
    const s = generateMachineKeyPair();
    assert.throws(() => initiate(s.private, s.public, 70000), /16-bit/);
  });
});

void describe('handshake reply framing', () => {
  void test('error frames are read whole, responses need 51 bytes', () => {
    const err = encodeErrorFrame('unsupported client version');
    assert.deepEqual(readHandshakeReply(err.subarray(0, 5)), { kind: 'incomplete' });
    const r = readHandshakeReply(Buffer.concat([err, Buffer.from('rest')]));
    assert.equal(r.kind, 'error');
    if (r.kind === 'error') {
      assert.equal(r.text, 'unsupported client version');
      assert.equal(r.rest.toString(), 'rest');
    }
    const resp = Buffer.alloc(51);
    resp[0] = 2;
    resp.writeUInt16BE(48, 1);
    assert.equal(readHandshakeReply(resp.subarray(0, 50)).kind, 'incomplete');
    assert.equal(readHandshakeReply(resp).kind, 'response');
  });

  void test('other types and lengths are rejected', () => {
    assert.throws(() => readHandshakeReply(Buffer.from([4, 0, 48])), /unexpected response message type 4/);
    assert.throws(() => readHandshakeReply(Buffer.from([2, 0, 47])), /wrong length 47/);
  });

  void test('error text is truncated to the u16 length field', () => {
    const f = encodeErrorFrame('x'.repeat(70000));
    assert.equal(f.readUInt16BE(1), 65535);
    assert.equal(f.length, 65538);
  });
});
