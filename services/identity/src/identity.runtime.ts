/** Assembles identity: migrations, outbox relay, bus subjects. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { LoginRuntime, type LoginOptions } from './login/login.runtime.js';
import type { Bus, Subscription } from '@switchboard/bus';
import { migrate, OutboxRelay, type Db } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import { IDENTITY_SCHEMA, IdentityService } from './identity.service.js';
import { bindIdentity } from './identity.controller.js';
import { NodeOwnersView } from './node-owners.view.js';
import { AuditLog } from './audit/audit.service.js';
import { ApiV2 } from './api-v2/v2.api.js';
import { Credentials } from './api-v2/v2.credentials.js';
import { V2Repository } from './api-v2/v2.repository.js';

export const IDENTITY_MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface IdentityRuntimeOptions {
  db: Db;
  bus: Bus;
  logger: Logger;
  /** Browser login (the pages under /login/); off when not given. */
  login?: LoginOptions;
}

export class IdentityRuntime {
  readonly service: IdentityService;
  readonly audit: AuditLog;
  readonly credentials: Credentials;
  /** The admin API v2 (`/api/v2`, `/api/openapi.json`): mounted by the admin server and the client edge. */
  readonly apiV2: ApiV2;
  private readonly relay: OutboxRelay;
  private readonly nodeOwners: NodeOwnersView;
  private subs: Subscription[] = [];
  /** Set once started with `login` options. */
  login: LoginRuntime | null = null;

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
    this.audit = new AuditLog(opts.db);
    this.credentials = new Credentials(opts.db, (secret) => this.service.hashSecret(secret));
    this.apiV2 = new ApiV2({
      db: opts.db,
      bus: opts.bus,
      logger: opts.logger.child('api-v2'),
      identity: this.service,
      nodeOwners: this.nodeOwners,
      credentials: this.credentials,
      audit: this.audit,
      published: async () => {
        this.relay.kick();
        await this.relay.waitDrained(2000).catch((err: unknown) => {
          opts.logger.warn('admin change committed but its event is not in the log yet', { err });
        });
      },
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
    const v2 = new V2Repository();
    this.subs = bindIdentity(this.opts.bus, this.service, () => v2.allDns(this.opts.db));
    this.nodeOwners.start();
    if (this.opts.login) {
      this.login = LoginRuntime.create(this.opts.login, {
        db: this.opts.db,
        bus: this.opts.bus,
        logger: this.opts.logger.child('login'),
        kickOutbox: () => this.relay.kick(),
        waitPublished: (ms) => this.relay.waitDrained(ms),
      });
      await this.login.start();
    }
  }

  /** The login pages as plain-HTTP routes (false until started, or for other paths). */
  loginRoutes = (req: IncomingMessage, res: ServerResponse): boolean => this.login?.routes(req, res) ?? false;

  async stop(): Promise<void> {
    await this.login?.stop();
    await Promise.all(this.subs.map((s) => s.unsubscribe()));
    this.subs = [];
    await this.nodeOwners.stop();
    await this.relay.stop();
  }
}
