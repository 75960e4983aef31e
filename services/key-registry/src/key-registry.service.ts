/**
 * key-registry assembled from its use cases, each in its own module with the repository injected:
 * registration (`registration.service.ts`), node lifecycle (`node-lifecycle.service.ts`) and
 * pre-auth keys with their cache and use counter (`preauth-key.service.ts`), all writing through one
 * transaction shell (`registry.store.ts`) and reading users and the policy from a local, event-fed
 * view (`directory.view.ts`) — key-registry calls no other service while serving a request.
 */
import { randomBytes } from 'node:crypto';
import type { Bus } from '@switchboard/bus';
import type { Db } from '@switchboard/db';
import { appendOutbox } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import { TailnetUpserted } from '@switchboard/contracts';
import { DirectoryView } from './directory.view.js';
import type { KeyRegistryConfig } from './key-registry.config.js';
import { KeyRegistryRepository } from './key-registry.repository.js';
import { NodeLifecycleService } from './node-lifecycle.service.js';
import { PreAuthKeyService } from './preauth-key.service.js';
import { RegistrationService } from './registration.service.js';
import { InteractiveLoginService } from './interactive-login.service.js';
import { RegistryStore, SCHEMA } from './registry.store.js';

export { SCHEMA } from './registry.store.js';
const DEFAULT_TAILNET = 1;

export interface KeyRegistryDeps {
  db: Db;
  bus: Bus;
  config: KeyRegistryConfig;
  logger: Logger;
  /** Wakes the outbox relay after a commit. */
  kickOutbox: () => void;
  now?: () => Date;
  /** Public URL of the login pages when it is only known after start (serve on port 0). */
  publicUrl?: () => string | null;
}

export class KeyRegistryService {
  readonly directory: DirectoryView;
  readonly registration: RegistrationService;
  readonly nodes: NodeLifecycleService;
  readonly keys: PreAuthKeyService;
  readonly logins: InteractiveLoginService;
  private readonly store: RegistryStore;
  private pepper = '';

  constructor(private readonly deps: KeyRegistryDeps) {
    const now = deps.now ?? (() => new Date());
    const log = deps.logger;
    this.store = new RegistryStore(deps.db, new KeyRegistryRepository(), deps.kickOutbox);
    this.directory = new DirectoryView(deps.bus, log.child('directory'), (userId) =>
      this.userRemoved(userId),
    );
    this.keys = new PreAuthKeyService(this.store, this.directory, () => this.pepper, log);
    this.nodes = new NodeLifecycleService(
      this.store,
      this.directory,
      log,
      now,
      deps.config.EPHEMERAL_INACTIVITY_TIMEOUT,
    );
    this.registration = new RegistrationService(
      this.store,
      this.directory,
      this.keys,
      () => this.pepper,
      deps.config,
      log,
      now,
    );
    this.logins = new InteractiveLoginService(
      this.store,
      this.directory,
      this.registration,
      deps.bus,
      {
        publicUrl: () => deps.config.PUBLIC_URL ?? deps.publicUrl?.() ?? null,
        ttlMs: deps.config.LOGIN_TTL,
      },
      log.child('login'),
      now,
    );
    this.registration.interactive = this.logins;
  }

  /** Loads the key pepper and applies the configured tailnet domain. */
  async init(): Promise<void> {
    const { repo, db } = this.store;
    this.pepper =
      this.deps.config.KEY_PEPPER ??
      (await repo.setting(db, 'preauth_pepper', () => randomBytes(32).toString('hex')));
    await this.store.tx(async (q) => {
      if (await repo.setTailnetDomain(q, DEFAULT_TAILNET, this.deps.config.BASE_DOMAIN)) {
        const t = (await repo.tailnets(q)).find((x) => x.id === DEFAULT_TAILNET);
        if (t) await appendOutbox(q, SCHEMA, TailnetUpserted.subject, { tailnet: t });
      }
    });
  }

  /** identity removed a user: its nodes and pre-auth keys go with it. */
  private userRemoved(userId: number): void {
    void (async () => {
      const keys = await this.keys.expireForUser(userId);
      const nodes = await this.nodes.removeUserNodes(userId);
      if (keys + nodes > 0)
        this.deps.logger.info('removed user: its nodes deleted, its keys expired', { userId, nodes, keys });
    })().catch((err: unknown) => {
      this.deps.logger.error('could not clean up after a removed user', { userId, err });
    });
  }
}
