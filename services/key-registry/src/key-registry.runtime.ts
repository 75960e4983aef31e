/**
 * Assembles key-registry from its dependencies: runs migrations, starts the outbox relay, binds the
 * bus subjects and the ephemeral-node clean-up loop. Used by the Nest module and by tests.
 */
import { fileURLToPath } from 'node:url';
import type { Bus, Subscription } from '@switchboard/bus';
import { migrate, OutboxRelay, type Db } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import type { KeyRegistryConfig } from './key-registry.config.js';
import { KeyRegistryService, SCHEMA } from './key-registry.service.js';
import { bindKeyRegistry } from './key-registry.controller.js';

export const KEY_REGISTRY_MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface KeyRegistryRuntimeOptions {
  db: Db;
  bus: Bus;
  config: KeyRegistryConfig;
  logger: Logger;
  /** How often ephemeral nodes are checked for inactivity (default 10 s). */
  gcIntervalMs?: number;
  /** Public URL of the login pages, when known only after start (PUBLIC_URL wins when set). */
  publicUrl?: () => string | null;
}

export class KeyRegistryRuntime {
  readonly service: KeyRegistryService;
  private readonly relay: OutboxRelay;
  private subs: Subscription[] = [];
  private gc: NodeJS.Timeout | undefined;

  constructor(private readonly opts: KeyRegistryRuntimeOptions) {
    this.relay = new OutboxRelay({
      db: opts.db,
      schema: SCHEMA,
      bus: opts.bus,
      logger: opts.logger.child('outbox'),
    });
    this.service = new KeyRegistryService({
      db: opts.db,
      bus: opts.bus,
      config: opts.config,
      logger: opts.logger,
      kickOutbox: () => this.relay.kick(),
      ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
    });
  }

  async start(): Promise<void> {
    await migrate(this.opts.db, { schema: SCHEMA, dir: KEY_REGISTRY_MIGRATIONS, logger: this.opts.logger });
    await this.service.init();
    this.relay.start();
    this.subs = bindKeyRegistry(this.opts.bus, this.service, this.opts.logger);
    // After binding: identity and policy-compiler may be loading their own views from our snapshot.
    this.service.directory.start();
    this.gc = setInterval(() => {
      this.service.nodes.collectInactiveEphemeral().catch((err: unknown) => {
        this.opts.logger.error('ephemeral node clean-up failed; will retry', { err });
      });
      this.service.logins.purgeExpired().catch((err: unknown) => {
        this.opts.logger.warn('expired browser logins could not be purged; will retry', { err });
      });
    }, this.opts.gcIntervalMs ?? 10_000);
    this.gc.unref();
  }

  async stop(): Promise<void> {
    if (this.gc) clearInterval(this.gc);
    await Promise.all(this.subs.map((s) => s.unsubscribe()));
    this.subs = [];
    await this.service.directory.stop();
    await this.service.keys.flushUses().catch(() => undefined);
    await this.relay.stop();
  }
}
