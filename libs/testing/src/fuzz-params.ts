/**
 * fast-check parameters for the fuzz tier, from the environment: FUZZ_RUNS (runs per property,
 * default 100) scaled by `weight`, FUZZ_SEED and FUZZ_PATH to replay a failure. The shape is the
 * subset of fast-check's `Parameters` set here, so this lib does not depend on fast-check.
 */
export interface FuzzParams {
  numRuns: number;
  seed?: number;
  path?: string;
  timeout?: number;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

/** FUZZ_RUNS × weight runs (at least one); `timeoutMs` bounds each run when given. */
export function fuzzParams(weight = 1, timeoutMs?: number): FuzzParams {
  const runs = envInt('FUZZ_RUNS') ?? 100;
  const seed = envInt('FUZZ_SEED');
  const path = process.env.FUZZ_PATH;
  return {
    numRuns: Math.max(1, Math.round(runs * weight)),
    ...(seed !== undefined ? { seed } : {}),
    ...(path ? { path } : {}),
    ...(timeoutMs ? { timeout: timeoutMs } : {}),
  };
}
