/**
 * Runs one service as its own process over NATS and Postgres (and Redis for netmap-fanout):
 * `switchboard service key-registry|identity|policy-compiler|netmap-fanout`. Any number of replicas of
 * each may run; identity also serves the admin API (ADMIN_SOCKET / ADMIN_LISTEN).
 */
import { createLogger, parseConfig, configureLogging, ConfigError } from '@switchboard/common';
import { AdminServer, IDENTITY_RUNTIME, IdentityModule, type IdentityRuntime } from '@switchboard/identity';
import { KeyRegistryModule, keyRegistryConfigSchema } from '@switchboard/key-registry';
import { PolicyCompilerModule } from '@switchboard/policy-compiler';
import {
  FANOUT_RUNTIME,
  NetmapFanoutModule,
  fanoutConfigSchema,
  loadDerpMap,
  type NetmapFanoutRuntime,
} from '@switchboard/netmap-fanout';
import { runtimeOf, startNestApp } from './nest-app.js';
import { initZstd } from '@switchboard/protocol';
import { baseConfigSchema } from './config.js';
import {
  loadLegacyKey,
  loadNoiseKey,
  openBus,
  openDatabase,
  openStreamRegistry,
  splitListen,
} from './assemble.js';

export const SERVICES = ['key-registry', 'identity', 'policy-compiler', 'netmap-fanout'] as const;
export type ServiceName = (typeof SERVICES)[number];

export async function runService(
  name: ServiceName,
  env: Record<string, string | undefined> = process.env,
): Promise<{ stop: () => Promise<void>; port?: number; adminPort?: number; loginPort?: number }> {
  const cfg = parseConfig(baseConfigSchema, env);
  configureLogging({ level: cfg.LOG_LEVEL });
  const logger = createLogger(name);
  const bus = await openBus(cfg, logger, name, { embedded: false });
  const stops: (() => Promise<void>)[] = [() => bus.close()];
  const stop = async (): Promise<void> => {
    for (const f of stops.reverse())
      await f().catch((err: unknown) => logger.warn('error while stopping', { err }));
  };
  try {
    switch (name) {
      case 'key-registry': {
        const db = await openDatabase(cfg, logger, { embedded: false });
        stops.push(() => db.close());
        const app = await startNestApp([
          KeyRegistryModule.forRoot({ db, bus, config: parseConfig(keyRegistryConfigSchema, env), logger }),
        ]);
        stops.push(() => app.close());
        return { stop };
      }
      case 'identity': {
        const db = await openDatabase(cfg, logger, { embedded: false });
        stops.push(() => db.close());
        // Login pages on their own listener (LOGIN_LISTEN_ADDR); the Ingress routes /login/* here.
        const publicUrl = env.PUBLIC_URL?.replace(/\/+$/, '');
        const loginListen = env.LOGIN_LISTEN_ADDR ? splitListen(env.LOGIN_LISTEN_ADDR) : undefined;
        if (loginListen && !publicUrl)
          throw new ConfigError([
            'PUBLIC_URL: required with LOGIN_LISTEN_ADDR (the URL browsers reach /login/ at)',
          ]);
        const app = await startNestApp([
          IdentityModule.forRoot({
            db,
            bus,
            logger,
            ...(publicUrl
              ? {
                  login: {
                    configFile: env.LOGIN_CONFIG_FILE,
                    publicUrl: () => publicUrl,
                    listen: loginListen,
                  },
                }
              : {}),
          }),
        ]);
        stops.push(() => app.close());
        const rt = runtimeOf<IdentityRuntime>(app, IDENTITY_RUNTIME);
        if (cfg.ADMIN_SOCKET || cfg.ADMIN_LISTEN) {
          const admin = new AdminServer({
            bus,
            identity: rt.service,
            apiV2: rt.apiV2,
            credentials: rt.credentials,
            audit: rt.audit,
            serveV2: cfg.API_V2 !== 'off',
            logger: logger.child('admin'),
            socketPath: cfg.ADMIN_SOCKET,
            listen: cfg.ADMIN_LISTEN,
            authFailuresPerMinute: cfg.ADMIN_AUTH_FAILURES_PER_MINUTE,
          });
          await admin.start();
          stops.push(() => admin.stop());
          if (admin.tcpAddress)
            return {
              stop,
              adminPort: admin.tcpAddress.port,
              ...(rt.login?.boundPort !== undefined ? { loginPort: rt.login.boundPort } : {}),
            };
        }
        return { stop, ...(rt.login?.boundPort !== undefined ? { loginPort: rt.login.boundPort } : {}) };
      }
      case 'policy-compiler': {
        const db = await openDatabase(cfg, logger, { embedded: false });
        stops.push(() => db.close());
        const app = await startNestApp([PolicyCompilerModule.forRoot({ db, bus, logger })]);
        stops.push(() => app.close());
        return { stop };
      }
      case 'netmap-fanout': {
        await initZstd();
        const fcfg = parseConfig(fanoutConfigSchema, env);
        if (!fcfg.NOISE_PRIVATE_KEY && !fcfg.NOISE_KEY_FILE)
          throw new ConfigError([
            'NOISE_PRIVATE_KEY or NOISE_KEY_FILE: every fanout replica must use the same server key',
          ]);
        if (fcfg.LEGACY_PROTOCOL && !fcfg.LEGACY_PRIVATE_KEY && !fcfg.LEGACY_KEY_FILE)
          throw new ConfigError([
            'LEGACY_PRIVATE_KEY or LEGACY_KEY_FILE: with LEGACY_PROTOCOL on, every fanout replica must use the same legacy key',
          ]);
        const registry = openStreamRegistry(cfg);
        stops.push(() => registry.close());
        const { host, port } = splitListen(cfg.LISTEN_ADDR);
        const app = await startNestApp([
          NetmapFanoutModule.forRoot({
            bus,
            logger,
            config: fcfg,
            registry,
            serverPrivate: loadNoiseKey(cfg, fcfg, logger),
            legacyPrivate: loadLegacyKey(cfg, fcfg, logger),
            derpMap: await loadDerpMap(fcfg),
            host,
            port,
          }),
        ]);
        stops.push(() => app.close());
        return { stop, port: runtimeOf<NetmapFanoutRuntime>(app, FANOUT_RUNTIME).edge.boundPort };
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
}
