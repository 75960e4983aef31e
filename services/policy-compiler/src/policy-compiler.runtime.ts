/** Assembles policy-compiler: migrations, outbox relay, bus subjects. */
import { fileURLToPath } from 'node:url';
import type { Bus, Subscription } from '@switchboard/bus';
import { migrate, OutboxRelay, type Db } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import { policy, serveRpc } from '@switchboard/contracts';
import { POLICY_SCHEMA, PolicyCompilerService } from './policy-compiler.service.js';
import { TailnetView } from './tailnet.view.js';

export const POLICY_MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface PolicyRuntimeOptions {
  db: Db;
  bus: Bus;
  logger: Logger;
}

export class PolicyCompilerRuntime {
  readonly service: PolicyCompilerService;
  private readonly relay: OutboxRelay;
  private readonly tailnet: TailnetView;
  private subs: Subscription[] = [];

  constructor(private readonly opts: PolicyRuntimeOptions) {
    this.relay = new OutboxRelay({
      db: opts.db,
      schema: POLICY_SCHEMA,
      bus: opts.bus,
      logger: opts.logger.child('outbox'),
    });
    this.tailnet = new TailnetView(opts.bus, opts.logger.child('tailnet-view'));
    this.service = new PolicyCompilerService({
      db: opts.db,
      logger: opts.logger,
      kickOutbox: () => this.relay.kick(),
      waitPublished: (ms) => this.relay.waitDrained(ms),
      tailnet: this.tailnet,
    });
  }

  async start(): Promise<void> {
    await migrate(this.opts.db, { schema: POLICY_SCHEMA, dir: POLICY_MIGRATIONS, logger: this.opts.logger });
    this.relay.start();
    const Q = policy.POLICY_QUEUE;
    const bus = this.opts.bus;
    const svc = this.service;
    this.subs = [
      serveRpc(bus, policy.GetPolicy, Q, async (req) => ({ policy: await svc.get(req.tailnetId) })),
      serveRpc(bus, policy.GetPolicyVersion, Q, async (req) => ({
        policy: await svc.getVersion(req.tailnetId, req.version),
      })),
      serveRpc(bus, policy.PolicySnapshot, Q, async () => ({ policies: await svc.snapshot() })),
      serveRpc(bus, policy.SetPolicy, Q, (req) => svc.set(req.tailnetId, req.text, req.author)),
      serveRpc(bus, policy.CheckPolicy, Q, async (req) => ({
        ok: true as const,
        tests: (await svc.check(req.tailnetId, req.text)).tests,
      })),
      serveRpc(bus, policy.PolicyHistory, Q, async (req) => ({
        versions: await svc.history(req.tailnetId, req.limit),
      })),
      serveRpc(bus, policy.RollbackPolicy, Q, (req) => svc.rollback(req.tailnetId, req.version, req.author)),
      serveRpc(bus, policy.CheckTags, Q, (req) => svc.checkTags(req.tailnetId, req.ownerLogin, req.tags)),
      serveRpc(bus, policy.AutoApproveRoutes, Q, async (req) => ({
        routes: await svc.autoApproveRoutes(req.tailnetId, req.node),
      })),
    ];
    // After binding: key-registry and identity may be loading their own views from our snapshot.
    this.tailnet.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.subs.map((s) => s.unsubscribe()));
    this.subs = [];
    await this.tailnet.stop();
    await this.relay.stop();
  }
}
