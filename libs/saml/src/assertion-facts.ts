/**
 * What Switchboard reads from an assertion: call it only with the assertion XML the signature
 * check returned (node-saml's `profile.getAssertionXml()`, the signed element), never with the raw
 * response. Only direct children are read, so an <Advice> carrying another assertion is ignored.
 */
import type { SamlAttribute } from './attributes.js';
import { attr, child, children, NS, parseXml, SamlXmlError, text } from './xml.js';

export interface SubjectConfirmationFacts {
  method: string | null;
  recipient: string | null;
  inResponseTo: string | null;
  notBefore: string | null;
  notOnOrAfter: string | null;
}

export interface AssertionFacts {
  id: string;
  issuer: string | null;
  nameId: string | null;
  nameIdFormat: string | null;
  subjectConfirmations: SubjectConfirmationFacts[];
  conditions: { notBefore: string | null; notOnOrAfter: string | null; audiences: string[] } | null;
  authnContextClassRefs: string[];
  attributes: SamlAttribute[];
}

export function assertionFacts(assertionXml: string): AssertionFacts {
  const a = parseXml(assertionXml, 'the signed assertion');
  if (a.namespaceURI !== NS.assertion || a.localName !== 'Assertion')
    throw new SamlXmlError(`the signed element is <${a.localName}>, not a SAML 2.0 <Assertion>`);
  const id = attr(a, 'ID');
  if (!id) throw new SamlXmlError('the assertion has no ID');
  const subject = child(a, NS.assertion, 'Subject');
  const nameIdEl = subject ? child(subject, NS.assertion, 'NameID') : null;
  const confirmations = subject
    ? children(subject, NS.assertion, 'SubjectConfirmation').map((sc) => {
        const d = child(sc, NS.assertion, 'SubjectConfirmationData');
        return {
          method: attr(sc, 'Method'),
          recipient: attr(d, 'Recipient'),
          inResponseTo: attr(d, 'InResponseTo'),
          notBefore: attr(d, 'NotBefore'),
          notOnOrAfter: attr(d, 'NotOnOrAfter'),
        };
      })
    : [];
  const condEls = children(a, NS.assertion, 'Conditions');
  if (condEls.length > 1) throw new SamlXmlError('the assertion has more than one <Conditions>');
  const cond = condEls[0] ?? null;
  const audiences = cond
    ? children(cond, NS.assertion, 'AudienceRestriction').flatMap((r) =>
        children(r, NS.assertion, 'Audience').map((x) => text(x) ?? ''),
      )
    : [];
  const classRefs = children(a, NS.assertion, 'AuthnStatement').flatMap((s) => {
    const ctx = child(s, NS.assertion, 'AuthnContext');
    const ref = ctx ? text(child(ctx, NS.assertion, 'AuthnContextClassRef')) : null;
    return ref ? [ref] : [];
  });
  const attributes = children(a, NS.assertion, 'AttributeStatement').flatMap((st) =>
    children(st, NS.assertion, 'Attribute').map((at) => ({
      name: attr(at, 'Name') ?? '',
      friendlyName: attr(at, 'FriendlyName'),
      values: children(at, NS.assertion, 'AttributeValue').map((v) => text(v) ?? ''),
    })),
  );
  return {
    id,
    issuer: text(child(a, NS.assertion, 'Issuer')),
    nameId: text(nameIdEl),
    nameIdFormat: attr(nameIdEl, 'Format'),
    subjectConfirmations: confirmations,
    conditions: cond
      ? { notBefore: attr(cond, 'NotBefore'), notOnOrAfter: attr(cond, 'NotOnOrAfter'), audiences }
      : null,
    authnContextClassRefs: classRefs,
    attributes,
  };
}

/** The Response envelope's routing fields (Destination, InResponseTo), read from the raw response. */
export interface ResponseEnvelope {
  destination: string | null;
  inResponseTo: string | null;
}

export function responseEnvelope(responseXml: string): ResponseEnvelope {
  const r = parseXml(responseXml, 'the SAML response');
  if (r.namespaceURI !== NS.protocol || r.localName !== 'Response')
    throw new SamlXmlError(`the message is <${r.localName}>, not a SAML 2.0 <Response>`);
  return { destination: attr(r, 'Destination'), inResponseTo: attr(r, 'InResponseTo') };
}
