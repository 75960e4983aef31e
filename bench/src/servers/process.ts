/**
 * Child processes of the benchmark (servers, NATS, Redis): started with their output in a log file,
 * under `setpriv --pdeathsig KILL` where available so the kernel ends them if the benchmark dies, and
 * stopped by pid (SIGTERM, then SIGKILL). Also free loopback ports and readiness polling.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { sleep } from '../clock.js';

let setprivChecked: boolean | undefined;

function haveSetpriv(): boolean {
  setprivChecked ??= spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;
  return setprivChecked;
}

export class ManagedProcess {
  private exitInfo: string | null = null;
  readonly exited: Promise<void>;

  private stopping = false;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitInfo = signal ? `killed by ${signal}` : `exit code ${code}`;
        if (!this.stopping)
          process.stderr.write(`[bench] ${name} (pid ${this.pid}) exited unexpectedly: ${this.exitInfo}\n`);
        resolve();
      });
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  describe(): string {
    return `${this.name} (pid ${this.pid}) ${this.exitInfo ?? 'running'}`;
  }

  logTail(lines = 20): string {
    try {
      return readFileSync(this.logFile, 'utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '';
    }
  }

  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

export interface StartOptions {
  readonly name: string;
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly logFile: string;
  readonly cwd?: string;
}

export function startProcess(o: StartOptions): ManagedProcess {
  const fd = openSync(o.logFile, 'a');
  const argv = haveSetpriv() ? ['setpriv', '--pdeathsig', 'KILL', '--', ...o.argv] : [...o.argv];
  const proc = spawn(argv[0]!, argv.slice(1), {
    env: o.env,
    cwd: o.cwd,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  return new ManagedProcess(o.name, proc, o.logFile);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `probe` every `intervalMs` until it returns true; fails after `timeoutMs` naming `what`. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean> | boolean,
  opts: { timeoutMs?: number; intervalMs?: number; procs?: readonly ManagedProcess[] } = {},
): Promise<void> {
  const end = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastErr = '';
  for (;;) {
    for (const p of opts.procs ?? [])
      if (!p.running) throw new Error(`${p.describe()} while waiting for ${what}\n${p.logTail(30)}`);
    try {
      if (await probe()) return;
    } catch (err) {
      lastErr = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${lastErr ? ` (${lastErr})` : ''}`);
    await sleep(opts.intervalMs ?? 200);
  }
}

/** True when GET url answers 200 within a second. */
export async function httpOk(url: string): Promise<boolean> {
  const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await r.arrayBuffer();
  return r.status === 200;
}
