/** key-registry configuration, parsed once from the environment (see README for each variable). */
import { z } from 'zod';

const duration = z
  .string()
  .regex(/^(0|\d+(ms|s|m|h|d))$/, 'a duration like 90s, 30m, 12h, 180d, or 0 for never')
  .transform(parseDuration);

export function parseDuration(s: string): number {
  if (s === '0') return 0;
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(s);
  if (!m) throw new Error(`bad duration ${s}`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    m[2] as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return n * unit;
}

export const keyRegistryConfigSchema = z.object({
  /** Lifetime of a user node's key after login; 0 = keys never expire. Tagged nodes never expire. */
  NODE_KEY_EXPIRY: duration.default('180d'),
  /** When true, new machines need `switchboard nodes approve ID` before they work. */
  REQUIRE_MACHINE_APPROVAL: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** An ephemeral node whose stream has been closed this long is deleted. */
  EPHEMERAL_INACTIVITY_TIMEOUT: duration.default('120s'),
  /** Pepper for pre-auth key hashes; generated and stored in the database when unset. */
  KEY_PEPPER: z.string().min(16).optional(),
  /** MagicDNS base domain of the default tailnet. */
  BASE_DOMAIN: z
    .string()
    .regex(
      /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/,
      'a DNS domain like tailnet.example.com',
    )
    .default('switchboard.internal'),
  /**
   * Public base URL of the login pages (the client edge in `serve`, the Ingress routing /login/* to
   * identity with services). Set: a node without a pre-auth key gets a browser login URL.
   */
  PUBLIC_URL: z
    .string()
    .url()
    .transform((u) => u.replace(/\/+$/, ''))
    .optional(),
  /** How long a browser login URL stays valid (then the client gets a fresh one). */
  LOGIN_TTL: duration.default('15m'),
});
export type KeyRegistryConfig = z.infer<typeof keyRegistryConfigSchema>;
