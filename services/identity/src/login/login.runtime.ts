/**
 * Assembles browser login inside identity: the providers from LOGIN_CONFIG_FILE (OIDC here; SAML
 * through the factory the SAML module registers), the flow and its HTTP routes. Without a config
 * file the pages still run and show headscale's manual-approval command for the login.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:http';
import type { Bus } from '@switchboard/bus';
import { ConfigError, type Logger } from '@switchboard/common';
import type { Db } from '@switchboard/db';
import { loadLoginConfig, type LoginConfig, type ProviderConfig } from './login.config.js';
import { LoginHttp, listenLogin } from './login.http.js';
import { LoginFlow } from './login.service.js';
import { OidcProvider } from './oidc.provider.js';
import type { LoginProvider } from './provider.js';

export interface LoginOptions {
  /** LOGIN_CONFIG_FILE: the providers (YAML or JSON). */
  configFile?: string | undefined;
  /** The public base URL of the login pages (no trailing slash). */
  publicUrl: () => string;
  /** LOGIN_LISTEN_ADDR: serve the pages on their own listener too (services mode). */
  listen?: { host: string; port: number } | undefined;
}

export interface SamlDeps {
  db: Db;
  publicUrl: string;
  logger: Logger;
  now?: () => Date;
}
export type SamlFactory = (entry: Record<string, unknown>, deps: SamlDeps) => LoginProvider;

let samlFactory: SamlFactory | null = null;
/** The SAML module registers its `createSamlProvider` here. */
export function registerSamlFactory(f: SamlFactory): void {
  samlFactory = f;
}

export interface LoginRuntimeDeps {
  db: Db;
  bus: Bus;
  logger: Logger;
  kickOutbox: () => void;
  waitPublished: (ms: number) => Promise<void>;
}

export class LoginRuntime {
  readonly flow: LoginFlow;
  readonly http: LoginHttp;
  private server: Server | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly opts: LoginOptions,
    providers: { provider: LoginProvider; config: ProviderConfig }[],
    deps: LoginRuntimeDeps,
  ) {
    this.flow = new LoginFlow({ ...deps, providers });
    this.http = new LoginHttp(
      this.flow,
      providers.map((p) => p.provider),
      opts.publicUrl,
      deps.logger,
    );
  }

  /** Validates the configuration (throws ConfigError naming every problem) and builds the providers. */
  static create(opts: LoginOptions, deps: LoginRuntimeDeps): LoginRuntime {
    const cfg: LoginConfig = opts.configFile ? loadLoginConfig(opts.configFile) : { providers: [], raw: [] };
    const providers: { provider: LoginProvider; config: ProviderConfig }[] = [];
    const problems: string[] = [];
    cfg.providers.forEach((p, i) => {
      if (p.type === 'oidc') {
        providers.push({
          provider: new OidcProvider(p, {
            db: deps.db,
            publicUrl: opts.publicUrl,
            logger: deps.logger.child(p.id),
          }),
          config: p,
        });
        return;
      }
      if (!samlFactory) {
        problems.push(`providers.${i} (${p.id}): SAML is not available in this build`);
        return;
      }
      try {
        providers.push({
          provider: samlFactory(cfg.raw[i]!, {
            db: deps.db,
            publicUrl: opts.publicUrl(),
            logger: deps.logger.child(p.id),
          }),
          config: p,
        });
      } catch (err) {
        if (err instanceof ConfigError) problems.push(...err.problems);
        else problems.push(`providers.${i} (${p.id}): ${(err as Error).message}`);
      }
    });
    if (problems.length > 0) throw new ConfigError(problems.map((x) => `LOGIN_CONFIG_FILE: ${x}`));
    return new LoginRuntime(opts, providers, deps);
  }

  async start(): Promise<void> {
    if (this.opts.listen)
      this.server = await listenLogin(this.http, this.opts.listen.host, this.opts.listen.port);
    this.purgeTimer = setInterval(() => void this.flow.purge().catch(() => undefined), 3_600_000);
    this.purgeTimer.unref();
  }

  get boundPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  routes = (req: IncomingMessage, res: ServerResponse): boolean => this.http.handle(req, res);

  async stop(): Promise<void> {
    clearInterval(this.purgeTimer);
    const srv = this.server;
    if (srv)
      await new Promise<void>((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      });
  }
}
