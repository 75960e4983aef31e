/**
 * OIDC login with `openid-client` (a certified relying party): authorization code flow with PKCE
 * (S256), `state` and `nonce`; the id_token's issuer, audience, expiry, nonce and signature are
 * checked by the library. Per-attempt state lives in `identity.oidc_attempts`, consumed once.
 */
import type { Db } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import * as client from 'openid-client';
import type { OidcProviderConfig } from './login.config.js';
import {
  LoginRefused,
  type LoginProvider,
  type LoginStep,
  type ProviderRequest,
  type VerifiedIdentity,
} from './provider.js';

const S = 'identity';
/** How long the IdP may take (the person signs in there). */
const ATTEMPT_TTL_MS = 15 * 60_000;

export interface OidcDeps {
  db: Db;
  publicUrl: () => string;
  logger: Logger;
}

interface AttemptRow {
  state: string;
  login_id: string;
  nonce: string;
  code_verifier: string;
  used_at: Date | string | null;
  expires_at: Date | string;
}

export class OidcProvider implements LoginProvider {
  readonly kind = 'oidc' as const;
  readonly id: string;
  readonly displayName: string;
  private config: Promise<client.Configuration> | null = null;

  constructor(
    private readonly cfg: OidcProviderConfig,
    private readonly deps: OidcDeps,
  ) {
    this.id = cfg.id;
    this.displayName = cfg.displayName;
  }

  private redirectUri(): string {
    return `${this.deps.publicUrl()}/login/callback/${this.id}`;
  }

  /** Discovery on first use (and again after a failure), so an IdP down at start is no outage. */
  private discovered(): Promise<client.Configuration> {
    if (!this.config) {
      const secret = this.cfg.clientSecret;
      this.config = client
        .discovery(
          new URL(this.cfg.issuer),
          this.cfg.clientId,
          undefined,
          secret !== undefined ? client.ClientSecretBasic(secret) : client.None(),
          this.cfg.allowInsecureIssuer ? { execute: [client.allowInsecureRequests] } : undefined,
        )
        .catch((err: unknown) => {
          this.config = null;
          throw new LoginRefused(
            'oidc_discovery_failed',
            `the identity provider ${this.displayName} could not be reached (${(err as Error).message})`,
            'try again in a minute; if it persists, tell your administrator (check the issuer URL)',
            503,
          );
        });
    }
    return this.config;
  }

  async begin(loginId: string): Promise<LoginStep> {
    const config = await this.discovered();
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    await this.deps.db.query(
      `INSERT INTO ${S}.oidc_attempts (state, provider_id, login_id, nonce, code_verifier, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6::timestamptz)`,
      [state, this.id, loginId, nonce, verifier, new Date(Date.now() + ATTEMPT_TTL_MS).toISOString()],
    );
    const params: Record<string, string> = {
      redirect_uri: this.redirectUri(),
      scope: this.cfg.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    };
    if (this.cfg.requireMfa && this.cfg.mfaAcrValues.length > 0)
      params.acr_values = this.cfg.mfaAcrValues.join(' ');
    return { kind: 'redirect', url: client.buildAuthorizationUrl(config, params).href };
  }

  /** Consumes the attempt named by `state` once; an unknown, used or expired state is refused. */
  private async consume(state: string): Promise<AttemptRow> {
    const r = await this.deps.db.query<AttemptRow>(
      `UPDATE ${S}.oidc_attempts SET used_at = now()
       WHERE state = $1 AND provider_id = $2 AND used_at IS NULL AND expires_at > now() RETURNING *`,
      [state, this.id],
    );
    if (r.rows[0]) return r.rows[0];
    const seen = await this.deps.db.query<AttemptRow>(
      `SELECT * FROM ${S}.oidc_attempts WHERE state = $1 AND provider_id = $2`,
      [state, this.id],
    );
    const row = seen.rows[0];
    if (row?.used_at)
      throw new LoginRefused(
        'oidc_state_used',
        'this sign-in response was already used',
        'go back to the device and open its login link again',
        400,
      );
    if (row)
      throw new LoginRefused(
        'oidc_state_expired',
        'this sign-in took too long and expired',
        'open the login link from the device again',
        400,
      );
    throw new LoginRefused(
      'oidc_state_mismatch',
      'the sign-in response does not belong to a sign-in started here (state mismatch)',
      'open the login link from the device again; if this keeps happening, someone may be trying to sign you in to their session',
      400,
    );
  }

  async complete(req: ProviderRequest): Promise<{ loginId: string; identity: VerifiedIdentity }> {
    const q = req.url.searchParams;
    const idpError = q.get('error');
    const state = q.get('state');
    if (idpError !== null && state === null)
      throw new LoginRefused(
        'oidc_idp_error',
        `the identity provider refused the sign-in: ${idpError}${q.get('error_description') ? ` (${q.get('error_description')})` : ''}`,
        'try again, or ask your administrator',
      );
    if (state === null || state === '')
      throw new LoginRefused(
        'oidc_state_mismatch',
        'the sign-in response carries no state',
        'open the login link from the device again',
        400,
      );
    const attempt = await this.consume(state);
    if (idpError !== null)
      throw new LoginRefused(
        'oidc_idp_error',
        `the identity provider refused the sign-in: ${idpError}${q.get('error_description') ? ` (${q.get('error_description')})` : ''}`,
        'try again, or ask your administrator',
      );
    const config = await this.discovered();
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, req.url, {
        pkceCodeVerifier: attempt.code_verifier,
        expectedState: attempt.state,
        expectedNonce: attempt.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw refusalFor(err, this.displayName);
    }
    const claims = tokens.claims();
    if (!claims)
      throw new LoginRefused(
        'oidc_no_id_token',
        'the identity provider sent no id_token',
        'tell your administrator',
      );
    return { loginId: attempt.login_id, identity: this.identityFrom(claims) };
  }

  private identityFrom(c: client.IDToken): VerifiedIdentity {
    const str = (k: string): string | undefined =>
      typeof c[k] === 'string' && c[k] !== '' ? c[k] : undefined;
    const emailOk = this.cfg.trustUnverifiedEmail || c.email_verified === true;
    const email = emailOk ? str('email') : undefined;
    const rawGroups = c[this.cfg.groupsClaim];
    const groups = Array.isArray(rawGroups)
      ? rawGroups.filter((g): g is string => typeof g === 'string')
      : typeof rawGroups === 'string'
        ? [rawGroups]
        : [];
    const amr = Array.isArray(c.amr) ? c.amr.filter((x): x is string => typeof x === 'string') : [];
    const acr = str('acr');
    const mfa =
      (acr !== undefined && this.cfg.mfaAcrValues.includes(acr)) ||
      amr.some((m) => this.cfg.mfaAmrValues.includes(m));
    const loginName = email ?? str('preferred_username') ?? `${c.sub}@${this.id}`;
    return {
      providerId: this.id,
      subject: c.sub,
      loginName,
      ...(email !== undefined ? { email } : {}),
      ...(str('name') !== undefined ? { displayName: str('name')! } : {}),
      ...(str('picture') !== undefined ? { pictureUrl: str('picture')! } : {}),
      groups,
      mfa,
    };
  }
}

/** Turns openid-client's errors into refusals that say which check failed. */
function refusalFor(err: unknown, idp: string): LoginRefused {
  // openid-client wraps oauth4webapi's errors; the code and the failed claim sit somewhere in the cause chain.
  type Cause = { code?: string; message?: string; claim?: string; error?: string; cause?: unknown };
  const chain: Cause[] = [];
  for (let c: unknown = err; c && typeof c === 'object' && chain.length < 5; c = (c as Cause).cause)
    chain.push(c);
  const find = (k: 'code' | 'claim' | 'error'): string | undefined =>
    chain.map((c) => c[k]).find((v): v is string => typeof v === 'string');
  const codes = chain.map((c) => c.code);
  const e = {
    code: codes.includes('OAUTH_JWT_CLAIM_COMPARISON_FAILED')
      ? 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'
      : codes.includes('OAUTH_JWT_TIMESTAMP_CHECK_FAILED')
        ? 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED'
        : find('code'),
    message: chain
      .map((c) => c.message)
      .filter(Boolean)
      .join(': '),
    cause: { error: find('error') },
  };
  const claim = find('claim');
  if (e.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && claim === 'nonce')
    return new LoginRefused(
      'oidc_nonce_mismatch',
      'the id_token was not issued for this sign-in (nonce mismatch)',
      'open the login link from the device again',
    );
  if (e.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && (claim === 'aud' || claim === 'azp'))
    return new LoginRefused(
      'oidc_wrong_audience',
      `the id_token was issued to another application (${claim} mismatch)`,
      'tell your administrator: the provider’s clientId does not match the identity provider’s client',
    );
  if (e.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && claim === 'iss')
    return new LoginRefused(
      'oidc_wrong_issuer',
      'the id_token comes from another issuer',
      'tell your administrator',
    );
  if (e.code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED')
    return new LoginRefused(
      'oidc_token_expired',
      `the id_token is expired or not yet valid (${e.message ?? 'timestamp check failed'})`,
      'check the clocks of this server and the identity provider, then sign in again',
    );
  if (e.code === 'OAUTH_RESPONSE_BODY_ERROR')
    return new LoginRefused(
      'oidc_token_error',
      `${idp} refused to exchange the code: ${e.cause?.error ?? e.message ?? 'error'}`,
      'open the login link from the device again',
    );
  return new LoginRefused(
    'oidc_verification_failed',
    `the sign-in response from ${idp} failed verification: ${e.message ?? String(err)}`,
    'open the login link from the device again; if it keeps failing, tell your administrator',
  );
}
