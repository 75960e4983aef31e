/**
 * Switchboard's environment, parsed once at boot. An invalid environment fails with one message
 * naming every bad variable. Service-specific variables are validated by each service's schema.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const url = (protocols: string[]) =>
  z
    .string()
    .url()
    .refine(
      (v) => protocols.some((p) => v.startsWith(`${p}:`)),
      `must start with ${protocols.map((p) => p + '://').join(' or ')}`,
    );

export const baseConfigSchema = z.object({
  /** Postgres connection string; unset in `serve` = embedded PGlite under DATA_DIR. */
  DATABASE_URL: url(['postgres', 'postgresql']).optional(),
  /** NATS server(s); unset in `serve` = in-process bus. Required for `service`. */
  NATS_URL: url(['nats']).optional(),
  /** Redis for the live-stream registry; unset = in-memory (one replica only). */
  REDIS_URL: url(['redis', 'rediss']).optional(),
  /** Prefix of every Redis key Switchboard writes (lets several deployments share one Redis). */
  REDIS_KEY_PREFIX: z.string().default('switchboard:'),
  /** Where embedded state lives (PGlite data, Noise key, admin socket). */
  DATA_DIR: z
    .string()
    .default(join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'switchboard')),
  /** Address the client edge (/key, /ts2021) listens on. */
  LISTEN_ADDR: z.string().default('0.0.0.0:8080'),
  /** URL clients use as --login-server; printed at start. Defaults to http://<first non-loopback IPv4>:<port>. */
  SERVER_URL: z.string().url().optional(),
  /** Admin API unix socket (no credentials). */
  ADMIN_SOCKET: z.string().optional(),
  /** Admin API TCP address (API key required); unset = disabled. */
  ADMIN_LISTEN: z.string().optional(),
  /** Wrong API keys allowed per source address per minute on ADMIN_LISTEN before it gets 429s. */
  ADMIN_AUTH_FAILURES_PER_MINUTE: z.coerce
    .number({ invalid_type_error: 'a whole number of at least 1' })
    .int('a whole number of at least 1')
    .min(1, 'a whole number of at least 1')
    .default(10),
  /**
   * Where the admin API v2 (`/api/v2`, `/api/openapi.json`) is served: `edge` = on the client port
   * (LISTEN_ADDR, where Tailscale's tools look) and ADMIN_LISTEN; `admin` = only on ADMIN_LISTEN and
   * the admin socket; `off` = nowhere.
   */
  API_V2: z.enum(['edge', 'admin', 'off']).default('edge'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});
export type BaseConfig = z.infer<typeof baseConfigSchema>;
