/**
 * node-saml's errors (plain Error messages, see its src/saml.ts and src/xml.ts) turned into
 * LoginRefused codes with a message and a hint for the person and the log.
 */
import { SamlStatusError } from '@node-saml/node-saml';
import { LoginRefused } from '../provider.js';

const ADMIN = 'ask the IdP administrator to check the Switchboard application and its signing certificate';

export function refusalFromNodeSaml(err: unknown): LoginRefused {
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof SamlStatusError)
    return new LoginRefused(
      'saml_idp_error',
      `the IdP refused the sign-in: ${msg}`,
      'sign in again, or ask the IdP administrator why it refused',
    );
  if (/signature|signed data|multiple assertions|transforms|ref URI/i.test(msg))
    return new LoginRefused(
      'saml_signature_invalid',
      `the SAML response is not validly signed by the configured IdP (${msg})`,
      `${ADMIN}; the response or its assertion must be signed with the certificate in the IdP metadata`,
    );
  if (/audience/i.test(msg))
    return new LoginRefused(
      'saml_audience_mismatch',
      `the assertion is meant for another service (${msg})`,
      ADMIN,
    );
  if (/expired|too old/i.test(msg))
    return new LoginRefused(
      'saml_assertion_expired',
      `the assertion has expired (${msg})`,
      'sign in again; if it keeps happening, check that the clocks of the IdP and of Switchboard are synchronised',
    );
  if (/not yet valid/i.test(msg))
    return new LoginRefused(
      'saml_assertion_not_yet_valid',
      `the assertion is not valid yet (${msg})`,
      'check that the clocks of the IdP and of Switchboard are synchronised (NTP), then sign in again',
    );
  if (/subject confirmation/i.test(msg))
    return new LoginRefused(
      'saml_subject_confirmation_missing',
      `the assertion cannot be confirmed (${msg})`,
      ADMIN,
    );
  return new LoginRefused('saml_response_invalid', `the SAML response cannot be used: ${msg}`, ADMIN, 400);
}
