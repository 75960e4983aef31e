/** Known-answer tests for the Noise primitives, against vectors produced by Go's x/crypto (testdata). */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, hkdfSync } from 'node:crypto';
import vectors from '../../testdata/primitive-vectors.json' with { type: 'json' };
import { aeadOpen, aeadSeal, blake2s, hkdf2, hmacBlake2s, nonceFor } from './primitives.js';
import { TransportCipher } from './transport-cipher.js';
import { x25519, publicKeyFromPrivate, keyFromBytes } from '../keys.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

void describe('BLAKE2s-256', () => {
  void test('RFC 7693 appendix B: BLAKE2s-256("abc")', () => {
    assert.equal(
      toHex(blake2s(Buffer.from('abc'))),
      '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982',
    );
  });
  for (const v of vectors.blake2s) {
    void test(`matches Go for ${v.input.length / 2}-byte input`, () => {
      assert.equal(toHex(blake2s(hex(v.input))), v.output);
    });
  }
});

void describe('HMAC-BLAKE2s', () => {
  for (const v of vectors.hmacBlake2s) {
    void test(`matches Go's hmac.New(blake2s.New256) for a ${v.key.length / 2}-byte key`, () => {
      assert.equal(toHex(hmacBlake2s(hex(v.key), hex(v.input))), v.output);
    });
  }
});

void describe('Noise HKDF', () => {
  for (const v of vectors.hkdf) {
    void test(`matches Go's hkdf.New(blake2s) with ${v.ikm.length / 2}-byte ikm`, () => {
      const [a, b] = hkdf2(hex(v.chainingKey), hex(v.ikm));
      assert.equal(toHex(a), v.out1);
      assert.equal(toHex(b), v.out2);
      // and agrees with OpenSSL's RFC 5869 HKDF (salt = ck, empty info)
      const both = Buffer.from(hkdfSync('blake2s256', hex(v.ikm), hex(v.chainingKey), new Uint8Array(0), 64));
      assert.equal(both.toString('hex'), v.out1 + v.out2);
    });
  }
});

void describe('ChaCha20-Poly1305 with controlbase nonces', () => {
  void test('RFC 8439 §2.8.2 AEAD test vector', () => {
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('070000004041424344454647');
    const ad = hex('50515253c0c1c2c3c4c5c6c7');
    const pt = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const sealed = aeadSeal(key, nonce, pt, ad);
    assert.equal(toHex(sealed.subarray(sealed.length - 16)), '1ae10b594f09e26a7e902ecbd0600691');
    assert.deepEqual(aeadOpen(key, nonce, sealed, ad), pt);
  });

  void test('nonce is 4 zero bytes then the counter big-endian', () => {
    assert.equal(nonceFor(0).toString('hex'), '000000000000000000000000');
    assert.equal(nonceFor(1).toString('hex'), '000000000000000000000001');
    assert.equal(nonceFor(256).toString('hex'), '000000000000000000000100');
    assert.equal(nonceFor(2 ** 32).toString('hex'), '000000000000000100000000');
    assert.equal(nonceFor(2 ** 40 + 3).toString('hex'), '000000000000010000000003');
  });

  for (const v of vectors.chacha20poly1305) {
    void test(`matches Go's Seal at counter ${v.counter}`, () => {
      assert.equal(nonceFor(v.counter).toString('hex'), v.nonce);
      const ad = v.ad === '' ? undefined : hex(v.ad);
      assert.equal(toHex(aeadSeal(hex(v.key), hex(v.nonce), hex(v.plaintext), ad)), v.ciphertext);
      assert.equal(toHex(aeadOpen(hex(v.key), hex(v.nonce), hex(v.ciphertext), ad)), v.plaintext);
      if (ad === undefined) {
        // TransportCipher seals a whole record with the same counter-derived nonce.
        const rec = new TransportCipher(hex(v.key), v.counter).sealRecord(hex(v.plaintext));
        assert.equal(rec[0], 4);
        assert.equal(rec.readUInt16BE(1), v.ciphertext.length / 2);
        assert.equal(toHex(rec.subarray(3)), v.ciphertext);
        assert.equal(toHex(new TransportCipher(hex(v.key), v.counter).open(rec.subarray(3))), v.plaintext);
      }
    });
  }

  void test('a little-endian nonce (the Noise spec layout) does not decrypt counter 1', () => {
    const key = hex(vectors.chacha20poly1305[1]!.key);
    const le = Buffer.alloc(12);
    le.writeUInt32LE(1, 4);
    const c = createCipheriv('chacha20-poly1305', key, le, { authTagLength: 16 });
    const ct = Buffer.concat([c.update(Buffer.from('x')), c.final(), c.getAuthTag()]);
    const rx = new TransportCipher(key, 1);
    assert.throws(() => rx.open(ct), /authentication failed/);
  });

  void test('tampered records fail', () => {
    const key = hex(vectors.chacha20poly1305[0]!.key);
    const rec = new TransportCipher(key).sealRecord(Buffer.from('hello'));
    rec[5] = rec[5]! ^ 1;
    assert.throws(() => new TransportCipher(key).open(rec.subarray(3)), { code: 'noise_decrypt_failed' });
  });

  void test('the counter advances per record and refuses to wrap', () => {
    const key = hex(vectors.chacha20poly1305[0]!.key);
    const tx = new TransportCipher(key);
    tx.sealRecord(new Uint8Array(0));
    tx.sealRecord(new Uint8Array(1));
    assert.equal(tx.nextCounter, 2);
    const end = new TransportCipher(key, Number.MAX_SAFE_INTEGER);
    assert.throws(() => end.sealRecord(new Uint8Array(1)), { code: 'noise_cipher_exhausted' });
  });
});

void describe('X25519', () => {
  for (const v of vectors.x25519) {
    void test('matches Go curve25519 for public keys and shared secrets', () => {
      const priv = keyFromBytes('private', hex(v.private));
      assert.equal(toHex(publicKeyFromPrivate('machine', priv)), v.public);
      assert.equal(toHex(x25519(priv, hex(v.peer))), v.shared);
    });
  }
});
