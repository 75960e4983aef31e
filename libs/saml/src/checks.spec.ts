import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertionFacts, responseEnvelope, type ResponseEnvelope } from './assertion-facts.js';
import { checkAssertion, type SamlExpectations } from './checks.js';

const ACS = 'https://sb.example.com/login/callback/okta';
const SP = 'https://sb.example.com/login/okta/metadata';
const IDP = 'https://idp.example.com/metadata';
const NOW = Date.parse('2026-12-03T12:00:00Z');

function xml(o: Partial<Record<string, string>> = {}): string {
  const v = {
    issuer: IDP,
    recipient: ACS,
    irt: '_req1',
    scNotOnOrAfter: '2026-12-03T12:05:00Z',
    notBefore: '2026-12-03T11:59:00Z',
    notOnOrAfter: '2026-12-03T12:05:00Z',
    audience: SP,
    method: 'urn:oasis:names:tc:SAML:2.0:cm:bearer',
    format: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
    classRef: 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport',
    ...o,
  };
  return `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" Version="2.0" IssueInstant="2026-12-03T12:00:00Z">
  <saml:Issuer>${v.issuer}</saml:Issuer>
  <saml:Subject><saml:NameID Format="${v.format}">u-alice</saml:NameID>
    <saml:SubjectConfirmation Method="${v.method}"><saml:SubjectConfirmationData Recipient="${v.recipient}" ${v.irt ? `InResponseTo="${v.irt}"` : ''} NotOnOrAfter="${v.scNotOnOrAfter}"/></saml:SubjectConfirmation>
  </saml:Subject>
  <saml:Conditions NotBefore="${v.notBefore}" NotOnOrAfter="${v.notOnOrAfter}"><saml:AudienceRestriction><saml:Audience>${v.audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>
  <saml:AuthnStatement AuthnInstant="2026-12-03T12:00:00Z"><saml:AuthnContext><saml:AuthnContextClassRef>${v.classRef}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>
  <saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue>eng</saml:AttributeValue><saml:AttributeValue>ops</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>
</saml:Assertion>`;
}

const exp: SamlExpectations = {
  idpEntityId: IDP,
  spEntityId: SP,
  acsUrl: ACS,
  clockSkewMs: 60_000,
  allowIdpInitiated: false,
  requireMfa: false,
  mfaAuthnContexts: ['urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract'],
  nowMs: NOW,
};
const env: ResponseEnvelope = { destination: ACS, inResponseTo: '_req1' };

function code(x: string, e: Partial<SamlExpectations> = {}, en = env): string {
  const r = checkAssertion(assertionFacts(x), en, { ...exp, ...e });
  return 'problem' in r ? r.problem.code : 'ok';
}

test('a well-formed assertion passes and says what to consume and remember', () => {
  const r = checkAssertion(assertionFacts(xml()), env, exp);
  assert.ok('ok' in r);
  assert.equal(r.ok.inResponseTo, '_req1');
  assert.equal(r.ok.subject, 'u-alice');
  assert.equal(r.ok.mfa, false);
  assert.equal(r.ok.rememberUntilMs, Date.parse('2026-12-03T12:05:00Z') + 60_000);
});

test('each check refuses with its own code', () => {
  assert.equal(code(xml({ issuer: 'https://evil' })), 'saml_issuer_mismatch');
  assert.equal(code(xml(), {}, { ...env, destination: 'https://other/acs' }), 'saml_destination_mismatch');
  assert.equal(code(xml({ recipient: 'https://other/acs' })), 'saml_recipient_mismatch');
  assert.equal(
    code(xml({ method: 'urn:oasis:names:tc:SAML:2.0:cm:holder-of-key' })),
    'saml_subject_confirmation_missing',
  );
  assert.equal(code(xml({ audience: 'https://other' })), 'saml_audience_mismatch');
  assert.equal(code(xml({ notOnOrAfter: '2026-12-03T11:58:59Z' })), 'saml_assertion_expired');
  assert.equal(code(xml({ scNotOnOrAfter: '2026-12-03T11:58:00Z' })), 'saml_assertion_expired');
  assert.equal(code(xml({ notBefore: '2026-12-03T12:01:01Z' })), 'saml_assertion_not_yet_valid');
  assert.equal(code(xml(), {}, { ...env, inResponseTo: '_other' }), 'saml_in_response_to_mismatch');
  assert.equal(code(xml({ irt: '' }), {}, { ...env, inResponseTo: null }), 'saml_idp_initiated_refused');
  assert.equal(
    code(xml({ format: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient' })),
    'saml_nameid_transient',
  );
  assert.equal(code(xml(), { requireMfa: true }), 'saml_mfa_required');
});

test('the clock skew is honoured on both sides', () => {
  assert.equal(code(xml({ notOnOrAfter: '2026-12-03T11:59:30Z' })), 'ok');
  assert.equal(code(xml({ notBefore: '2026-12-03T12:00:50Z' })), 'ok');
  assert.equal(
    code(xml({ notOnOrAfter: '2026-12-03T11:59:30Z' }), { clockSkewMs: 0 }),
    'saml_assertion_expired',
  );
});

test('IdP-initiated passes only when enabled; MFA from an accepted class', () => {
  assert.equal(code(xml({ irt: '' }), { allowIdpInitiated: true }, { ...env, inResponseTo: null }), 'ok');
  const r = checkAssertion(
    assertionFacts(xml({ classRef: 'urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract' })),
    env,
    { ...exp, requireMfa: true },
  );
  assert.ok('ok' in r && r.ok.mfa);
});

test('facts come from direct children only and DTDs are refused', () => {
  const f = assertionFacts(xml());
  assert.deepEqual(f.attributes[0]?.values, ['eng', 'ops']);
  assert.throws(() => assertionFacts('<!DOCTYPE x [<!ENTITY a "b">]><x/>'), /DTD/);
  assert.throws(() => responseEnvelope(xml()), /not a SAML 2.0 <Response>/);
});
