/** The legacy NaCl channel against boxes sealed by Go's nacl/box as tailscale v1.62.1 seals them. */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ProtocolError } from '../errors.js';
import {
  formatKey,
  generatePrivateKey,
  keyFromBytes,
  publicKeyFromPrivate,
  type PrivateKey,
} from '../keys.js';
import { initZstd } from '../zstd.js';
import { encodeMapFrame, KEEP_ALIVE_FRAME, MapFrameDecoder } from '../map-framing.js';
import vectors from '../../testdata/legacy-box-vectors.json' with { type: 'json' };
import { LegacyBoxKey, NonceReplayGuard } from './legacy-box.js';
import { keyAnswer, parseLegacyRoute, sealMapFrames } from './legacy-channel.js';

const hex = (s: string) => Buffer.from(s, 'hex');
const priv = (s: string) => keyFromBytes('private', hex(s));
const mpub = (s: string) => keyFromBytes('machine', hex(s));

describe('legacy box (Go vectors)', () => {
  for (const v of vectors) {
    it(`${v.name}: opens the client's box and seals the server's byte for byte`, () => {
      const server = new LegacyBoxKey(priv(v.serverPrivate), mpub(v.clientPublic));
      assert.deepEqual(server.open(hex(v.sealedByClient)), hex(v.cleartext));
      assert.deepEqual(server.seal(hex(v.cleartext), hex(v.nonce)), hex(v.sealedByServer));
      // The client's side of the same shared key.
      const client = new LegacyBoxKey(priv(v.clientPrivate), mpub(v.serverPublic));
      assert.deepEqual(client.seal(hex(v.cleartext), hex(v.nonce)), hex(v.sealedByClient));
      assert.equal(
        publicKeyFromPrivate('machine', priv(v.serverPrivate)).toString(),
        mpub(v.serverPublic).toString(),
      );
    });
  }

  it('refuses a tampered box, a short one, and one sealed to another server key', () => {
    const v = vectors[1]!;
    const server = new LegacyBoxKey(priv(v.serverPrivate), mpub(v.clientPublic));
    const bad = hex(v.sealedByClient);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    assert.throws(
      () => server.open(bad),
      (e: unknown) => e instanceof ProtocolError && e.code === 'legacy_box_invalid',
    );
    assert.throws(() => server.open(Buffer.alloc(39)), /shorter than nonce and tag/);
    const other = new LegacyBoxKey(generatePrivateKey(), mpub(v.clientPublic));
    assert.throws(() => other.open(hex(v.sealedByClient)), /does not open/);
  });

  it('refuses a zero or low-order client machine key', () => {
    const k = generatePrivateKey();
    assert.throws(
      () => new LegacyBoxKey(k, keyFromBytes('machine', new Uint8Array(32))),
      /zero or malformed/,
    );
    // A point of order 8: x25519 with it gives all zeros whatever the private key.
    const low = hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');
    assert.throws(() => new LegacyBoxKey(k, keyFromBytes('machine', low)), /low-order/);
  });

  it('uses a fresh nonce for every seal', () => {
    const a = generatePrivateKey();
    const b = generatePrivateKey();
    const key = new LegacyBoxKey(a, publicKeyFromPrivate('machine', b));
    const x = key.seal(Buffer.from('x'));
    const y = key.seal(Buffer.from('x'));
    assert.notDeepEqual(x.subarray(0, 24), y.subarray(0, 24));
  });
});

describe('NonceReplayGuard', () => {
  it('refuses a repeated nonce and forgets the oldest beyond its capacity', () => {
    const g = new NonceReplayGuard(2);
    const n = (i: number) => Buffer.alloc(40, i);
    g.check(n(1));
    assert.throws(
      () => g.check(n(1)),
      (e: unknown) => e instanceof ProtocolError && e.code === 'legacy_replay',
    );
    g.check(n(2));
    g.check(n(3));
    assert.equal(g.size, 2);
    g.check(n(1)); // forgotten
  });
});

describe('parseLegacyRoute', () => {
  const h = 'ab'.repeat(32);
  it('matches register and map, with or without a path prefix', () => {
    assert.equal(parseLegacyRoute(`/machine/${h}`)?.endpoint, 'register');
    assert.equal(parseLegacyRoute(`/prefix/machine/${h}/map`)?.endpoint, 'map');
    assert.equal(parseLegacyRoute(`/machine/${h.toUpperCase()}`)?.machineKeyText, `mkey:${h}`);
  });
  it('leaves the Noise endpoints and anything else alone', () => {
    for (const p of ['/machine/register', '/machine/map', `/machine/${h}/set-dns`, `/machine/${h}x`, '/key'])
      assert.equal(parseLegacyRoute(p), null, p);
  });
});

describe('keyAnswer', () => {
  const noise = formatKey('machine', publicKeyFromPrivate('machine', generatePrivateKey()));
  const legacy = formatKey('machine', publicKeyFromPrivate('machine', generatePrivateKey()));
  const zero = `mkey:${'0'.repeat(64)}`;
  it('with the legacy channel off, answers as before whatever the client', () => {
    const p = { noiseKeyText: noise, legacyKeyText: null, legacyOnlyMaxCapVersion: 88 };
    for (const v of [null, 20, 88, 113])
      assert.deepEqual(keyAnswer(p, v), { kind: 'json', body: { legacyPublicKey: zero, publicKey: noise } });
  });
  it('with it on, gives old clients only the legacy key and newer ones both', () => {
    const p = { noiseKeyText: noise, legacyKeyText: legacy, legacyOnlyMaxCapVersion: 88 };
    assert.deepEqual(keyAnswer(p, null), { kind: 'hex', body: legacy.slice(5) });
    assert.deepEqual(keyAnswer(p, 88), { kind: 'json', body: { legacyPublicKey: legacy, publicKey: zero } });
    assert.deepEqual(keyAnswer(p, 89), { kind: 'json', body: { legacyPublicKey: legacy, publicKey: noise } });
    assert.deepEqual(keyAnswer({ ...p, legacyOnlyMaxCapVersion: -1 }, 30).body, {
      legacyPublicKey: legacy,
      publicKey: noise,
    });
  });
});

describe('sealMapFrames', () => {
  before(() => initZstd());
  it('re-seals each frame so the client opens, then decompresses it', () => {
    const server: PrivateKey = generatePrivateKey();
    const client: PrivateKey = generatePrivateKey();
    const sk = new LegacyBoxKey(server, publicKeyFromPrivate('machine', client));
    const ck = new LegacyBoxKey(client, publicKeyFromPrivate('machine', server));
    const two = Buffer.concat([encodeMapFrame('{"Node":{"ID":1}}'), Buffer.from(KEEP_ALIVE_FRAME)]);
    const sealed = sealMapFrames(two, sk);
    // Client side: length, open, then the usual zstd frame.
    const plain: Buffer[] = [];
    for (let pos = 0; pos < sealed.length;) {
      const len = sealed.readUInt32LE(pos);
      const payload = ck.open(sealed.subarray(pos + 4, pos + 4 + len));
      const hdr = Buffer.alloc(4);
      hdr.writeUInt32LE(payload.length);
      plain.push(hdr, payload);
      pos += 4 + len;
    }
    const frames = new MapFrameDecoder().push(Buffer.concat(plain));
    assert.equal(frames.length, 2);
    assert.equal(Buffer.from(frames[0]!.json).toString(), '{"Node":{"ID":1}}');
    assert.equal(frames[1]!.keepAlive, true);
  });
  it('refuses a cut-off frame', () => {
    const sk = new LegacyBoxKey(generatePrivateKey(), publicKeyFromPrivate('machine', generatePrivateKey()));
    assert.throws(() => sealMapFrames(encodeMapFrame('{}').subarray(0, 5), sk), /does not fit/);
    assert.throws(() => sealMapFrames(Buffer.from([1, 0]), sk), /inside a length header/);
  });
});
