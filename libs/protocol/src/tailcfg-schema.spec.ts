/** Boundary schemas against messages exactly as Go's tailcfg encodes them (testdata/go-messages.json). */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '@switchboard/common';
import samples from '../testdata/go-messages.json' with { type: 'json' };
import {
  MAX_REQUEST_JSON_BYTES,
  MAX_REQUEST_JSON_DEPTH,
  isAddrPort,
  isPrefix,
  parseGoTime,
  parseMapRequest,
  parseRegisterRequest,
} from './tailcfg-schema.js';
import { parseServerKeyResponse } from './client/server-key.js';
import { parseEarlyPayloadJson } from './early-payload.js';
import { formatKey } from './keys.js';
import type { MapResponse } from './tailcfg.js';

function expectInvalid(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ValidationError, `expected ValidationError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

void describe('RegisterRequest', () => {
  void test('a v1.80 registration with an auth key', () => {
    const r = parseRegisterRequest(samples.register);
    assert.equal(r.Version, 113);
    assert.equal(r.NodeKey, samples.register.NodeKey);
    assert.equal(r.OldNodeKey, undefined, 'zero OldNodeKey means none');
    assert.equal(r.NLKey, samples.register.NLKey);
    assert.deepEqual(r.Auth, { AuthKey: 'tskey-auth-k123' });
    assert.equal(r.Expiry, undefined, 'zero Expiry means none');
    assert.equal(r.Followup, '');
    assert.equal(r.Hostinfo?.Hostname, 'go-client');
    assert.deepEqual(r.Hostinfo?.RoutableIPs, ['10.0.0.0/24']);
    assert.equal(r.Hostinfo?.NetInfo?.PreferredDERP, 900);
    assert.equal(r.Ephemeral, false);
  });

  void test('key rotation with a follow-up and no Auth', () => {
    const r = parseRegisterRequest(JSON.stringify(samples.registerRotate));
    assert.equal(r.OldNodeKey, samples.registerRotate.OldNodeKey);
    assert.equal(r.Auth, undefined);
    assert.equal(r.Followup, 'https://control.example.com/register/abc');
  });

  void test('logout sends Expiry = Unix 123; Timestamp keeps sub-second precision to the millisecond', () => {
    const r = parseRegisterRequest(Buffer.from(JSON.stringify(samples.registerLogout)));
    assert.equal(r.Expiry?.getTime(), 123_000);
    assert.equal(r.Timestamp?.toISOString(), '2026-03-04T05:06:07.123Z');
  });

  void test('a pre-1.66 client with an all-empty Auth object has no credentials', () => {
    const r = parseRegisterRequest(samples.registerPre166);
    assert.equal(r.Version, 87);
    assert.equal(r.Auth, undefined);
    assert.equal(r.NLKey, undefined);
    assert.equal(r.NodeKeySignature, undefined);
  });

  void test('unknown fields are allowed and dropped, also inside Hostinfo and its nested objects', () => {
    const r = parseRegisterRequest({
      ...samples.register,
      FutureField: 1,
      Hostinfo: {
        Hostname: 'h',
        Futuristic: [1],
        NetInfo: { PreferredDERP: 2, Extra: { a: 1 } },
        Services: [{ Proto: 'peerapi4', Port: 1234, Secret: 'x' }],
        Location: { City: 'Oslo', Extra: 1 },
        TPM: { Manufacturer: 'MSFT', SpecRevision: 184, Extra: 'x' },
      },
    });
    assert.equal('FutureField' in r, false);
    assert.deepEqual(r.Hostinfo, {
      Hostname: 'h',
      NetInfo: { PreferredDERP: 2 },
      Services: [{ Proto: 'peerapi4', Port: 1234 }],
      Location: { City: 'Oslo' },
      TPM: { Manufacturer: 'MSFT', SpecRevision: 184 },
    });
  });

  void test('every field a v1.80 client sends survives, as sent', () => {
    const r = parseRegisterRequest(samples.register);
    assert.deepEqual(r.Hostinfo, samples.register.Hostinfo);
    const m = parseMapRequest(samples.mapStream);
    assert.deepEqual(m.Hostinfo, samples.mapStream.Hostinfo);
  });

  void test('keys are normalised to lowercase', () => {
    const r = parseRegisterRequest({
      ...samples.register,
      NodeKey: samples.register.NodeKey.toUpperCase().replace('NODEKEY:', 'nodekey:'),
    });
    assert.equal(r.NodeKey, samples.register.NodeKey);
  });

  void test('bad input names the field', () => {
    expectInvalid(
      () => parseRegisterRequest({ ...samples.register, NodeKey: 'mkey:' + '1'.repeat(64) }),
      /^RegisterRequest\.NodeKey: .*prefix nodekey:/,
    );
    expectInvalid(
      () => parseRegisterRequest({ ...samples.register, NodeKey: 'nodekey:' + '0'.repeat(64) }),
      /NodeKey: must not be the zero key/,
    );
    expectInvalid(
      () => parseRegisterRequest({ ...samples.register, NodeKey: '' }),
      /NodeKey: empty string is not a key/,
    );
    expectInvalid(
      () => parseRegisterRequest({ ...samples.register, Expiry: 'yesterday' }),
      /RegisterRequest\.Expiry: invalid RFC 3339 time/,
    );
    expectInvalid(
      () => parseRegisterRequest({ ...samples.register, Version: 'x' }),
      /RegisterRequest\.Version/,
    );
    expectInvalid(
      () => parseRegisterRequest({ ...samples.register, Hostinfo: { RoutableIPs: ['10.0.0.0/33'] } }),
      /RegisterRequest\.Hostinfo\.RoutableIPs\.0: route "10\.0\.0\.0\/33" has an invalid prefix length; IPv4 prefix lengths go from 0 to 32/,
    );
    expectInvalid(
      () => parseRegisterRequest({ ...samples.register, Hostinfo: { Hostname: 'x'.repeat(5000) } }),
      /Hostinfo\.Hostname/,
    );
    expectInvalid(() => parseRegisterRequest('{"Version":'), /body is not valid JSON/);
    expectInvalid(() => parseRegisterRequest([1]), /expected a JSON object/);
  });

  void test('route prefixes must be canonical: no host bits, no zone (like netip.Prefix.Masked)', () => {
    const withRoutes = (routes: string[]) => ({
      ...samples.register,
      Hostinfo: { Hostname: 'r', RoutableIPs: routes },
    });
    assert.deepEqual(
      parseRegisterRequest(withRoutes(['10.0.0.0/24', '0.0.0.0/0', '::/0', 'fd00:1::/64'])).Hostinfo
        ?.RoutableIPs,
      ['10.0.0.0/24', '0.0.0.0/0', '::/0', 'fd00:1::/64'],
    );
    expectInvalid(
      () => parseRegisterRequest(withRoutes(['10.0.0.0/24', '10.0.0.1/24'])),
      /^RegisterRequest\.Hostinfo\.RoutableIPs\.1: route 10\.0\.0\.1\/24 has host bits set; did you mean 10\.0\.0\.0\/24\?$/,
    );
    expectInvalid(
      () => parseMapRequest({ ...samples.mapStream, Hostinfo: { RoutableIPs: ['fe80::1%eth0/64'] } }),
      /^MapRequest\.Hostinfo\.RoutableIPs\.0: route "fe80::1%eth0\/64" has an IPv6 zone \(%eth0\); routes cannot carry zones, did you mean fe80::\/64\?$/,
    );
    expectInvalid(
      () => parseMapRequest({ ...samples.mapStream, Hostinfo: { RoutableIPs: ['FD00::/8'] } }),
      /route "FD00::\/8" is not written canonically; did you mean fd00::\/8\?/,
    );
  });

  void test('nesting deeper than the limit is refused before parsing, naming the limit (issue: 503 stack overflow)', () => {
    const register = JSON.stringify({ ...samples.register, Hostinfo: { Hostname: 'h', X: 0 } });
    const deep = (n: number) => register.replace('"X":0', `"X":${'['.repeat(n)}${']'.repeat(n)}`);
    // Hostinfo at depth 2, X adds n: 62 more levels fit within 64.
    assert.equal(parseRegisterRequest(deep(62)).Hostinfo?.Hostname, 'h');
    for (const n of [63, 5_000, 20_000]) {
      for (const body of [deep(n), Buffer.from(deep(n))]) {
        expectInvalid(
          () => parseRegisterRequest(body),
          new RegExp(`^RegisterRequest: JSON nested deeper than ${MAX_REQUEST_JSON_DEPTH} levels`),
        );
      }
    }
    const map = JSON.stringify(samples.mapStream).replace(
      /}$/,
      `,"Z":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`,
    );
    expectInvalid(() => parseMapRequest(Buffer.from(map)), /^MapRequest: JSON nested deeper than 64 levels/);
  });

  void test('deep but allowed nesting in unknown fields is dropped without walking it', () => {
    const junk = '{"a":'.repeat(60) + '[1]' + '}'.repeat(60);
    const body = JSON.stringify({ ...samples.register, Hostinfo: { Hostname: 'h' } }).replace(
      '"Hostname":"h"',
      `"Hostname":"h","X":${junk},"NetInfo":{"PreferredDERP":1,"Y":${'['.repeat(60)}${']'.repeat(60)}}`,
    );
    const r = parseRegisterRequest(body);
    assert.deepEqual(r.Hostinfo, { Hostname: 'h', NetInfo: { PreferredDERP: 1 } });
    assert.doesNotThrow(() => JSON.stringify(r));
  });

  void test('a body over the size limit is refused naming the limit', () => {
    const big = JSON.stringify({ ...samples.register, Followup: 'x'.repeat(MAX_REQUEST_JSON_BYTES) });
    expectInvalid(
      () => parseRegisterRequest(big),
      new RegExp(`^RegisterRequest: \\d+ bytes is over the limit of ${MAX_REQUEST_JSON_BYTES} bytes`),
    );
  });

  void test('errors carry every issue with its path', () => {
    try {
      parseRegisterRequest({ Version: -1, NodeKey: 1 });
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof ValidationError);
      const issues = e.details?.issues as Array<{ path: string }>;
      assert.deepEqual(
        issues.map((i) => i.path),
        ['RegisterRequest.Version', 'RegisterRequest.NodeKey'],
      );
    }
  });
});

void describe('MapRequest', () => {
  void test('a streaming poll from v1.80', () => {
    const m = parseMapRequest(samples.mapStream);
    assert.equal(m.Stream, true);
    assert.equal(m.OmitPeers, false);
    assert.equal(m.Compress, 'zstd');
    assert.equal(m.KeepAlive, true);
    assert.equal(m.DiscoKey, samples.mapStream.DiscoKey);
    assert.deepEqual(m.Endpoints, ['192.0.2.1:41641', '[2001:db8::1]:41641']);
    assert.deepEqual(m.EndpointTypes, [1, 2]);
    assert.equal(m.Hostinfo?.Container, false);
  });

  void test('a lite update', () => {
    const m = parseMapRequest(samples.mapLite);
    assert.equal(m.Stream, false);
    assert.equal(m.OmitPeers, true);
    assert.deepEqual(m.DebugFlags, ['warn-ip-forwarding-off']);
  });

  void test('absent lists default to empty, a zero disco key is absent', () => {
    const m = parseMapRequest({
      Version: 148,
      NodeKey: samples.mapStream.NodeKey,
      DiscoKey: 'discokey:' + '0'.repeat(64),
    });
    assert.deepEqual(m.Endpoints, []);
    assert.equal(m.DiscoKey, undefined);
    assert.equal(m.Compress, '');
  });

  void test('sizes are bounded', () => {
    const endpoints = Array.from({ length: 1001 }, (_, i) => `192.0.2.${i % 250}:${1000 + i}`);
    expectInvalid(
      () => parseMapRequest({ ...samples.mapStream, Endpoints: endpoints }),
      /MapRequest\.Endpoints: .*1000/,
    );
    expectInvalid(
      () => parseMapRequest({ ...samples.mapStream, Endpoints: ['1.2.3.4'] }),
      /Endpoints\.0: expected ip:port/,
    );
  });
});

void describe('other messages and helpers', () => {
  void test('the /key response and the early payload as Go writes them', () => {
    const k = parseServerKeyResponse(JSON.stringify(samples.overTLSPublicKeyResponse));
    assert.equal(formatKey('machine', k.publicKey), samples.overTLSPublicKeyResponse.publicKey);
    assert.equal(k.legacyPublicKey, undefined, 'a zero legacy key is dropped');
    assert.deepEqual(
      parseEarlyPayloadJson(Buffer.from(JSON.stringify(samples.earlyNoise))),
      samples.earlyNoise,
    );
  });

  void test("a zero or missing publicKey is refused like tailscaled ('control server is too old')", () => {
    assert.throws(
      () => parseServerKeyResponse('{"legacyPublicKey":"mkey:' + '1'.repeat(64) + '"}'),
      /too old; no noise key/,
    );
    assert.throws(
      () => parseServerKeyResponse('{"publicKey":"mkey:' + '0'.repeat(64) + '"}'),
      /too old; no noise key/,
    );
  });

  void test('a Go MapResponse fits our wire types', () => {
    const m = samples.fullMapResponse as unknown as MapResponse;
    assert.equal(m.Node?.DERP, '127.3.3.40:900');
    assert.equal(m.DERPMap?.omitDefaultRegions, true);
    assert.equal(m.DERPMap?.Regions?.['900']?.Nodes[0]?.HostName, '127.0.0.1');
    assert.deepEqual(m.SSHPolicy, { rules: [] });
    assert.deepEqual(m.UserProfiles?.[0]?.Roles, []);
  });

  void test('time parsing', () => {
    assert.equal(parseGoTime('0001-01-01T00:00:00Z'), null);
    assert.equal(parseGoTime('2026-10-07T15:15:54.523016903Z')?.toISOString(), '2026-10-07T15:15:54.523Z');
    assert.equal(parseGoTime('2026-10-07T17:15:54+02:00')?.toISOString(), '2026-10-07T15:15:54.000Z');
    assert.throws(() => parseGoTime('2026-10-07 15:15:54'), /invalid RFC 3339/);
  });

  void test('address forms', () => {
    assert.ok(isAddrPort('1.2.3.4:41641'));
    assert.ok(isAddrPort('[fd7a:115c:a1e0::1]:41641'));
    assert.ok(isAddrPort('[fe80::1%eth0]:1'));
    assert.ok(!isAddrPort('1.2.3.4:70000'));
    assert.ok(!isAddrPort('fd7a::1:41641'));
    assert.ok(isPrefix('100.64.0.1/32'));
    assert.ok(isPrefix('fd7a:115c:a1e0::/48'));
    assert.ok(!isPrefix('100.64.0.1'));
    assert.ok(!isPrefix('::/129'));
  });
});
