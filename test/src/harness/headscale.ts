/**
 * Real Headscale as a stand-in control server, configured to stay inside the harness network: it
 * listens on the bridge address over plain HTTP, keeps SQLite in the run directory, hands out
 * only our DERP map (no default DERP URLs, embedded DERP off), has no OIDC, TLS, ACME, log tail or
 * update check, pushes no DNS settings, and serves metrics, gRPC and its CLI socket locally only.
 * Used to self-check the harness and as the baseline in the benchmark.
 *
 * Build it with `scripts/install-tailscale.sh --with-headscale` (v0.27.1 into
 * ~/.cache/switchboard/headscale/v0.27.1/; the proxy refuses headscale's version list, so the
 * script `go get`s it into a scratch module and installs from there).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from './binaries.js';
import { freeTcpPort, type DerpMap } from './derp.js';
import { run, type RunResult } from './exec.js';
import type { Harness } from './harness.js';
import type { ManagedProcess } from './process.js';
import { GiveUp, waitFor } from './wait.js';

export const DEFAULT_HEADSCALE_VERSION = 'v0.27.1';

/**
 * Path of the headscale binary: SWITCHBOARD_HEADSCALE_BIN, else `<cache>/headscale/<version>/`
 * with the version from HEADSCALE_VERSION (as in scripts/install-tailscale.sh --with-headscale).
 */
export function headscaleBinary(version?: string, env = process.env): string {
  const v = version ?? env.HEADSCALE_VERSION ?? DEFAULT_HEADSCALE_VERSION;
  return env.SWITCHBOARD_HEADSCALE_BIN ?? join(cacheDir(env), 'headscale', v, 'headscale');
}

/**
 * The DERP map in the form headscale's `derp.paths` loader expects: it unmarshals YAML with
 * gopkg.in/yaml.v3 into tailcfg.DERPMap, which matches lower-cased Go field names (`regionid`,
 * `hostname`, `stunport`…), not the JSON names, and needs the region ids as integer keys.
 */
export function headscaleDerpYaml(map: DerpMap): string {
  const lines: string[] = [];
  const emit = (v: unknown, indent: string): void => {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const key = /^\d+$/.test(k) ? k : k.toLowerCase();
      if (Array.isArray(x)) {
        lines.push(`${indent}${key}:`);
        for (const item of x) {
          const start = lines.length;
          emit(item, `${indent}    `);
          lines[start] = `${indent}  - ${(lines[start] ?? '').trimStart()}`;
        }
      } else if (x !== null && typeof x === 'object') {
        lines.push(`${indent}${key}:`);
        emit(x, `${indent}  `);
      } else {
        lines.push(`${indent}${key}: ${JSON.stringify(x)}`);
      }
    }
  };
  emit(map, '');
  return lines.join('\n') + '\n';
}

export interface HeadscaleOptions {
  /** Default DEFAULT_HEADSCALE_VERSION from the cache, or SWITCHBOARD_HEADSCALE_BIN. */
  readonly binary?: string;
  /** Port on the bridge address; default a free one. */
  readonly port?: number;
  /** Directory for config, database, keys, log; default `<runDir>/headscale`. */
  readonly dir?: string;
  /** Extra top-level config keys, merged over the defaults (shallow). */
  readonly extraConfig?: Readonly<Record<string, unknown>>;
  readonly readyTimeoutMs?: number;
}

export interface PreAuthKeyOptions {
  readonly reusable?: boolean;
  readonly ephemeral?: boolean;
  /** e.g. '1h' (default). */
  readonly expiration?: string;
  readonly tags?: readonly string[];
}

export class Headscale {
  constructor(
    /** The control URL for `--login-server`. */
    readonly url: string,
    readonly dir: string,
    readonly configPath: string,
    readonly process: ManagedProcess,
    private readonly binary: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Runs `headscale -c <config> <args>` (talks to the server over its local unix socket). */
  cli(args: readonly string[]): Promise<RunResult> {
    return run([this.binary, '-c', this.configPath, ...args], { env: this.env, timeoutMs: 30_000 });
  }

  /** Creates a user; returns its numeric id. */
  async createUser(name: string): Promise<number> {
    const r = await this.cli(['users', 'create', name, '-o', 'json']);
    const user = JSON.parse(r.stdout) as { id?: number | string };
    const id = Number(user.id);
    if (!Number.isInteger(id) || id <= 0) throw new Error(`headscale users create: no id in ${r.stdout}`);
    return id;
  }

  /** Creates a pre-auth key for user id `userId`; returns the key. */
  async createPreAuthKey(userId: number, opts: PreAuthKeyOptions = {}): Promise<string> {
    const args = ['preauthkeys', 'create', '--user', String(userId), '--expiration', opts.expiration ?? '1h'];
    if (opts.reusable) args.push('--reusable');
    if (opts.ephemeral) args.push('--ephemeral');
    if (opts.tags && opts.tags.length > 0) args.push('--tags', opts.tags.join(','));
    const r = await this.cli([...args, '-o', 'json']);
    const key = (JSON.parse(r.stdout) as { key?: string }).key;
    if (!key) throw new Error(`headscale preauthkeys create: no key in ${r.stdout}`);
    return key;
  }

  /** `headscale nodes list -o json`, parsed. */
  async listNodes(): Promise<unknown[]> {
    const r = await this.cli(['nodes', 'list', '-o', 'json']);
    return (JSON.parse(r.stdout) as unknown[] | null) ?? [];
  }

  stop(): Promise<unknown> {
    return this.process.stop({ graceMs: 5_000 });
  }
}

/** The config headscale gets (exported for the benchmark and for review). */
export function headscaleConfig(opts: {
  readonly listenHost: string;
  readonly port: number;
  readonly dir: string;
  readonly derpPath: string;
  readonly metricsPort: number;
  readonly grpcPort: number;
}): Record<string, unknown> {
  return {
    server_url: `http://${opts.listenHost}:${opts.port}`,
    listen_addr: `${opts.listenHost}:${opts.port}`,
    metrics_listen_addr: `127.0.0.1:${opts.metricsPort}`,
    grpc_listen_addr: `127.0.0.1:${opts.grpcPort}`,
    grpc_allow_insecure: false,
    noise: { private_key_path: join(opts.dir, 'noise_private.key') },
    prefixes: { v4: '100.64.0.0/10', v6: 'fd7a:115c:a1e0::/48', allocation: 'sequential' },
    derp: {
      server: { enabled: false },
      urls: [],
      paths: [opts.derpPath],
      auto_update_enabled: false,
      update_frequency: '24h',
    },
    disable_check_updates: true,
    ephemeral_node_inactivity_timeout: '30m',
    database: {
      type: 'sqlite',
      sqlite: { path: join(opts.dir, 'db.sqlite'), write_ahead_log: true },
    },
    acme_url: '',
    acme_email: '',
    tls_letsencrypt_hostname: '',
    tls_cert_path: '',
    tls_key_path: '',
    log: { level: 'info', format: 'text' },
    policy: { mode: 'file', path: '' },
    dns: {
      magic_dns: false,
      base_domain: 'harness.invalid',
      override_local_dns: false,
      nameservers: { global: [], split: {} },
      search_domains: [],
      extra_records: [],
    },
    unix_socket: join(opts.dir, 'headscale.sock'),
    unix_socket_permission: '0770',
    logtail: { enabled: false },
    randomize_client_port: false,
  };
}

/**
 * Starts headscale on the harness's bridge address with the harness's DERP map, waits for
 * `/health`, and sets `h.controlUrl` if it is not set yet.
 */
export async function startHeadscale(h: Harness, opts: HeadscaleOptions = {}): Promise<Headscale> {
  const binary = opts.binary ?? headscaleBinary();
  const dir = opts.dir ?? join(h.runDir, 'headscale');
  mkdirSync(dir, { recursive: true });
  const port = opts.port ?? (await h.freePort());
  const derpPath = join(dir, 'derp.yaml');
  writeFileSync(derpPath, headscaleDerpYaml(h.derpMap()));
  const config = {
    ...headscaleConfig({
      listenHost: h.bridgeIp,
      port,
      dir,
      derpPath,
      metricsPort: await freeTcpPort('127.0.0.1'),
      grpcPort: await freeTcpPort('127.0.0.1'),
    }),
    ...opts.extraConfig,
  };
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n');
  const env = h.processEnv({ HOME: dir, HEADSCALE_DISABLE_CHECK_UPDATES: 'true' });
  const proc = h.startProcess({
    name: 'headscale',
    argv: [binary, '-c', configPath, 'serve'],
    env,
    cwd: dir,
  });
  const url = h.urlFor(port);
  try {
    await waitFor(
      async () => {
        if (!proc.running) throw new GiveUp(`headscale exited: ${proc.describe()}`);
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
        return res.status === 200;
      },
      { what: `headscale at ${url} to report healthy`, timeoutMs: opts.readyTimeoutMs ?? 30_000 },
    );
  } catch (err) {
    h.markFailed('headscale did not start');
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}\n--- headscale log ---\n${proc.logTail(30)}`,
    );
  }
  h.controlUrl ??= url;
  return new Headscale(url, dir, configPath, proc, binary, env);
}
