#!/usr/bin/env node
/**
 * Where registration time goes: the registration bench (same setup, load and figures as
 * `registration-bench.ts`) with key-registry on its own Db whose every statement is timed
 * (`statement-timer.ts`), identity and policy-compiler on a second, also timed, Db; Postgres
 * counters (pg_stat_database xact_commit/blk_write_time, pg_stat_wal) read before and after the
 * measured phase; CPU time of this process, the scratch database's Postgres backends, the WAL writer
 * and nats-server over the phase; event-loop delay. Prints one JSON line; `profile_window_us` is the
 * measured phase on the `--cpu-prof` clock, for `cpuprofile-summary.js --from --to`.
 * `--kr-pg-options='-c synchronous_commit=off'` sets libpq options on key-registry's connections only.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/regprof bench/dist/src/registration/registration-where.js \
 *     [--n=2000] [--concurrency=16] [--bus=nats|inproc] [--kr-pg-options='-c synchronous_commit=off']
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { connectNatsBus, createInProcessBus, type Bus } from '@switchboard/bus';
import { openDb, type Db } from '@switchboard/db';
import { callRpc, identity, keyRegistry, policy, type RegisterInput } from '@switchboard/contracts';
import { IdentityRuntime } from '@switchboard/identity';
import { KeyRegistryRuntime, keyRegistryConfigSchema } from '@switchboard/key-registry';
import { PolicyCompilerRuntime } from '@switchboard/policy-compiler';
import { countingBus, NATS_URL, scratchDatabase, testLogger } from '@switchboard/testing';
import { findPids, processCpuMs } from '../proc-stats.js';
import { timeStatements, TX_BEGIN, TX_COMMIT } from './statement-timer.js';

const POLICY = `{
  "tagOwners": { "tag:bench": ["bench@"] },
  "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ],
  "autoApprovers": { "routes": { "10.0.0.0/8": ["bench@", "tag:bench"] } },
}`;

function arg(name: string, fallback: string): string {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
}

const hex = (): string => randomBytes(32).toString('hex');
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

type Counters = Record<string, number>;

async function pgCounters(db: Db, dbName: string): Promise<Counters> {
  const d = await db.query<Record<string, string | number>>(
    `SELECT xact_commit, xact_rollback, blk_write_time, blks_hit, blks_read, tup_inserted, tup_updated
       FROM pg_stat_database WHERE datname = $1`,
    [dbName],
  );
  const w = await db.query<Record<string, string | number>>(
    'SELECT wal_records, wal_bytes, wal_write, wal_sync, wal_sync_time FROM pg_stat_wal',
  );
  const out: Counters = {};
  for (const [k, v] of Object.entries({ ...d.rows[0], ...w.rows[0] })) out[k] = Number(v);
  return out;
}

function diff(a: Counters, b: Counters): Counters {
  return Object.fromEntries(
    Object.keys(b).map((k) => [k, Math.round(((b[k] ?? 0) - (a[k] ?? 0)) * 100) / 100]),
  );
}

/** [on-CPU ms, runqueue-wait ms] of the given threads, from /proc/<pid>/task/<tid>/schedstat. */
function schedstat(pid: number, mainOnly: boolean): [number, number] {
  let run = 0;
  let wait = 0;
  let tids: string[] = [];
  try {
    tids = mainOnly ? [String(pid)] : readdirSync(`/proc/${pid}/task`);
  } catch {
    return [0, 0];
  }
  for (const tid of tids) {
    try {
      const [a, b] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ');
      run += Number(a) / 1e6;
      wait += Number(b) / 1e6;
    } catch {
      // gone
    }
  }
  return [run, wait];
}

interface CpuGroups {
  node_main_thread_oncpu: number;
  node_main_thread_runqueue_wait: number;
  pg_backends_runqueue_wait: number;
  node: number;
  node_user: number;
  node_system: number;
  pg_backends: number;
  pg_walwriter: number;
  nats_server: number;
}

function cpuNow(dbName: string): CpuGroups {
  const u = process.cpuUsage();
  const sum = (pids: number[]): number => pids.reduce((s, p) => s + processCpuMs(p), 0);
  const main = schedstat(process.pid, true);
  const pgWait = findPids(['postgres:', ` ${dbName} `]).reduce((w, p) => w + schedstat(p, false)[1], 0);
  return {
    node_main_thread_oncpu: main[0],
    node_main_thread_runqueue_wait: main[1],
    pg_backends_runqueue_wait: pgWait,
    node: (u.user + u.system) / 1000,
    node_user: u.user / 1000,
    node_system: u.system / 1000,
    pg_backends: sum(findPids(['postgres:', ` ${dbName} `])),
    pg_walwriter: sum(findPids(['postgres:', 'walwriter'])),
    nats_server: sum(findPids(['nats-server'])),
  };
}

async function main(): Promise<void> {
  const n = Number(arg('n', '2000'));
  const concurrency = Number(arg('concurrency', '16'));
  const busKind = arg('bus', 'nats');
  const krOptions = arg('kr-pg-options', '');
  const logger = testLogger('registration-where');
  const scratch = await scratchDatabase('sbbench');
  const others = timeStatements(await openDb({ url: scratch.url, logger }));
  const krUrl = new URL(scratch.url);
  if (krOptions !== '') krUrl.searchParams.set('options', krOptions);
  const krInner = await openDb({ url: krUrl.toString(), logger });
  const kr$ = timeStatements(krInner);
  const raw: Bus =
    busKind === 'nats'
      ? await connectNatsBus({ servers: NATS_URL, name: 'registration-where', logger })
      : createInProcessBus({ logger });
  const bus = countingBus(raw);
  const ids = new IdentityRuntime({ db: others.db, bus, logger });
  const pol = new PolicyCompilerRuntime({ db: others.db, bus, logger });
  const kr = new KeyRegistryRuntime({ db: kr$.db, bus, logger, config: keyRegistryConfigSchema.parse({}) });
  try {
    await ids.start();
    await pol.start();
    await kr.start();
    const { user } = await callRpc(bus, identity.CreateUser, { name: 'bench' });
    await callRpc(bus, policy.SetPolicy, { text: POLICY, author: 'bench' });
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const mk = async (tags: string[]) =>
      (
        await callRpc(bus, keyRegistry.CreatePreAuthKey, {
          userId: user.id,
          reusable: true,
          ephemeral: false,
          tags,
          expiresAt,
        })
      ).key;
    const userKey = await mk([]);
    const tagKey = await mk(['tag:bench']);
    const input = (i: number): RegisterInput => ({
      machineKey: `mkey:${hex()}`,
      nodeKey: `nodekey:${hex()}`,
      oldNodeKey: null,
      authKey: i % 2 === 0 ? userKey : tagKey,
      expiry: null,
      followup: '',
      capVersion: 130,
      ephemeral: false,
      hostinfo: {
        Hostname: `bench-${i}`,
        OS: 'linux',
        RoutableIPs: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
      },
    });
    for (let i = 0; i < 50; i++) await callRpc(bus, keyRegistry.Register, input(1_000_000 + i));
    const syncCommit = (await krInner.query<{ synchronous_commit: string }>('SHOW synchronous_commit'))
      .rows[0]?.synchronous_commit;
    const pgBefore = await pgCounters(krInner, scratch.name);
    const cpuBefore = cpuNow(scratch.name);
    bus.counts.clear();
    kr$.reset();
    others.reset();
    const eld = monitorEventLoopDelay({ resolution: 5 });
    eld.enable();
    const lat: number[] = [];
    let next = 0;
    let unapproved = 0;
    const w0 = nowUs();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          const i = next++;
          const s = performance.now();
          const r = await callRpc(bus, keyRegistry.Register, input(i), { timeoutMs: 60_000 });
          lat.push(performance.now() - s);
          if (r.kind !== 'ok') throw new Error(`registration ${i} failed: ${JSON.stringify(r)}`);
          if (r.node.approvedRoutes.length !== 1) unapproved++;
        }
      }),
    );
    const wallMs = performance.now() - t0;
    const w1 = nowUs();
    eld.disable();
    const cpuAfter = cpuNow(scratch.name);
    const pgAfter = await pgCounters(krInner, scratch.name);
    const statements = kr$.report();
    const sqlCount = statements
      .filter((s) => s.statement !== TX_BEGIN && s.statement !== TX_COMMIT)
      .reduce((s, x) => s + x.count, 0);
    lat.sort((a, b) => a - b);
    const q = (p: number): number => Math.round((lat[Math.floor(p * (lat.length - 1))] ?? 0) * 10) / 10;
    const cpu = Object.fromEntries(
      (Object.keys(cpuAfter) as (keyof CpuGroups)[]).map((k) => {
        const ms = cpuAfter[k] - cpuBefore[k];
        return [k, { ms: Math.round(ms), cores: Math.round((ms / wallMs) * 100) / 100 }];
      }),
    );
    process.stdout.write(
      JSON.stringify({
        bus: busKind,
        kr_pg_options: krOptions,
        synchronous_commit: syncCommit,
        registrations: n,
        concurrency,
        register_per_s: Math.round(n / (wallMs / 1000)),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        unapproved,
        wall_ms: Math.round(wallMs),
        cpu_over_phase: cpu,
        event_loop_delay_ms: {
          mean: Math.round(eld.mean / 1e4) / 100,
          p99: Math.round(eld.percentile(99) / 1e4) / 100,
          max: Math.round(eld.max / 1e4) / 100,
        },
        kr_transactions: kr$.transactions(),
        kr_statements_per_registration: Math.round((sqlCount / n) * 100) / 100,
        kr_statements: statements,
        other_services_statements: others.report(),
        pg: diff(pgBefore, pgAfter),
        profile_window_us: [w0, w1],
        rpcs: Object.fromEntries(bus.counts),
        loadavg: (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100),
      }) + '\n',
    );
  } finally {
    await kr.stop();
    await pol.stop();
    await ids.stop();
    await raw.close();
    await others.db.close();
    await krInner.close();
    await scratch.drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
