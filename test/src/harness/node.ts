/**
 * One real Tailscale client in its own network namespace: `tailscaled` with a real TUN device (or
 * userspace networking), no log upload, a private state dir and socket, an environment that keeps
 * it local (plain-HTTP DERP, no port mapper, proxy trap), and `tailscale up` against our control
 * server. The helpers (`status`, `ping`, `ip`, `up`, `logout`, `down`, `stop`, `exec`, `spawnIn`)
 * drive the unmodified `tailscale` CLI of the node's own version.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type ClientBinaries } from './binaries.js';
import { netnsCommand, run, type RunOptions, type RunResult } from './exec.js';
import { startProcess, type ManagedProcess } from './process.js';
import { type NetnsHost } from './topology.js';
import { GiveUp, notYet, waitFor } from './wait.js';

/** The WireGuard UDP port every node uses (each has its own namespace, so they do not clash). */
export const TAILSCALED_PORT = 41641;

/** Everything a node needs from the harness that owns it. */
export interface NodeContext {
  readonly runId: string;
  /** Directory for this node's state, socket and logs. */
  readonly dir: string;
  readonly host: NetnsHost;
  readonly binaries: ClientBinaries;
  /** Environment every tailscaled gets (the harness's PATH, proxy trap, TS_* knobs). */
  readonly env: NodeJS.ProcessEnv;
  /** Registers a process so the harness stops it at cleanup. */
  readonly track: (p: ManagedProcess) => void;
  readonly log: (msg: string) => void;
}

export interface StartNodeOptions {
  /** Node name: hostname, namespace suffix; `[a-z][a-z0-9-]*`, at most 30 characters. */
  readonly name: string;
  /** Client release: 'newest' (default), 'oldest' or an explicit tag like 'v1.96.0'. */
  readonly version?: 'newest' | 'oldest' | `v${string}`;
  /** Control server URL; default the harness's `controlUrl` if set. */
  readonly loginServer?: string;
  /** Pre-auth key; without one, tailscaled is started but `tailscale up` is not run. */
  readonly authKey?: string;
  /** Extra `tailscale up` arguments (appended after the harness's defaults). */
  readonly extraUpArgs?: readonly string[];
  /** Extra tailscaled arguments. */
  readonly extraDaemonArgs?: readonly string[];
  /** Extra tailscaled environment (e.g. TS_DEBUG_MAP=1, TS_DEBUG_NEVER_DIRECT_UDP=1). */
  readonly env?: Readonly<Record<string, string>>;
  /** Real TUN device (default true); false means `--tun=userspace-networking`. */
  readonly tun?: boolean;
  /** `tailscale up --timeout`, in seconds. Default 60. */
  readonly upTimeoutS?: number;
}

/** A running client. Fields are for reading; use the helper functions to act on it. */
export class TailscaleNode {
  /** Set by `up`; the last control URL used. */
  loginServer: string | undefined;

  constructor(
    readonly name: string,
    readonly version: string,
    readonly binaries: ClientBinaries,
    readonly host: NetnsHost,
    readonly dir: string,
    readonly socket: string,
    readonly stateDir: string,
    readonly tunName: string,
    readonly daemon: ManagedProcess,
    private readonly ctx: NodeContext,
  ) {}

  /** The node's network namespace. */
  get netns(): string {
    return this.host.netns;
  }

  /** The node's address on the bridge subnet (not its tailnet address; see `ip`). */
  get lanIp(): string {
    return this.host.ip;
  }

  /** tailscaled's log file. */
  get logFile(): string {
    return this.daemon.logFile;
  }

  /** Runs `tailscale --socket=<ours> <args>` inside the node's namespace. */
  cli(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(netnsCommand(this.netns, [this.binaries.tailscale, `--socket=${this.socket}`, ...args]), {
      timeoutMs: 30_000,
      ...opts,
    });
  }

  /** @internal for spawnIn */
  get context(): NodeContext {
    return this.ctx;
  }
}

/** Starts tailscaled for `opts.name` in `ctx.host`'s namespace and, given an auth key, runs up. */
export async function launchNode(ctx: NodeContext, opts: StartNodeOptions): Promise<TailscaleNode> {
  const dir = ctx.dir;
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const socket = join(dir, 'tailscaled.sock');
  const tunName = `sbt${ctx.runId}${ctx.host.index}`;
  const tun = opts.tun ?? true;
  const argv = [
    ctx.binaries.tailscaled,
    '--no-logs-no-support',
    `--statedir=${stateDir}`,
    `--socket=${socket}`,
    `--port=${TAILSCALED_PORT}`,
    `--tun=${tun ? tunName : 'userspace-networking'}`,
    ...(opts.extraDaemonArgs ?? []),
  ];
  const daemon = startProcess({
    name: `tailscaled ${opts.name} (${ctx.binaries.version})`,
    argv,
    logFile: join(dir, 'tailscaled.log'),
    netns: ctx.host.netns,
    env: { ...ctx.env, HOME: dir, TS_LOGS_DIR: join(dir, 'logs'), ...opts.env },
    cwd: dir,
  });
  ctx.track(daemon);
  const node = new TailscaleNode(
    opts.name,
    ctx.binaries.version,
    ctx.binaries,
    ctx.host,
    dir,
    socket,
    stateDir,
    tun ? tunName : 'userspace-networking',
    daemon,
    ctx,
  );
  await waitFor(
    async () => {
      if (!daemon.running) throw new GiveUp(new DaemonExitedError(node).message);
      const st = await status(node);
      return st.BackendState !== 'NoState' ? st.BackendState : notYet(st.BackendState);
    },
    { what: `tailscaled ${opts.name} to answer on its LocalAPI socket`, timeoutMs: 20_000, intervalMs: 200 },
  );
  if (opts.authKey !== undefined) {
    if (opts.loginServer === undefined) throw new Error(`startNode ${opts.name}: no loginServer`);
    await up(node, {
      loginServer: opts.loginServer,
      authKey: opts.authKey,
      extraArgs: opts.extraUpArgs ?? [],
      timeoutS: opts.upTimeoutS ?? 60,
    });
  }
  return node;
}

/** tailscaled died; the message carries the end of its log. */
export class DaemonExitedError extends Error {
  constructor(node: TailscaleNode) {
    super(`${node.daemon.describe()}\n--- last log lines ---\n${node.daemon.logTail(30)}`);
    this.name = 'DaemonExitedError';
  }
}

export interface UpOptions {
  readonly loginServer: string;
  readonly authKey?: string;
  /** Hostname to register; default the node name. */
  readonly hostname?: string;
  readonly extraArgs?: readonly string[];
  /** `--timeout` for `tailscale up`, in seconds. Default 60. */
  readonly timeoutS?: number;
}

/**
 * `tailscale up --login-server=… --auth-key=… --hostname=… --timeout=…` and waits for Running.
 * `--accept-dns=false` is always passed: the namespaces share the host's /etc/resolv.conf.
 */
export async function up(node: TailscaleNode, opts: UpOptions): Promise<void> {
  const timeoutS = opts.timeoutS ?? 60;
  const args = [
    'up',
    `--login-server=${opts.loginServer}`,
    ...(opts.authKey !== undefined ? [`--auth-key=${opts.authKey}`] : []),
    `--hostname=${opts.hostname ?? node.name}`,
    `--timeout=${timeoutS}s`,
    '--accept-dns=false',
    ...(opts.extraArgs ?? []),
  ];
  node.loginServer = opts.loginServer;
  const r = await node.cli(args, { timeoutMs: (timeoutS + 15) * 1000, allowFailure: true });
  if (r.code !== 0) {
    throw new Error(
      `tailscale up on ${node.name} (${node.version}) failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n` +
        `${r.stderr.trim()}\n${r.stdout.trim()}\n${node.daemon.describe()}\n--- last log lines ---\n` +
        node.daemon.logTail(30),
    );
  }
  await waitFor(
    async () => {
      const st = await status(node);
      return st.BackendState === 'Running' && (st.TailscaleIPs?.length ?? 0) > 0
        ? true
        : notYet({ BackendState: st.BackendState, TailscaleIPs: st.TailscaleIPs, Health: st.Health });
    },
    { what: `${node.name} to be Running with an address`, timeoutMs: 30_000 },
  );
}

/** ipnstate.PeerStatus, the fields tests use (the CLI's JSON has more). */
export interface PeerStatus {
  readonly ID: string;
  readonly PublicKey: string;
  readonly HostName: string;
  readonly DNSName: string;
  readonly OS: string;
  readonly UserID: number;
  readonly TailscaleIPs?: readonly string[] | null;
  readonly AllowedIPs?: readonly string[] | null;
  readonly Tags?: readonly string[] | null;
  readonly PrimaryRoutes?: readonly string[] | null;
  readonly Addrs?: readonly string[] | null;
  readonly CurAddr: string;
  readonly Relay: string;
  readonly Online: boolean;
  readonly Active: boolean;
  readonly ExitNode: boolean;
  readonly ExitNodeOption: boolean;
  readonly InNetworkMap: boolean;
  readonly InMagicSock: boolean;
  readonly InEngine: boolean;
  readonly KeyExpiry?: string;
  readonly Expired?: boolean;
  readonly [field: string]: unknown;
}

/** ipnstate.Status as printed by `tailscale status --json`. */
export interface TailscaleStatus {
  readonly Version: string;
  readonly BackendState: string;
  readonly AuthURL: string;
  readonly TailscaleIPs: readonly string[] | null;
  readonly Self: PeerStatus;
  readonly Health: readonly string[] | null;
  readonly MagicDNSSuffix: string;
  readonly CurrentTailnet: { readonly Name: string; readonly MagicDNSSuffix: string } | null;
  /** Keyed by node public key; null when there are none. */
  readonly Peer: Readonly<Record<string, PeerStatus>> | null;
  readonly User: Readonly<Record<string, { readonly ID: number; readonly LoginName: string }>> | null;
  readonly [field: string]: unknown;
}

/** Parsed `tailscale status --json`. */
export async function status(node: TailscaleNode): Promise<TailscaleStatus> {
  const r = await node.cli(['status', '--json'], { timeoutMs: 15_000, allowFailure: true });
  // `status` exits 1 when not Running but still prints the JSON.
  try {
    return JSON.parse(r.stdout) as TailscaleStatus;
  } catch {
    throw new Error(
      `tailscale status --json on ${node.name} gave no JSON (code ${r.code}): ${r.stderr.trim()}`,
    );
  }
}

/** The node's peers from `status`, as a list (empty when none). */
export function peersOf(st: TailscaleStatus): PeerStatus[] {
  return Object.values(st.Peer ?? {});
}

/** The node's tailnet address (`tailscale ip -4` or `-6`). */
export async function ip(node: TailscaleNode, family: 4 | 6 = 4): Promise<string> {
  const r = await node.cli(['ip', `-${family}`], { timeoutMs: 15_000 });
  const addr = r.stdout.trim().split('\n')[0] ?? '';
  if (addr === '') throw new Error(`${node.name} has no IPv${family} tailnet address yet`);
  return addr;
}

export interface PingOptions {
  /** Keep retrying for this long overall. Default 30 s. */
  readonly timeoutS?: number;
  /** Pings per `tailscale ping` call (`-c`). Default 1. */
  readonly count?: number;
  /** 'disco' (default, WireGuard path discovery), 'tsmp' or 'icmp'. */
  readonly type?: 'disco' | 'tsmp' | 'icmp';
  /** Succeed only on a direct (non-DERP) path. Default false. */
  readonly requireDirect?: boolean;
}

export interface PingResult {
  /** 'direct' for a UDP endpoint, 'derp' when relayed, or the ping type for tsmp/icmp. */
  readonly via: 'direct' | 'derp' | 'tsmp' | 'icmp';
  /** What the CLI printed after `via`, e.g. '10.213.57.11:41641' or 'DERP(sbh)'. */
  readonly path: string;
  readonly latencyMs: number;
  readonly output: string;
  readonly attempts: number;
}

const PONG_RE = /pong from (\S+) \(([^)]*)\) via (\S+) in ([\d.]+)(µs|us|ms|s)\b/;

/** `tailscale ping` from `a` to `target` (a name or tailnet IP), retried until it succeeds. */
export async function ping(a: TailscaleNode, target: string, opts: PingOptions = {}): Promise<PingResult> {
  const typeArgs = opts.type === 'tsmp' ? ['--tsmp'] : opts.type === 'icmp' ? ['--icmp'] : [];
  let attempts = 0;
  return waitFor(
    async () => {
      attempts++;
      const r = await a.cli(
        ['ping', '-c', String(opts.count ?? 1), '--timeout=5s', '--until-direct=false', ...typeArgs, target],
        { timeoutMs: 10_000 + (opts.count ?? 1) * 6_000, allowFailure: true },
      );
      const out = `${r.stdout}${r.stderr}`.trim();
      const m = PONG_RE.exec(r.stdout);
      if (r.code !== 0 || !m) return notYet(out || `exit code ${r.code}`);
      const path = m[3] ?? '';
      const via: PingResult['via'] = path.startsWith('DERP(')
        ? 'derp'
        : path === 'TSMP'
          ? 'tsmp'
          : path === 'ICMP'
            ? 'icmp'
            : 'direct';
      if (opts.requireDirect && via !== 'direct') return notYet(out);
      const unit = m[5] ?? 'ms';
      const n = Number(m[4]);
      const latencyMs = unit === 's' ? n * 1000 : unit === 'ms' ? n : n / 1000;
      return { via, path, latencyMs, output: out, attempts };
    },
    {
      what: `${a.name} to get a pong from ${target}${opts.requireDirect ? ' over a direct path' : ''}`,
      timeoutMs: (opts.timeoutS ?? 30) * 1000,
      intervalMs: 500,
    },
  );
}

/** `tailscale logout`. */
export async function logout(node: TailscaleNode): Promise<void> {
  await node.cli(['logout'], { timeoutMs: 30_000 });
}

/** `tailscale down`. */
export async function down(node: TailscaleNode): Promise<void> {
  await node.cli(['down'], { timeoutMs: 30_000 });
}

/** Stops tailscaled (SIGTERM, then SIGKILL after 5 s); the namespace stays. */
export async function stop(node: TailscaleNode): Promise<void> {
  await node.daemon.stop({ graceMs: 5_000 });
}

/** Runs `argv` inside the node's namespace to completion (default timeout 30 s). */
export function exec(
  node: TailscaleNode,
  argv: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return run(netnsCommand(node.netns, argv), { timeoutMs: 30_000, ...opts });
}

/**
 * Starts a long-running `argv` inside the node's namespace (a test server, `nc -l`, …), logging to
 * `<node dir>/<label>.log`; the harness stops it at cleanup.
 */
export function spawnIn(
  node: TailscaleNode,
  label: string,
  argv: readonly string[],
  env?: NodeJS.ProcessEnv,
): ManagedProcess {
  const proc = startProcess({
    name: `${label} in ${node.name}`,
    argv,
    logFile: join(node.dir, `${label.replace(/[^\w.-]/g, '_')}.log`),
    netns: node.netns,
    env: env ?? { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    cwd: node.dir,
  });
  node.context.track(proc);
  return proc;
}
