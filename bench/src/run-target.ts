/**
 * The scenarios, in order, against one server at one size N (a fresh server each time):
 * 1. registration: N nodes dial, register with the reusable pre-auth key and hang up, a fixed number
 *    in flight; throughput, request latency, server CPU per registration;
 * 2. first full map: a few registered nodes (no streams open) each request their map stream; time to
 *    the first frame and the server CPU it took (N-1 peers);
 * 3. streams: all N nodes dial and open their map streams; then idle: server memory per stream (RSS
 *    after minus RSS before, over N) and idle CPU;
 * 4. propagation, `trials` times each: a join (a new node registers, then streams), an endpoint change
 *    (a lite map update), a deletion (of the node that joined, through the admin API): for every other
 *    stream, the time from the change to the first frame that carries it;
 * 5. reconnect storms: every stream ends at once and all nodes reconnect; time until all have their
 *    map again. First with clients that close politely, then with connections cut abruptly.
 * Server CPU is read from /proc around each phase; the generator's own CPU and memory are reported
 * too, and the machine's CPU used by anything else.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CURRENT_CAPVER, fetchServerKey, formatKey } from '@switchboard/protocol';
import { now, sleep } from './clock.js';
import { Fleet, type MergedCollect } from './fleet/fleet.js';
import type { Marker } from './fleet/worker-protocol.js';
import { cpuBetween, groupRssKb, machineCpuMs, measureCpu, readCpu } from './proc-stats.js';
import type { ServerUnderTest, Topology } from './servers/server.js';
import { median, summarize, type Summary } from './stats.js';

export interface RunPlan {
  /** Streaming nodes, hubs included. */
  readonly nodes: number;
  readonly topology: Topology;
  /** Hubs among the nodes (hub topology; at least firstMapRepeats). */
  readonly hubs: number;
  /** 'all' scenarios, or only registration and the first map (for a server too slow for the rest). */
  readonly phases: 'all' | 'first-map';
  readonly workers: number;
  readonly registerConcurrency: number;
  readonly openConcurrency: number;
  readonly firstMapRepeats: number;
  readonly trials: number;
  readonly idleWindowMs: number;
  /** Quiet time between phases so one phase's tail does not leak into the next. */
  readonly settleMs: number;
  readonly openTimeoutMs: number;
  /** Registration stops starting new nodes after this long. */
  readonly registerBudgetMs: number;
  /** How long to wait for the server to go quiet after the streams opened. */
  readonly quietTimeoutMs: number;
  readonly propagationTimeoutMs: number;
  readonly stormTimeoutMs: number;
  /** Skip the reconnect storms (for profiling the other scenarios). */
  readonly storms: boolean;
}

export type Metrics = Record<string, number | null>;

export interface RunResult {
  readonly server: string;
  readonly label: string;
  readonly version: string;
  readonly nodes: number;
  readonly topology: Topology;
  readonly metrics: Metrics;
  readonly notes: string[];
  readonly durationS: number;
  readonly error: string | null;
}

type Log = (msg: string) => void;

function put(
  m: Metrics,
  prefix: string,
  s: Summary,
  fields: (keyof Summary)[] = ['p50', 'p99', 'max'],
): void {
  for (const f of fields) m[`${prefix}_${f}_ms`] = s.count > 0 ? s[f] : null;
}

/**
 * Waits until the server uses less than 10% of a core for two consecutive seconds, or `maxMs`.
 * Returns how long that took and whether it got quiet.
 */
async function waitQuiet(server: ServerUnderTest, maxMs: number): Promise<{ ms: number; quiet: boolean }> {
  const t0 = Date.now();
  let calm = 0;
  while (Date.now() - t0 < maxMs) {
    const r = await measureCpu(server.group, () => sleep(1000));
    calm = r.cpuMs < 0.1 * r.wallMs ? calm + 1 : 0;
    if (calm >= 2) return { ms: Date.now() - t0, quiet: true };
  }
  return { ms: Date.now() - t0, quiet: false };
}

/** The first error line of a crashed process's log and the stack frames under it, on one line. */
function crashExcerpt(dir: string): string {
  const out: string[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.log'))) {
    const lines = readFileSync(join(dir, f), 'utf8').split('\n').slice(-80);
    const i = lines.findIndex(
      (l) => /^(\w*Error|node:internal)|ERR_|uncaught/i.test(l) && !l.startsWith('{'),
    );
    if (i < 0) continue;
    const err = lines.slice(i).find((l) => /Error/.test(l)) ?? lines[i]!;
    const frames = lines
      .slice(i)
      .filter((l) => /^\s+at /.test(l))
      .slice(0, 12)
      .map((l) => l.trim().replace(/^at /, ''));
    out.push(`${f}: ${err.trim()} | ${frames.join(' < ')}`);
  }
  return out.join(' || ') || 'no error in its log';
}

/** Calls `onDeath` once if a server process disappears while watched. */
function watchServer(server: ServerUnderTest, onDeath: () => void): { stop(): void } {
  const want = server.group.pids().length;
  const t = setInterval(() => {
    readCpu(server.group); // keeps the last CPU reading of a process that may die
    if (server.group.pids().length < want) {
      clearInterval(t);
      onDeath();
    }
  }, 250);
  return { stop: () => clearInterval(t) };
}

/**
 * The lowest RSS (KiB) seen over `ms`, sampled every 250 ms: a garbage-collected runtime's RSS
 * swings with collection; its low points are the memory actually held.
 */
async function lowRss(server: ServerUnderTest, ms: number): Promise<number> {
  let low = groupRssKb(server.group);
  for (let t = 0; t < ms; t += 250) {
    await sleep(250);
    low = Math.min(low, groupRssKb(server.group));
  }
  return low;
}

/** Polls the fleet until every stream saw the change (or the timeout), then collects for good. */
async function waitPropagation(
  fleet: Fleet,
  since: number,
  exclude: readonly number[],
  timeoutMs: number,
): Promise<MergedCollect & { timedOut: boolean }> {
  const deadline = since + timeoutMs;
  let wait = 300;
  for (;;) {
    await sleep(wait);
    wait = Math.min(1000, wait * 2);
    const r = await fleet.collect(since, exclude, false);
    if (r.missing === 0 || now() > deadline) {
      const f = await fleet.collect(since, exclude, true);
      return { ...f, timedOut: f.missing > 0 };
    }
  }
}

/** What every phase works with: the server, the fleet driving it, the plan, and where results go. */
interface Phase {
  readonly server: ServerUnderTest;
  readonly fleet: Fleet;
  readonly plan: RunPlan;
  readonly m: Metrics;
  readonly log: Log;
  readonly note: (s: string) => void;
  /** Streaming nodes: plan.nodes. */
  readonly n: number;
  /** Hubs in the fleet (0 outside the hub topology). */
  readonly hubs: number;
  /** Every streaming node's index. */
  readonly all: number[];
}

export async function runTarget(
  start: () => Promise<ServerUnderTest>,
  plan: RunPlan,
  log: Log,
): Promise<RunResult> {
  const began = Date.now();
  const machineA = machineCpuMs();
  const selfA = process.cpuUsage();
  const server = await start();
  const m: Metrics = {};
  const notes: string[] = [];
  let fleet: Fleet | null = null;
  let error: string | null = null;
  const n = plan.nodes;
  const serverCpuA = readCpu(server.group);
  const infraCpuA = server.infra ? readCpu(server.infra) : null;
  let genCpuMs = 0;
  const note = (s: string): void => {
    notes.push(s);
    log(`  note: ${s}`);
  };
  try {
    log(`${server.label}: ${server.urls.join(' ')} (logs in ${server.logDir})`);
    const keys = await server.authKeys();
    const hubs = plan.topology === 'hub' ? plan.hubs : 0;
    if (plan.topology === 'hub' && (keys.hub === null || hubs < plan.firstMapRepeats))
      throw new Error('the hub topology needs a tagged key and at least firstMapRepeats hubs');
    const serverPublic = formatKey('machine', (await fetchServerKey(server.urls[0]!)).publicKey);
    fleet = await Fleet.start({
      workers: plan.workers,
      urls: server.urls,
      serverPublic,
      capVersion: CURRENT_CAPVER,
      authKey: keys.plain,
      hubAuthKey: keys.hub,
      hubs,
      nodes: n,
      joiners: plan.trials,
    });
    m.generator_workers = fleet.workerCount;
    m.clock_uncertainty_ms = fleet.clockUncertaintyMs;
    const phase: Phase = { server, fleet, plan, m, log, note, n, hubs, all: Fleet.range(0, n) };

    const ok = await registrationPhase(phase);
    await firstMapPhase(phase, ok);
    if (plan.phases === 'first-map') log('  (registration and first map only for this server at this size)');
    else {
      await streamsPhase(phase);
      await propagationPhase(phase);
      await stormPhase(phase);
    }
    const ge = await fleet.stats();
    genCpuMs = ge.cpuMs;
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    log(`  ERROR: ${error}`);
    if (fleet) genCpuMs = (await fleet.stats().catch(() => null))?.cpuMs ?? 0;
  } finally {
    const serverCpu = cpuBetween(serverCpuA, readCpu(server.group));
    m.server_cpu_s = serverCpu / 1000;
    if (infraCpuA && server.infra) m.infra_cpu_s = cpuBetween(infraCpuA, readCpu(server.infra)) / 1000;
    await fleet?.closeAll();
    await fleet?.stop();
    await server.stop();
    const wall = Date.now() - began;
    const machineB = machineCpuMs();
    const selfB = process.cpuUsage(selfA);
    const ours = serverCpu + (m.infra_cpu_s ?? 0) * 1000 + genCpuMs + (selfB.user + selfB.system) / 1000;
    m.generator_cpu_s = genCpuMs / 1000;
    // Everything else on the machine (other users' work), in cores, averaged over the run.
    m.other_load_cores = Math.max(0, (machineB.busy - machineA.busy - ours) / wall);
  }
  return {
    server: server.key,
    label: server.label,
    version: server.version,
    nodes: n,
    topology: plan.topology,
    metrics: m,
    notes,
    durationS: (Date.now() - began) / 1000,
    error,
  };
}

/** 1. Registration of every node, a fixed number in flight. Returns how many registered. */
async function registrationPhase({ server, fleet, plan, m, log, note, n, all }: Phase): Promise<number> {
  log(`registering ${n} nodes, ${plan.registerConcurrency} in flight`);
  const reg = await measureCpu(server.group, () =>
    fleet.register(all, plan.registerConcurrency, plan.registerBudgetMs),
  );
  const ok = reg.value.registerMs.length;
  const rs = summarize(reg.value.registerMs);
  m.register_per_s = ok / (reg.value.wallMs / 1000);
  m.register_p50_ms = rs.p50;
  m.register_p99_ms = rs.p99;
  m.register_max_ms = rs.max;
  m.connect_p99_ms = summarize(reg.value.connectMs).p99;
  m.register_cpu_ms = ok > 0 ? reg.cpuMs / ok : null;
  m.register_errors = reg.value.errors;
  log(
    `  ${ok} registered in ${(reg.value.wallMs / 1000).toFixed(1)} s: ${m.register_per_s.toFixed(0)}/s, ` +
      `p50 ${rs.p50.toFixed(1)} ms, p99 ${rs.p99.toFixed(1)} ms, server CPU ${m.register_cpu_ms?.toFixed(2)} ms each`,
  );
  if (reg.value.errors > 0)
    note(`${reg.value.errors} registrations failed, e.g. ${reg.value.firstErrors.slice(0, 2).join('; ')}`);
  if (ok === 0) throw new Error('no node could register');
  m.registered = ok;
  const complete = reg.value.skipped === 0;
  if (!complete)
    note(
      `registration budget of ${plan.registerBudgetMs / 1000} s ran out: ${ok} of ${n} nodes registered ` +
        `(${reg.value.skipped} not attempted); later figures are at ${ok} nodes, so the size-labelled ` +
        `summary leaves them out`,
    );
  return ok;
}

/** 2. First full map: a few registered nodes each request their map stream, one at a time. */
async function firstMapPhase(
  { server, fleet, plan, m, log, note, n, hubs }: Phase,
  ok: number,
): Promise<void> {
  await sleep(plan.settleMs);
  const times: number[] = [];
  const cpus: number[] = [];
  let peers = 0;
  let frameKb = 0;
  for (let k = 0; k < plan.firstMapRepeats; k++) {
    // In the hub topology only hubs see everyone.
    const idx = hubs > 0 ? k : Math.floor(((k + 0.5) * n) / plan.firstMapRepeats);
    await fleet.prepare(idx);
    await sleep(300);
    const w0 = process.hrtime.bigint() / 1000n;
    const r = await measureCpu(server.group, () => fleet.firstMap(idx, plan.openTimeoutMs));
    // The window on the `--cpu-prof` clock (BENCH_SWITCHBOARD_NODE_OPTIONS), for cpuprofile-summary --from/--to.
    if (process.env.BENCH_PROFILE_WINDOWS)
      log(`  first map ${k}: profile window ${w0}..${process.hrtime.bigint() / 1000n} us`);
    await fleet.close(idx);
    times.push(r.value.ms);
    cpus.push(r.cpuMs);
    peers = r.value.peers;
    frameKb = r.value.frameBytes / 1024;
  }
  m.first_map_ms = median(times);
  m.first_map_cpu_ms = median(cpus);
  m.first_map_peers = peers;
  m.first_map_frame_kb = frameKb;
  log(
    `  first map with ${peers} peers (${frameKb.toFixed(0)} KiB on the wire): median ${m.first_map_ms.toFixed(1)} ms, ` +
      `server CPU ${m.first_map_cpu_ms.toFixed(1)} ms (runs: ${times.map((t) => t.toFixed(0)).join(', ')} ms)`,
  );
  if (peers !== ok - 1) note(`first map had ${peers} peers, expected ${ok - 1}`);
}

/** 3. Streams: every node opens its map stream; then idle: memory per stream and idle CPU. */
async function streamsPhase({ server, fleet, plan, m, log, note, n, all }: Phase): Promise<void> {
  const rssBefore = await lowRss(server, Math.max(plan.settleMs, 2000));
  log(`opening ${n} map streams, ${plan.openConcurrency} at a time`);
  const genOpen = (await fleet.stats()).cpuMs;
  const open = await measureCpu(server.group, () =>
    fleet.openStreams(all, plan.openConcurrency, plan.openTimeoutMs),
  );
  m.generator_open_cpu_s = ((await fleet.stats()).cpuMs - genOpen) / 1000;
  const os = summarize(open.value.openMs);
  m.streams_open_s = open.value.wallMs / 1000;
  m.stream_open_p99_ms = os.p99;
  m.streams_open_cpu_s = open.cpuMs / 1000;
  m.stream_errors = open.value.errors;
  log(
    `  ${os.count} streams open in ${m.streams_open_s.toFixed(1)} s (p99 ${os.p99.toFixed(0)} ms each), ` +
      `server CPU ${m.streams_open_cpu_s.toFixed(1)} s, generator CPU ${m.generator_open_cpu_s.toFixed(1)} s`,
  );
  if (open.value.errors > 0)
    note(
      `${open.value.errors} streams failed to open, e.g. ${open.value.firstErrors.slice(0, 2).join('; ')}`,
    );
  // Let the server finish the work the opening caused (presence updates, batches) before idling.
  const settled = await waitQuiet(server, plan.quietTimeoutMs);
  m.settle_after_open_s = settled.ms / 1000;
  log(
    `  server quiet ${settled.quiet ? 'after' : 'NOT quiet after'} ${(settled.ms / 1000).toFixed(1)} s ` +
      `(below 10% of a core for 2 s)`,
  );
  if (!settled.quiet)
    note(`the server was still busy ${plan.quietTimeoutMs / 1000} s after the streams opened`);
  const counted = await server.streamCount().catch(() => null);
  if (counted !== null) {
    m.server_streams = counted;
    if (counted !== os.count) note(`the server counts ${counted} streams, the generator ${os.count}`);
  }
  let rssAfter = 0;
  const idle = await measureCpu(server.group, async () => {
    rssAfter = await lowRss(server, plan.idleWindowMs);
  });
  m.idle_cpu_pct = (idle.cpuMs / idle.wallMs) * 100;
  m.server_rss_mb = rssAfter / 1024;
  m.stream_idle_kb = os.count > 0 ? (rssAfter - rssBefore) / os.count : null;
  const gs = await fleet.stats();
  m.generator_kb_per_node = gs.openStreams > 0 ? gs.rssKb / gs.openStreams : null;
  m.generator_rss_mb = gs.rssKb / 1024;
  if (gs.streamsLost > 0)
    note(`${gs.streamsLost} streams were closed by the server before the idle phase ended`);
  log(
    `  idle with ${gs.openStreams} streams: server RSS ${(rssBefore / 1024).toFixed(0)} → ${(rssAfter / 1024).toFixed(0)} MiB ` +
      `(${m.stream_idle_kb?.toFixed(1)} KiB per stream), CPU ${m.idle_cpu_pct.toFixed(1)}% of a core; ` +
      `generator ${m.generator_kb_per_node?.toFixed(0)} KiB per node`,
  );
}

type ChangeKind = 'join' | 'endpoint' | 'delete';

/** 4. Propagation, `trials` times: a join, an endpoint change, a deletion; latency to every other stream. */
async function propagationPhase({ server, fleet, plan, m, log, note, n, hubs }: Phase): Promise<void> {
  const lat: Record<ChangeKind, number[]> = { join: [], endpoint: [], delete: [] };
  const missing: Record<ChangeKind, number> = { join: 0, endpoint: 0, delete: 0 };
  const measure = async (
    kind: ChangeKind,
    marker: Marker,
    idOfKey: string | undefined,
    act: () => Promise<number>,
    exclude: number[],
  ): Promise<MergedCollect> => {
    await fleet.record(marker, idOfKey);
    const t0 = await act();
    const r = await waitPropagation(fleet, t0, exclude, plan.propagationTimeoutMs);
    lat[kind].push(...r.latenciesMs);
    missing[kind] += r.missing;
    const s = summarize(r.latenciesMs);
    log(
      `  ${kind}: ${s.count} streams, first ${s.min.toFixed(1)} ms, p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, last ${s.max.toFixed(1)} ms` +
        (r.missing > 0 ? `, ${r.missing} never saw it (e.g. nodes ${r.missingSample.join(', ')})` : ''),
    );
    await sleep(plan.settleMs);
    return r;
  };
  for (let t = 0; t < plan.trials; t++) {
    log(`propagation trial ${t + 1}/${plan.trials}`);
    const joiner = n + t;
    const key = await fleet.nodeKey(joiner);
    const j = await measure(
      'join',
      { kind: 'contains', text: key },
      key,
      async () => (await fleet.join(joiner, plan.openTimeoutMs)).t0,
      [joiner],
    );
    const mover = hubs > 0 ? t % hubs : Math.floor(((t + 0.37) * n) / plan.trials) % n;
    const endpoint = `127.0.0.2:${20001 + t}`;
    await measure(
      'endpoint',
      { kind: 'contains', text: `"${endpoint}"` },
      undefined,
      async () => (await fleet.endpoint(mover, endpoint)).t0,
      [mover],
    );
    if (j.id === null) {
      note(`trial ${t + 1}: the joined node's ID was not seen, so it cannot be deleted`);
      continue;
    }
    const id = j.id;
    await measure(
      'delete',
      { kind: 'removed', id },
      undefined,
      async () => {
        const t0 = now();
        await server.deleteNode(id);
        return t0;
      },
      [joiner],
    );
    // The deleted node hangs up (a server may keep its stream open; it would only get 404s later).
    await fleet.close(joiner);
  }
  for (const kind of ['join', 'endpoint', 'delete'] as const) {
    put(m, `${kind}_propagation`, summarize(lat[kind]), ['min', 'p50', 'p99', 'max']);
    m[`${kind}_missing`] = missing[kind];
    if (missing[kind] > 0)
      note(`${kind}: ${missing[kind]} stream deliveries never arrived within the timeout`);
  }
}

/**
 * 5. Reconnect storms: first polite (every client closes and reconnects), then abrupt (every
 * connection is cut), last because a server that does not survive it ends the run.
 */
async function stormPhase({ server, fleet, plan, m, log, note }: Phase): Promise<void> {
  for (const mode of plan.storms ? (['graceful', 'abrupt'] as const) : []) {
    await sleep(plan.settleMs);
    const before = await fleet.stats();
    log(`reconnect storm (${mode}): all ${before.openStreams} streams end and reconnect at once`);
    const genStorm = before.cpuMs;
    const want = server.group.pids().length;
    const watch = watchServer(server, () => void fleet.abort());
    const storm = await measureCpu(server.group, () => fleet.storm(mode, plan.stormTimeoutMs));
    watch.stop();
    const genAfter = (await fleet.stats().catch(() => null))?.cpuMs ?? genStorm;
    m[`generator_${mode}_storm_cpu_s`] = (genAfter - genStorm) / 1000;
    const ss = summarize(storm.value.mapMs);
    const p = mode === 'graceful' ? 'reconnect' : 'reconnect_abrupt';
    m[`${p}_storm_s`] = storm.value.failed === 0 && ss.count > 0 ? ss.max / 1000 : null;
    m[`${p}_p50_ms`] = ss.p50;
    m[`${p}_p99_ms`] = ss.p99;
    m[`${p}_failed`] = storm.value.failed;
    m[`${p}_retries`] = storm.value.retries;
    m[`${p === 'reconnect' ? 'storm' : 'storm_abrupt'}_cpu_s`] = storm.cpuMs / 1000;
    const alive = server.group.pids().length >= want;
    log(
      `  ${ss.count} back in ${(ss.max / 1000).toFixed(2)} s (p50 ${ss.p50.toFixed(0)} ms, p99 ${ss.p99.toFixed(0)} ms), ` +
        `${storm.value.retries} retries, ${storm.value.failed} failed, server CPU ${(storm.cpuMs / 1000).toFixed(1)} s` +
        (alive ? '' : ', SERVER PROCESS GONE'),
    );
    if (!alive)
      note(
        `reconnect storm (${mode}): a server process exited (logs kept in ${server.logDir}): ` +
          crashExcerpt(server.logDir),
      );
    if (storm.value.failed > 0)
      note(
        `reconnect storm (${mode}): ${storm.value.failed} nodes had no map after ${plan.stormTimeoutMs / 1000} s, ` +
          `e.g. ${storm.value.firstErrors.slice(0, 2).join('; ')}`,
      );
    else if (storm.value.retries > 0)
      note(
        `reconnect storm (${mode}): ${storm.value.retries} retries, e.g. ${storm.value.firstErrors.slice(0, 2).join('; ')}`,
      );
    if (!alive) break;
  }
}
