/**
 * The one-process mode: all four services in one Node process over an in-process bus (or NATS when
 * NATS_URL is set), embedded PGlite (or Postgres when DATABASE_URL is set) and an in-memory stream
 * registry (or Redis when REDIS_URL is set), plus the admin API on a unix socket.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { createLogger, parseConfig, configureLogging, type Logger } from '@switchboard/common';
import type { Bus } from '@switchboard/bus';
import type { Db } from '@switchboard/db';
import { AdminServer, IDENTITY_RUNTIME, IdentityModule, type IdentityRuntime } from '@switchboard/identity';
import {
  KEY_REGISTRY_RUNTIME,
  KeyRegistryModule,
  keyRegistryConfigSchema,
  type KeyRegistryRuntime,
} from '@switchboard/key-registry';
import { PolicyCompilerModule } from '@switchboard/policy-compiler';
import {
  FANOUT_RUNTIME,
  NetmapFanoutModule,
  fanoutConfigSchema,
  loadDerpMap,
  type NetmapFanoutRuntime,
  type StreamRegistry,
} from '@switchboard/netmap-fanout';
import { runtimeOf, startNestApp } from './nest-app.js';
import { initZstd } from '@switchboard/protocol';
import { baseConfigSchema } from './config.js';
import {
  ensurePrivateDataDir,
  loadLegacyKey,
  loadNoiseKey,
  openBus,
  openDatabase,
  openStreamRegistry,
  splitListen,
} from './assemble.js';

export interface RunningServer {
  url: string;
  port: number;
  adminSocket: string;
  /** ADMIN_LISTEN's bound address, when set. */
  adminTcp: { host: string; port: number } | undefined;
  bus: Bus;
  db: Db;
  fanout: NetmapFanoutRuntime;
  keyRegistry: KeyRegistryRuntime;
  identity: IdentityRuntime;
  stop(): Promise<void>;
}

export interface ServeOptions {
  env?: Record<string, string | undefined>;
  /** PGlite in memory instead of under DATA_DIR (tests). */
  inMemory?: boolean;
  logger?: Logger;
}

export function defaultServerUrl(port: number): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return `http://${a.address}:${port}`;
  }
  return `http://127.0.0.1:${port}`;
}

export async function serve(opts: ServeOptions = {}): Promise<RunningServer> {
  const env = opts.env ?? process.env;
  const cfg = parseConfig(baseConfigSchema, env);
  const krCfg = parseConfig(keyRegistryConfigSchema, env);
  const fCfg = parseConfig(fanoutConfigSchema, env);
  configureLogging({ level: cfg.LOG_LEVEL });
  const logger = opts.logger ?? createLogger('switchboard');
  await initZstd();

  const stack: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const f of stack.reverse()) {
      try {
        await f();
      } catch (err) {
        logger.warn('error while stopping', { err });
      }
    }
    stack.length = 0;
  };
  try {
    ensurePrivateDataDir(cfg.DATA_DIR, logger);
    const db = await openDatabase(cfg, logger, { embedded: true, inMemory: opts.inMemory ?? false });
    stack.push(() => db.close());
    const bus = await openBus(cfg, logger, 'switchboard', { embedded: true });
    stack.push(() => bus.close());
    const registry: StreamRegistry = openStreamRegistry(cfg);
    stack.push(() => registry.close());

    const { host, port } = splitListen(cfg.LISTEN_ADDR);
    // The login pages live next to /ts2021 on the client edge's listener; their public URL is
    // PUBLIC_URL, else SERVER_URL, else derived from the bound port (known once the edge listens).
    let boundPort = port;
    const publicUrl = (): string =>
      krCfg.PUBLIC_URL ??
      cfg.SERVER_URL?.replace(/\/+$/, '') ??
      (host === '0.0.0.0' || host === '::'
        ? defaultServerUrl(boundPort)
        : `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`);
    let loginRoutes: ((req: IncomingMessage, res: ServerResponse) => boolean) | null = null;
    // API v2 on the client port (where the Go client, Terraform and the operator look), bound once
    // identity has started.
    let apiOnEdge: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
    const app = await startNestApp([
      IdentityModule.forRoot({
        db,
        bus,
        logger: logger.child('identity'),
        login: { configFile: env.LOGIN_CONFIG_FILE, publicUrl },
      }),
      KeyRegistryModule.forRoot({ db, bus, config: krCfg, logger: logger.child('key-registry'), publicUrl }),
      PolicyCompilerModule.forRoot({ db, bus, logger: logger.child('policy-compiler') }),
      NetmapFanoutModule.forRoot({
        bus,
        logger: logger.child('netmap-fanout'),
        config: fCfg,
        registry,
        serverPrivate: loadNoiseKey(cfg, fCfg, logger),
        legacyPrivate: loadLegacyKey(cfg, fCfg, logger),
        derpMap: await loadDerpMap(fCfg),
        host,
        port,
        httpRoutes: (req, res) => (loginRoutes?.(req, res) ?? false) || (apiOnEdge?.(req, res) ?? false),
      }),
    ]);
    stack.push(() => app.close());
    const identity = runtimeOf<IdentityRuntime>(app, IDENTITY_RUNTIME);
    loginRoutes = identity.loginRoutes;
    const keyRegistry = runtimeOf<KeyRegistryRuntime>(app, KEY_REGISTRY_RUNTIME);
    const fanout = runtimeOf<NetmapFanoutRuntime>(app, FANOUT_RUNTIME);

    const adminSocket = cfg.ADMIN_SOCKET ?? join(cfg.DATA_DIR, 'admin.sock');
    const admin = new AdminServer({
      bus,
      identity: identity.service,
      apiV2: identity.apiV2,
      credentials: identity.credentials,
      audit: identity.audit,
      serveV2: cfg.API_V2 !== 'off',
      logger: logger.child('admin'),
      socketPath: adminSocket,
      listen: cfg.ADMIN_LISTEN,
      authFailuresPerMinute: cfg.ADMIN_AUTH_FAILURES_PER_MINUTE,
    });
    await admin.start();
    stack.push(() => admin.stop());
    if (cfg.API_V2 === 'edge') apiOnEdge = (req, res) => identity.apiV2.handle(req, res);

    boundPort = fanout.edge.boundPort;
    const url = cfg.SERVER_URL ?? defaultServerUrl(boundPort);
    return {
      url,
      port: boundPort,
      adminSocket,
      adminTcp: admin.tcpAddress,
      bus,
      db,
      fanout,
      keyRegistry,
      identity,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
