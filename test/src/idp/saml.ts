/**
 * The real SAML IdP for the login tests: test/idp/saml-idp (our main around crewjam/saml's samlidp),
 * built by scripts/install-saml-idp.sh into ~/.cache/switchboard, started on a free loopback port
 * with its own fresh key and the given users. `registerSp` hands it the SP metadata (samlidp's
 * PUT /services/<id>); `signIn` walks its login form over plain HTTP the way a browser would and
 * returns the genuine POST-binding response.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface SamlIdpUser {
  name: string;
  password: string;
  email: string;
  displayName: string;
  givenName?: string;
  surname?: string;
  groups?: string[];
  /** Persistent NameID (the user's stable subject at the IdP). */
  subject: string;
  /** AuthnContextClassRef to assert (default PasswordProtectedTransport). */
  authnContext?: string;
}

export interface SamlIdp {
  url: string;
  metadataUrl: string;
  metadataXml: string;
  /** The IdP's signing key and certificate (PEM), for tests that re-sign tampered responses. */
  keyPem: string;
  certPem: string;
  registerSp(id: string, spMetadataXml: string): Promise<void>;
  /** Follows an SP-initiated redirect URL, signs in, returns the form the IdP posts to the ACS. */
  signIn(
    authUrl: string,
    user: string,
    password: string,
  ): Promise<{ action: string; SAMLResponse: string; RelayState: string }>;
  stop(): Promise<void>;
}

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

/** Builds the IdP (idempotent) and returns the binary's path. */
export function samlIdpBinary(): string {
  return execFileSync('bash', [join(repoRoot, 'scripts/install-saml-idp.sh')], { encoding: 'utf8' }).trim();
}

const unescapeHtml = (s: string): string =>
  s
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');

function formField(html: string, name: string): string {
  const m = new RegExp(`name="${name}"\\s+value="([^"]*)"`).exec(html);
  if (!m) throw new Error(`the IdP page has no ${name} field: ${html.slice(0, 300)}`);
  return unescapeHtml(m[1]!);
}

export async function startSamlIdp(opts: {
  users: SamlIdpUser[];
  profile?: 'okta' | 'entra';
}): Promise<SamlIdp> {
  const bin = samlIdpBinary();
  const dir = mkdtempSync(join(tmpdir(), 'sb-saml-idp-'));
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({ profile: opts.profile ?? 'okta', users: opts.users }),
  );
  const child: ChildProcess = spawn(
    bin,
    ['--listen', '127.0.0.1:0', '--state-dir', dir, '--config', join(dir, 'config.json')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => resolve(l));
    child.once('exit', (code) => reject(new Error(`saml-idp exited with ${code}: ${stderr}`)));
    setTimeout(() => reject(new Error(`saml-idp did not start within 20 s: ${stderr}`)), 20_000).unref();
  });
  const { url, metadataUrl } = JSON.parse(first) as { url: string; metadataUrl: string };
  const metadataXml = await (await fetch(metadataUrl)).text();
  return {
    url,
    metadataUrl,
    metadataXml,
    keyPem: readFileSync(join(dir, 'idp-key.pem'), 'utf8'),
    certPem: readFileSync(join(dir, 'idp-cert.pem'), 'utf8'),
    async registerSp(id, xml) {
      const r = await fetch(`${url}/services/${encodeURIComponent(id)}`, { method: 'PUT', body: xml });
      if (r.status !== 204)
        throw new Error(`saml-idp refused the SP metadata: ${r.status} ${await r.text()}`);
    },
    async signIn(authUrl, user, password) {
      const page = await (await fetch(authUrl)).text();
      const body = new URLSearchParams({
        user,
        password,
        SAMLRequest: formField(page, 'SAMLRequest'),
        RelayState: formField(page, 'RelayState'),
      });
      // samlidp's /login answers with the new session (cookie); /sso then issues the response
      const login = await fetch(`${url}/login`, { method: 'POST', body });
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      if (!cookie.startsWith('session='))
        throw new Error(`the IdP refused the login of ${user}: ${await login.text()}`);
      const sso = new URLSearchParams({
        SAMLRequest: body.get('SAMLRequest')!,
        RelayState: body.get('RelayState')!,
      });
      const res = await fetch(`${url}/sso`, { method: 'POST', body: sso, headers: { cookie } });
      const html = await res.text();
      const action = /<form[^>]*action="([^"]*)"/.exec(html)?.[1];
      if (!action) throw new Error(`the IdP did not answer with a POST-binding form: ${html.slice(0, 300)}`);
      return {
        action: unescapeHtml(action),
        SAMLResponse: formField(html, 'SAMLResponse'),
        RelayState: formField(html, 'RelayState'),
      };
    },
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
