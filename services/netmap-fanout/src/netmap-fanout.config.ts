/** netmap-fanout configuration (see README for each variable). */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ValidationError } from '@switchboard/common';
import type { DERPMap } from '@switchboard/protocol';

const bool = (d: 'true' | 'false') =>
  z
    .enum(['true', 'false'])
    .default(d)
    .transform((v) => v === 'true');

export const fanoutConfigSchema = z.object({
  /** Server Noise key as `privkey:<hex>`; when unset, read from (or created in) NOISE_KEY_FILE. */
  NOISE_PRIVATE_KEY: z
    .string()
    .regex(/^privkey:[0-9a-f]{64}$/, 'privkey:<64 hex>')
    .optional(),
  NOISE_KEY_FILE: z.string().optional(),
  /** DERP map as a tailcfg.DERPMap JSON file, or a URL serving one. */
  DERP_MAP_PATH: z.string().optional(),
  DERP_MAP_URL: z.string().url().optional(),
  MAGIC_DNS: bool('true'),
  /** Comma-separated resolvers pushed to clients (IP, IP:port or DoH URL). */
  DNS_NAMESERVERS: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    ),
  /** Stops clients probing well-known internet hosts for captive portals (for closed networks). */
  DISABLE_CAPTIVE_PORTAL_DETECTION: bool('false'),
  KEEPALIVE_INTERVAL_MS: z.coerce.number().int().min(1000).max(100_000).default(50_000),
  /** Oldest client capability version accepted: 113 = tailscale v1.80, the oldest release we test. */
  MIN_CAPABILITY_VERSION: z.coerce.number().int().min(87).default(113),
  /**
   * The pre-Noise NaCl crypto_box control channel (`/machine/<key hex>`) for tailscale ≤ v1.62;
   * off by default (the box has no replay protection across replicas). See README "Legacy clients".
   */
  LEGACY_PROTOCOL: bool('false'),
  /** Legacy key as `privkey:<hex>`; when unset, read from (or created in) LEGACY_KEY_FILE. */
  LEGACY_PRIVATE_KEY: z
    .string()
    .regex(/^privkey:[0-9a-f]{64}$/, 'privkey:<64 hex>')
    .optional(),
  LEGACY_KEY_FILE: z.string().optional(),
  /**
   * Clients whose `/key?v=` capability version is at most this are offered only the legacy key
   * (they then use the legacy channel); newer ones get both keys and use Noise. 88 = v1.62, the
   * last release that speaks legacy; -1 = offer it to none (only clients without `?v=` use it).
   */
  LEGACY_ONLY_MAX_CAPABILITY_VERSION: z.coerce.number().int().min(-1).default(88),
  /** Oldest MapRequest.Version served on the legacy channel (88 = v1.62.1, the one we test). */
  LEGACY_MIN_CAPABILITY_VERSION: z.coerce.number().int().min(1).default(88),
  /** This replica's name in the stream registry; defaults to hostname + pid. */
  REPLICA_ID: z.string().optional(),
  /** TCP connections the client edge holds at once; further ones are closed at accept. */
  EDGE_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(16_000),
  /**
   * TCP connections per source address (IPv4, or IPv6 /64); 0 = no limit. Behind a load balancer
   * that does not preserve client addresses, set 0 (or the LB's share) and limit there.
   */
  EDGE_MAX_CONNECTIONS_PER_SOURCE: z.coerce.number().int().min(0).default(1024),
  /** A Noise connection must send its HTTP/2 preface within this. */
  EDGE_PREFACE_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  /** A Noise connection with no open stream is closed after this (0 = never). */
  EDGE_IDLE_TIMEOUT_MS: z.coerce.number().int().min(0).default(120_000),
  /** A request body must arrive whole within this. */
  EDGE_BODY_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per Noise connection. */
  EDGE_MAX_STREAMS_PER_CONNECTION: z.coerce.number().int().min(2).max(1000).default(32),
  /** Requests other than a running map stream in progress at once per connection; more get 429. */
  EDGE_MAX_REQUESTS_PER_CONNECTION: z.coerce.number().int().min(1).max(1000).default(8),
});
export type FanoutConfig = z.infer<typeof fanoutConfigSchema>;

const derpNode = z
  .object({
    Name: z.string().min(1),
    RegionID: z.number().int().positive(),
    HostName: z.string().min(1),
  })
  .passthrough();
const derpRegion = z
  .object({
    RegionID: z.number().int().positive(),
    RegionCode: z.string(),
    RegionName: z.string().optional(),
    Nodes: z.array(derpNode).min(1),
  })
  .passthrough();
export const derpMapSchema = z
  .object({
    Regions: z.record(z.string().regex(/^\d+$/), derpRegion),
    omitDefaultRegions: z.boolean().optional(),
  })
  .passthrough()
  .superRefine((m, ctx) => {
    for (const [id, r] of Object.entries(m.Regions)) {
      if (String(r.RegionID) !== id)
        ctx.addIssue({ code: 'custom', message: `region key ${id} != RegionID ${r.RegionID}` });
      for (const n of r.Nodes)
        if (n.RegionID !== r.RegionID)
          ctx.addIssue({
            code: 'custom',
            message: `DERP node ${n.Name} has RegionID ${n.RegionID}, region is ${r.RegionID}`,
          });
    }
  });

/** Loads and validates the DERP map; with no source configured, an empty map (direct paths only). */
export async function loadDerpMap(cfg: FanoutConfig): Promise<DERPMap> {
  let raw: unknown;
  let source: string;
  if (cfg.DERP_MAP_PATH) {
    source = cfg.DERP_MAP_PATH;
    try {
      raw = JSON.parse(readFileSync(cfg.DERP_MAP_PATH, 'utf8'));
    } catch (err) {
      throw new ValidationError(
        `DERP_MAP_PATH ${cfg.DERP_MAP_PATH}: ${(err as Error).message}`,
        'point it at a tailcfg.DERPMap JSON file',
      );
    }
  } else if (cfg.DERP_MAP_URL) {
    source = cfg.DERP_MAP_URL;
    const r = await fetch(cfg.DERP_MAP_URL, { signal: AbortSignal.timeout(10_000) });
    if (!r.ok) throw new ValidationError(`DERP_MAP_URL ${cfg.DERP_MAP_URL} answered ${r.status}`);
    raw = await r.json();
  } else {
    return { Regions: {}, omitDefaultRegions: true };
  }
  const res = derpMapSchema.safeParse(raw);
  if (!res.success) {
    const msg = res.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ValidationError(
      `invalid DERP map from ${source}: ${msg}`,
      'see tailcfg.DERPMap: {"Regions":{"900":{"RegionID":900,"RegionCode":"x","Nodes":[...]}}}',
    );
  }
  // Checked above for what the clients rely on; the other fields pass through as the source gave them.
  return res.data as DERPMap;
}
