/**
 * The login pages over plain node:http: a route handler that `serve` mounts on the client edge's
 * listener (next to /ts2021) and that the identity service also runs on its own listener
 * (LOGIN_LISTEN_ADDR) for an Ingress routing `/login/*` to it. Bodies are capped; nothing a
 * browser sends can crash the process, and no error reaches the page as a stack trace.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '@switchboard/common';
import { BROWSER_COOKIE, type LoginFlow, type PageResult } from './login.service.js';
import { refusalPage } from './login.pages.js';
import type { LoginProvider } from './provider.js';

/** SAML responses are large (signed XML, base64); anything beyond this is refused. */
const MAX_FORM_BYTES = 512 * 1024;
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

function cookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      const v = part.slice(i + 1).trim();
      return /^[A-Za-z0-9_-]{16,64}$/.test(v) ? v : null;
    }
  }
  return null;
}

async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_FORM_BYTES) throw new Error('form too large');
    chunks.push(c);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) out[k] = v;
  return out;
}

export class LoginHttp {
  constructor(
    private readonly flow: LoginFlow,
    private readonly providers: LoginProvider[],
    private readonly publicUrl: () => string,
    private readonly log: Logger,
  ) {}

  /** Handles `/login` and `/login/*`; returns false for any other path. */
  handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path !== '/login' && !path.startsWith('/login/')) return false;
    this.route(req, path)
      .then((r) => this.send(res, r))
      .catch((err: unknown) => {
        this.log.error('login page failed', { path, err });
        this.send(res, {
          status: 500,
          headers: { 'content-type': 'text/html; charset=utf-8' },
          body: refusalPage(
            'Something went wrong',
            'the server could not answer',
            'try again in a moment',
            'internal_error',
          ),
        });
      });
    return true;
  };

  private send(res: ServerResponse, r: PageResult): void {
    if (res.headersSent) return;
    const csp =
      r.headers['content-type']?.startsWith('text/html') && !r.headers['x-provider-page']
        ? { 'content-security-policy': PAGE_CSP }
        : {};
    const headers = { ...SECURITY_HEADERS, ...csp, ...r.headers };
    delete (headers as Record<string, string>)['x-provider-page'];
    res.writeHead(r.status, headers).end(r.body);
  }

  private async route(req: IncomingMessage, path: string): Promise<PageResult> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', `${this.publicUrl()}/`);
    const publicRequestUrl = new URL(`${this.publicUrl()}${req.url ?? '/'}`);
    const browser = cookie(req, BROWSER_COOKIE);
    const parts = path.split('/').filter((p) => p !== '');
    const ctx = { path, method };
    const notFound: PageResult = {
      status: 404,
      headers: { 'content-type': 'text/html; charset=utf-8' },
      body: refusalPage(
        'Page not found',
        'there is no such login page',
        'open the link the device printed',
        'not_found',
      ),
    };
    if (parts[1] === 'callback' && parts.length === 3) {
      const providerId = parts[2]!;
      if (method === 'GET')
        return this.flow.run('callback', { ...ctx, providerId }, () =>
          this.flow.callback(providerId, { method: 'GET', url: publicRequestUrl }),
        );
      if (method === 'POST') {
        const form = await readForm(req).catch(() => null);
        if (!form) return { ...notFound, status: 413 };
        return this.flow.run('callback', { ...ctx, providerId }, () =>
          this.flow.callback(providerId, { method: 'POST', url: publicRequestUrl, form }),
        );
      }
    }
    if (parts[1] === 'confirm' && parts.length === 3) {
      const id = parts[2]!;
      if (method === 'GET')
        return this.flow.run('confirm page', ctx, () => this.flow.confirmPage(id, browser));
      if (method === 'POST') {
        const form = await readForm(req).catch(() => null);
        if (!form) return { ...notFound, status: 413 };
        return this.flow.run('confirm', ctx, () => this.flow.confirm(id, form, browser));
      }
    }
    if (parts[1] === 'done' && parts.length === 3 && method === 'GET')
      return this.flow.run('done page', ctx, () => this.flow.donePage(parts[2]!, browser));
    if (parts.length === 3 && method === 'GET') {
      const p = this.providers.find((x) => x.id === parts[1]);
      const route = p?.routes?.().find((r) => r.path === `/${parts[2]}` || r.path === parts[2]);
      if (route) return { status: 200, headers: { 'content-type': route.contentType }, body: route.body() };
    }
    if (parts.length === 2 && method === 'GET')
      return this.flow.run('start', ctx, async () => {
        const r = await this.flow.start(parts[1]!, url.searchParams.get('provider'), browser);
        return r.headers['content-type']?.startsWith('text/html') &&
          r.status === 200 &&
          !r.body.startsWith(
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport"',
          )
          ? { ...r, headers: { ...r.headers, 'x-provider-page': '1' } }
          : r;
      });
    return notFound;
  }
}

/** The login pages on their own listener (services mode: the Ingress routes /login/* here). */
export async function listenLogin(handler: LoginHttp, host: string, port: number): Promise<Server> {
  const srv = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    if (!handler.handle(req, res)) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => resolve());
  });
  return srv;
}
