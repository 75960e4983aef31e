/**
 * The SAML service provider against a real IdP (crewjam/saml samlidp, test/idp/saml-idp): a genuine
 * SP-initiated sign-in over HTTP-Redirect + HTTP-POST, then every refusal of issue #9 on genuine
 * responses tampered with (re-signed with the IdP's own key to isolate one check, or with another
 * key) — each a LoginRefused with code, message, hint and a warn log line, nothing stored but the
 * replay record. Runs on Postgres (scratch database) and on PGlite (the one-process mode).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { migrate, openDb, type Db } from '@switchboard/db';

import {
  IDENTITY_MIGRATIONS,
  createSamlProvider,
  LoginRefused,
  type SamlProvider,
} from '@switchboard/identity';
import { capturingLogger, scratchDatabase, type LogLine, type ScratchDatabase } from '@switchboard/testing';
import { startSamlIdp, type SamlIdp } from '../../src/idp/saml.js';
import {
  resignAssertion,
  setAll,
  strangerKey,
  stripSignatures,
  wrap,
  decode,
  encode,
  type WrapVariant,
} from '../../src/idp/saml-tamper.js';

const MFA = 'urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract';
const PUBLIC = 'http://127.0.0.1:9';

for (const backend of ['postgres', 'pglite'] as const) {
  describe(`SAML provider with a real IdP (${backend})`, () => {
    let scratch: ScratchDatabase | undefined;
    let db: Db;
    let idp: SamlIdp;
    let metadataFile: string;
    const lines: LogLine[] = [];
    const logger = capturingLogger(lines);
    let corp: SamlProvider;
    let corpMfa: SamlProvider;

    const make = (id: string, extra: Record<string, unknown> = {}): SamlProvider =>
      createSamlProvider(
        {
          id,
          type: 'saml',
          displayName: `Corp ${id}`,
          idpMetadataFile: metadataFile,
          clockSkewSeconds: 30,
          ...extra,
        },
        { db, publicUrl: PUBLIC, logger },
      );

    before(async () => {
      if (backend === 'postgres') scratch = await scratchDatabase('sbsaml');
      db = await openDb(scratch ? { url: scratch.url, logger } : { logger });
      await migrate(db, { schema: 'identity', dir: IDENTITY_MIGRATIONS, logger });
      idp = await startSamlIdp({
        users: [
          {
            name: 'alice',
            password: 'pw-alice',
            email: 'alice@corp.example',
            displayName: 'Alice Example',
            groups: ['eng', 'idp-only-vpn'],
            subject: 'u-alice',
          },
          {
            name: 'carol',
            password: 'pw-carol',
            email: 'carol@corp.example',
            displayName: 'Carol MFA',
            groups: ['ops'],
            subject: 'u-carol',
            authnContext: MFA,
          },
        ],
      });
      metadataFile = join(mkdtempSync(join(tmpdir(), 'sb-saml-md-')), 'idp.xml');
      writeFileSync(metadataFile, idp.metadataXml);
      corp = make('corp');
      corpMfa = make('corp-mfa', { requireMfa: true });
      await idp.registerSp('corp', corp.spMetadata());
      await idp.registerSp('corp-mfa', corpMfa.spMetadata());
    });

    after(async () => {
      await idp?.stop();
      await db?.close();
      await scratch?.drop();
    });

    async function genuine(p: SamlProvider, user = 'alice', pw = 'pw-alice') {
      const loginId = randomUUID();
      const step = await p.begin(loginId);
      assert.equal(step.kind, 'redirect');
      const form = await idp.signIn(step.kind === 'redirect' ? step.url : '', user, pw);
      assert.equal(form.action, p.acsUrl);
      return { loginId, step, xml: decode(form.SAMLResponse), b64: form.SAMLResponse };
    }
    const complete = (p: SamlProvider, b64: string, relay = '') =>
      p.complete({ method: 'POST', url: new URL(p.acsUrl), form: { SAMLResponse: b64, RelayState: relay } });
    async function seen(): Promise<number> {
      const { rows } = await db.query<{ n: string }>(
        'SELECT count(*)::text AS n FROM identity.saml_assertions_seen',
      );
      return Number(rows[0]!.n);
    }
    async function refused(p: Promise<unknown>, code: string): Promise<LoginRefused> {
      const before = lines.length;
      const err = await p.then(
        () => assert.fail(`expected a refusal with ${code}`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof LoginRefused, `not a LoginRefused: ${String(err)}`);
      assert.equal(err.code, code, `${err.code}: ${err.message}`);
      assert.ok(err.message.length > 10 && err.hint.length > 10);
      const logged = lines.slice(before).find((l) => l.level === 'warn' && l.fields['code'] === code);
      assert.ok(logged, `no warn log line with code ${code}`);
      return err;
    }

    test('happy path: genuine sign-in gives the identity, groups and the pending login', async () => {
      const g = await genuine(corp);
      const r = await complete(corp, g.b64);
      assert.equal(r.loginId, g.loginId);
      assert.deepEqual(r.identity, {
        providerId: 'corp',
        subject: 'u-alice',
        loginName: 'alice@corp.example',
        email: 'alice@corp.example',
        displayName: 'Alice Example',
        groups: ['eng', 'idp-only-vpn'],
        mfa: false,
      });
      const { rows } = await db.query('SELECT 1 FROM identity.saml_requests WHERE login_id = $1', [
        g.loginId,
      ]);
      assert.equal(rows.length, 0, 'the request ID is consumed');
    });

    test('SP metadata is served at a stable route and names the ACS', () => {
      const route = corp.routes().find((r) => r.path === 'metadata');
      assert.ok(route);
      const xml = route.body();
      assert.match(xml, new RegExp(`entityID="${PUBLIC}/login/corp/metadata"`));
      assert.match(xml, new RegExp(`Location="${PUBLIC}/login/callback/corp"`));
      assert.equal(xml, corp.routes()[0]!.body());
    });

    test('unsigned response is refused', async () => {
      const g = await genuine(corp);
      const n = await seen();
      await refused(complete(corp, encode(stripSignatures(g.xml))), 'saml_signature_invalid');
      assert.equal(await seen(), n);
    });

    test('a response re-signed by another key is refused', async () => {
      const g = await genuine(corp);
      const forged = resignAssertion(g.xml, strangerKey(), (d) => {
        d.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:assertion', 'NameID')[0]!.textContent =
          'u-mallory';
      });
      await refused(complete(corp, encode(forged)), 'saml_signature_invalid');
    });

    for (const v of [
      'evil-first-sibling',
      'original-in-extensions',
      'original-in-evil-advice',
    ] as WrapVariant[]) {
      test(`XML signature wrapping (${v}) is refused`, async () => {
        const g = await genuine(corp);
        const n = await seen();
        await refused(complete(corp, encode(wrap(g.xml, v))), 'saml_signature_invalid');
        assert.equal(await seen(), n);
        // the untouched response still works: the refusal is about the wrapping alone
        assert.equal((await complete(corp, g.b64)).identity.subject, 'u-alice');
      });
    }

    test('a replayed assertion is refused, also by a re-created provider (restart)', async () => {
      const g = await genuine(corp);
      await complete(corp, g.b64);
      await refused(complete(corp, g.b64), 'saml_replay');
      const restarted = make('corp');
      await refused(complete(restarted, g.b64), 'saml_replay');
    });

    test('wrong audience is refused', async () => {
      const g = await genuine(corp);
      const x = resignAssertion(g.xml, idp.keyPem, (d) => {
        d.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:assertion', 'Audience')[0]!.textContent =
          'https://other.example/sp';
      });
      await refused(complete(corp, encode(x)), 'saml_audience_mismatch');
    });

    test('wrong recipient is refused', async () => {
      const g = await genuine(corp);
      const x = resignAssertion(g.xml, idp.keyPem, (d) =>
        setAll(d, 'SubjectConfirmationData', 'Recipient', 'https://other.example/acs'),
      );
      await refused(complete(corp, encode(x)), 'saml_recipient_mismatch');
    });

    test('wrong destination is refused', async () => {
      const g = await genuine(corp);
      const x = resignAssertion(g.xml, idp.keyPem, (d) =>
        d.documentElement.setAttribute('Destination', 'https://other.example/acs'),
      );
      await refused(complete(corp, encode(x)), 'saml_destination_mismatch');
    });

    test('an expired assertion is refused', async () => {
      const g = await genuine(corp);
      const past = new Date(Date.now() - 3_600_000).toISOString();
      const older = new Date(Date.now() - 7_200_000).toISOString();
      const x = resignAssertion(g.xml, idp.keyPem, (d) => {
        setAll(d, 'Conditions', 'NotBefore', older);
        setAll(d, 'Conditions', 'NotOnOrAfter', past);
        setAll(d, 'SubjectConfirmationData', 'NotOnOrAfter', past);
      });
      await refused(complete(corp, encode(x)), 'saml_assertion_expired');
    });

    test('an unknown InResponseTo is refused (forged ID, and a second response to a used request)', async () => {
      const g = await genuine(corp);
      const x = resignAssertion(g.xml, idp.keyPem, (d) => {
        setAll(d, 'SubjectConfirmationData', 'InResponseTo', '_never-issued');
        d.documentElement.setAttribute('InResponseTo', '_never-issued');
      });
      await refused(complete(corp, encode(x)), 'saml_request_unknown');
      // genuine: the IdP answers the same AuthnRequest twice; the second answer finds it consumed
      const first = await genuine(corp);
      const again = await idp.signIn(
        first.step.kind === 'redirect' ? first.step.url : '',
        'alice',
        'pw-alice',
      );
      await complete(corp, first.b64);
      await refused(complete(corp, again.SAMLResponse), 'saml_request_unknown');
    });

    test('IdP-initiated login is refused unless enabled', async () => {
      const g = await genuine(corp);
      const x = resignAssertion(g.xml, idp.keyPem, (d) => {
        setAll(d, 'SubjectConfirmationData', 'InResponseTo', null);
        d.documentElement.removeAttribute('InResponseTo');
      });
      await refused(complete(corp, encode(x)), 'saml_idp_initiated_refused');
    });

    test('MFA: RequestedAuthnContext is sent; a password-only sign-in is refused, an MFA one passes', async () => {
      const g = await genuine(corpMfa);
      const url = new URL(g.step.kind === 'redirect' ? g.step.url : '');
      const request = inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest')!, 'base64')).toString(
        'utf8',
      );
      assert.match(request, /RequestedAuthnContext/);
      assert.match(request, new RegExp(MFA));
      await refused(complete(corpMfa, g.b64), 'saml_mfa_required');
      const ok = await genuine(corpMfa, 'carol', 'pw-carol');
      const r = await complete(corpMfa, ok.b64);
      assert.equal(r.identity.mfa, true);
      assert.equal(r.identity.subject, 'u-carol');
      // without requireMfa no RequestedAuthnContext is sent
      const plain = await genuine(corp);
      const plainReq = inflateRawSync(
        Buffer.from(
          new URL(plain.step.kind === 'redirect' ? plain.step.url : '').searchParams.get('SAMLRequest')!,
          'base64',
        ),
      ).toString('utf8');
      assert.doesNotMatch(plainReq, /RequestedAuthnContext/);
    });

    test('nothing but SAML bookkeeping was stored: no user exists', async () => {
      const { rows } = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM identity.users');
      assert.equal(Number(rows[0]!.n), 0);
    });
  });
}
