/** Small namespace-aware DOM helpers over @xmldom/xmldom (no DTDs: a DOCTYPE is refused). */
import { DOMParser } from '@xmldom/xmldom';

export const NS = {
  assertion: 'urn:oasis:names:tc:SAML:2.0:assertion',
  protocol: 'urn:oasis:names:tc:SAML:2.0:protocol',
  metadata: 'urn:oasis:names:tc:SAML:2.0:metadata',
  dsig: 'http://www.w3.org/2000/09/xmldsig#',
} as const;

export class SamlXmlError extends Error {
  override name = 'SamlXmlError';
}

/** Parses XML, refusing DTDs (entity expansion) and parse errors with a message naming the problem. */
export function parseXml(xml: string, what: string): Element {
  if (/<!DOCTYPE/i.test(xml)) throw new SamlXmlError(`${what} contains a DTD, which is not allowed`);
  const errors: string[] = [];
  const doc = new DOMParser({
    errorHandler: {
      warning: () => undefined,
      error: (m: string) => errors.push(m),
      fatalError: (m: string) => errors.push(m),
    },
  }).parseFromString(xml, 'text/xml');
  const root = doc.documentElement;
  if (errors.length > 0 || !root)
    throw new SamlXmlError(`${what} is not well-formed XML: ${errors[0] ?? 'empty'}`);
  return root;
}

/** Direct element children of `el` in namespace `ns` with local name `local`. */
export function children(el: Element, ns: string, local: string): Element[] {
  const out: Element[] = [];
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1) {
      const e = n as Element;
      if (e.namespaceURI === ns && e.localName === local) out.push(e);
    }
  }
  return out;
}

export function child(el: Element, ns: string, local: string): Element | null {
  return children(el, ns, local)[0] ?? null;
}

export function text(el: Element | null): string | null {
  if (!el) return null;
  const t = (el.textContent ?? '').trim();
  return t.length > 0 ? t : null;
}

export function attr(el: Element | null, name: string): string | null {
  if (!el || !el.hasAttribute(name)) return null;
  return el.getAttribute(name);
}
