#!/usr/bin/env node
/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time per function, per file/package
 * and per category (idle, GC, pg protocol, zod, JSON, crypto, NATS client, our code, ...), with the
 * idle share. `--from`/`--to` (µs on the monotonic clock, i.e. `process.hrtime.bigint() / 1000n`,
 * which is the profile's own time base) restrict it to a window, e.g. the measured phase of a bench
 * that printed its window; otherwise the whole profile counts. A directory means its newest profile.
 *
 *   node bench/dist/src/registration/cpuprofile-summary.js /tmp/regprof [--top=15] [--from=US --to=US] [--json]
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  self_ms: number;
  pct: number;
}
export interface ProfileSummary {
  window_ms: number;
  sampled_ms: number;
  idle_pct: number;
  gc_pct: number;
  busy_ms: number;
  functions: Row[];
  files: Row[];
  categories: Row[];
  /** Categories with native/builtin self time charged to the nearest JS caller (e.g. socket writes to pg or nats). */
  categories_by_caller: Row[];
}

/** Package or file a frame belongs to: `pg-protocol`, `@switchboard/key-registry`, `node:internal/...`. */
export function fileOf(url: string): string {
  if (url === '') return '(native/builtin)';
  const nm = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm?.[1] !== undefined) return nm[1];
  const ws = /\/(libs|services|bench|apps|test)\/([^/]+)\/(?:dist\/)?(.*)$/.exec(url);
  if (ws) return ws[1] === 'bench' ? `bench/${ws[3] ?? ''}` : `@switchboard/${ws[2] ?? ''}`;
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  return url;
}

const JSON_FUNCS = new Set([
  'parse',
  'stringify',
  'JSONParse',
  'JSONStringify',
  'JsonParse',
  'JsonStringify',
]);

/** Coarse category of a frame, for "where does the CPU go" at a glance. */
export function categoryOf(frame: CallFrame): string {
  const { functionName: fn, url } = frame;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'V8/native (program)';
  if (url === '' && JSON_FUNCS.has(fn)) return 'JSON';
  const file = fileOf(url);
  if (/^pg($|-)/.test(file)) return 'pg client (protocol, pool, types)';
  if (file === 'zod') return 'zod validation';
  if (file === 'nats' || file.startsWith('@nats-io/')) return 'NATS client';
  if (
    url.includes('node:internal/crypto') ||
    url === 'node:crypto' ||
    (/hmac|hash|digest|randomBytes/i.test(fn) && url === '')
  )
    return 'crypto';
  if (file.startsWith('@switchboard/')) return `ours: ${file}`;
  if (file.startsWith('bench/')) return 'bench generator';
  if (url.startsWith('node:internal/streams') || url.startsWith('node:net') || url.includes('stream_base'))
    return 'node streams/net';
  if (url.startsWith('node:internal/async_hooks') || url.includes('async_local_storage'))
    return 'async_hooks/ALS';
  if (url.startsWith('node:')) return 'node core (other)';
  if (url === '') return 'builtin (other)';
  return `other: ${file}`;
}

function newestProfile(path: string): string {
  if (!statSync(path).isDirectory()) return path;
  const files = readdirSync(path)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(path, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (files[0] === undefined) throw new Error(`no .cpuprofile in ${path}`);
  return files[0];
}

export function summarise(profile: CpuProfile, top = 15, from = -Infinity, to = Infinity): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** Nearest frame (itself or an ancestor) from a package/our code, for charging native time. */
  const callerOf = (id: number): CallFrame | undefined => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (f === undefined) return undefined;
      if (f.functionName.startsWith('(') && f.url === '') return f; // (idle), (garbage collector), (program)
      if (f.url !== '' && !f.url.startsWith('node:')) return f;
    }
    return byId.get(id)?.callFrame;
  };
  const selfUs = new Map<number, number>();
  // Sample i covers the interval up to the next sample (what DevTools does).
  let t = profile.startTime;
  let sampled = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    if (t < from || t > to) continue;
    const id = profile.samples[i] ?? -1;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    sampled += dt;
  }
  const add = (m: Map<string, number>, k: string, v: number): void => {
    m.set(k, (m.get(k) ?? 0) + v);
  };
  const funcs = new Map<string, number>();
  const files = new Map<string, number>();
  const cats = new Map<string, number>();
  const callerCats = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const f = byId.get(id)?.callFrame;
    if (f === undefined) continue;
    const file = fileOf(f.url);
    const short = f.url === '' ? '' : ` ${f.url.split('/').slice(-1)[0] ?? ''}:${f.lineNumber + 1}`;
    add(funcs, `${f.functionName || '(anonymous)'}${short} [${file}]`, us);
    add(
      files,
      f.url === '' ? (f.functionName.startsWith('(') ? f.functionName : '(native/builtin)') : file,
      us,
    );
    add(cats, categoryOf(f), us);
    add(callerCats, categoryOf(callerOf(id) ?? f), us);
  }
  const rows = (m: Map<string, number>, n: number): Row[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({
        name,
        self_ms: Math.round(us / 100) / 10,
        pct: sampled > 0 ? Math.round((1000 * us) / sampled) / 10 : 0,
      }));
  const idle = cats.get('idle') ?? 0;
  const gc = cats.get('GC') ?? 0;
  const windowUs = Math.min(to, profile.endTime) - Math.max(from, profile.startTime);
  return {
    window_ms: Math.round(windowUs / 1000),
    sampled_ms: Math.round(sampled / 1000),
    idle_pct: sampled > 0 ? Math.round((1000 * idle) / sampled) / 10 : 0,
    gc_pct: sampled > 0 ? Math.round((1000 * gc) / sampled) / 10 : 0,
    busy_ms: Math.round((sampled - idle) / 1000),
    functions: rows(funcs, top),
    files: rows(files, top),
    categories: rows(cats, 30),
    categories_by_caller: rows(callerCats, 30),
  };
}

function arg(name: string): string | undefined {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a?.slice(name.length + 3);
}

function print(title: string, rows: Row[]): void {
  process.stdout.write(`\n${title}\n`);
  for (const r of rows) {
    process.stdout.write(
      `${r.self_ms.toFixed(1).padStart(9)} ms ${r.pct.toFixed(1).padStart(5)}%  ${r.name}\n`,
    );
  }
}

function cli(): void {
  const target = process.argv.slice(2).find((a) => !a.startsWith('--'));
  if (target === undefined) {
    process.stderr.write(
      'usage: cpuprofile-summary <file.cpuprofile|dir> [--top=15] [--from=US --to=US] [--json]\n',
    );
    process.exit(2);
  }
  const file = newestProfile(target);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const s = summarise(
    profile,
    Number(arg('top') ?? '15'),
    arg('from') !== undefined ? Number(arg('from')) : -Infinity,
    arg('to') !== undefined ? Number(arg('to')) : Infinity,
  );
  if (process.argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ file, ...s }) + '\n');
    return;
  }
  process.stdout.write(
    `${file}\nwindow ${s.window_ms} ms, sampled ${s.sampled_ms} ms, busy ${s.busy_ms} ms, idle ${s.idle_pct}%, GC ${s.gc_pct}%\n`,
  );
  print('categories (self time)', s.categories);
  print('categories, native/node-core time charged to the nearest package caller', s.categories_by_caller);
  print(`top ${s.functions.length} functions (self time)`, s.functions);
  print(`top ${s.files.length} files/packages (self time)`, s.files);
}

if (
  process.argv[1] !== undefined &&
  import.meta.url.endsWith(process.argv[1].split('/').slice(-1)[0] ?? '\0')
)
  cli();
