/**
 * Switchboard under test, from its built CLI (services/switchboard/dist/src/main.js, started as
 * bin/switchboard does: `node --enable-source-maps`), in its own processes so their CPU and memory
 * can be read from /proc:
 * - one process: `serve --in-memory` (embedded PGlite in memory, in-process bus and stream registry);
 * - services: identity (with the admin socket), key-registry, policy-compiler and two netmap-fanout
 *   replicas sharing one Noise key, over a scratch Postgres database and a private NATS (JetStream)
 *   and Redis started for this run on free loopback ports, so no other test on the machine shares
 *   their subjects, streams or keys. Nodes are dealt to the two replicas alternately.
 * Everything listens on 127.0.0.1 only.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatKey, generatePrivateKey } from '@switchboard/protocol';
import { scratchDatabase, type ScratchDatabase } from '@switchboard/testing';
import { findPids, type ProcessGroup } from '../proc-stats.js';
import { httpJson } from './http-json.js';
import { freePort, httpOk, startProcess, waitUntil, type ManagedProcess } from './process.js';
import {
  HUB_POLICY,
  HUB_TAG,
  writeSwitchboardDerpMap,
  type AuthKeys,
  type ServerUnderTest,
  type Topology,
} from './server.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
export const SWITCHBOARD_MAIN = join(REPO, 'services/switchboard/dist/src/main.js');

export interface SwitchboardOptions {
  readonly workDir: string;
  readonly logLevel: string;
  readonly topology: Topology;
}

/**
 * Extra Node options for the Switchboard processes, from BENCH_SWITCHBOARD_NODE_OPTIONS (e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile the server under load).
 */
function nodeArgs(): string[] {
  return (process.env.BENCH_SWITCHBOARD_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
}

/** `0.1.0+<commit>` (with `-dirty` when the work tree has changes). */
export function switchboardVersion(): string {
  const pkg = JSON.parse(readFileSync(join(REPO, 'services/switchboard/package.json'), 'utf8')) as {
    version: string;
  };
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['-C', REPO, 'describe', '--always', '--dirty'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    // not a git checkout
  }
  return `${pkg.version}+${commit}`;
}

/** The process environment without variables that would point Switchboard at shared services. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (
      /^(DATABASE_URL|NATS_URL|REDIS_URL|REDIS_KEY_PREFIX|NOISE_|ADMIN_|LISTEN_ADDR|SERVER_URL|DERP_|REPLICA_ID)/.test(
        k,
      ) ||
      /^(https?|no|all)_proxy$/i.test(k)
    )
      delete env[k];
  return env;
}

function commonEnv(o: SwitchboardOptions, dir: string, derpPath: string): NodeJS.ProcessEnv {
  return {
    ...cleanEnv(),
    DATA_DIR: dir,
    LOG_LEVEL: o.logLevel,
    DERP_MAP_PATH: derpPath,
    DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
    MAGIC_DNS: 'true',
    BASE_DOMAIN: 'bench.internal',
    // Every simulated node dials from 127.0.0.1: the per-source bound would cap the fleet.
    EDGE_MAX_CONNECTIONS_PER_SOURCE: '0',
  };
}

class SwitchboardTarget implements ServerUnderTest {
  private keys: AuthKeys | null = null;

  constructor(
    readonly key: 'switchboard' | 'switchboard_services',
    readonly label: string,
    readonly version: string,
    readonly urls: readonly string[],
    readonly group: ProcessGroup,
    readonly infra: ProcessGroup | null,
    readonly logDir: string,
    private readonly adminSocket: string,
    private readonly topology: Topology,
    private readonly stopAll: () => Promise<void>,
  ) {}

  async authKeys(): Promise<AuthKeys> {
    if (this.keys) return this.keys;
    const admin = { socketPath: this.adminSocket };
    await httpJson(admin, 'POST', '/api/v1/users', { name: 'bench' });
    if (this.topology === 'hub')
      await httpJson(admin, 'PUT', '/api/v1/policy', { policy: JSON.stringify(HUB_POLICY, null, 2) });
    const create = async (tags: string[]): Promise<string> => {
      const r = (await httpJson(admin, 'POST', '/api/v1/preauthkeys', {
        user: 'bench',
        reusable: true,
        expiration: '24h',
        ...(tags.length > 0 ? { tags } : {}),
      })) as { key?: string };
      if (!r.key) throw new Error(`switchboard preauthkeys: no key in ${JSON.stringify(r)}`);
      return r.key;
    };
    this.keys = { plain: await create([]), hub: this.topology === 'hub' ? await create([HUB_TAG]) : null };
    return this.keys;
  }

  async deleteNode(id: number): Promise<void> {
    await httpJson({ socketPath: this.adminSocket }, 'DELETE', `/api/v1/nodes/${id}`);
  }

  async streamCount(): Promise<number | null> {
    let total = 0;
    for (const u of this.urls) {
      const r = await fetch(`${u}/metrics`, { signal: AbortSignal.timeout(5000) });
      const m = /^switchboard_fanout_streams (\d+)/m.exec(await r.text());
      if (!m) return null;
      total += Number(m[1]);
    }
    return total;
  }

  stop(): Promise<void> {
    return this.stopAll();
  }
}

async function waitReady(
  urls: readonly string[],
  adminSocket: string,
  procs: ManagedProcess[],
): Promise<void> {
  for (const u of urls)
    await waitUntil(`${u}/ready`, () => httpOk(`${u}/ready`), { timeoutMs: 90_000, procs });
  await waitUntil(`admin socket ${adminSocket}`, () => existsSync(adminSocket), { timeoutMs: 30_000, procs });
  await waitUntil(
    'admin API',
    async () => {
      await httpJson({ socketPath: adminSocket }, 'GET', '/api/v1/users');
      return true;
    },
    { timeoutMs: 30_000, procs },
  );
}

/** Switchboard as one process: `switchboard serve --in-memory`. */
export async function startSwitchboardOne(o: SwitchboardOptions): Promise<ServerUnderTest> {
  const dir = join(o.workDir, 'switchboard');
  mkdirSync(dir, { recursive: true });
  const derpPath = join(dir, 'derp.json');
  writeSwitchboardDerpMap(derpPath);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const adminSocket = join(dir, 'admin.sock');
  const proc = startProcess({
    name: 'switchboard',
    argv: [process.execPath, '--enable-source-maps', ...nodeArgs(), SWITCHBOARD_MAIN, 'serve', '--in-memory'],
    env: {
      ...commonEnv(o, dir, derpPath),
      LISTEN_ADDR: `127.0.0.1:${port}`,
      SERVER_URL: url,
      ADMIN_SOCKET: adminSocket,
    },
    logFile: join(dir, 'switchboard.log'),
  });
  try {
    await waitReady([url], adminSocket, [proc]);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return new SwitchboardTarget(
    'switchboard',
    `Switchboard ${switchboardVersion()}, one process (embedded PGlite in memory)`,
    switchboardVersion(),
    [url],
    { name: 'switchboard', pids: () => (proc.running ? [proc.pid] : []) },
    null,
    dir,
    adminSocket,
    o.topology,
    // A profiled server needs time to write its profile on exit.
    () => proc.stop(nodeArgs().length > 0 ? 60_000 : undefined),
  );
}

/** Resolves once a TCP connection to 127.0.0.1:port succeeds. */
function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Switchboard as services: identity, key-registry, policy-compiler, two netmap-fanout replicas. */
export async function startSwitchboardServices(o: SwitchboardOptions): Promise<ServerUnderTest> {
  const dir = join(o.workDir, 'switchboard-services');
  mkdirSync(dir, { recursive: true });
  const derpPath = join(dir, 'derp.json');
  writeSwitchboardDerpMap(derpPath);
  const procs: ManagedProcess[] = [];
  let db: ScratchDatabase | null = null;
  const stopAll = async (): Promise<void> => {
    for (const p of [...procs].reverse()) await p.stop();
    await db?.drop().catch(() => undefined);
  };
  try {
    const natsPort = await freePort();
    mkdirSync(join(dir, 'nats'), { recursive: true });
    const nats = startProcess({
      name: 'nats',
      argv: ['nats-server', '-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(dir, 'nats')],
      env: cleanEnv(),
      logFile: join(dir, 'nats.log'),
    });
    procs.push(nats);
    const redisPort = await freePort();
    const redis = startProcess({
      name: 'redis',
      argv: [
        'redis-server',
        '--bind',
        '127.0.0.1',
        '--port',
        String(redisPort),
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      env: cleanEnv(),
      logFile: join(dir, 'redis.log'),
    });
    procs.push(redis);
    await waitUntil('private nats-server', () => tcpOpen(natsPort), { procs: [nats] });
    await waitUntil('private redis-server', () => tcpOpen(redisPort), { procs: [redis] });
    db = await scratchDatabase('sbbench');
    const noiseKeyFile = join(dir, 'noise.key');
    writeFileSync(noiseKeyFile, formatKey('private', generatePrivateKey()) + '\n', { mode: 0o600 });
    const adminSocket = join(dir, 'admin.sock');
    const env = {
      ...commonEnv(o, dir, derpPath),
      DATABASE_URL: db.url,
      NATS_URL: `nats://127.0.0.1:${natsPort}`,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      REDIS_KEY_PREFIX: `bench-${process.pid}:`,
    };
    const start = (name: string, extra: NodeJS.ProcessEnv): ManagedProcess => {
      const p = startProcess({
        name,
        argv: [
          process.execPath,
          '--enable-source-maps',
          ...nodeArgs(),
          SWITCHBOARD_MAIN,
          'service',
          name.replace(/-[ab]$/, ''),
        ],
        env: { ...env, ...extra },
        logFile: join(dir, `${name}.log`),
      });
      procs.push(p);
      return p;
    };
    const services = [
      start('identity', { ADMIN_SOCKET: adminSocket }),
      start('key-registry', {}),
      start('policy-compiler', {}),
    ];
    const urls: string[] = [];
    for (const r of ['a', 'b']) {
      const port = await freePort();
      urls.push(`http://127.0.0.1:${port}`);
      services.push(
        start(`netmap-fanout-${r}`, {
          LISTEN_ADDR: `127.0.0.1:${port}`,
          SERVER_URL: `http://127.0.0.1:${port}`,
          NOISE_KEY_FILE: noiseKeyFile,
          REPLICA_ID: r,
        }),
      );
    }
    await waitReady(urls, adminSocket, services);
    const dbName = db.name;
    const infraProcs = [nats, redis];
    return new SwitchboardTarget(
      'switchboard_services',
      `Switchboard ${switchboardVersion()}, services with 2 fanout replicas (Postgres, NATS, Redis)`,
      switchboardVersion(),
      urls,
      { name: 'switchboard services', pids: () => services.filter((p) => p.running).map((p) => p.pid) },
      {
        name: 'postgres backends + nats + redis',
        pids: () => [
          ...findPids(['postgres: ', ` ${dbName} `]),
          ...infraProcs.filter((p) => p.running).map((p) => p.pid),
        ],
      },
      dir,
      adminSocket,
      o.topology,
      stopAll,
    );
  } catch (err) {
    await stopAll();
    throw err;
  }
}
