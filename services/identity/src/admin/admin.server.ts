/**
 * Serves the admin API: over a local unix socket without credentials (whoever can open the socket
 * is root-equivalent on this host; it is created 0600, see `admin.socket.ts`), and over TCP only
 * with `Authorization: Bearer <API key>`, with failed attempts limited per source address
 * (`auth-rate-limit.ts`). `GET /metrics` needs the same credentials as the API.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import type { Bus } from '@switchboard/bus';
import { sourceKey, type Logger } from '@switchboard/common';
import type { IdentityService } from '../identity.service.js';
import { ACTOR_HEADER, ADMIN_AUDIT, ADMIN_BUS, ADMIN_IDENTITY, AdminController } from './admin.controller.js';
import type { ApiV2 } from '../api-v2/v2.api.js';
import { compile } from '../api-v2/v2.router.js';
import type { Credentials } from '../api-v2/v2.credentials.js';
import type { AuditLog } from '../audit/audit.service.js';
import { decideAccess, principalRole, type Principal } from '../roles/roles.js';
import { V1_ROUTES } from './admin.routes.js';
import { AdminExceptionFilter } from './admin.errors.js';
import { AdminMetrics, type AuthFailureReason } from './admin.metrics.js';
import { listenPrivateSocket } from './admin.socket.js';
import { AuthFailureLimiter, type AttemptTicket } from './auth-rate-limit.js';

@Module({})
class AdminModule {
  static forRoot(bus: Bus, ids: IdentityService, audit: AuditLog): DynamicModule {
    return {
      module: AdminModule,
      controllers: [AdminController],
      providers: [
        { provide: ADMIN_BUS, useValue: bus },
        { provide: ADMIN_IDENTITY, useValue: ids },
        { provide: ADMIN_AUDIT, useValue: audit },
      ],
    };
  }
}

export interface AdminServerOptions {
  bus: Bus;
  identity: IdentityService;
  /** API v2, its credentials and the audit log (IdentityRuntime's). */
  apiV2: ApiV2;
  credentials: Credentials;
  audit: AuditLog;
  /** Serve /api/v2 on `listen` and the socket too (false when it is served on the client port only). */
  serveV2?: boolean;
  logger: Logger;
  /** Unix socket path (no credentials); omit to disable. */
  socketPath?: string | undefined;
  /** host:port for API-key access; omit to disable. */
  listen?: string | undefined;
  /** Failed API-key attempts allowed per source address per minute on `listen` (default 10). */
  authFailuresPerMinute?: number | undefined;
  /** Clock for the failure limit (tests). */
  now?: () => number;
}

export class AdminServer {
  private app: INestApplication | undefined;
  private readonly servers: Server[] = [];
  tcpAddress: { host: string; port: number } | undefined;
  readonly authLimiter: AuthFailureLimiter;
  readonly metrics: AdminMetrics;

  constructor(private readonly o: AdminServerOptions) {
    this.authLimiter = new AuthFailureLimiter({
      limit: o.authFailuresPerMinute ?? 10,
      windowMs: 60_000,
      ...(o.now ? { now: o.now } : {}),
    });
    this.metrics = new AdminMetrics(() => ({
      trackedSources: this.authLimiter.size,
      evictedSources: this.authLimiter.evicted,
    }));
  }

  async start(): Promise<void> {
    this.app = await NestFactory.create(AdminModule.forRoot(this.o.bus, this.o.identity, this.o.audit), {
      logger: false,
      bodyParser: false,
    });
    // Bodies are read by the controller's JsonBodyInterceptor (admin.body.ts): size and depth limits,
    // refusals answered through AdminExceptionFilter.
    this.app.useGlobalFilters(new AdminExceptionFilter(this.o.logger));
    await this.app.init();
    const handler = this.app.getHttpAdapter().getInstance() as (
      req: IncomingMessage,
      res: ServerResponse,
    ) => void;

    if (this.o.socketPath) {
      const srv = createServer((req, res) => {
        if (this.serveMetrics(req, res)) return;
        if (this.o.serveV2 !== false && this.o.apiV2.handle(req, res, { local: true })) return;
        req.headers[ACTOR_HEADER] = 'local-admin';
        this.auditV1(req, res, LOCAL);
        handler(req, res);
      });
      await listenPrivateSocket(srv, this.o.socketPath);
      this.servers.push(srv);
    }
    if (this.o.listen) {
      const [host, portText] = splitHostPort(this.o.listen);
      const srv = createServer((req, res) => {
        delete req.headers[ACTOR_HEADER];
        if (this.o.serveV2 !== false && this.o.apiV2.handle(req, res)) return;
        const source = sourceKey(req.socket.remoteAddress);
        const admission = this.authLimiter.admit(source);
        if (!admission.admitted) {
          this.metrics.authRateLimited++;
          return refuseRateLimited(res, source, admission.retryAfterMs, admission.retryAt, admission.reason);
        }
        this.authenticate(req, res, admission.ticket)
          .then((principal) => {
            if (!principal || this.serveMetrics(req, res)) return;
            if (!this.allowV1(req, res, principal)) return;
            this.auditV1(req, res, principal);
            handler(req, res);
          })
          .catch((err: unknown) => {
            this.o.logger.error('admin API request failed before reaching the API; closing its connection', {
              err,
              url: req.url,
            });
            res.destroy();
          });
      });
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(Number(portText), host, () => resolve());
      });
      const addr = srv.address();
      if (addr && typeof addr === 'object') this.tcpAddress = { host: addr.address, port: addr.port };
      this.servers.push(srv);
    }
  }

  /**
   * Checks the API key of an admitted attempt and answers 401 or 503 itself; true when the request
   * may go on (the actor header is then set). Never rejects.
   */
  private async authenticate(
    req: IncomingMessage,
    res: ServerResponse,
    ticket: AttemptTicket,
  ): Promise<Principal | null> {
    let auth: Awaited<ReturnType<AdminServer['authorize']>>;
    try {
      auth = await this.authorize(req);
    } catch (err) {
      ticket.released();
      this.o.logger.error('admin API key check failed; answering 503', { err });
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            code: 'unavailable',
            message: 'the API key could not be checked (identity database unreachable?)',
            hint: 'retry shortly; the server log has the cause',
          },
        }),
      );
      return null;
    }
    if (auth.principal !== null) {
      ticket.succeeded();
      req.headers[ACTOR_HEADER] = auth.principal.actor;
      return auth.principal;
    }
    this.authFailed(ticket, auth.reason);
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        error: {
          code: 'unauthorized',
          message: 'missing or invalid API key',
          hint: 'send "Authorization: Bearer <key>"; create a key with "switchboard apikeys create" on the server',
        },
      }),
    );
    return null;
  }

  /** Who the caller is (an API token acts with its owner's role), or why there is none. */
  private async authorize(
    req: IncomingMessage,
  ): Promise<{ principal: Principal; reason?: never } | { principal: null; reason: AuthFailureReason }> {
    const h = req.headers.authorization;
    if (!h?.startsWith('Bearer ')) return { principal: null, reason: 'missing' };
    const r = await this.o.credentials.authenticate(req.headers);
    return r.ok ? { principal: r.principal } : { principal: null, reason: 'invalid' };
  }

  /** The v1 route's access rule, checked by roles.ts (the same decision as API v2); 403 when refused. */
  private allowV1(req: IncomingMessage, res: ServerResponse, p: Principal): boolean {
    const route = v1RouteOf(req);
    if (!route) return true; // unknown path: the controller answers 404
    const d = decideAccess(p, route.access!);
    if (d.allowed) return true;
    if (route.access!.write) void this.recordV1(req, route.operationId, p, `denied: ${d.reason}`);
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'forbidden', message: d.reason } }));
    return false;
  }

  /** Audits a v1 write once it is answered (outcome from the status). */
  private auditV1(req: IncomingMessage, res: ServerResponse, p: Principal): void {
    const route = v1RouteOf(req);
    if (!route?.access?.write) return;
    res.once('finish', () => {
      const outcome = res.statusCode < 400 ? 'ok' : `failed: HTTP ${res.statusCode}`;
      void this.recordV1(req, route.operationId, p, outcome);
    });
  }

  private async recordV1(req: IncomingMessage, action: string, p: Principal, outcome: string): Promise<void> {
    try {
      await this.o.audit.record({
        tailnetId: p.tailnetId,
        actor: p.actor,
        actorRole: principalRole(p),
        action,
        target: (req.url ?? '').split('?')[0] ?? '',
        before: null,
        after: null,
        outcome,
        source: sourceKey(req.socket.remoteAddress) || 'unix-socket',
        requestId: String(req.headers['x-request-id'] ?? ''),
      });
    } catch (err) {
      this.o.logger.error('could not write the audit entry of an admin request', { err, action, outcome });
    }
  }

  /**
   * Counts a failed attempt; only a presented, wrong key counts towards the source's limit. The
   * failure that blocks a source is logged, once per block.
   */
  private authFailed(ticket: AttemptTicket, reason: AuthFailureReason): void {
    this.metrics.authFailed(reason);
    if (reason === 'missing') return ticket.released();
    const r = ticket.failed();
    if (!r.blocked || r.blockedUntil === undefined) return;
    this.o.logger.warn(
      'admin API: too many failed API-key attempts from one source; refusing it with 429 until the block ends',
      {
        source: ticket.source,
        failures: r.failures,
        limitPerMinute: this.authLimiter.limit,
        blockedUntil: new Date(r.blockedUntil).toISOString(),
        hint: 'if this is a legitimate client, check its API key ("switchboard apikeys list"); raise ADMIN_AUTH_FAILURES_PER_MINUTE if many clients share its address',
      },
    );
  }

  /** `GET /metrics` in the Prometheus text format; true when handled. */
  private serveMetrics(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') return false;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.metrics.render());
    return true;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of this.servers) s.closeAllConnections();
    await this.app?.close();
  }
}

const LOCAL: Principal = { kind: 'role', role: 'owner', actor: 'local-admin', userId: null, tailnetId: 1 };
const V1_MATCHERS = V1_ROUTES.map((r) => ({ r, ...compile(r.path) }));

function v1RouteOf(req: IncomingMessage): (typeof V1_ROUTES)[number] | undefined {
  const path = (req.url ?? '').split('?')[0] ?? '';
  return V1_MATCHERS.find((m) => m.r.method === req.method && m.re.test(path))?.r;
}

function refuseRateLimited(
  res: ServerResponse,
  source: string,
  retryAfterMs: number,
  retryAt: number,
  reason: 'blocked' | 'in_flight',
): void {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const why =
    reason === 'blocked'
      ? `too many failed API-key attempts from ${source}`
      : `too many API-key checks in flight from ${source} for its remaining failure budget`;
  res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(seconds) });
  res.end(
    JSON.stringify({
      error: {
        code: 'too_many_auth_failures',
        message: `${why}; retry after ${seconds} s (at ${new Date(retryAt).toISOString()}); until then every request from this address is refused, even with a valid key`,
        hint: 'check the API key ("switchboard apikeys list" on the server shows key prefixes); send fewer requests in parallel',
      },
    }),
  );
}

export function splitHostPort(s: string): [string, string] {
  const i = s.lastIndexOf(':');
  if (i < 0) return ['0.0.0.0', s];
  const host = s.slice(0, i).replace(/^\[|\]$/g, '');
  return [host || '0.0.0.0', s.slice(i + 1)];
}
