/**
 * Builds the pieces both run modes share from one parsed environment: the database, the bus, the
 * stream registry, the server's Noise key and the DERP map.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Bus } from '@switchboard/bus';
import { connectNatsBus, createInProcessBus } from '@switchboard/bus';
import { ConfigError, type Logger } from '@switchboard/common';
import { openDb, type Db } from '@switchboard/db';
import {
  MemoryStreamRegistry,
  RedisStreamRegistry,
  type FanoutConfig,
  type StreamRegistry,
} from '@switchboard/netmap-fanout';
import { formatKey, generatePrivateKey, parseKey, type PrivateKey } from '@switchboard/protocol';
import { Redis } from 'ioredis';
import type { BaseConfig } from './config.js';

/**
 * Makes DATA_DIR private to this user (0700): it holds the Noise private key, the embedded database
 * and the credential-free admin socket. Created 0700 when missing; an existing directory that group
 * or others can enter is tightened to 0700 with a warning.
 */
export function ensurePrivateDataDir(dir: string, logger: Logger): void {
  let st = statSync(dir, { throwIfNoEntry: false });
  if (!st) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    st = statSync(dir);
  }
  if (!st.isDirectory())
    throw new ConfigError([`DATA_DIR: ${dir} exists and is not a directory; point DATA_DIR at a directory`]);
  const mode = st.mode & 0o777;
  if ((mode & 0o077) === 0) return;
  try {
    chmodSync(dir, 0o700);
  } catch (err) {
    throw new ConfigError([
      `DATA_DIR: ${dir} has mode 0${mode.toString(8)} (open to other users) and could not be changed to 0700 (${(err as Error).message}); chmod 700 it as its owner or choose another DATA_DIR`,
    ]);
  }
  logger.warn('DATA_DIR was open to other users; changed its mode to 0700', {
    dir,
    previousMode: `0${mode.toString(8)}`,
    hint: 'it holds the Noise private key and the admin socket; check nothing else relied on the old mode',
  });
}

export async function openDatabase(
  cfg: BaseConfig,
  logger: Logger,
  opts: { embedded: boolean; inMemory?: boolean },
): Promise<Db> {
  if (cfg.DATABASE_URL) return openDb({ url: cfg.DATABASE_URL, logger: logger.child('db') });
  if (!opts.embedded)
    throw new ConfigError(['DATABASE_URL: required when running a service on its own (postgres://…)']);
  if (opts.inMemory) return openDb({ logger: logger.child('db') });
  const dataDir = join(cfg.DATA_DIR, 'pgdata');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return openDb({ dataDir, logger: logger.child('db') });
}

export async function openBus(
  cfg: BaseConfig,
  logger: Logger,
  name: string,
  opts: { embedded: boolean },
): Promise<Bus> {
  if (cfg.NATS_URL) return connectNatsBus({ servers: cfg.NATS_URL, name, logger: logger.child('bus') });
  if (!opts.embedded)
    throw new ConfigError(['NATS_URL: required when running a service on its own (nats://host:4222)']);
  return createInProcessBus({ logger: logger.child('bus') });
}

export function openStreamRegistry(cfg: BaseConfig): StreamRegistry {
  if (!cfg.REDIS_URL) return new MemoryStreamRegistry();
  return new RedisStreamRegistry(
    new Redis(cfg.REDIS_URL, { maxRetriesPerRequest: 3, lazyConnect: false }),
    `${cfg.REDIS_KEY_PREFIX}stream:`,
  );
}

/** The server's long-term Noise key: from config, or a key file created on first start (keep it stable). */
export function loadNoiseKey(cfg: BaseConfig, fcfg: FanoutConfig, logger: Logger): PrivateKey {
  return loadServerKey(
    'Noise',
    'NOISE_PRIVATE_KEY',
    fcfg.NOISE_PRIVATE_KEY,
    fcfg.NOISE_KEY_FILE ?? join(cfg.DATA_DIR, 'noise.key'),
    logger,
  );
}

/**
 * The legacy NaCl key (a second curve25519 key, as headscale kept `private_key_path` beside the
 * Noise key), loaded the same way; undefined while `LEGACY_PROTOCOL` is off.
 */
export function loadLegacyKey(cfg: BaseConfig, fcfg: FanoutConfig, logger: Logger): PrivateKey | undefined {
  if (!fcfg.LEGACY_PROTOCOL) return undefined;
  return loadServerKey(
    'legacy',
    'LEGACY_PRIVATE_KEY',
    fcfg.LEGACY_PRIVATE_KEY,
    fcfg.LEGACY_KEY_FILE ?? join(cfg.DATA_DIR, 'legacy.key'),
    logger,
  );
}

function loadServerKey(
  label: string,
  variable: string,
  inline: string | undefined,
  file: string,
  logger: Logger,
): PrivateKey {
  if (inline) return parseKey('private', inline, variable);
  if (existsSync(file))
    return parseKey('private', readFileSync(file, 'utf8').trim(), `${label} key file ${file}`);
  const key = generatePrivateKey();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, formatKey('private', key) + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another replica created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      return parseKey('private', readFileSync(file, 'utf8').trim(), `${label} key file ${file}`);
    throw err;
  }
  logger.info(`created the server ${label} key; keep this file, clients pin the key`, { file });
  return key;
}

export function splitListen(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i < 0 ? '0.0.0.0' : addr.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0';
  const port = Number(i < 0 ? addr : addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigError([`LISTEN_ADDR: bad port in "${addr}"`]);
  return { host, port };
}
