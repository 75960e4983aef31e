/**
 * Where the real client binaries are: scripts/install-tailscale.sh builds them into
 * `${SWITCHBOARD_CACHE:-~/.cache/switchboard}/tailscale/<version>/`. The supported range is named
 * by the same environment variables the script reads (TS_VERSION_NEWEST, TS_VERSION_OLDEST).
 */
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The newest and oldest client releases Switchboard supports (defaults of the install script). */
export const DEFAULT_NEWEST_VERSION = 'v1.104.5';
export const DEFAULT_OLDEST_VERSION = 'v1.80.3';

/** 'newest', 'oldest', or an explicit release tag such as 'v1.96.0' (built the same way). */
export type ClientVersion = 'newest' | 'oldest' | `v${string}`;

export interface ClientBinaries {
  /** The release tag, e.g. 'v1.104.5'. */
  readonly version: string;
  readonly dir: string;
  readonly tailscale: string;
  readonly tailscaled: string;
}

/** The cache root shared with the install scripts. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.SWITCHBOARD_CACHE ?? join(homedir(), '.cache', 'switchboard');
}

/** The release tag a ClientVersion stands for. */
export function resolveVersion(v: ClientVersion, env: NodeJS.ProcessEnv = process.env): string {
  if (v === 'newest') return env.TS_VERSION_NEWEST ?? DEFAULT_NEWEST_VERSION;
  if (v === 'oldest') return env.TS_VERSION_OLDEST ?? DEFAULT_OLDEST_VERSION;
  return v;
}

function executable(path: string, hint: string): string {
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${path} is missing or not executable: ${hint}`);
  }
  return path;
}

const INSTALL_HINT = 'run scripts/install-tailscale.sh (or scripts/ci-setup.sh) first';

/** Paths of `tailscale` and `tailscaled` for a version; throws if they are not built. */
export function clientBinaries(v: ClientVersion, env: NodeJS.ProcessEnv = process.env): ClientBinaries {
  const version = resolveVersion(v, env);
  const dir = join(cacheDir(env), 'tailscale', version);
  return {
    version,
    dir,
    tailscale: executable(join(dir, 'tailscale'), INSTALL_HINT),
    tailscaled: executable(join(dir, 'tailscaled'), INSTALL_HINT),
  };
}

/** Path of `derper`, built with the newest client release. */
export function derperBinary(env: NodeJS.ProcessEnv = process.env): string {
  return executable(join(cacheDir(env), 'tailscale', resolveVersion('newest', env), 'derper'), INSTALL_HINT);
}

/** True when the binaries for `v` are present (for skipping suites on machines without them). */
export function haveClientBinaries(v: ClientVersion = 'newest', env: NodeJS.ProcessEnv = process.env) {
  try {
    clientBinaries(v, env);
    return true;
  } catch {
    return false;
  }
}
