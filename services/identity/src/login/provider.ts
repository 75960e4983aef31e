/** What a provider proved about the person who signed in. A user is keyed by (providerId, subject). */
export interface VerifiedIdentity {
  providerId: string; // configured provider id, e.g. "okta"
  subject: string; // OIDC `sub` / SAML NameID (persistent) — never the email
  loginName: string; // e.g. alice@example.com
  email?: string;
  displayName?: string;
  pictureUrl?: string;
  groups: string[]; // raw IdP group names, as sent (prefix applied later by identity)
  mfa: boolean; // MFA proven (OIDC acr/amr; SAML AuthnContextClassRef)
}

/** A refusal shown to the person as a page and logged; never a stack trace. */
export class LoginRefused extends Error {
  constructor(
    readonly code: string, // machine-readable, e.g. "saml_signature_invalid", "oidc_state_mismatch"
    message: string, // what went wrong, for the page and the log
    readonly hint: string, // what to do about it
    readonly status = 403,
  ) {
    super(message);
    this.name = 'LoginRefused';
  }
}

export type LoginStep =
  | { kind: 'redirect'; url: string } // 302 to the IdP
  | { kind: 'html'; html: string }; // e.g. a self-submitting SAML POST-binding form

export interface ProviderRequest {
  method: 'GET' | 'POST';
  url: URL; // full public URL of the request, query included
  form?: Record<string, string>; // urlencoded POST body (SAML ACS)
}

export interface LoginProvider {
  readonly id: string;
  readonly kind: 'oidc' | 'saml';
  readonly displayName: string;
  /** Start signing in for pending login `loginId`; the provider persists its own per-attempt
   *  state (PKCE verifier, nonce, SAML request ID) durably with an expiry. */
  begin(loginId: string): Promise<LoginStep>;
  /** The IdP's return to `<publicUrl>/login/callback/<id>`. Verifies everything, consumes the
   *  per-attempt state exactly once, and says which pending login it belongs to. Throws LoginRefused. */
  complete(req: ProviderRequest): Promise<{ loginId: string; identity: VerifiedIdentity }>;
  /** Extra GET routes under `/login/<id>/...`, e.g. SAML SP metadata at `/login/<id>/metadata`. */
  routes?(): { path: string; contentType: string; body: () => string }[];
}
