/**
 * The checks node-saml leaves to the caller (login-and-identity.md §4.2: 4 Destination/Issuer,
 * 5 Recipient/InResponseTo/bearer NotOnOrAfter, 6 Conditions with skew and audience, 8/4.3 the
 * AuthnContextClassRef, 9 IdP-initiated), as one pure function over the facts of the SIGNED
 * assertion and the response envelope. Returns the first problem, or what the caller needs next:
 * the request ID to consume and until when to remember the assertion ID (replay, §4.2 item 7).
 */
import type { AssertionFacts, ResponseEnvelope } from './assertion-facts.js';
import { isMfaContext } from './authn-context.js';

export type SamlProblemCode =
  | 'saml_issuer_mismatch'
  | 'saml_destination_mismatch'
  | 'saml_recipient_mismatch'
  | 'saml_subject_confirmation_missing'
  | 'saml_assertion_expired'
  | 'saml_assertion_not_yet_valid'
  | 'saml_audience_mismatch'
  | 'saml_in_response_to_mismatch'
  | 'saml_idp_initiated_refused'
  | 'saml_mfa_required'
  | 'saml_nameid_missing'
  | 'saml_nameid_transient';

export interface SamlProblem {
  code: SamlProblemCode;
  message: string;
  hint: string;
}

export interface SamlExpectations {
  idpEntityId: string;
  spEntityId: string;
  acsUrl: string;
  clockSkewMs: number;
  allowIdpInitiated: boolean;
  requireMfa: boolean;
  mfaAuthnContexts: readonly string[];
  nowMs: number;
}

export interface SamlCheckResult {
  /** The AuthnRequest ID this answers (null only for an allowed IdP-initiated login). */
  inResponseTo: string | null;
  /** Remember the assertion ID until then (latest NotOnOrAfter plus the skew). */
  rememberUntilMs: number;
  mfa: boolean;
  subject: string;
}

const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const TRANSIENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient';
const ADMIN = 'ask the IdP administrator to check the Switchboard application there';

const ms = (v: string | null): number | null => {
  if (v === null) return null;
  const t = Date.parse(v);
  return Number.isNaN(t) ? Number.NaN : t;
};

function problem(code: SamlProblemCode, message: string, hint: string): { problem: SamlProblem } {
  return { problem: { code, message, hint } };
}

function timeProblem(
  what: string,
  notBefore: string | null,
  notOnOrAfter: string | null,
  e: SamlExpectations,
): { problem: SamlProblem } | null {
  const nb = ms(notBefore);
  const na = ms(notOnOrAfter);
  if (Number.isNaN(nb) || Number.isNaN(na))
    return problem('saml_assertion_expired', `the ${what} has an unreadable time`, ADMIN);
  if (nb !== null && e.nowMs + e.clockSkewMs < nb)
    return problem(
      'saml_assertion_not_yet_valid',
      `the ${what} is not valid before ${notBefore} (clock skew allowed: ${e.clockSkewMs / 1000} s)`,
      'check that the clocks of the IdP and of Switchboard are synchronised (NTP), then sign in again',
    );
  if (na !== null && e.nowMs - e.clockSkewMs >= na)
    return problem(
      'saml_assertion_expired',
      `the ${what} expired at ${notOnOrAfter}`,
      'sign in again; if it keeps happening, check that the clocks of the IdP and of Switchboard are synchronised',
    );
  return null;
}

export function checkAssertion(
  f: AssertionFacts,
  env: ResponseEnvelope,
  e: SamlExpectations,
): { problem: SamlProblem } | { ok: SamlCheckResult } {
  if (f.issuer !== e.idpEntityId)
    return problem(
      'saml_issuer_mismatch',
      `the assertion was issued by "${f.issuer ?? '(none)'}", not by the configured IdP "${e.idpEntityId}"`,
      'check that the IdP metadata configured for this provider is the IdP that signed you in',
    );
  if (env.destination !== null && env.destination !== e.acsUrl)
    return problem(
      'saml_destination_mismatch',
      `the response is addressed to ${env.destination}, not to this server's ${e.acsUrl}`,
      `${ADMIN}: its ACS (reply) URL must be ${e.acsUrl}`,
    );
  const bearers = f.subjectConfirmations.filter((s) => s.method === BEARER);
  if (bearers.length === 0)
    return problem(
      'saml_subject_confirmation_missing',
      'the assertion has no bearer SubjectConfirmation',
      ADMIN,
    );
  const mine = bearers.filter((s) => s.recipient === e.acsUrl);
  if (mine.length === 0)
    return problem(
      'saml_recipient_mismatch',
      `the assertion's Recipient is ${bearers.map((b) => b.recipient ?? '(none)').join(', ')}, not this server's ${e.acsUrl}`,
      `${ADMIN}: its ACS (reply) URL must be ${e.acsUrl}`,
    );
  const sc = mine[0]!;
  if (sc.notOnOrAfter === null)
    return problem(
      'saml_subject_confirmation_missing',
      'the bearer SubjectConfirmationData has no NotOnOrAfter',
      ADMIN,
    );
  const scTime = timeProblem('subject confirmation', sc.notBefore, sc.notOnOrAfter, e);
  if (scTime) return scTime;
  if (f.conditions) {
    const cTime = timeProblem('assertion', f.conditions.notBefore, f.conditions.notOnOrAfter, e);
    if (cTime) return cTime;
  }
  const audiences = f.conditions?.audiences ?? [];
  if (!audiences.includes(e.spEntityId))
    return problem(
      'saml_audience_mismatch',
      `the assertion is meant for ${audiences.length ? audiences.join(', ') : '(no audience)'}, not for this server (${e.spEntityId})`,
      `${ADMIN}: its Entity ID (audience) must be ${e.spEntityId}`,
    );
  if (env.inResponseTo !== null && sc.inResponseTo !== null && env.inResponseTo !== sc.inResponseTo)
    return problem(
      'saml_in_response_to_mismatch',
      'the response and its assertion answer different requests',
      'start signing in again from the device',
    );
  const inResponseTo = sc.inResponseTo ?? env.inResponseTo;
  if (inResponseTo === null && !e.allowIdpInitiated)
    return problem(
      'saml_idp_initiated_refused',
      'this sign-in was started at the IdP (IdP-initiated), which this server does not accept',
      'start signing in from the device (tailscale up), not from the IdP dashboard',
    );
  if (!f.nameId) return problem('saml_nameid_missing', 'the assertion has no NameID', ADMIN);
  if (f.nameIdFormat === TRANSIENT)
    return problem(
      'saml_nameid_transient',
      'the IdP sent a transient NameID, which changes at every sign-in and cannot identify a user',
      `${ADMIN}: the NameID format must be persistent (or emailAddress)`,
    );
  const mfa = isMfaContext(f.authnContextClassRefs, e.mfaAuthnContexts);
  if (e.requireMfa && !mfa)
    return problem(
      'saml_mfa_required',
      `multi-factor authentication is required, but the IdP reports only ${f.authnContextClassRefs.join(', ') || '(no authentication context)'}`,
      'sign in again with a second factor; if the IdP does not offer one, ask its administrator to require MFA for the Switchboard application',
    );
  const ends = [ms(sc.notOnOrAfter), ms(f.conditions?.notOnOrAfter ?? null)].filter(
    (x): x is number => x !== null && !Number.isNaN(x),
  );
  return {
    ok: { inResponseTo, rememberUntilMs: Math.max(...ends) + e.clockSkewMs, mfa, subject: f.nameId },
  };
}
