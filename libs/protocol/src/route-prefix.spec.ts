import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRoutePrefix, routePrefixProblem } from './route-prefix.js';

void describe('checkRoutePrefix', () => {
  void test('accepts what Go prints for a masked prefix', () => {
    for (const p of [
      '10.0.0.0/24',
      '0.0.0.0/0',
      '::/0',
      '192.168.1.7/32',
      'fd7a:115c:a1e0::/48',
      'fd00:1::/64',
      '2001:db8::1/128',
      '1:0:0:1::/64',
      '::ffff:10.1.0.0/112',
      '1:2:3:4:5:6:7:8/128',
    ]) {
      assert.deepEqual(checkRoutePrefix(p), { ok: true, prefix: p }, p);
    }
  });

  void test('host bits set: refused with the masked prefix to use instead', () => {
    assert.equal(
      routePrefixProblem('10.0.0.1/24'),
      'route 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?',
    );
    assert.equal(
      routePrefixProblem('10.1.2.3/9'),
      'route 10.1.2.3/9 has host bits set; did you mean 10.0.0.0/9?',
    );
    assert.equal(
      routePrefixProblem('fd00::1/64'),
      'route fd00::1/64 has host bits set; did you mean fd00::/64?',
    );
    assert.equal(
      routePrefixProblem('1.2.3.4/0'),
      'route 1.2.3.4/0 has host bits set; did you mean 0.0.0.0/0?',
    );
    assert.equal(
      routePrefixProblem('fd00:abcd:ffff::/33'),
      'route fd00:abcd:ffff::/33 has host bits set; did you mean fd00:abcd:8000::/33?',
    );
  });

  void test('a zone is refused', () => {
    assert.equal(
      routePrefixProblem('fe80::1%eth0/64'),
      'route "fe80::1%eth0/64" has an IPv6 zone (%eth0); routes cannot carry zones, did you mean fe80::/64?',
    );
  });

  void test('other spellings of a valid prefix are refused with the canonical one', () => {
    assert.match(routePrefixProblem('FD00::/8') ?? '', /did you mean fd00::\/8\?$/);
    assert.match(
      routePrefixProblem('fd00:0:0:0::/64') ?? '',
      /not written canonically; did you mean fd00::\/64\?$/,
    );
    assert.match(routePrefixProblem('0:0:0:0:0:0:0:0/0') ?? '', /did you mean ::\/0\?$/);
    assert.match(routePrefixProblem('1:0:0:1:0:0:0:0/64') ?? '', /did you mean 1:0:0:1::\/64\?$/);
  });

  void test('what is not a prefix says so', () => {
    assert.match(
      routePrefixProblem('10.0.0.0') ?? '',
      /has no prefix length; did you mean 10\.0\.0\.0\/32\?/,
    );
    assert.match(
      routePrefixProblem('10.0.0.0/33') ?? '',
      /invalid prefix length; IPv4 prefix lengths go from 0 to 32/,
    );
    assert.match(routePrefixProblem('::/129') ?? '', /IPv6 prefix lengths go from 0 to 128/);
    assert.match(routePrefixProblem('10.0.0.0/024') ?? '', /invalid prefix length/);
    assert.match(routePrefixProblem('010.0.0.0/8') ?? '', /is not an IP prefix/);
    assert.match(routePrefixProblem('example.com/24') ?? '', /"example\.com\/24" is not an IP prefix/);
    assert.match(routePrefixProblem('1::2::3/64') ?? '', /is not an IP prefix/);
    assert.match(routePrefixProblem('') ?? '', /"" is not an IP prefix/);
    assert.ok((routePrefixProblem('x'.repeat(1000)) ?? '').length < 200, 'long input is cut short');
  });
});
