/**
 * Running commands for the real-client harness: a bounded `run` that collects output and fails
 * with the whole command line and its stderr, and `netnsCommand` that wraps a command so it runs
 * inside a network namespace. Every call has a timeout; nothing here waits forever.
 */
import { spawn } from 'node:child_process';

export interface RunOptions {
  /** Kill the command (SIGKILL) after this long. Default 30 s. */
  readonly timeoutMs?: number;
  /** Environment for the command; default: this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin, which is then closed. */
  readonly input?: string;
  /** Resolve with the result instead of throwing on a non-zero exit or a timeout. */
  readonly allowFailure?: boolean;
  readonly cwd?: string;
}

export interface RunResult {
  /** Exit code; null when killed by a signal (then `signal` says which). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly durationMs: number;
}

/** A command that failed, with everything needed to understand why. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    const why = result.timedOut
      ? `timed out after ${result.durationMs} ms`
      : result.code !== null
        ? `exited with code ${result.code}`
        : `was killed by ${result.signal ?? 'a signal'}`;
    const tail = (s: string): string => (s.length > 4000 ? `…${s.slice(-4000)}` : s);
    super(
      `command ${why}: ${formatArgv(argv)}\n--- stderr ---\n${tail(result.stderr.trim())}\n` +
        `--- stdout ---\n${tail(result.stdout.trim())}`,
    );
    this.name = 'CommandError';
  }
}

/** Quotes an argv for messages (not for a shell). */
export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Runs `argv` to completion (bounded by `timeoutMs`) and returns its output. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('run: empty argv');
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const started = Date.now();
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${formatArgv(argv)}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = {
        code,
        signal,
        stdout,
        stderr,
        timedOut,
        durationMs: Date.now() - started,
      };
      if (!opts.allowFailure && (code !== 0 || timedOut)) reject(new CommandError(argv, result));
      else resolve(result);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs `argv` and returns its trimmed stdout; throws CommandError on failure. */
export async function output(argv: readonly string[], opts: Omit<RunOptions, 'allowFailure'> = {}) {
  return (await run(argv, opts)).stdout.trim();
}

/** `argv` wrapped to run inside network namespace `netns` (`ip netns exec`). */
export function netnsCommand(netns: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', netns, ...argv];
}

/** Sleeps for `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
