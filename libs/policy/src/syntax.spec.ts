/** The grammars inside policy strings: selectors, ports, protocols, grant ip entries, durations. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatGoDuration,
  parseAlias,
  parseGoDuration,
  parseGrantIp,
  parsePorts,
  parseProto,
  splitHostPort,
} from './syntax.js';

test('selectors are classified in headscale order', () => {
  const kind = (s: string): string => {
    const r = parseAlias(s);
    return r.ok ? r.value.kind : `error: ${r.error}`;
  };
  assert.equal(kind('10.0.0.0/8'), 'prefix');
  assert.equal(kind('fd7a::1'), 'prefix');
  assert.equal(kind('*'), 'wildcard');
  assert.equal(kind('alice@example.com'), 'user');
  assert.equal(kind('alice@'), 'user');
  assert.equal(kind('group:eng'), 'group');
  assert.equal(kind('tag:web'), 'tag');
  assert.equal(kind('autogroup:member'), 'autogroup');
  assert.equal(kind('webserver'), 'host');
  assert.match(kind('autogroup:admin'), /invalid autogroup/);
  assert.match(kind('foo:bar'), /invalid alias format: "foo:bar"/);
});

test('port lists and their errors', () => {
  assert.deepEqual(parsePorts('*'), { ok: true, value: [{ first: 0, last: 65535 }] });
  assert.deepEqual(parsePorts('22,80-90'), {
    ok: true,
    value: [
      { first: 22, last: 22 },
      { first: 80, last: 90 },
    ],
  });
  assert.deepEqual(parsePorts('1-65535'), { ok: true, value: [{ first: 1, last: 65535 }] });
  assert.deepEqual(parsePorts('0'), { ok: false, error: "first port must be >0, or use '*' for wildcard" });
  assert.deepEqual(parsePorts('9-1'), {
    ok: false,
    error: 'invalid port range: first port is greater than last port',
  });
  assert.deepEqual(parsePorts('1-2-3'), { ok: false, error: 'invalid port range format' });
  assert.deepEqual(parsePorts('70000'), { ok: false, error: 'port number out of range' });
  assert.deepEqual(parsePorts('ssh'), { ok: false, error: 'invalid first integer' });
});

test('host:port splitting', () => {
  assert.deepEqual(splitHostPort('tag:web:22'), { ok: true, value: { host: 'tag:web', ports: '22' } });
  assert.deepEqual(splitHostPort('[fd7a::1]:22'), { ok: true, value: { host: 'fd7a::1', ports: '22' } });
  assert.deepEqual(splitHostPort('[fd7a::]/48:*'), { ok: true, value: { host: 'fd7a::/48', ports: '*' } });
  assert.equal(splitHostPort('web').ok, false);
  assert.equal(splitHostPort('[1.2.3.4]:22').ok, false);
});

test('protocols', () => {
  assert.deepEqual(parseProto('TCP'), { ok: true, value: { name: 'tcp', numbers: [6] } });
  assert.deepEqual(parseProto('17'), { ok: true, value: { name: 'udp', numbers: [17] } });
  assert.deepEqual(parseProto('99'), { ok: true, value: { name: '99', numbers: [99] } });
  assert.deepEqual(parseProto('ipv6-icmp'), { ok: true, value: { name: 'ipv6-icmp', numbers: [58] } });
  assert.equal(parseProto('0').ok, false);
  assert.equal(parseProto('300').ok, false);
  assert.equal(parseProto('*').ok, false);
});

test('grant ip entries', () => {
  assert.deepEqual(parseGrantIp('*'), {
    ok: true,
    value: { proto: { name: '', numbers: null }, ports: [{ first: 0, last: 65535 }] },
  });
  assert.deepEqual(parseGrantIp('tcp:80,443'), {
    ok: true,
    value: {
      proto: { name: 'tcp', numbers: [6] },
      ports: [
        { first: 80, last: 80 },
        { first: 443, last: 443 },
      ],
    },
  });
  assert.deepEqual(parseGrantIp('icmp:*').ok, true);
  assert.deepEqual(parseGrantIp('icmp'), { ok: false, error: 'port range "icmp": invalid first integer' });
});

test('Go durations', () => {
  assert.deepEqual(parseGoDuration('1h30m'), { ok: true, value: 5400e9 });
  assert.deepEqual(parseGoDuration('1.5s'), { ok: true, value: 1.5e9 });
  assert.deepEqual(parseGoDuration('abc'), { ok: false, error: 'time: invalid duration "abc"' });
  assert.deepEqual(parseGoDuration('1'), { ok: false, error: 'time: missing unit in duration "1"' });
  assert.deepEqual(parseGoDuration('1d'), { ok: false, error: 'time: unknown unit "d" in duration "1d"' });
  assert.equal(formatGoDuration(200 * 3600e9), '200h0m0s');
  assert.equal(formatGoDuration(-60e9), '-1m0s');
  assert.equal(formatGoDuration(1.5e9), '1.5s');
  assert.equal(formatGoDuration(5e8), '500ms');
});
