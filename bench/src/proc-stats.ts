/**
 * CPU time and memory of server processes, read from /proc (Linux only). CPU is the sum of every
 * thread's on-CPU time from /proc/<pid>/task/<tid>/schedstat (nanosecond resolution, unlike the 10 ms
 * ticks of /proc/<pid>/stat), so short windows such as one map render can be measured. Memory is
 * VmRSS from /proc/<pid>/status. A group of processes (Switchboard's services, the Postgres backends
 * of the benchmark's database) is measured as the sum of its members.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Last CPU time read per pid, so a process that died still counts up to its last reading. */
const lastCpu = new Map<number, number>();

/** CPU time of one process, all threads, in ms; its last known value (or 0) if it is gone. */
export function processCpuMs(pid: number): number {
  let ns = 0;
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return lastCpu.get(pid) ?? 0;
  }
  for (const tid of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
      ns += Number(text.slice(0, text.indexOf(' ')));
    } catch {
      // thread exited between listing and reading
    }
  }
  const ms = Math.max(ns / 1e6, lastCpu.get(pid) ?? 0);
  lastCpu.set(pid, ms);
  return ms;
}

/** Resident set size of one process in KiB; 0 if it is gone. */
export function processRssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Open file descriptors of one process (0 if unreadable). */
export function processFdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Pids whose command line contains every given fragment (e.g. Postgres backends of one database). */
export function findPids(fragments: readonly string[]): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (fragments.every((f) => cmd.includes(f))) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** A set of processes measured together; `pids` is re-evaluated at every reading. */
export interface ProcessGroup {
  readonly name: string;
  pids(): number[];
}

export interface CpuReading {
  readonly at: number;
  readonly perPid: ReadonlyMap<number, number>;
}

export function readCpu(group: ProcessGroup): CpuReading {
  const perPid = new Map<number, number>();
  for (const pid of group.pids()) perPid.set(pid, processCpuMs(pid));
  return { at: performance.now(), perPid };
}

/**
 * CPU ms used between two readings: for each process in either reading, its later time minus its
 * earlier time (0 if it did not exist then, so a process started in the window counts in full; a
 * process that died in the window counts up to its last reading).
 */
export function cpuBetween(a: CpuReading, b: CpuReading): number {
  let ms = 0;
  for (const [pid, t] of b.perPid) ms += t - (a.perPid.get(pid) ?? 0);
  for (const [pid, t] of a.perPid) if (!b.perPid.has(pid)) ms += (lastCpu.get(pid) ?? t) - t;
  return ms;
}

export function groupRssKb(group: ProcessGroup): number {
  let kb = 0;
  for (const pid of group.pids()) kb += processRssKb(pid);
  return kb;
}

/** Measures CPU (ms) used by a group while `fn` runs; returns fn's value, the CPU and the wall time. */
export async function measureCpu<T>(
  group: ProcessGroup,
  fn: () => Promise<T>,
): Promise<{ value: T; cpuMs: number; wallMs: number }> {
  const a = readCpu(group);
  const value = await fn();
  const b = readCpu(group);
  return { value, cpuMs: cpuBetween(a, b), wallMs: b.at - a.at };
}

/** The soft limit on open files of this process (inherited by its children), or null if unknown. */
export function openFilesLimit(): number | null {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return null;
    return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return null;
  }
}

/** 1-minute load average and the number of processors. */
export function loadAverage(): { load1: number; load5: number; load15: number } {
  try {
    const [l1, l5, l15] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
    return { load1: l1 ?? NaN, load5: l5 ?? NaN, load15: l15 ?? NaN };
  } catch {
    return { load1: NaN, load5: NaN, load15: NaN };
  }
}

/** Total CPU time of the whole machine (all processes), ms, from /proc/stat: busy and idle. */
export function machineCpuMs(): { busy: number; idle: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
  const tick = 10; // USER_HZ is 100 on Linux
  return { busy: (user + nice + system + irq + softirq + steal) * tick, idle: (idle + iowait) * tick };
}
