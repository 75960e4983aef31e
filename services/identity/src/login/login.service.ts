/**
 * The browser side of interactive registration. A device's login URL (`/login/<loginId>`, from
 * key-registry) starts a sign-in at a provider; the provider's return is verified, checked
 * against the provider's allow-lists and MFA rule, and turned into a user (keyed by provider and
 * subject, created just in time unless invite-only, groups replaced). The person then confirms the
 * device on our page (CSRF token, same browser that opened the URL) before key-registry attaches it.
 * The callback is handled once and redirects; a reload lands on the same confirmation.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Bus } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import type { Db, Queryable } from '@switchboard/db';
import { appendOutbox } from '@switchboard/db';
import {
  UserUpserted,
  callRpc,
  keyRegistry,
  type PendingLoginRecord,
  type UserRecord,
} from '@switchboard/contracts';
import type { ProviderConfig } from './login.config.js';
import { mapUser, type UserRow } from '../identity.repository.js';
import { LoginRepository } from './login.repository.js';
import * as pages from './login.pages.js';
import { LoginRefused, type LoginProvider, type ProviderRequest, type VerifiedIdentity } from './provider.js';

const S = 'identity';
const CONFIRM_TTL_MS = 10 * 60_000;
const SESSION_TTL_MS = 60 * 60_000;
export const BROWSER_COOKIE = 'sb_login';

export interface PageResult {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface LoginFlowDeps {
  db: Db;
  bus: Bus;
  logger: Logger;
  providers: { provider: LoginProvider; config: ProviderConfig }[];
  kickOutbox: () => void;
  waitPublished: (ms: number) => Promise<void>;
  /** The deployment's tailnet for new users. */
  tailnetId?: number;
}

const html = (status: number, body: string, headers: Record<string, string> = {}): PageResult => ({
  status,
  headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers },
  body,
});
const redirect = (to: string, headers: Record<string, string> = {}): PageResult => ({
  status: 303,
  headers: { location: to, 'cache-control': 'no-store', ...headers },
  body: '',
});

export function hashOf(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A user name (letters, digits, ".", "_", "-", "@") derived from the login name. */
export function userNameFor(loginName: string): string {
  const n = loginName
    .toLowerCase()
    .replace(/[^a-z0-9._@-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 60);
  return n === '' ? 'user' : n;
}

/** Why the identity may not sign in at this provider, or null. Applied for OIDC and SAML alike. */
export function admissionProblem(cfg: ProviderConfig, id: VerifiedIdentity): LoginRefused | null {
  if (cfg.allowedGroups.length > 0 && !id.groups.some((g) => cfg.allowedGroups.includes(g)))
    return new LoginRefused(
      'group_not_allowed',
      `${id.loginName} is not in a group allowed to sign in here (${cfg.allowedGroups.join(', ')})`,
      'ask your administrator to add you to one of these groups at the identity provider',
    );
  const email = id.email?.toLowerCase();
  if (cfg.allowedDomains.length > 0) {
    const domain = email?.split('@')[1];
    if (!domain || !cfg.allowedDomains.map((d) => d.toLowerCase()).includes(domain))
      return new LoginRefused(
        'domain_not_allowed',
        email
          ? `${email} is not in an allowed domain (${cfg.allowedDomains.join(', ')})`
          : 'the identity provider sent no verified email, and only some email domains may sign in',
        'sign in with an account of an allowed domain, or ask your administrator',
      );
  }
  if (cfg.allowedUsers.length > 0) {
    const allowed = cfg.allowedUsers.map((u) => u.toLowerCase());
    if (!allowed.includes(email ?? '') && !allowed.includes(id.loginName.toLowerCase()))
      return new LoginRefused(
        'user_not_allowed',
        `${id.loginName} is not on the list of users allowed to sign in here`,
        'sign in with another account, or ask your administrator to allow this one',
      );
  }
  if (cfg.requireMfa && !id.mfa)
    return new LoginRefused(
      'mfa_required',
      'this sign-in did not use multi-factor authentication, which this server requires',
      'sign in again with a second factor (for example an authenticator app or a security key)',
    );
  return null;
}

export class LoginFlow {
  private readonly repo = new LoginRepository();
  private readonly byId = new Map<string, { provider: LoginProvider; config: ProviderConfig }>();

  constructor(private readonly d: LoginFlowDeps) {
    for (const p of d.providers) this.byId.set(p.provider.id, p);
  }

  get providerCount(): number {
    return this.byId.size;
  }

  private refused(e: LoginRefused, ctx: Record<string, unknown>): PageResult {
    this.d.logger.warn('login refused', { code: e.code, reason: e.message, ...ctx });
    return html(e.status, pages.refusalPage('Sign-in refused', e.message, e.hint, e.code));
  }

  /** Runs a page handler; refusals become pages, anything else a generic page and an error log. */
  async run(what: string, ctx: Record<string, unknown>, fn: () => Promise<PageResult>): Promise<PageResult> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof LoginRefused) return this.refused(err, ctx);
      this.d.logger.error(`login ${what} failed`, { ...ctx, err });
      return html(
        500,
        pages.refusalPage(
          'Something went wrong',
          'the server could not finish this step',
          'try again in a moment; if it keeps failing, tell your administrator (the server log has the details)',
          'internal_error',
        ),
      );
    }
  }

  private async pendingLogin(loginId: string): Promise<PendingLoginRecord> {
    const { login } = await callRpc(this.d.bus, keyRegistry.GetPendingLogin, { loginId });
    if (!login)
      throw new LoginRefused(
        'login_unknown',
        'this login link is not known here',
        'run "tailscale up" on the device again and open the new link it prints',
        404,
      );
    if (login.status === 'completed')
      throw new LoginRefused(
        'login_used',
        'this device has already been added with this link',
        'nothing to do; the device is connected',
        410,
      );
    if (Date.parse(login.expiresAt) <= Date.now())
      throw new LoginRefused(
        'login_expired',
        'this login link has expired',
        'the device shows a new link by itself (or run "tailscale up" again); open that one',
        410,
      );
    return login;
  }

  /** GET /login/<loginId>[?provider=id]: binds this browser to the login, then picks or starts a provider. */
  async start(loginId: string, providerId: string | null, browser: string | null): Promise<PageResult> {
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(loginId))
      throw new LoginRefused(
        'login_unknown',
        'this is not a login link',
        'open the link the device printed',
        404,
      );
    await this.pendingLogin(loginId);
    const cookie = browser ?? randomBytes(24).toString('base64url');
    const setCookie: Record<string, string> =
      browser === null
        ? { 'set-cookie': `${BROWSER_COOKIE}=${cookie}; Path=/login; HttpOnly; SameSite=Lax; Max-Age=3600` }
        : {};
    await this.repo.insertSession(this.d.db, {
      id: randomBytes(16).toString('base64url'),
      loginId,
      browserHash: hashOf(cookie),
      expiresAt: new Date(Date.now() + SESSION_TTL_MS),
    });
    if (this.byId.size === 0) return html(200, pages.noProvidersPage(loginId), setCookie);
    let entry = providerId !== null ? this.byId.get(providerId) : undefined;
    if (!entry && this.byId.size === 1) entry = [...this.byId.values()][0];
    if (!entry)
      return html(
        200,
        pages.pickerPage(
          loginId,
          [...this.byId.values()].map((p) => ({ id: p.provider.id, displayName: p.provider.displayName })),
        ),
        setCookie,
      );
    const step = await entry.provider.begin(loginId);
    return step.kind === 'redirect' ? redirect(step.url, setCookie) : html(200, step.html, setCookie);
  }

  /** The IdP's return: verified once; a repeat of the same response goes to the same confirmation. */
  async callback(providerId: string, req: ProviderRequest): Promise<PageResult> {
    const entry = this.byId.get(providerId);
    if (!entry)
      throw new LoginRefused(
        'provider_unknown',
        `no sign-in provider "${providerId}" here`,
        'open the link the device printed',
        404,
      );
    const callbackHash = hashOf(`${providerId}\n${req.url.search}\n${JSON.stringify(req.form ?? {})}`);
    const seen = await this.repo.confirmationByCallback(this.d.db, callbackHash);
    if (seen) return redirect(`/login/confirm/${seen.id}`);
    const { loginId, identity } = await entry.provider.complete(req);
    const ctx = { providerId, loginId, subject: identity.subject, loginName: identity.loginName };
    const problem = admissionProblem(entry.config, identity);
    if (problem) return this.refused(problem, ctx);
    await this.pendingLogin(loginId);
    const user = await this.userFor(entry.config, identity);
    const id = randomBytes(18).toString('base64url');
    await this.repo.insertConfirmation(this.d.db, {
      id,
      loginId,
      userId: user.id,
      browserHash: '',
      csrf: randomBytes(24).toString('base64url'),
      callbackHash,
      expiresAt: new Date(Date.now() + CONFIRM_TTL_MS),
    });
    this.d.logger.info('signed in; waiting for the device confirmation', { ...ctx, userId: user.id });
    return redirect(`/login/confirm/${id}`);
  }

  /** Finds or creates the user; refreshes the profile and replaces the groups. One event if changed. */
  private async userFor(cfg: ProviderConfig, id: VerifiedIdentity): Promise<UserRecord> {
    const groups = [...new Set(id.groups.map((g) => `${cfg.groupsPrefix}${g}`))].sort();
    const profile = {
      loginName: id.loginName,
      displayName: id.displayName ?? id.loginName,
      email: id.email ?? null,
      pictureUrl: id.pictureUrl ?? null,
      groups,
      providerId: id.providerId,
      subject: id.subject,
    };
    const out = await this.d.db.transaction(async (q) => {
      let user = await this.repo.userBySubject(q, id.providerId, id.subject);
      if (!user && cfg.inviteOnly) user = await this.repo.invitedUser(q, id.loginName, id.email ?? null);
      if (user?.disabled)
        throw new LoginRefused(
          'user_disabled',
          `the account ${user.loginName} is disabled on this server`,
          'ask your administrator to enable it ("switchboard users enable NAME")',
        );
      if (!user) {
        if (cfg.inviteOnly)
          throw new LoginRefused(
            'not_invited',
            `${id.loginName} has not been invited to this network`,
            'ask your administrator to create your user first ("switchboard users create NAME --email ...")',
          );
        const created = await this.repo.insertLoginUser(q, {
          ...profile,
          tailnetId: this.d.tailnetId ?? 1,
          name: await this.freeName(q, userNameFor(id.loginName)),
        });
        await appendOutbox(q, S, UserUpserted.subject, { user: created });
        this.d.logger.info('user created at first sign-in', {
          userId: created.id,
          providerId: id.providerId,
        });
        return { user: created, changed: true };
      }
      const updated = await this.repo.updateFromLogin(q, user.id, profile);
      if (updated) await appendOutbox(q, S, UserUpserted.subject, { user: updated });
      return { user: updated ?? user, changed: updated !== null };
    });
    if (out.changed) {
      this.d.kickOutbox();
      // Other services' views (key-registry's users, the policy's groups) see the user before the device is attached.
      await this.d
        .waitPublished(2000)
        .catch((err: unknown) =>
          this.d.logger.warn('user change committed but its event is not in the log yet', { err }),
        );
    }
    return out.user;
  }

  private async freeName(q: Queryable, base: string): Promise<string> {
    const tailnet = this.d.tailnetId ?? 1;
    if (!(await this.repo.nameTaken(q, tailnet, base))) return base;
    for (let i = 2; i < 1000; i++) {
      const n = `${base.slice(0, 58)}-${i}`;
      if (!(await this.repo.nameTaken(q, tailnet, n))) return n;
    }
    return `${base.slice(0, 40)}-${randomBytes(6).toString('hex')}`;
  }

  private async confirmationFor(confirmId: string, browser: string | null) {
    const c = /^[A-Za-z0-9_-]{16,64}$/.test(confirmId)
      ? await this.repo.confirmation(this.d.db, confirmId)
      : null;
    if (!c)
      throw new LoginRefused(
        'confirm_unknown',
        'this confirmation page is not known',
        'open the link the device printed again',
        404,
      );
    if (browser === null || !(await this.repo.sessionFor(this.d.db, c.loginId, hashOf(browser))))
      throw new LoginRefused(
        'browser_mismatch',
        'this confirmation belongs to a sign-in started in another browser',
        'open the login link from the device in this browser and sign in again',
      );
    return c;
  }

  async confirmPage(confirmId: string, browser: string | null): Promise<PageResult> {
    const c = await this.confirmationFor(confirmId, browser);
    if (c.completedAt !== null) return redirect(`/login/done/${c.id}`);
    if (Date.parse(c.expiresAt) <= Date.now())
      throw new LoginRefused(
        'confirm_expired',
        'this confirmation expired',
        'open the login link from the device again',
        410,
      );
    const login = await this.pendingLogin(c.loginId);
    const user = await this.userById(c.userId);
    return html(200, pages.confirmPage(c.id, c.csrf, user, login));
  }

  async confirm(
    confirmId: string,
    form: Record<string, string>,
    browser: string | null,
  ): Promise<PageResult> {
    const c = await this.confirmationFor(confirmId, browser);
    if (c.completedAt !== null) return redirect(`/login/done/${c.id}`);
    if (!sameSecret(form.csrf ?? '', c.csrf))
      throw new LoginRefused(
        'csrf_mismatch',
        'the confirmation form is not the one this server showed you',
        'reload the confirmation page and press "Add device" there',
        403,
      );
    if (Date.parse(c.expiresAt) <= Date.now())
      throw new LoginRefused(
        'confirm_expired',
        'this confirmation expired',
        'open the login link from the device again',
        410,
      );
    const r = await callRpc(
      this.d.bus,
      keyRegistry.CompleteLogin,
      { loginId: c.loginId, userId: c.userId },
      { timeoutMs: 15_000 },
    );
    switch (r.kind) {
      case 'ok':
        await this.repo.markConfirmed(this.d.db, c.id, r.node.id);
        this.d.logger.info('device added by browser login', {
          loginId: c.loginId,
          userId: c.userId,
          nodeId: r.node.id,
        });
        return redirect(`/login/done/${c.id}`);
      case 'not-found':
      case 'expired':
        throw new LoginRefused(
          'login_expired',
          'the device’s login expired before it was confirmed',
          'the device shows a new link by itself; open that one',
          410,
        );
      case 'refused':
        throw new LoginRefused(
          'device_refused',
          `the device could not be added: ${r.message}`,
          'ask your administrator',
        );
    }
  }

  async donePage(confirmId: string, browser: string | null): Promise<PageResult> {
    const c = await this.confirmationFor(confirmId, browser);
    if (c.completedAt === null) return redirect(`/login/confirm/${c.id}`);
    const user = await this.userById(c.userId);
    const { login } = await callRpc(this.d.bus, keyRegistry.GetPendingLogin, { loginId: c.loginId });
    return html(200, pages.donePage(user, { hostname: login?.hostname ?? '' }));
  }

  private async userById(id: number): Promise<UserRecord> {
    const r = await this.d.db.query<UserRow>(`SELECT * FROM ${S}.users WHERE id = $1`, [id]);
    if (!r.rows[0])
      throw new LoginRefused('user_unknown', 'the signed-in user no longer exists', 'sign in again', 410);
    return mapUser(r.rows[0]);
  }

  /** Drops per-attempt state older than a day. */
  async purge(): Promise<void> {
    await this.repo.purge(this.d.db);
  }
}
