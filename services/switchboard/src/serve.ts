/**
 * The one-process mode: all four services in one Node process over an in-process bus (or NATS when
 * NATS_URL is set), embedded PGlite (or Postgres when DATABASE_URL is set) and an in-memory stream
 * registry (or Redis when REDIS_URL is set), plus the admin API on a unix socket.
 */
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { createLogger, parseConfig, configureLogging, type Logger } from '@switchboard/common';
import type { Bus } from '@switchboard/bus';
import type { Db } from '@switchboard/db';
import { AdminServer, IdentityRuntime } from '@switchboard/identity';
import { KeyRegistryRuntime, keyRegistryConfigSchema } from '@switchboard/key-registry';
import { PolicyCompilerRuntime } from '@switchboard/policy-compiler';
import {
  NetmapFanoutRuntime,
  fanoutConfigSchema,
  loadDerpMap,
  type StreamRegistry,
} from '@switchboard/netmap-fanout';
import { initZstd } from '@switchboard/protocol';
import { baseConfigSchema } from './config.js';
import { loadNoiseKey, openBus, openDatabase, openStreamRegistry, splitListen } from './assemble.js';

export interface RunningServer {
  url: string;
  port: number;
  adminSocket: string;
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
    const db = await openDatabase(cfg, logger, { embedded: true, inMemory: opts.inMemory ?? false });
    stack.push(() => db.close());
    const bus = await openBus(cfg, logger, 'switchboard', { embedded: true });
    stack.push(() => bus.close());
    const registry: StreamRegistry = openStreamRegistry(cfg);
    stack.push(() => registry.close());

    const identity = new IdentityRuntime({ db, bus, logger: logger.child('identity') });
    await identity.start();
    stack.push(() => identity.stop());
    const keyRegistry = new KeyRegistryRuntime({
      db,
      bus,
      config: krCfg,
      logger: logger.child('key-registry'),
    });
    await keyRegistry.start();
    stack.push(() => keyRegistry.stop());
    const policy = new PolicyCompilerRuntime({ db, bus, logger: logger.child('policy-compiler') });
    await policy.start();
    stack.push(() => policy.stop());

    const { host, port } = splitListen(cfg.LISTEN_ADDR);
    const fanout = new NetmapFanoutRuntime({
      bus,
      logger: logger.child('netmap-fanout'),
      config: fCfg,
      registry,
      serverPrivate: loadNoiseKey(cfg, fCfg, logger),
      derpMap: await loadDerpMap(fCfg),
      host,
      port,
    });
    await fanout.start();
    stack.push(() => fanout.stop());

    const adminSocket = cfg.ADMIN_SOCKET ?? join(cfg.DATA_DIR, 'admin.sock');
    const admin = new AdminServer({
      bus,
      identity: identity.service,
      logger: logger.child('admin'),
      socketPath: adminSocket,
      listen: cfg.ADMIN_LISTEN,
    });
    await admin.start();
    stack.push(() => admin.stop());

    const boundPort = fanout.edge.boundPort;
    const url = cfg.SERVER_URL ?? defaultServerUrl(boundPort);
    return { url, port: boundPort, adminSocket, bus, db, fanout, keyRegistry, identity, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
