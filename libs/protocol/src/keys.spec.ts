/** Key text forms, zero keys, generation and X25519. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '@switchboard/common';
import {
  KEY_PREFIXES,
  clampPrivateKey,
  formatKey,
  generateMachineKeyPair,
  generatePrivateKey,
  isZeroKey,
  keyFromBytes,
  keysEqual,
  normalizeKeyText,
  parseKey,
  publicKeyFromPrivate,
  x25519,
  zeroKey,
  zeroKeyText,
  type KeyKind,
} from './keys.js';

const HEX = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

void describe('key text forms', () => {
  for (const kind of Object.keys(KEY_PREFIXES) as KeyKind[]) {
    void test(`${kind}: round trip with prefix ${KEY_PREFIXES[kind]}`, () => {
      const text = KEY_PREFIXES[kind] + HEX;
      const key = parseKey(kind, text);
      assert.equal(key.length, 32);
      assert.equal(key[1], 0x11);
      assert.equal(formatKey(kind, key), text);
    });
  }

  void test('accepts upper-case hex and formats lowercase', () => {
    assert.equal(normalizeKeyText('node', 'nodekey:' + HEX.toUpperCase()), 'nodekey:' + HEX);
  });

  void test('nlpub also accepts the CLI prefix tlpub:', () => {
    assert.equal(normalizeKeyText('nl', 'tlpub:' + HEX), 'nlpub:' + HEX);
  });

  void test('errors name the field and never echo the key', () => {
    const cases: Array<[unknown, RegExp]> = [
      ['mkey:' + HEX, /NodeKey: key does not have the expected prefix nodekey:/],
      ['nodekey:' + HEX.slice(2), /NodeKey: key hex has the wrong size, got 62 want 64/],
      ['nodekey:' + HEX.slice(2) + 'zz', /NodeKey: invalid hex character in key/],
      ['', /NodeKey: empty string is not a key/],
      [42, /NodeKey: expected a string, got number/],
      [null, /NodeKey: expected a string, got null/],
    ];
    for (const [input, re] of cases) {
      assert.throws(
        () => parseKey('node', input, 'NodeKey'),
        (e: unknown) => {
          assert.ok(e instanceof ValidationError);
          assert.match(e.message, re);
          assert.ok(!e.message.includes(HEX.slice(10)), 'message must not echo key material');
          return true;
        },
      );
    }
  });

  void test('zero keys', () => {
    assert.equal(zeroKeyText('machine'), 'mkey:' + '0'.repeat(64));
    assert.ok(isZeroKey(parseKey('machine', zeroKeyText('machine'))));
    assert.ok(isZeroKey(zeroKey('disco')));
    assert.ok(!isZeroKey(parseKey('machine', 'mkey:' + HEX)));
  });

  void test('keyFromBytes checks the length and copies', () => {
    const raw = new Uint8Array(32).fill(7);
    const k = keyFromBytes('disco', raw);
    raw[0] = 0;
    assert.equal(k[0], 7);
    assert.throws(
      () => keyFromBytes('disco', new Uint8Array(31), 'DiscoKey'),
      /DiscoKey: expected 32 key bytes, got 31/,
    );
  });

  void test('keysEqual', () => {
    assert.ok(
      keysEqual(parseKey('node', 'nodekey:' + HEX), parseKey('node', 'nodekey:' + HEX.toUpperCase())),
    );
    assert.ok(!keysEqual(new Uint8Array(32), new Uint8Array(31)));
  });
});

void describe('key generation and X25519', () => {
  void test('generated private keys are clamped and distinct', () => {
    const a = generatePrivateKey();
    const b = generatePrivateKey();
    assert.equal(a[0]! & 7, 0);
    assert.equal(a[31]! & 0x80, 0);
    assert.equal(a[31]! & 0x40, 0x40);
    assert.ok(!keysEqual(a, b));
  });

  void test('clampPrivateKey', () => {
    const k = new Uint8Array(32).fill(0xff);
    clampPrivateKey(k);
    assert.equal(k[0], 0xf8);
    assert.equal(k[31], 0x7f);
  });

  void test('RFC 7748 §6.1 Diffie-Hellman vector', () => {
    const alicePriv = keyFromBytes(
      'private',
      Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex'),
    );
    const bobPub = Buffer.from('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', 'hex');
    assert.equal(
      Buffer.from(publicKeyFromPrivate('machine', alicePriv)).toString('hex'),
      '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
    );
    assert.equal(
      Buffer.from(x25519(alicePriv, bobPub)).toString('hex'),
      '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
    );
  });

  void test('both sides derive the same shared secret', () => {
    const a = generateMachineKeyPair();
    const b = generateMachineKeyPair();
    assert.deepEqual(x25519(a.private, b.public), x25519(b.private, a.public));
  });

  void test('an all-zero (low-order) public key is rejected', () => {
    assert.throws(() => x25519(generatePrivateKey(), new Uint8Array(32)), /low-order or invalid public key/);
  });
});
