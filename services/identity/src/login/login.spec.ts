import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@switchboard/common';
import { parseLoginConfig, type ProviderConfig } from './login.config.js';
import { admissionProblem, userNameFor } from './login.service.js';
import { esc } from './login.pages.js';
import type { VerifiedIdentity } from './provider.js';

const oidc = (extra: Record<string, unknown> = {}) => ({
  id: 'okta',
  type: 'oidc',
  displayName: 'Okta',
  issuer: 'https://idp.example.com',
  clientId: 'c',
  ...extra,
});

const who = (extra: Partial<VerifiedIdentity> = {}): VerifiedIdentity => ({
  providerId: 'okta',
  subject: 's1',
  loginName: 'alice@example.com',
  email: 'alice@example.com',
  groups: ['eng'],
  mfa: false,
  ...extra,
});

const cfg = (extra: Record<string, unknown> = {}): ProviderConfig =>
  parseLoginConfig({ providers: [oidc(extra)] }, '/').providers[0]!;

test('login config: one error naming every problem', () => {
  try {
    parseLoginConfig(
      {
        providers: [
          oidc({ issuer: 'http://idp.example.com', clientSecretFile: '/nonexistent/secret' }),
          oidc({ requireMfa: true, mfaAmrValues: [] }),
        ],
      },
      '/',
    );
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join('\n');
    assert.match(text, /duplicate id "okta"/);
    assert.match(text, /is not https/);
    assert.match(text, /clientSecretFile .* cannot be read/);
    assert.match(text, /requireMfa needs/);
  }
  assert.throws(() => parseLoginConfig({ providers: [oidc({ bogus: 1 })] }, '/'), /Unrecognized key/);
});

test('admission: groups, domains, users and MFA', () => {
  assert.equal(admissionProblem(cfg(), who()), null);
  assert.equal(admissionProblem(cfg({ allowedGroups: ['ops'] }), who())?.code, 'group_not_allowed');
  assert.equal(admissionProblem(cfg({ allowedDomains: ['corp.test'] }), who())?.code, 'domain_not_allowed');
  assert.equal(admissionProblem(cfg({ allowedDomains: ['EXAMPLE.com'] }), who()), null);
  assert.equal(
    admissionProblem(cfg({ allowedDomains: ['example.com'] }), who({ email: undefined }))?.code,
    'domain_not_allowed',
  );
  assert.equal(admissionProblem(cfg({ allowedUsers: ['bob@example.com'] }), who())?.code, 'user_not_allowed');
  assert.equal(admissionProblem(cfg({ requireMfa: true }), who())?.code, 'mfa_required');
  assert.equal(admissionProblem(cfg({ requireMfa: true }), who({ mfa: true })), null);
});

test('user names and HTML escaping', () => {
  assert.equal(userNameFor('Alice.Smith@Example.com'), 'alice.smith@example.com');
  assert.equal(userNameFor('  José García '), 'jos-garc-a-');
  assert.equal(userNameFor('***'), 'user');
  assert.equal(esc('<script>"x"&\''), '&lt;script&gt;&quot;x&quot;&amp;&#39;');
});
