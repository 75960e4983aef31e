/**
 * Tampering with genuine SAML responses for the refusal tests: edit the XML, strip signatures and
 * re-sign the assertion with a key of our choice (the IdP's own, to isolate one check, or another
 * key, to prove only the configured certificate counts), and build signature-wrapping variants.
 */
import { generateKeyPairSync } from 'node:crypto';
import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import { SignedXml } from 'xml-crypto';

const DSIG = 'http://www.w3.org/2000/09/xmldsig#';
const SAML = 'urn:oasis:names:tc:SAML:2.0:assertion';

export const decode = (b64: string): string => Buffer.from(b64, 'base64').toString('utf8');
export const encode = (xml: string): string => Buffer.from(xml, 'utf8').toString('base64');

export function parse(xml: string): Document {
  return new DOMParser().parseFromString(xml, 'text/xml');
}
export function serialize(doc: Document | Node): string {
  return new XMLSerializer().serializeToString(doc);
}

/** A fresh RSA key nobody trusts. */
export function strangerKey(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
}

/** Removes every ds:Signature element. */
export function stripSignatures(xml: string): string {
  const doc = parse(xml);
  const sigs = Array.from(doc.getElementsByTagNameNS(DSIG, 'Signature'));
  for (const s of sigs) s.parentNode?.removeChild(s);
  return serialize(doc);
}

/** Applies `edit` to the (signature-free) response, then signs its Assertion with `keyPem`. */
export function resignAssertion(
  xml: string,
  keyPem: string,
  edit: (doc: Document) => void = () => undefined,
): string {
  const doc = parse(stripSignatures(xml));
  edit(doc);
  const sig = new SignedXml({
    privateKey: keyPem,
    signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  });
  sig.addReference({
    xpath: "/*[local-name(.)='Response']/*[local-name(.)='Assertion']",
    transforms: [
      'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
      'http://www.w3.org/2001/10/xml-exc-c14n#',
    ],
    digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
  });
  sig.computeSignature(serialize(doc), {
    location: {
      reference: "/*[local-name(.)='Response']/*[local-name(.)='Assertion']/*[local-name(.)='Issuer']",
      action: 'after',
    },
  });
  return sig.getSignedXml();
}

export function assertionOf(doc: Document): Element {
  const a = doc.getElementsByTagNameNS(SAML, 'Assertion')[0];
  if (!a) throw new Error('no assertion');
  return a;
}

/** Sets an attribute on every element `local` in the assertion namespace. */
export function setAll(doc: Document, local: string, name: string, value: string | null): void {
  for (const el of Array.from(doc.getElementsByTagNameNS(SAML, local))) {
    if (value === null) el.removeAttribute(name);
    else el.setAttribute(name, value);
  }
}

/** An attacker's copy of the genuine assertion: another ID, another NameID, group "admins". */
function evilCopy(doc: Document, original: Element): Element {
  const evil = original.cloneNode(true) as Element;
  evil.setAttribute('ID', '_evil' + original.getAttribute('ID'));
  for (const s of Array.from(evil.getElementsByTagNameNS(DSIG, 'Signature'))) s.parentNode?.removeChild(s);
  const nameId = evil.getElementsByTagNameNS(SAML, 'NameID')[0]!;
  nameId.textContent = 'u-mallory';
  const v = doc.createElementNS(SAML, 'saml:AttributeValue');
  v.textContent = 'admins';
  const groups = Array.from(evil.getElementsByTagNameNS(SAML, 'Attribute')).find(
    (a) => a.getAttribute('Name') === 'groups',
  );
  groups?.appendChild(v);
  return evil;
}

export type WrapVariant = 'evil-first-sibling' | 'original-in-extensions' | 'original-in-evil-advice';

/**
 * Classic XML signature wrapping (XSW) over a response whose assertion is validly signed by the IdP
 * (the response signature is removed, as an attacker must):
 *  - evil-first-sibling: an unsigned evil assertion before the signed one (two assertions);
 *  - original-in-extensions: the signed assertion moved into <samlp:Extensions>, the evil one in
 *    its place carrying the original signature (whose reference still finds the original by ID);
 *  - original-in-evil-advice: the signed assertion wrapped in the evil assertion's <Advice>, the
 *    evil one carrying the original signature.
 */
export function wrap(xml: string, variant: WrapVariant): string {
  const doc = parse(xml);
  const response = doc.documentElement;
  const respSig = Array.from(response.childNodes).find(
    (n) => n.nodeType === 1 && (n as Element).localName === 'Signature',
  );
  if (respSig) response.removeChild(respSig);
  const original = assertionOf(doc);
  const evil = evilCopy(doc, original);
  const sig = Array.from(original.childNodes).find(
    (n) => n.nodeType === 1 && (n as Element).localName === 'Signature',
  ) as Element | undefined;
  if (!sig) throw new Error('the genuine assertion is not signed');
  if (variant === 'evil-first-sibling') {
    response.insertBefore(evil, original);
    return serialize(doc);
  }
  const issuer = evil.getElementsByTagNameNS(SAML, 'Issuer')[0]!;
  evil.insertBefore(sig.cloneNode(true), issuer.nextSibling);
  original.removeChild(sig);
  original.appendChild(sig); // keep it enveloped in the original too (reference found by ID)
  response.replaceChild(evil, original);
  if (variant === 'original-in-extensions') {
    const ext = doc.createElementNS('urn:oasis:names:tc:SAML:2.0:protocol', 'samlp:Extensions');
    ext.appendChild(original);
    response.insertBefore(ext, response.firstChild!.nextSibling);
  } else {
    const advice = doc.createElementNS(SAML, 'saml:Advice');
    advice.appendChild(original);
    evil.appendChild(advice);
  }
  return serialize(doc);
}
