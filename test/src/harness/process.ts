/**
 * Long-running child processes of the harness (tailscaled, derper, headscale, test servers inside
 * namespaces). Output goes to a log file, so it survives the test process; `setpriv --pdeathsig`
 * makes the kernel kill the child if the test process dies without cleaning up; `stop` is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { formatArgv, netnsCommand } from './exec.js';

export interface StartProcessOptions {
  /** A short label for messages, e.g. 'tailscaled n1'. */
  readonly name: string;
  readonly argv: readonly string[];
  /** stdout and stderr are appended here. */
  readonly logFile: string;
  /** Run inside this network namespace (`ip netns exec`). */
  readonly netns?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A child process the harness owns. */
export class ManagedProcess {
  private exitInfo: ExitInfo | undefined;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;

  constructor(
    readonly name: string,
    readonly argv: readonly string[],
    readonly logFile: string,
    private readonly child: ChildProcess,
    /** The network namespace it runs in; undefined for the host namespace. */
    readonly netns?: string,
  ) {
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      child.on('error', () => {
        this.exitInfo ??= { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined && this.child.pid !== undefined;
  }

  /** How the process ended, or undefined while it runs. */
  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  /** Sends `signal`, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(opts: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<ExitInfo> {
    if (!this.running) return this.exitInfo ?? { code: null, signal: null };
    this.child.kill(opts.signal ?? 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.running) this.child.kill('SIGKILL');
        resolve();
      }, opts.graceMs ?? 5_000);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  /** SIGKILL without waiting: for process-exit hooks, where nothing asynchronous runs. */
  killNow(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  /** The last `lines` lines of the log file. */
  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch (err) {
      return `(cannot read ${this.logFile}: ${String(err)})`;
    }
  }

  /** A one-line description for failure messages. */
  describe(): string {
    const state = this.running
      ? `running as pid ${this.pid}`
      : `exited (code ${this.exitInfo?.code ?? 'none'}, signal ${this.exitInfo?.signal ?? 'none'})`;
    return `${this.name} ${state}; log ${this.logFile}`;
  }
}

/**
 * Starts `argv` (inside `netns` if given) with output appended to `logFile`. The child gets
 * SIGKILL from the kernel when this process dies (`setpriv --pdeathsig KILL`).
 */
export function startProcess(opts: StartProcessOptions): ManagedProcess {
  const inner = ['setpriv', '--pdeathsig', 'KILL', '--', ...opts.argv];
  const full = opts.netns ? netnsCommand(opts.netns, inner) : inner;
  const fd = openSync(opts.logFile, 'a');
  try {
    const [cmd, ...args] = full;
    const child = spawn(cmd as string, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', fd, fd],
    });
    const proc = new ManagedProcess(opts.name, full, opts.logFile, child, opts.netns);
    if (child.pid === undefined) {
      throw new Error(`cannot start ${opts.name}: ${formatArgv(full)}`);
    }
    return proc;
  } finally {
    closeSync(fd);
  }
}
