/**
 * The `Harness`: owns one run's private network (bridge + a namespace per node), the proxy trap,
 * the local DERP/STUN server, every process started for the run, and a run directory of logs
 * (`$TMPDIR/switchboard-harness/<runId>/`). `cleanup()` stops and deletes all of it, and keeps the
 * run directory (printing its path) when the run failed. A run that crashed before cleaning up is
 * swept by the next `Harness.create()`: names carry the run id, and the run directory records the
 * owning pid, so only runs whose owner is gone are touched.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientBinaries, derperBinary } from './binaries.js';
import { freeTcpPort, startDerper, writeDerpMapFile, type DerpMap, type DerpServer } from './derp.js';
import { assertNoForeignTrafficIn, type GuardTarget, type TrafficReport } from './guard.js';
import { launchNode, type StartNodeOptions, type TailscaleNode } from './node.js';
import { startProcess, type ManagedProcess } from './process.js';
import {
  Topology,
  deleteLink,
  deleteNetns,
  killPids,
  listLinks,
  listNetnsWithEtc,
  netnsEtcDir,
  newRunId,
  pidsWithArg,
  processAlive,
  processStartTime,
  runIdOf,
} from './topology.js';
import { ProxyTrap } from './trap.js';

/** Where run directories live. */
export function harnessRoot(): string {
  return join(process.env.SWITCHBOARD_HARNESS_DIR ?? tmpdir(), 'switchboard-harness');
}

export interface HarnessOptions {
  /** Default: a fresh random id. */
  readonly runId?: string;
  /** Start the local DERP/STUN server (default true). */
  readonly derp?: boolean;
  /** Keep the run directory even after a successful run (also: SWITCHBOARD_HARNESS_KEEP=1). */
  readonly keep?: boolean;
  /** Sweep leftovers of dead runs first (default true). */
  readonly sweep?: boolean;
  /** Progress and warnings; default: stderr with a "[harness <runId>]" prefix. */
  readonly log?: (msg: string) => void;
}

interface OwnerRecord {
  readonly pid: number;
  readonly startTime: string | undefined;
  readonly createdAt: string;
}

const live = new Set<Harness>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const h of live) h.emergencyCleanup();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const h of live) h.emergencyCleanup();
      process.kill(process.pid, sig);
    });
  }
}

export class Harness {
  /** Default `--login-server` for `startNode`; set it once the control server listens. */
  controlUrl: string | undefined;
  private readonly procs: ManagedProcess[] = [];
  private readonly nodeList: TailscaleNode[] = [];
  private failureReasons: string[] = [];
  private cleanedUp = false;

  private constructor(
    readonly runId: string,
    readonly runDir: string,
    readonly topology: Topology,
    readonly trap: ProxyTrap,
    private readonly keep: boolean,
    readonly log: (msg: string) => void,
    /** The local DERP/STUN server, unless created with `derp: false`. */
    public derp: DerpServer | undefined = undefined,
  ) {}

  /** Sweeps dead runs, then creates the bridge, the proxy trap and (by default) derper. */
  static async create(opts: HarnessOptions = {}): Promise<Harness> {
    if (process.getuid?.() !== 0) throw new Error('the real-client harness needs root (ip netns, TUN)');
    const runId = opts.runId ?? newRunId();
    const log = opts.log ?? ((msg: string) => process.stderr.write(`[harness ${runId}] ${msg}\n`));
    if (opts.sweep ?? true) await sweepLeftovers(log);
    const runDir = join(harnessRoot(), runId);
    mkdirSync(runDir, { recursive: true });
    const owner: OwnerRecord = {
      pid: process.pid,
      startTime: processStartTime(process.pid),
      createdAt: new Date().toISOString(),
    };
    writeFileSync(join(runDir, 'owner.json'), JSON.stringify(owner));
    installExitHooks();
    const topology = await Topology.create(runId);
    let trap: ProxyTrap | undefined;
    let h: Harness | undefined;
    try {
      trap = await ProxyTrap.start(topology.bridgeIp, log);
      h = new Harness(
        runId,
        runDir,
        topology,
        trap,
        opts.keep ?? process.env.SWITCHBOARD_HARNESS_KEEP === '1',
        log,
      );
      live.add(h);
      if (opts.derp ?? true) {
        const derp = await startDerper({
          binary: derperBinary(),
          host: topology.bridgeIp,
          dir: runDir,
          env: h.processEnv(),
        });
        h.track(derp.process);
        h.derp = derp;
      }
      log(`run dir ${runDir}; bridge ${topology.bridge} ${topology.bridgeIp}/24`);
      return h;
    } catch (err) {
      if (h) await h.cleanup({ failed: true });
      else {
        await trap?.close();
        await topology.destroy();
      }
      throw err;
    }
  }

  /** The bridge address: listen here (or on 0.0.0.0) so the namespaces can reach you. */
  get bridgeIp(): string {
    return this.topology.bridgeIp;
  }

  /** The run's subnet, e.g. '10.213.57.0/24'. */
  get subnet(): string {
    return this.topology.subnet;
  }

  /** `http://<bridge ip>:<port>`: a private IP literal, so clients ≥ 1.80 never try HTTPS. */
  urlFor(port: number): string {
    return `http://${this.bridgeIp}:${port}`;
  }

  /** A TCP port free on the bridge address. */
  freePort(): Promise<number> {
    return freeTcpPort(this.bridgeIp);
  }

  /** The DERP map for the local derper (tailcfg JSON shape). */
  derpMap(): DerpMap {
    if (!this.derp) throw new Error('this harness was created without derp');
    return this.derp.map;
  }

  /** Writes the DERP map as tailcfg JSON (default `<runDir>/derp-map.json`); returns the path. */
  async writeDerpMap(path = join(this.runDir, 'derp-map.json')): Promise<string> {
    return writeDerpMapFile(path, this.derpMap());
  }

  /**
   * Environment for any process of the run: PATH, plus HTTP(S)_PROXY pointing at the trap with
   * NO_PROXY for loopback and our subnet, so stray outbound HTTP is refused and recorded.
   */
  processEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
    const noProxy = `${this.bridgeIp},${this.subnet},127.0.0.1,localhost,::1`;
    return {
      PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HTTP_PROXY: this.trap.url,
      HTTPS_PROXY: this.trap.url,
      http_proxy: this.trap.url,
      https_proxy: this.trap.url,
      NO_PROXY: noProxy,
      no_proxy: noProxy,
      ...extra,
    };
  }

  /**
   * Environment every tailscaled gets (see docs/control-protocol-transport.md §9.2). Plain-HTTP
   * DERP only for the harness's own derper; with `derp: false` clients use the server's relay over
   * TLS with no DERP debug variables, as stock clients do.
   */
  tailscaledEnv(): NodeJS.ProcessEnv {
    return this.processEnv({
      TS_NO_LOGS_NO_SUPPORT: 'true',
      ...(this.derp ? { TS_DEBUG_USE_DERP_HTTP: '1' } : {}),
      TS_DISABLE_PORTMAPPER: '1',
      TS_DISABLE_UPNP: '1',
      TS_ASSUME_NETWORK_UP_FOR_TEST: '1',
      TS_PANIC_IF_HIT_MAIN_CONTROL: '1',
    });
  }

  /** Registers a process so cleanup stops it (processes started through the harness are). */
  track(p: ManagedProcess): void {
    this.procs.push(p);
  }

  /**
   * Starts a tracked process of the run (a control server, a helper), logging to
   * `<runDir>/<name>.log`, in the host namespace unless `netns` is given.
   */
  startProcess(opts: {
    name: string;
    argv: readonly string[];
    env?: NodeJS.ProcessEnv;
    netns?: string;
    cwd?: string;
  }): ManagedProcess {
    const p = startProcess({
      ...opts,
      env: opts.env ?? this.processEnv(),
      logFile: join(this.runDir, `${opts.name.replace(/[^\w.-]/g, '_')}.log`),
    });
    this.track(p);
    return p;
  }

  /** Creates the node's namespace, starts tailscaled in it and, given an auth key, brings it up. */
  async startNode(opts: StartNodeOptions): Promise<TailscaleNode> {
    const binaries = clientBinaries(opts.version ?? 'newest');
    const host = await this.topology.addHost(opts.name);
    const dir = join(this.runDir, 'nodes', opts.name);
    mkdirSync(dir, { recursive: true });
    const started = Date.now();
    try {
      const node = await launchNode(
        {
          runId: this.runId,
          dir,
          host,
          binaries,
          env: this.tailscaledEnv(),
          track: (p) => this.track(p),
          log: this.log,
        },
        { ...opts, loginServer: opts.loginServer ?? this.controlUrl },
      );
      this.nodeList.push(node);
      this.log(
        `node ${opts.name} (${binaries.version}) ${opts.authKey !== undefined ? 'up' : 'started'} ` +
          `in ${Date.now() - started} ms; netns ${host.netns}, log ${join(dir, 'tailscaled.log')}`,
      );
      return node;
    } catch (err) {
      this.markFailed(`startNode ${opts.name}: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
  }

  /** Nodes started so far. */
  get nodes(): readonly TailscaleNode[] {
    return this.nodeList;
  }

  /** The node called `name`. */
  node(name: string): TailscaleNode {
    const n = this.nodeList.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Marks the run failed: cleanup then keeps the run directory. */
  markFailed(reason = 'marked failed'): void {
    this.failureReasons.push(reason);
  }

  /**
   * For node:test's `afterEach((t) => h.noteTestResult(t))`: a failed test marks the run failed,
   * so cleanup keeps the logs.
   */
  noteTestResult(t: { readonly name: string; readonly passed?: boolean; readonly error?: unknown }): void {
    if (t.passed === false) {
      const why = t.error instanceof Error ? t.error.message.split('\n')[0] : 'failed';
      this.markFailed(`test "${t.name}": ${why}`);
    }
  }

  get failed(): boolean {
    return this.failureReasons.length > 0;
  }

  /** What `assertNoForeignTraffic` inspects. */
  guardTarget(): GuardTarget {
    const hostPids = this.procs
      .filter((p) => p.running && p.pid !== undefined && p.netns === undefined)
      .map((p) => p.pid as number);
    return {
      subnet: this.subnet,
      namespaces: this.topology.list().map((h) => h.netns),
      tunNames: this.nodeList.map((n) => n.tunName),
      hostPids: [process.pid, ...hostPids],
      trapHits: this.trap.hits,
    };
  }

  /**
   * Stops every process (SIGTERM, then SIGKILL), deletes namespaces, veths and the bridge, and
   * removes the run directory unless the run failed (or `keep`). Safe to call twice.
   */
  async cleanup(opts: { failed?: boolean } = {}): Promise<void> {
    if (this.cleanedUp) return;
    this.cleanedUp = true;
    if (opts.failed) this.markFailed('cleanup({ failed: true })');
    await Promise.all(this.procs.map((p) => p.stop({ graceMs: 5_000 })));
    await this.trap.close();
    await this.topology.destroy();
    live.delete(this);
    if (this.failed || this.keep) {
      writeFileSync(join(this.runDir, 'FAILED'), this.failureReasons.join('\n') + '\n');
      this.log(`run ${this.failed ? 'failed' : 'kept'}; logs kept in ${this.runDir}`);
    } else {
      rmSync(this.runDir, { recursive: true, force: true });
    }
  }

  /** Synchronous last-resort cleanup for process exit and signals. */
  emergencyCleanup(): void {
    if (this.cleanedUp) return;
    this.cleanedUp = true;
    for (const p of this.procs) p.killNow();
    for (const h of this.topology.list()) {
      const pids = spawnSync('ip', ['netns', 'pids', h.netns], { encoding: 'utf8', timeout: 5_000 });
      for (const pid of (pids.stdout ?? '').split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
      spawnSync('ip', ['netns', 'del', h.netns], { timeout: 5_000 });
      rmSync(netnsEtcDir(h.netns), { recursive: true, force: true });
      spawnSync('ip', ['link', 'del', h.vethHost], { timeout: 5_000 });
    }
    spawnSync('ip', ['link', 'del', this.topology.bridge], { timeout: 5_000 });
    process.stderr.write(`[harness ${this.runId}] emergency cleanup; logs kept in ${this.runDir}\n`);
  }
}

/**
 * Checks that nothing of the run talked to or could route to the outside world (see guard.ts);
 * throws listing every violation. Call it at the end of a test, before cleanup.
 */
export async function assertNoForeignTraffic(h: Harness): Promise<TrafficReport> {
  try {
    return await assertNoForeignTrafficIn(h.guardTarget());
  } catch (err) {
    h.markFailed('assertNoForeignTraffic');
    throw err;
  }
}

/** `h.startNode(opts)` as a function. */
export function startNode(h: Harness, opts: StartNodeOptions): Promise<TailscaleNode> {
  return h.startNode(opts);
}

/** Creates a harness, runs `fn`, and cleans up, keeping the logs if `fn` threw. */
export async function withHarness<T>(opts: HarnessOptions, fn: (h: Harness) => Promise<T>): Promise<T> {
  const h = await Harness.create(opts);
  try {
    return await fn(h);
  } catch (err) {
    h.markFailed(err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    await h.cleanup();
  }
}

function readOwner(runDir: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(runDir, 'owner.json'), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

/** How long the run directories of failed runs are kept. */
const KEEP_FAILED_RUNS_MS = 3 * 24 * 3600 * 1000;

/**
 * Removes what dead runs left behind: their processes (in their namespaces, or in the host
 * namespace with the run directory on their command line), namespaces, veths and bridge. Runs
 * whose owner process still lives are left alone. Returns the run ids swept.
 */
export async function sweepLeftovers(log: (msg: string) => void = () => undefined): Promise<string[]> {
  const root = harnessRoot();
  const netns = await listNetnsWithEtc();
  const links = await listLinks();
  const ids = new Set<string>();
  for (const name of [...netns, ...links]) {
    const id = runIdOf(name);
    if (id) ids.add(id);
  }
  const dirs = existsSync(root) ? readdirSync(root) : [];
  for (const d of dirs) if (/^[a-z0-9]{6}$/.test(d)) ids.add(d);
  const swept: string[] = [];
  for (const id of ids) {
    const runDir = join(root, id);
    const owner = readOwner(runDir);
    if (owner && processAlive(owner.pid, owner.startTime)) continue;
    const hostPids = pidsWithArg(`${runDir}/`);
    const ours = netns.filter((n) => runIdOf(n) === id);
    const ourLinks = links.filter((l) => runIdOf(l) === id);
    if (hostPids.length > 0 || ours.length > 0 || ourLinks.length > 0) {
      log(
        `sweeping leftovers of dead run ${id}: ${[...ours, ...ourLinks].join(' ')} pids ${hostPids.join(' ')}`,
      );
      swept.push(id);
    }
    await killPids(hostPids);
    for (const n of ours) await deleteNetns(n);
    for (const l of ourLinks.filter((l) => l !== `sbh-${id}`)) await deleteLink(l);
    if (ourLinks.includes(`sbh-${id}`)) await deleteLink(`sbh-${id}`);
    if (existsSync(runDir) && Date.now() - statSync(runDir).mtimeMs > KEEP_FAILED_RUNS_MS) {
      rmSync(runDir, { recursive: true, force: true });
    }
  }
  return swept;
}
