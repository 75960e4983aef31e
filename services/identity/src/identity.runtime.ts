/** Assembles identity: migrations, outbox relay, bus subjects. */
import { fileURLToPath } from 'node:url';
import type { Bus, Subscription } from '@switchboard/bus';
import { migrate, OutboxRelay, type Db } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import { IDENTITY_SCHEMA, IdentityService } from './identity.service.js';
import { bindIdentity } from './identity.controller.js';
import { NodeOwnersView } from './node-owners.view.js';

export const IDENTITY_MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface IdentityRuntimeOptions {
  db: Db;
  bus: Bus;
  logger: Logger;
}

export class IdentityRuntime {
  readonly service: IdentityService;
  private readonly relay: OutboxRelay;
  private readonly nodeOwners: NodeOwnersView;
  private subs: Subscription[] = [];

  constructor(private readonly opts: IdentityRuntimeOptions) {
    this.relay = new OutboxRelay({
      db: opts.db,
      schema: IDENTITY_SCHEMA,
      bus: opts.bus,
      logger: opts.logger.child('outbox'),
    });
    this.nodeOwners = new NodeOwnersView(opts.bus, opts.logger.child('node-owners'));
    this.service = new IdentityService({
      db: opts.db,
      logger: opts.logger,
      kickOutbox: () => this.relay.kick(),
      waitPublished: (ms) => this.relay.waitDrained(ms),
      nodeOwners: this.nodeOwners,
    });
  }

  async start(): Promise<void> {
    await migrate(this.opts.db, {
      schema: IDENTITY_SCHEMA,
      dir: IDENTITY_MIGRATIONS,
      logger: this.opts.logger,
    });
    await this.service.init();
    this.relay.start();
    this.subs = bindIdentity(this.opts.bus, this.service);
    this.nodeOwners.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.subs.map((s) => s.unsubscribe()));
    this.subs = [];
    await this.nodeOwners.stop();
    await this.relay.stop();
  }
}
