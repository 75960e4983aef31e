/**
 * AuthnContextClassRef values (SAML Authn Context spec; Microsoft's federation claim) that count as
 * multi-factor authentication by default. What Okta and Entra ID emit as IdPs differs per tenant
 * and sign-in policy, so the accepted list is configurable (`mfaAuthnContexts`).
 */
export const PASSWORD_PROTECTED_TRANSPORT =
  'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';

export const DEFAULT_MFA_AUTHN_CONTEXTS = [
  'urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI',
  'urn:oasis:names:tc:SAML:2.0:ac:classes:X509',
  'http://schemas.microsoft.com/claims/multipleauthn',
] as const;

/** True when one of the asserted classes is an accepted MFA class. */
export function isMfaContext(classRefs: readonly string[], accepted: readonly string[]): boolean {
  return classRefs.some((c) => accepted.includes(c));
}
