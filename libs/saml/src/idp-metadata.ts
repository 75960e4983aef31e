/** Reads what the SP needs from IdP metadata: entityID, SSO endpoints and signing certificates. */
import { attr, child, children, NS, parseXml, SamlXmlError, text } from './xml.js';

export const BINDING_REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
export const BINDING_POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';

export interface IdpMetadata {
  entityId: string;
  ssoUrls: { binding: string; location: string }[];
  /** Base64 DER certificates (no PEM armour) for KeyDescriptors with use="signing" or no use. */
  signingCerts: string[];
  wantAuthnRequestsSigned: boolean;
}

function entityDescriptors(root: Element): Element[] {
  if (root.namespaceURI === NS.metadata && root.localName === 'EntityDescriptor') return [root];
  if (root.namespaceURI === NS.metadata && root.localName === 'EntitiesDescriptor')
    return children(root, NS.metadata, 'EntityDescriptor');
  throw new SamlXmlError(`the IdP metadata's root is <${root.localName}>, not <EntityDescriptor>`);
}

export function parseIdpMetadata(xml: string): IdpMetadata {
  const root = parseXml(xml, 'the IdP metadata');
  const idps = entityDescriptors(root).filter((e) => child(e, NS.metadata, 'IDPSSODescriptor'));
  if (idps.length !== 1)
    throw new SamlXmlError(
      `the IdP metadata must describe exactly one identity provider (IDPSSODescriptor), found ${idps.length}`,
    );
  const ed = idps[0]!;
  const entityId = attr(ed, 'entityID');
  if (!entityId) throw new SamlXmlError('the IdP metadata has no entityID');
  const d = child(ed, NS.metadata, 'IDPSSODescriptor')!;
  const ssoUrls = children(d, NS.metadata, 'SingleSignOnService').flatMap((s) => {
    const binding = attr(s, 'Binding');
    const location = attr(s, 'Location');
    return binding && location ? [{ binding, location }] : [];
  });
  const signingCerts = children(d, NS.metadata, 'KeyDescriptor')
    .filter((k) => (attr(k, 'use') ?? 'signing') === 'signing')
    .flatMap((k) => {
      const ki = child(k, NS.dsig, 'KeyInfo');
      const xd = ki ? child(ki, NS.dsig, 'X509Data') : null;
      return xd
        ? children(xd, NS.dsig, 'X509Certificate').map((c) => (text(c) ?? '').replace(/\s+/g, ''))
        : [];
    })
    .filter((c) => c.length > 0);
  if (signingCerts.length === 0) throw new SamlXmlError('the IdP metadata has no signing certificate');
  if (!ssoUrls.some((s) => s.binding === BINDING_REDIRECT || s.binding === BINDING_POST))
    throw new SamlXmlError(
      'the IdP metadata has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding',
    );
  return {
    entityId,
    ssoUrls,
    signingCerts,
    wantAuthnRequestsSigned: attr(d, 'WantAuthnRequestsSigned') === 'true',
  };
}

export function ssoUrlFor(m: IdpMetadata, binding: 'HTTP-Redirect' | 'HTTP-POST'): string {
  const want = binding === 'HTTP-POST' ? BINDING_POST : BINDING_REDIRECT;
  const hit = m.ssoUrls.find((s) => s.binding === want);
  if (!hit) throw new SamlXmlError(`the IdP metadata has no SingleSignOnService for ${binding}`);
  return hit.location;
}
