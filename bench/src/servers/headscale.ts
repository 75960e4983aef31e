/**
 * Headscale under test: the release named by HEADSCALE_VERSION (default the newest one we found,
 * DEFAULT_HEADSCALE_VERSION), built with `go install` into `<cache>/headscale/<version>/` outside the
 * repository if it is not there yet (like scripts/install-tailscale.sh --with-headscale). It runs on
 * 127.0.0.1 with SQLite (WAL) in the run directory, plain HTTP, the benchmark's loopback DERP map and
 * no DERP URLs, embedded DERP, log tail, update checks, OIDC or TLS. Its user and reusable pre-auth
 * key come from its CLI (over its unix socket); deletions go through its REST API with an API key,
 * like Switchboard's go through its admin API, so neither pays a CLI start-up in the measurement.
 * The configuration targets headscale ≥ 0.28 (0.29 refuses the 0.27 key `randomize_client_port`).
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { httpJson } from './http-json.js';
import { freePort, httpOk, startProcess, waitUntil } from './process.js';
import { HUB_POLICY, HUB_TAG, writeHeadscaleDerpMap, type ServerUnderTest, type Topology } from './server.js';

const execFileP = promisify(execFile);

/** Newest headscale release the module proxy serves as of this benchmark's writing (2026-07-29). */
export const DEFAULT_HEADSCALE_VERSION = 'v0.29.3';
const HEADSCALE_PKG = 'github.com/juanfont/headscale/cmd/headscale';

export function cacheDir(env = process.env): string {
  return env.SWITCHBOARD_CACHE ?? join(homedir(), '.cache', 'switchboard');
}

export function headscaleVersion(env = process.env): string {
  return env.HEADSCALE_VERSION ?? DEFAULT_HEADSCALE_VERSION;
}

/** SWITCHBOARD_HEADSCALE_BIN, else `<cache>/headscale/<version>/headscale`. */
export function headscaleBinary(env = process.env): string {
  return (
    env.SWITCHBOARD_HEADSCALE_BIN ?? join(cacheDir(env), 'headscale', headscaleVersion(env), 'headscale')
  );
}

function runs(bin: string): boolean {
  return existsSync(bin) && spawnSync(bin, ['version'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

/**
 * Makes sure the headscale binary exists, building it with Go if not (about 5 minutes on 2 cores).
 * The module proxy refuses headscale's version list, which `go install pkg@version` may read, so on
 * failure it `go get`s the version into a scratch module and installs from there.
 */
export async function ensureHeadscale(log: (m: string) => void, env = process.env): Promise<string> {
  const bin = headscaleBinary(env);
  if (runs(bin)) return bin;
  if (env.SWITCHBOARD_HEADSCALE_BIN) throw new Error(`SWITCHBOARD_HEADSCALE_BIN=${bin} does not run`);
  const version = headscaleVersion(env);
  const dir = join(cacheDir(env), 'headscale', version);
  mkdirSync(dir, { recursive: true });
  const go = spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0 ? 'go' : '/usr/local/go/bin/go';
  const goEnv = { ...env, GOBIN: dir, GOTOOLCHAIN: 'auto' };
  log(`building headscale ${version} into ${dir} with ${go} (a few minutes, once)`);
  const t0 = Date.now();
  try {
    await execFileP(go, ['install', `${HEADSCALE_PKG}@${version}`], { env: goEnv, maxBuffer: 1 << 26 });
  } catch {
    const work = join(cacheDir(env), 'headscale', `.build-${version}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'go.mod'), 'module switchboard.local/hsbuild\n\ngo 1.21\n');
    await execFileP(go, ['get', `${HEADSCALE_PKG}@${version}`], {
      cwd: work,
      env: goEnv,
      maxBuffer: 1 << 26,
    });
    await execFileP(go, ['install', HEADSCALE_PKG], { cwd: work, env: goEnv, maxBuffer: 1 << 26 });
    rmSync(work, { recursive: true, force: true });
  }
  if (!runs(bin)) throw new Error(`headscale ${version} was built but ${bin} does not run`);
  log(`headscale ${version} built in ${Math.round((Date.now() - t0) / 1000)} s`);
  return bin;
}

export interface HeadscaleOptions {
  readonly workDir: string;
  readonly logLevel: string;
  readonly binary: string;
  readonly topology: Topology;
}

/** The configuration (headscale ≥ 0.28 key names), as JSON, which its YAML loader reads. */
export function headscaleConfig(o: {
  port: number;
  metricsPort: number;
  grpcPort: number;
  dir: string;
  derpPath: string;
  logLevel: string;
  /** Policy file; empty = allow all. */
  policyPath: string;
}): Record<string, unknown> {
  return {
    server_url: `http://127.0.0.1:${o.port}`,
    listen_addr: `127.0.0.1:${o.port}`,
    metrics_listen_addr: `127.0.0.1:${o.metricsPort}`,
    grpc_listen_addr: `127.0.0.1:${o.grpcPort}`,
    grpc_allow_insecure: false,
    noise: { private_key_path: join(o.dir, 'noise_private.key') },
    prefixes: { v4: '100.64.0.0/10', v6: 'fd7a:115c:a1e0::/48', allocation: 'sequential' },
    derp: {
      server: { enabled: false },
      urls: [],
      paths: [o.derpPath],
      auto_update_enabled: false,
      update_frequency: '24h',
    },
    disable_check_updates: true,
    node: { expiry: 0, ephemeral: { inactivity_timeout: '30m' } },
    database: { type: 'sqlite', sqlite: { path: join(o.dir, 'db.sqlite'), write_ahead_log: true } },
    acme_url: '',
    acme_email: '',
    tls_letsencrypt_hostname: '',
    tls_cert_path: '',
    tls_key_path: '',
    log: { level: o.logLevel, format: 'text' },
    policy: { mode: 'file', path: o.policyPath },
    dns: {
      magic_dns: true,
      base_domain: 'bench.internal',
      override_local_dns: false,
      nameservers: { global: [], split: {} },
      search_domains: [],
      extra_records: [],
    },
    unix_socket: join(o.dir, 'headscale.sock'),
    unix_socket_permission: '0770',
    logtail: { enabled: false },
  };
}

export async function startHeadscale(o: HeadscaleOptions): Promise<ServerUnderTest> {
  const dir = join(o.workDir, 'headscale');
  mkdirSync(dir, { recursive: true });
  const derpPath = join(dir, 'derp.yaml');
  writeHeadscaleDerpMap(derpPath);
  let policyPath = '';
  if (o.topology === 'hub') {
    policyPath = join(dir, 'policy.json');
    writeFileSync(policyPath, JSON.stringify(HUB_POLICY, null, 2) + '\n');
  }
  const port = await freePort();
  const configPath = join(dir, 'config.yaml');
  const config = headscaleConfig({
    port,
    metricsPort: await freePort(),
    grpcPort: await freePort(),
    dir,
    derpPath,
    logLevel: o.logLevel,
    policyPath,
  });
  writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    HEADSCALE_DISABLE_CHECK_UPDATES: 'true',
  };
  const proc = startProcess({
    name: 'headscale',
    argv: [o.binary, '-c', configPath, 'serve'],
    env,
    cwd: dir,
    logFile: join(dir, 'headscale.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  const cli = async (args: string[]): Promise<string> => {
    const r = await execFileP(o.binary, ['-c', configPath, ...args], { env, timeout: 60_000 });
    return r.stdout.trim();
  };
  try {
    await waitUntil(`headscale ${url}/health`, () => httpOk(`${url}/health`), {
      timeoutMs: 60_000,
      procs: [proc],
    });
    const version = (await cli(['version'])).split('\n')[0]?.replace(/^headscale version\s*/, '') ?? '?';
    const user = JSON.parse(await cli(['users', 'create', 'bench', '-o', 'json'])) as {
      id?: string | number;
    };
    const userId = Number(user.id);
    if (!Number.isInteger(userId) || userId <= 0) throw new Error(`headscale users create: no id`);
    const preAuthKey = await cli([
      'preauthkeys',
      'create',
      '--user',
      String(userId),
      '--reusable',
      '-e',
      '24h',
    ]);
    const hubKey =
      o.topology === 'hub'
        ? await cli(['preauthkeys', 'create', '--reusable', '-e', '24h', '--tags', HUB_TAG])
        : null;
    const apiKey = await cli(['apikeys', 'create', '-e', '24h']);
    if (!preAuthKey || !apiKey || hubKey === '')
      throw new Error('headscale did not print a pre-auth key or an API key');
    const api = { baseUrl: url, bearer: apiKey };
    return {
      key: 'headscale',
      label: `Headscale ${version} (SQLite, WAL)`,
      version,
      urls: [url],
      group: { name: 'headscale', pids: () => (proc.running ? [proc.pid] : []) },
      infra: null,
      logDir: dir,
      authKeys: async () => ({ plain: preAuthKey, hub: hubKey }),
      deleteNode: async (id) => {
        await httpJson(api, 'DELETE', `/api/v1/node/${id}`);
      },
      streamCount: async () => null,
      stop: () => proc.stop(),
    };
  } catch (err) {
    const tail = proc.logTail(30);
    await proc.stop();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- headscale log ---\n${tail}`);
  }
}
