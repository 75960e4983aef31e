/**
 * Switchboard's SAML 2.0 service provider, one per configured `type: saml` entry.
 *
 * Order of the ACS checks (complete):
 *   1. node-saml 5.1.0 (signature-wrapping fixes of CVE-2025-54419/54369 and xml-crypto ≥ 6.0.1):
 *      signature by a certificate from the configured IdP metadata over the Response or the
 *      Assertion (one of the two required), exactly one assertion, only signed references read,
 *      audience, Conditions/SubjectConfirmation times with our skew, IdP status.
 *   2. libs/saml `checkAssertion` over the SIGNED assertion XML node-saml returns: Issuer,
 *      Response@Destination, bearer SubjectConfirmation Recipient/NotOnOrAfter, Conditions and
 *      audience again (our clock, `deps.now`), InResponseTo consistency, IdP-initiated, NameID,
 *      AuthnContextClassRef → `mfa` (refused here when `requireMfa`).
 *   3. Replay: the assertion ID is inserted into identity.saml_assertions_seen (kept until it
 *      expires); a second insert means a replay.
 *   4. The AuthnRequest ID in InResponseTo is consumed atomically (DELETE … RETURNING login_id):
 *      unknown, expired, used or another provider's ⇒ refused. node-saml's own InResponseTo cache
 *      is off (`validateInResponseTo: never`): its get-then-remove is not atomic across replicas and
 *      it cannot say which pending login a request belonged to.
 * Every refusal is a LoginRefused, logged once at warn with its code; nothing but the replay record
 * is written before the identity is returned.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SAML, type SamlConfig } from '@node-saml/node-saml';
import { errorMessage, type Logger } from '@switchboard/common';
import type { Db } from '@switchboard/db';
import {
  assertionFacts,
  checkAssertion,
  mapAttributes,
  parseIdpMetadata,
  responseEnvelope,
  samlSettings,
  ssoUrlFor,
  type IdpMetadata,
  type SamlProviderConfig,
  type SamlSettings,
} from '@switchboard/saml';
import {
  LoginRefused,
  type LoginProvider,
  type LoginStep,
  type ProviderRequest,
  type VerifiedIdentity,
} from '../provider.js';
import { refusalFromNodeSaml } from './saml.errors.js';
import { SamlRepository } from './saml.repository.js';

export interface SamlProviderDeps {
  db: Db;
  publicUrl: string;
  logger: Logger;
  now?: () => Date;
  /** For idpMetadataUrl; defaults to the global fetch. */
  fetch?: typeof fetch;
}

const METADATA_REFRESH_MS = 3_600_000;
const pem = (b64: string): string =>
  `-----BEGIN CERTIFICATE-----\n${b64.replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;

export class SamlProvider implements LoginProvider {
  readonly kind = 'saml' as const;
  readonly id: string;
  readonly displayName: string;
  readonly acsUrl: string;
  readonly spEntityId: string;
  readonly metadataPath: string;
  private readonly settings: SamlSettings;
  private readonly repo: SamlRepository;
  private readonly now: () => Date;
  private readonly log: Logger;
  private readonly signing: { cert: string; key: string } | null;
  private idp: { meta: IdpMetadata; loadedAt: number } | null = null;
  private lastPurge = 0;

  constructor(
    private readonly config: SamlProviderConfig,
    private readonly deps: SamlProviderDeps,
    signing: { cert: string; key: string } | null,
    idpMetadataXml: string | null,
  ) {
    const base = deps.publicUrl.replace(/\/+$/, '');
    this.id = config.id;
    this.displayName = config.displayName;
    this.acsUrl = `${base}/login/callback/${config.id}`;
    this.metadataPath = `/login/${config.id}/metadata`;
    this.spEntityId = config.spEntityId ?? `${base}${this.metadataPath}`;
    this.settings = samlSettings(config);
    this.repo = new SamlRepository(deps.db, config.id);
    this.now = deps.now ?? (() => new Date());
    this.log = deps.logger;
    this.signing = signing;
    if (idpMetadataXml !== null) this.idp = { meta: parseIdpMetadata(idpMetadataXml), loadedAt: Infinity };
  }

  private async idpMetadata(): Promise<IdpMetadata> {
    const url = this.config.idpMetadataUrl;
    if (this.idp && (url === undefined || Date.now() - this.idp.loadedAt < METADATA_REFRESH_MS))
      return this.idp.meta;
    try {
      const res = await (this.deps.fetch ?? fetch)(url!, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.idp = { meta: parseIdpMetadata(await res.text()), loadedAt: Date.now() };
      this.log.info('saml: IdP metadata loaded', { url, entityId: this.idp.meta.entityId });
    } catch (err) {
      this.log.error('saml: cannot load IdP metadata', { url, err: errorMessage(err) });
      if (this.idp) return this.idp.meta; // keep the last good metadata
      throw new LoginRefused(
        'saml_idp_metadata_unavailable',
        `the IdP metadata at ${url} cannot be loaded (${errorMessage(err)})`,
        'try again in a minute; if it persists, the administrator should check idpMetadataUrl',
        503,
      );
    }
    return this.idp.meta;
  }

  private saml(meta: IdpMetadata, requestId?: string): SAML {
    const s = this.settings;
    const cfg: SamlConfig = {
      callbackUrl: this.acsUrl,
      entryPoint: ssoUrlFor(meta, s.authnRequestBinding),
      issuer: this.spEntityId,
      audience: this.spEntityId,
      idpCert: meta.signingCerts.map(pem),
      wantAuthnResponseSigned: false, // either the response or the assertion must be signed:
      wantAssertionsSigned: false, // node-saml then requires the assertion's signature
      acceptedClockSkewMs: s.clockSkewMs,
      validateInResponseTo: 'never' as SamlConfig['validateInResponseTo'], // ours, durable and atomic
      identifierFormat: s.nameIdFormat,
      disableRequestedAuthnContext: !s.requireMfa,
      authnContext: s.mfaAuthnContexts,
      racComparison: 'exact',
      signatureAlgorithm: 'sha256',
      authnRequestBinding: s.authnRequestBinding,
      ...(this.signing ? { privateKey: this.signing.key, publicCert: this.signing.cert } : {}),
      ...(requestId ? { generateUniqueId: () => requestId } : {}),
    };
    return new SAML(cfg);
  }

  async begin(loginId: string): Promise<LoginStep> {
    const meta = await this.idpMetadata();
    if (meta.wantAuthnRequestsSigned && !this.signing)
      this.log.warn('saml: the IdP wants signed AuthnRequests but no signing key is configured', {});
    const requestId = `_${randomBytes(20).toString('hex')}`;
    await this.repo.saveRequest(
      requestId,
      loginId,
      new Date(this.now().getTime() + this.settings.requestTtlMs),
    );
    const saml = this.saml(meta, requestId);
    this.log.info('saml: AuthnRequest issued', {
      loginId,
      requestId,
      mfaRequested: this.settings.requireMfa,
    });
    if (this.settings.authnRequestBinding === 'HTTP-POST')
      return { kind: 'html', html: await saml.getAuthorizeFormAsync('', undefined, {}) };
    return { kind: 'redirect', url: await saml.getAuthorizeUrlAsync('', undefined, {}) };
  }

  async complete(req: ProviderRequest): Promise<{ loginId: string; identity: VerifiedIdentity }> {
    try {
      return await this.verify(req);
    } catch (err) {
      const refusal =
        err instanceof LoginRefused
          ? err
          : new LoginRefused(
              'saml_response_invalid',
              `the SAML response cannot be used: ${errorMessage(err)}`,
              'sign in again from the device',
              400,
            );
      this.log.warn('saml: login refused', { code: refusal.code, reason: refusal.message });
      throw refusal;
    }
  }

  private async verify(req: ProviderRequest): Promise<{ loginId: string; identity: VerifiedIdentity }> {
    const samlResponse = req.form?.SAMLResponse;
    if (req.method !== 'POST' || !samlResponse)
      throw new LoginRefused(
        'saml_response_missing',
        'no SAMLResponse was posted to the assertion consumer service',
        'start signing in again from the device; the IdP must answer with the HTTP-POST binding',
        400,
      );
    const meta = await this.idpMetadata();
    let assertionXml: string;
    try {
      const { profile } = await this.saml(meta).validatePostResponseAsync({ SAMLResponse: samlResponse });
      if (!profile) throw new Error('the response carries no assertion');
      assertionXml = profile.getAssertionXml?.() ?? '';
    } catch (err) {
      throw refusalFromNodeSaml(err);
    }
    const now = this.now();
    const facts = assertionFacts(assertionXml);
    const envelope = responseEnvelope(Buffer.from(samlResponse, 'base64').toString('utf8'));
    const checked = checkAssertion(facts, envelope, {
      idpEntityId: meta.entityId,
      spEntityId: this.spEntityId,
      acsUrl: this.acsUrl,
      clockSkewMs: this.settings.clockSkewMs,
      allowIdpInitiated: this.settings.allowIdpInitiated,
      requireMfa: this.settings.requireMfa,
      mfaAuthnContexts: this.settings.mfaAuthnContexts,
      nowMs: now.getTime(),
    });
    if ('problem' in checked) {
      const p = checked.problem;
      throw new LoginRefused(p.code, p.message, p.hint);
    }
    const ok = checked.ok;
    if (!(await this.repo.rememberAssertion(facts.id, new Date(ok.rememberUntilMs))))
      throw new LoginRefused(
        'saml_replay',
        `assertion ${facts.id} was already used to sign in (replay)`,
        'start signing in again from the device; a SAML response can be used only once',
      );
    let loginId: string | null;
    if (ok.inResponseTo !== null) {
      loginId = await this.repo.consumeRequest(ok.inResponseTo, now);
      if (loginId === null)
        throw new LoginRefused(
          'saml_request_unknown',
          `the response answers request ${ok.inResponseTo}, which this server did not issue, already used, or which expired`,
          'start signing in again from the device (tailscale up)',
        );
    } else {
      loginId = req.form?.RelayState ?? '';
      if (!loginId)
        throw new LoginRefused(
          'saml_idp_initiated_refused',
          'an IdP-initiated sign-in must name the pending login in RelayState',
          'start signing in from the device (tailscale up)',
        );
    }
    void this.purgeNowAndThen(now);
    const a = mapAttributes(facts.attributes, this.settings.attributes);
    if (a.groupsOverage)
      this.log.warn(
        'saml: the IdP sent a groups overage link instead of all groups; only the groups sent are used',
        {
          subject: ok.subject,
        },
      );
    const identity: VerifiedIdentity = {
      providerId: this.id,
      subject: ok.subject,
      loginName: a.email ?? ok.subject,
      groups: a.groups,
      mfa: ok.mfa,
      ...(a.email ? { email: a.email } : {}),
      ...(a.displayName ? { displayName: a.displayName } : {}),
    };
    this.log.info('saml: login verified', {
      loginId,
      subject: ok.subject,
      mfa: ok.mfa,
      groups: a.groups.length,
    });
    return { loginId, identity };
  }

  private async purgeNowAndThen(now: Date): Promise<void> {
    if (now.getTime() - this.lastPurge < 600_000) return;
    this.lastPurge = now.getTime();
    await this.repo
      .purge(now)
      .catch((err: unknown) => this.log.warn('saml: purge failed', { err: errorMessage(err) }));
  }

  /** SP metadata: entity ID, ACS (HTTP-POST), NameID format, signing cert when configured. */
  spMetadata(): string {
    const meta = this.idp?.meta ?? {
      entityId: '',
      ssoUrls: [{ binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', location: 'about:blank' }],
      signingCerts: ['unused'],
      wantAuthnRequestsSigned: false,
    };
    // a stable document ID, so the metadata served is the same bytes every time
    const id = `_sp${createHash('sha256').update(this.spEntityId).digest('hex').slice(0, 40)}`;
    return this.saml(meta, id).generateServiceProviderMetadata(null, this.signing?.cert ?? null);
  }

  routes(): { path: string; contentType: string; body: () => string }[] {
    return [{ path: 'metadata', contentType: 'application/samlmetadata+xml', body: () => this.spMetadata() }];
  }
}

/** Reads the files an entry names (IdP metadata, signing cert/key); throws with a clear message. */
export function readSamlFiles(config: SamlProviderConfig): {
  signing: { cert: string; key: string } | null;
  idpMetadataXml: string | null;
} {
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`cannot read ${what} ${path}: ${errorMessage(err)}`);
    }
  };
  return {
    signing: config.signing
      ? {
          cert: read(config.signing.certFile, 'signing.certFile'),
          key: read(config.signing.keyFile, 'signing.keyFile'),
        }
      : null,
    idpMetadataXml: config.idpMetadataFile ? read(config.idpMetadataFile, 'idpMetadataFile') : null,
  };
}
