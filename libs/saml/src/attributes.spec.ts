import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapAttributes } from './attributes.js';
import { samlConfigProblems, samlProviderConfigSchema, samlSettings } from './config.js';
import { parseIdpMetadata, ssoUrlFor } from './idp-metadata.js';

const defaults = samlSettings(
  samlProviderConfigSchema.parse({
    id: 'okta',
    type: 'saml',
    displayName: 'Okta',
    idpMetadataFile: '/x.xml',
  }),
).attributes;
const a = (name: string, ...values: string[]) => ({ name, friendlyName: null, values });

test('Okta-style attribute statements map by default', () => {
  const m = mapAttributes(
    [a('email', 'alice@example.com'), a('displayName', 'Alice'), a('groups', 'eng', 'eng', 'ops')],
    defaults,
  );
  assert.deepEqual(m, {
    email: 'alice@example.com',
    displayName: 'Alice',
    groups: ['eng', 'ops'],
    groupsOverage: false,
  });
});

test('Entra ID claim URIs map by default; first and last name make a display name; overage is flagged', () => {
  const m = mapAttributes(
    [
      a('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress', 'bob@example.com'),
      a('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname', 'Bob'),
      a('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname', 'Jones'),
      a(
        'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups',
        '07dd8a60-bf6d-4e17-8844-230b77145381',
      ),
      a('http://schemas.microsoft.com/claims/groups.link', 'https://graph.microsoft.com/x'),
    ],
    defaults,
  );
  assert.equal(m.email, 'bob@example.com');
  assert.equal(m.displayName, 'Bob Jones');
  assert.deepEqual(m.groups, ['07dd8a60-bf6d-4e17-8844-230b77145381']);
  assert.equal(m.groupsOverage, true);
});

test('a configured mapping matches FriendlyName too', () => {
  const m = mapAttributes(
    [{ name: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.1', friendlyName: 'eduPersonAffiliation', values: ['staff'] }],
    {
      ...defaults,
      groups: ['eduPersonAffiliation'],
    },
  );
  assert.deepEqual(m.groups, ['staff']);
});

test('config problems name every bad field', () => {
  const p = samlConfigProblems(
    { id: 'Bad Id', type: 'saml', displayName: '', clockSkewSeconds: -1 },
    'providers.0',
  );
  assert.ok(p.some((x) => x.includes('id:')));
  assert.ok(p.some((x) => x.includes('displayName')));
  assert.ok(p.some((x) => x.includes('clockSkewSeconds')));
  assert.ok(p.some((x) => x.includes('exactly one of idpMetadataFile or idpMetadataUrl')));
  assert.equal(
    samlSettings(
      samlProviderConfigSchema.parse({
        id: 'e',
        type: 'saml',
        displayName: 'E',
        idpMetadataUrl: 'https://x/m',
      }),
    ).clockSkewMs,
    90_000,
  );
});

test('IdP metadata: entity ID, endpoints and signing certificates', () => {
  const md = `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp/metadata">
   <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIB
    AAAA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>ENC</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp/sso"/>
   </md:IDPSSODescriptor></md:EntityDescriptor>`;
  const m = parseIdpMetadata(md);
  assert.equal(m.entityId, 'https://idp/metadata');
  assert.deepEqual(m.signingCerts, ['MIIBAAAA']);
  assert.equal(ssoUrlFor(m, 'HTTP-Redirect'), 'https://idp/sso');
  assert.throws(() => ssoUrlFor(m, 'HTTP-POST'), /HTTP-POST/);
  assert.throws(() => parseIdpMetadata('<x/>'), /not <EntityDescriptor>/);
});
