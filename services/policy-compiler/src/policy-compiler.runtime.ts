/** Assembles policy-compiler: migrations, outbox relay, bus subjects. */
import { fileURLToPath } from 'node:url';
import type { Bus, Subscription } from '@switchboard/bus';
import { migrate, OutboxRelay, type Db } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import { policy, serveRpc } from '@switchboard/contracts';
import { POLICY_SCHEMA, PolicyCompilerService } from './policy-compiler.service.js';

export const POLICY_MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface PolicyRuntimeOptions {
  db: Db;
  bus: Bus;
  logger: Logger;
}

export class PolicyCompilerRuntime {
  readonly service: PolicyCompilerService;
  private readonly relay: OutboxRelay;
  private subs: Subscription[] = [];

  constructor(private readonly opts: PolicyRuntimeOptions) {
    this.relay = new OutboxRelay({
      db: opts.db,
      schema: POLICY_SCHEMA,
      bus: opts.bus,
      logger: opts.logger.child('outbox'),
    });
    this.service = new PolicyCompilerService({
      db: opts.db,
      logger: opts.logger,
      kickOutbox: () => this.relay.kick(),
    });
  }

  async start(): Promise<void> {
    await migrate(this.opts.db, { schema: POLICY_SCHEMA, dir: POLICY_MIGRATIONS, logger: this.opts.logger });
    this.relay.start();
    const Q = policy.POLICY_QUEUE;
    this.subs = [
      serveRpc(this.opts.bus, policy.GetPolicy, Q, async (req) => ({
        policy: await this.service.get(req.tailnetId),
      })),
      serveRpc(this.opts.bus, policy.PolicySnapshot, Q, async () => ({
        policies: await this.service.snapshot(),
      })),
    ];
  }

  async stop(): Promise<void> {
    await Promise.all(this.subs.map((s) => s.unsubscribe()));
    this.subs = [];
    await this.relay.stop();
  }
}
