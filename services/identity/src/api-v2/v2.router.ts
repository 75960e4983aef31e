/**
 * Serves `/api/v2/*` from the route table (v2.routes.ts): match, authenticate (v2.credentials.ts),
 * resolve the `{tailnet}` segment, decide access (roles/roles.ts — the one place), validate with
 * the route's zod schemas, run the handler, audit every write (allowed or refused), and answer errors
 * as Tailscale does: `{"message": …}` with a standard status.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SwitchboardError, ValidationError, sourceKey, type Logger } from '@switchboard/common';
import type { Queryable } from '@switchboard/db';
import { statusForCode } from '../admin/admin.errors.js';
import { readBodyBytes } from '../admin/admin.body.js';
import { parseJsonLimited } from '@switchboard/common';
import type { AuditLog } from '../audit/audit.service.js';
import { decideAccess, principalRole, type Principal } from '../roles/roles.js';
import type { ApiRoute, AuditNote, RouteResult } from './v2.route.js';
import { V2Error } from './v2.errors.js';
import type { Credentials } from './v2.credentials.js';

interface CompiledRoute {
  route: ApiRoute;
  re: RegExp;
  names: string[];
}

export interface RouterDeps {
  routes: readonly ApiRoute[];
  credentials: Credentials;
  audit: AuditLog;
  logger: Logger;
  /** The tailnet id a `{tailnet}` segment names (id, name or MagicDNS domain), or undefined. */
  tailnetByRef: (ref: string) => number | undefined;
  /** Extra routes outside /api/v2 (the OpenAPI document); true when handled. */
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** Who the unix socket's callers are: root-equivalent on the host. */
export const LOCAL_PRINCIPAL: Principal = {
  kind: 'role',
  role: 'owner',
  actor: 'local-admin',
  userId: null,
  tailnetId: 1,
};

export function compile(path: string): { re: RegExp; names: string[] } {
  const names: string[] = [];
  const src = path
    .split('/')
    .map((seg) => {
      const m = /^\{(\w+)\}$/.exec(seg);
      if (!m) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(m[1]!);
      return '([^/]+)';
    })
    .join('/');
  return { re: new RegExp(`^${src}$`), names };
}

export class ApiV2Router {
  private readonly compiled: CompiledRoute[];

  constructor(private readonly d: RouterDeps) {
    this.compiled = d.routes.map((route) => ({ route, ...compile(route.path) }));
  }

  /** True when the request is the API's (it is then answered). */
  handle(req: IncomingMessage, res: ServerResponse, opts: { local?: boolean } = {}): boolean {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    try {
      if (this.d.extra?.(req, res)) return true;
    } catch (err) {
      this.d.logger.error('admin API extra route failed', { err, url: req.url });
      sendError(res, err, '');
      return true;
    }
    if (path !== '/api/v2' && !path.startsWith('/api/v2/')) return false;
    const requestId = headerText(req.headers['x-request-id']) || randomUUID();
    this.serve(req, res, path, requestId, opts.local === true).catch((err: unknown) => {
      const status = err instanceof SwitchboardError ? statusForCode(err.code) : 500;
      if (status >= 500) this.d.logger.error('admin API v2 request failed', { err, url: req.url, requestId });
      else this.d.logger.info('admin API v2 request refused', { status, err, url: req.url, requestId });
      if (!res.headersSent) sendError(res, err, requestId);
      else res.destroy();
    });
    return true;
  }

  private match(
    method: string,
    path: string,
  ): { c: CompiledRoute; params: Record<string, string> } | 'method' | null {
    let pathMatched = false;
    for (const c of this.compiled) {
      const m = c.re.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (c.route.method !== method) continue;
      const params: Record<string, string> = {};
      c.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)));
      return { c, params };
    }
    return pathMatched ? 'method' : null;
  }

  private async serve(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    requestId: string,
    local: boolean,
  ): Promise<void> {
    res.setHeader('x-request-id', requestId);
    const m = this.match(req.method ?? 'GET', path);
    if (m === null)
      throw new V2Error('not_found', `no API route ${req.method} ${path}`, 'see /api/openapi.json');
    if (m === 'method') throw new V2Error('method_not_allowed', `${req.method} is not allowed on ${path}`);
    const { route } = m.c;
    const raw = await readBodyBytes(req, `${req.method} ${path}`);
    const rawText = raw?.toString('utf8');
    const source = sourceKey(req.socket.remoteAddress) || (local ? 'unix-socket' : '');
    const url = new URL(req.url ?? '/', 'http://api');

    let principal: Principal | null = null;
    if (route.access !== null) {
      if (local) principal = LOCAL_PRINCIPAL;
      else {
        const auth = await this.d.credentials.authenticate(req.headers);
        if (!auth.ok)
          throw new V2Error(
            'unauthorized',
            auth.reason === 'missing' ? 'API token required' : `API token ${auth.reason}`,
            'send an API access token as "Authorization: Bearer <token>" (or Basic with the token as user name), or an OAuth access token from /api/v2/oauth/token',
          );
        principal = auth.principal;
      }
    }
    const tailnetId = this.tailnetOf(m.params, principal);
    const auditBase = {
      tailnetId,
      actor: principal?.actor ?? 'anonymous',
      actorRole: principal ? principalRole(principal) : '',
      action: route.operationId,
      source,
      requestId,
    };
    if (principal && route.access) {
      const decision = decideAccess(principal, route.access);
      if (!decision.allowed) {
        if (route.access.write)
          await this.d.audit.record({
            ...auditBase,
            target: targetOf(m.params),
            before: null,
            after: null,
            outcome: `denied: ${decision.reason}`,
          });
        throw new V2Error('forbidden', decision.reason);
      }
    }

    let audited = false;
    const auditIn = async (q: Queryable, note: AuditNote): Promise<void> => {
      audited = true;
      await this.d.audit.record(
        {
          ...auditBase,
          target: note.target,
          before: note.before ?? null,
          after: note.after ?? null,
          outcome: 'ok',
        },
        q,
      );
    };
    let result: RouteResult;
    try {
      const params = parseWith(route.params, m.params, 'path');
      const query = parseWith(route.query, Object.fromEntries(url.searchParams), 'query');
      const body = parseBody(route, req.headers['content-type'], raw, rawText);
      result = await route.handler({
        principal: principal ?? LOCAL_PRINCIPAL,
        tailnetId,
        params,
        query,
        body,
        rawBody: rawText,
        headers: req.headers,
        requestId,
        source,
        auditIn,
      });
    } catch (err) {
      if (route.access?.write && principal)
        await this.d.audit.record({
          ...auditBase,
          target: targetOf(m.params),
          before: null,
          after: null,
          outcome: `failed: ${err instanceof Error ? err.message : String(err)}`.slice(0, 1000),
        });
      throw err;
    }
    if (route.access?.write && principal && !audited)
      await this.d.audit.record({
        ...auditBase,
        target: result.audit?.target ?? targetOf(m.params),
        before: result.audit?.before ?? null,
        after: result.audit?.after ?? null,
        outcome: 'ok',
      });
    send(res, route.successStatus ?? 200, result);
  }

  private tailnetOf(params: Record<string, string>, p: Principal | null): number {
    const own = p?.tailnetId ?? 1;
    const ref = params['tailnet'];
    if (ref === undefined || ref === '-') return own;
    const id = this.d.tailnetByRef(ref);
    // Nothing crosses tailnets: another tailnet's name answers as an unknown one.
    if (id === undefined || id !== own)
      throw new V2Error('not_found', `tailnet "${ref}" not found`, 'use "-" for your own tailnet');
    return id;
  }
}

function targetOf(params: Record<string, string>): string {
  const parts = Object.entries(params)
    .filter(([k]) => k !== 'tailnet')
    .map(([k, v]) => `${k}:${v}`);
  return parts.join(',') || 'tailnet';
}

function headerText(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v[0] : v;
  return s && /^[\w.:-]{1,128}$/.test(s) ? s : '';
}

function parseWith(schema: ApiRoute['params'], value: unknown, where: string): unknown {
  if (!schema) return value;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new ValidationError(`invalid ${where}: ${issuesText(r.error.issues)}`);
}

function issuesText(issues: { path: (string | number)[]; message: string }[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

function parseBody(
  route: ApiRoute,
  contentType: string | undefined,
  raw: Buffer | undefined,
  text: string | undefined,
): unknown {
  if (route.bodyKind === 'policy') return text ?? '';
  if (route.bodyKind === 'form') return Object.fromEntries(new URLSearchParams(text ?? ''));
  if (!route.body) return undefined;
  const ct = (contentType ?? '').split(';')[0]!.trim();
  if (ct !== '' && ct !== 'application/json')
    throw new ValidationError(`send the body as application/json (got ${ct})`);
  const value =
    raw === undefined ? {} : parseJsonLimited(raw, { maxDepth: 64, maxBytes: 2 << 20, what: 'request body' });
  return parseWith(route.body, value, 'body');
}

function send(res: ServerResponse, status: number, r: RouteResult): void {
  const headers: Record<string, string> = { ...r.headers };
  if (r.text) {
    res.writeHead(r.status ?? status, { ...headers, 'content-type': r.text.contentType }).end(r.text.body);
    return;
  }
  if (r.json === undefined) {
    res.writeHead(r.status ?? status, headers).end();
    return;
  }
  res
    .writeHead(r.status ?? status, { ...headers, 'content-type': 'application/json' })
    .end(JSON.stringify(r.json));
}

/** Tailscale's error shape; always JSON (the Go client cannot read anything else). */
export function sendError(res: ServerResponse, err: unknown, requestId: string): void {
  let status = 500;
  let body: Record<string, unknown> = { message: 'internal error; see the server log', requestId };
  if (err instanceof SwitchboardError) {
    status = statusForCode(err.code);
    body = { message: err.message, code: err.code, ...(err.hint ? { hint: err.hint } : {}), requestId };
  }
  body['status'] = status;
  res
    .writeHead(status, { 'content-type': 'application/json', 'x-request-id': requestId })
    .end(JSON.stringify(body));
}
