/**
 * Serves the admin API: over a local unix socket without credentials (whoever can open the socket
 * is root-equivalent on this host), and over TCP only with `Authorization: Bearer <API key>`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import type { Bus } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import type { IdentityService } from '../identity.service.js';
import { ACTOR_HEADER, ADMIN_BUS, ADMIN_IDENTITY, AdminController } from './admin.controller.js';
import { AdminExceptionFilter } from './admin.errors.js';

@Module({})
class AdminModule {
  static forRoot(bus: Bus, ids: IdentityService): DynamicModule {
    return {
      module: AdminModule,
      controllers: [AdminController],
      providers: [
        { provide: ADMIN_BUS, useValue: bus },
        { provide: ADMIN_IDENTITY, useValue: ids },
      ],
    };
  }
}

export interface AdminServerOptions {
  bus: Bus;
  identity: IdentityService;
  logger: Logger;
  /** Unix socket path (no credentials); omit to disable. */
  socketPath?: string | undefined;
  /** host:port for API-key access; omit to disable. */
  listen?: string | undefined;
}

export class AdminServer {
  private app: INestApplication | undefined;
  private readonly servers: Server[] = [];
  tcpAddress: { host: string; port: number } | undefined;

  constructor(private readonly o: AdminServerOptions) {}

  async start(): Promise<void> {
    this.app = await NestFactory.create(AdminModule.forRoot(this.o.bus, this.o.identity), {
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
      const path = this.o.socketPath;
      mkdirSync(dirname(path), { recursive: true });
      if (existsSync(path)) unlinkSync(path);
      const srv = createServer((req, res) => {
        req.headers[ACTOR_HEADER] = 'local-admin';
        handler(req, res);
      });
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(path, () => resolve());
      });
      chmodSync(path, 0o600);
      this.servers.push(srv);
    }
    if (this.o.listen) {
      const [host, portText] = splitHostPort(this.o.listen);
      const srv = createServer((req, res) => {
        delete req.headers[ACTOR_HEADER];
        this.authorize(req)
          .then((actor) => {
            if (actor !== null) {
              req.headers[ACTOR_HEADER] = actor;
              return handler(req, res);
            }
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
          })
          .catch((err: unknown) => {
            this.o.logger.error('admin API key check failed', { err });
            res.writeHead(503).end();
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

  /** The caller's name for audit fields, or null when the API key is missing or invalid. */
  private async authorize(req: IncomingMessage): Promise<string | null> {
    const h = req.headers.authorization;
    if (!h?.startsWith('Bearer ')) return null;
    const r = await this.o.identity.verifyApiKey(h.slice(7).trim());
    return r.valid ? `api-key:${r.id}` : null;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of this.servers) s.closeAllConnections();
    await this.app?.close();
  }
}

export function splitHostPort(s: string): [string, string] {
  const i = s.lastIndexOf(':');
  if (i < 0) return ['0.0.0.0', s];
  const host = s.slice(0, i).replace(/^\[|\]$/g, '');
  return [host || '0.0.0.0', s.slice(i + 1)];
}
