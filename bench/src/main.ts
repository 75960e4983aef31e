#!/usr/bin/env node
/**
 * `pnpm bench [--full]`: Switchboard (one process, then as services with two fanout replicas) and
 * Headscale, one after the other on this machine, driven by the same load generator with the same
 * sizes. Prints progress to stderr, then a table to stdout, and writes bench/out/summary.json.
 * See bench/README.md.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem, hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage, openFilesLimit } from './proc-stats.js';
import { buildSummary, renderTable } from './report.js';
import { runTarget, type RunPlan, type RunResult } from './run-target.js';
import { ensureHeadscale, headscaleVersion, startHeadscale } from './servers/headscale.js';
import type { ServerKey, ServerUnderTest, Topology } from './servers/server.js';
import { sizeLabel } from './stats.js';
import {
  SWITCHBOARD_MAIN,
  startSwitchboardOne,
  startSwitchboardServices,
  switchboardVersion,
} from './servers/switchboard.js';

const OUT_DIR = fileURLToPath(new URL('../../out/', import.meta.url));

export interface Options {
  full: boolean;
  servers: ServerKey[];
  sizes: number[] | null;
  topology: Topology | null;
  workers: number | null;
  logLevel: string;
  keep: boolean;
  storms: boolean;
  quietTimeoutS: number | null;
}

const USAGE = `usage: pnpm bench [--full] [--only=switchboard,switchboard_services,headscale]
                  [--nodes=500,1000,10k] [--topology=mesh|hub] [--workers=N] [--log-level=warn]
                  [--keep] [--no-storm] [--quiet-timeout=SECONDS]
  (default)  500 nodes, full mesh, every server: about 5 minutes on 2 cores
  --full     1k nodes full mesh (every server), then 10k nodes with 5 hubs (Switchboard; Headscale
             registration and first map only): about 45 minutes on 2 cores
  --nodes    sizes to run instead (mesh up to 2000 nodes, hub above, unless --topology)
`;

const SERVER_KEYS: readonly ServerKey[] = ['switchboard', 'switchboard_services', 'headscale'];

export function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    full: false,
    servers: [...SERVER_KEYS],
    sizes: null,
    topology: null,
    workers: null,
    logLevel: 'warn',
    keep: false,
    storms: true,
    quietTimeoutS: null,
  };
  for (const a of argv) {
    const [k, v] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, ''];
    switch (k) {
      case '--':
        break;
      case '--full':
        o.full = true;
        break;
      case '--only':
        o.servers = v.split(',').map((s) => s.trim().replace(/-/g, '_')) as ServerKey[];
        for (const s of o.servers) if (!SERVER_KEYS.includes(s)) throw new Error(`unknown server ${s}`);
        break;
      case '--nodes':
        o.sizes = v.split(',').map((x) => Number(x.trim().replace(/k$/, '000')));
        if (o.sizes.some((x) => !Number.isInteger(x) || x < 20)) throw new Error(`bad --nodes ${v}`);
        break;
      case '--topology':
        if (v !== 'mesh' && v !== 'hub') throw new Error(`--topology must be mesh or hub`);
        o.topology = v;
        break;
      case '--workers':
        o.workers = Number(v);
        break;
      case '--log-level':
        o.logLevel = v;
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--no-storm':
        o.storms = false;
        break;
      case '--quiet-timeout':
        o.quietTimeoutS = Number(v);
        if (!(o.quietTimeoutS >= 0)) throw new Error(`bad --quiet-timeout ${v}`);
        break;
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  return o;
}

/** One size of the run: its topology and which servers run which phases. */
export interface Tier {
  readonly nodes: number;
  readonly topology: Topology;
  readonly hubs: number;
  /** Servers that only register and measure the first map at this size (too slow for the rest). */
  readonly firstMapOnly: readonly ServerKey[];
}

export const HUBS = 5;

export function tiersFor(o: Options): Tier[] {
  const tier = (nodes: number, topology: Topology | null, firstMapOnly: ServerKey[] = []): Tier => {
    const t = topology ?? (nodes > 2000 ? 'hub' : 'mesh');
    return { nodes, topology: t, hubs: t === 'hub' ? HUBS : 0, firstMapOnly };
  };
  if (o.sizes) return o.sizes.map((n) => tier(n, o.topology));
  if (o.full) return [tier(1000, o.topology), tier(10_000, o.topology, ['headscale'])];
  return [tier(500, o.topology)];
}

export function planFor(
  t: Tier,
  key: ServerKey,
  workers: number | null,
  storms = true,
  quietTimeoutS: number | null = null,
): RunPlan {
  const big = t.nodes > 2000;
  const small = t.nodes <= 500;
  return {
    nodes: t.nodes,
    topology: t.topology,
    hubs: t.hubs,
    // BENCH_PHASES=first-map: registration and first map only (e.g. to profile them).
    phases: t.firstMapOnly.includes(key) || process.env.BENCH_PHASES === 'first-map' ? 'first-map' : 'all',
    workers: workers ?? Math.min(8, Math.max(2, Math.ceil(t.nodes / 1500))),
    registerConcurrency: 32,
    openConcurrency: 32,
    firstMapRepeats: small ? 3 : 5,
    trials: 3,
    idleWindowMs: big ? 20_000 : small ? 5_000 : 10_000,
    settleMs: big ? 3000 : 1000,
    openTimeoutMs: big ? 300_000 : 120_000,
    registerBudgetMs: big ? 900_000 : 300_000,
    quietTimeoutMs: quietTimeoutS !== null ? quietTimeoutS * 1000 : big ? 120_000 : 30_000,
    propagationTimeoutMs: big ? 60_000 : 20_000,
    stormTimeoutMs: big ? 600_000 : 120_000,
    storms,
  };
}

function stamp(): string {
  const s = process.uptime();
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
}

function log(msg: string): void {
  process.stderr.write(`[bench ${stamp()}] ${msg}\n`);
}

interface MachineInfo {
  hostname: string;
  cpus: number;
  cpu_model: string;
  memory_gb: number;
  kernel: string;
  node: string;
  open_files_limit: number | null;
}

function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    hostname: hostname(),
    cpus: c.length,
    cpu_model: c[0]?.model ?? 'unknown',
    memory_gb: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    open_files_limit: openFilesLimit(),
  };
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const tiers = tiersFor(o);
  const sizes = tiers.map((t) => t.nodes);
  const comparison = Math.min(...sizes);
  const started = new Date();
  if (!existsSync(SWITCHBOARD_MAIN)) {
    log(`${SWITCHBOARD_MAIN} is missing: run "pnpm build" first`);
    return 1;
  }
  const limit = openFilesLimit();
  const need = Math.max(...sizes) + 2000;
  if (limit !== null && limit < need)
    log(`warning: open files limit ${limit} < ${need}; raise it (ulimit -n ${need}) or expect EMFILE`);
  let headscaleBin: string | null = null;
  if (o.servers.includes('headscale')) {
    try {
      headscaleBin = await ensureHeadscale(log);
    } catch (err) {
      log(`headscale unavailable, skipping it: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const machine = { ...machineInfo(), load_before: loadAverage() };
  log(
    `machine: ${machine.cpus} × ${machine.cpu_model}, ${machine.memory_gb} GiB, load ` +
      `${loadAverage().load1.toFixed(2)}; ` +
      `sizes ${tiers.map((t) => `${t.nodes} (${t.topology})`).join(', ')}; servers ${o.servers.join(', ')}`,
  );
  const workDir = mkdtempSync(join(tmpdir(), 'switchboard-bench-'));
  log(`work directory ${workDir}`);
  const runs: RunResult[] = [];
  const starters: Record<ServerKey, (dir: string, topology: Topology) => Promise<ServerUnderTest>> = {
    switchboard: (dir, topology) => startSwitchboardOne({ workDir: dir, logLevel: o.logLevel, topology }),
    switchboard_services: (dir, topology) =>
      startSwitchboardServices({ workDir: dir, logLevel: o.logLevel, topology }),
    headscale: (dir, topology) =>
      startHeadscale({ workDir: dir, logLevel: o.logLevel, binary: headscaleBin!, topology }),
  };
  let failed = false;
  for (const tier of tiers) {
    for (const key of o.servers) {
      if (key === 'headscale' && !headscaleBin) continue;
      const plan = planFor(tier, key, o.workers, o.storms, o.quietTimeoutS);
      const dir = join(workDir, `${key}-${tier.nodes}`);
      mkdirSync(dir, { recursive: true });
      log(
        `=== ${key}, ${tier.nodes} nodes, ${tier.topology}${tier.hubs ? ` (${tier.hubs} hubs)` : ''}, ` +
          `${plan.phases === 'all' ? 'all scenarios' : 'registration and first map'}, ` +
          `${plan.workers} generator processes`,
      );
      try {
        const r = await runTarget(() => starters[key](dir, tier.topology), plan, log);
        runs.push(r);
        if (r.error) failed = true;
        log(`=== ${key}, ${tier.nodes} nodes: done in ${r.durationS.toFixed(0)} s`);
      } catch (err) {
        failed = true;
        const msg = err instanceof Error ? err.message : String(err);
        log(`=== ${key}, ${tier.nodes} nodes: could not run: ${msg}`);
        runs.push({
          server: key,
          label: key,
          version: '',
          nodes: tier.nodes,
          topology: tier.topology,
          metrics: {},
          notes: [],
          durationS: 0,
          error: msg,
        });
      }
    }
  }
  const versions: Record<string, string> = {
    switchboard: switchboardVersion(),
    headscale: headscaleVersion(),
  };
  for (const r of runs)
    if (r.version) versions[r.server === 'headscale' ? 'headscale' : 'switchboard'] = r.version;
  const first = planFor(tiers[0]!, 'switchboard', o.workers);
  const summary = buildSummary(
    runs,
    {
      ...machine,
      load_after: loadAverage(),
      date: started.toISOString(),
      duration_s: Math.round(process.uptime()),
      versions,
      other_load_cores: Object.fromEntries(
        runs.map((r) => [`${r.server}_${r.nodes}`, r.metrics.other_load_cores ?? null]),
      ),
    },
    {
      mode: o.full ? 'full' : o.sizes ? 'custom' : 'small',
      nodes: sizes,
      comparison_nodes: comparison,
      topology: Object.fromEntries(
        tiers.map((t) => [sizeLabel(t.nodes), t.hubs ? `${t.topology} (${t.hubs} hubs)` : t.topology]),
      ),
      first_map_only: Object.fromEntries(tiers.map((t) => [sizeLabel(t.nodes), t.firstMapOnly])),
      registrations: sizes,
      register_concurrency: first.registerConcurrency,
      first_map_peers: sizes.map((s) => s - 1),
      first_map_repeats: tiers.map((t) => planFor(t, 'switchboard', o.workers).firstMapRepeats),
      propagation_trials: first.trials,
      idle_window_s: tiers.map((t) => planFor(t, 'switchboard', o.workers).idleWindowMs / 1000),
      generator_workers: tiers.map((t) => planFor(t, 'switchboard', o.workers).workers),
    },
    comparison,
  );
  mkdirSync(OUT_DIR, { recursive: true });
  const out = join(OUT_DIR, 'summary.json');
  writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
  process.stdout.write('\n' + renderTable(summary, sizes) + '\n');
  for (const r of runs)
    for (const line of [...(r.error ? [`ERROR: ${r.error}`] : []), ...r.notes])
      process.stdout.write(`  ${r.server} ${r.nodes}: ${line}\n`);
  process.stdout.write(`\nwrote ${out} (${Math.round(process.uptime())} s)\n`);
  const crashed = runs.some((r) => r.notes.some((n) => n.includes('server process exited')));
  if (o.keep || failed || crashed) log(`logs kept in ${workDir}`);
  else rmSync(workDir, { recursive: true, force: true });
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
