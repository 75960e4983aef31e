/**
 * The Go test program on Tailscale's own API client (test/apiclient, `tailscale.com/client/tailscale/v2`
 * from the Go module proxy), built into ~/.cache/switchboard/apiclient and run as a subprocess.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SOURCE = fileURLToPath(new URL('../../../apiclient/', import.meta.url));
const BIN = join(
  process.env.SWITCHBOARD_CACHE ?? join(homedir(), '.cache', 'switchboard'),
  'apiclient',
  'apiclient',
);

let built: Promise<string> | undefined;

/** Builds the program once per process (go's build cache makes a rebuild cheap). */
export function buildGoApiClient(): Promise<string> {
  built ??= (async () => {
    mkdirSync(join(BIN, '..'), { recursive: true });
    await run('go', ['build', '-o', BIN, '.'], {
      cwd: SOURCE,
      timeout: 600_000,
      env: { ...process.env, GOFLAGS: '-mod=mod' },
    });
    return BIN;
  })();
  return built;
}

/** Runs one subcommand; its JSON output, or an error with its stderr. */
export async function goApiClient(args: string[]): Promise<Record<string, unknown>> {
  const bin = await buildGoApiClient();
  try {
    const r = await run(bin, args, { timeout: 180_000 });
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`apiclient ${args[0]} failed: ${e.stderr?.trim() || e.message}`);
  }
}
