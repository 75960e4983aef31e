/** Public API of @switchboard/saml: the pure parts of Switchboard's SAML 2.0 service provider. */
export * from './config.js';
export * from './attributes.js';
export * from './authn-context.js';
export * from './assertion-facts.js';
export * from './idp-metadata.js';
export * from './checks.js';
export { SamlXmlError } from './xml.js';
