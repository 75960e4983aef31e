/**
 * What the scenarios need from a control server under test, whichever it is: its client URLs, the
 * processes whose CPU and memory count as the server's, a reusable pre-auth key, node deletion by ID,
 * and stopping. Also the DERP map both servers hand out: one region on loopback, with nothing listening
 * (the simulated nodes never dial DERP), written in each server's format.
 */
import { writeFileSync } from 'node:fs';
import type { ProcessGroup } from '../proc-stats.js';

export type ServerKey = 'switchboard' | 'switchboard_services' | 'headscale';

/**
 * mesh: the servers' default policy, every node sees every other. hub: a few nodes tagged
 * `tag:hub` that every node may reach (HUB_POLICY); the others see only the hubs, the hubs see
 * everyone, as with shared servers or subnet routers in a large tailnet.
 */
export type Topology = 'mesh' | 'hub';

export interface AuthKeys {
  readonly plain: string;
  readonly hub: string | null;
}

export const HUB_TAG = 'tag:hub';

/** Everyone may reach the hubs; nothing else is allowed (HuJSON/JSON, the same text for both). */
export const HUB_POLICY = {
  tagOwners: { [HUB_TAG]: ['bench@'] },
  acls: [{ action: 'accept', src: ['*'], dst: [`${HUB_TAG}:*`] }],
};

export interface ServerUnderTest {
  readonly key: ServerKey;
  /** Human-readable name with mode and version. */
  readonly label: string;
  readonly version: string;
  /** Control URLs; nodes are spread over them round-robin (fanout replicas). */
  readonly urls: readonly string[];
  /** The server's own processes: their CPU and RSS are the server's. */
  readonly group: ProcessGroup;
  /** Backing services that are not part of the server binary (Postgres backends, NATS, Redis). */
  readonly infra: ProcessGroup | null;
  /** Where its logs are. */
  readonly logDir: string;
  /**
   * Reusable pre-auth keys valid for the whole run: one for user-owned nodes and, for the hub
   * topology, one tagged `tag:hub` (the hub policy is in force before either is created).
   */
  authKeys(): Promise<AuthKeys>;
  /** Deletes node `id` through the admin API; resolves when the API answered. */
  deleteNode(id: number): Promise<void>;
  /** Open map streams as the server counts them, if it can tell. */
  streamCount(): Promise<number | null>;
  stop(): Promise<void>;
}

export const DERP_REGION_ID = 900;

/** tailcfg.DERPMap JSON: one region on 127.0.0.1 (port 9, nothing listens; nobody dials it). */
export function benchDerpMap(): Record<string, unknown> {
  return {
    Regions: {
      [DERP_REGION_ID]: {
        RegionID: DERP_REGION_ID,
        RegionCode: 'bench',
        RegionName: 'Benchmark (loopback, unused)',
        Nodes: [
          {
            Name: `${DERP_REGION_ID}a`,
            RegionID: DERP_REGION_ID,
            HostName: '127.0.0.1',
            IPv4: '127.0.0.1',
            IPv6: 'none',
            DERPPort: 9,
            STUNPort: -1,
            CanPort80: false,
          },
        ],
      },
    },
    OmitDefaultRegions: true,
  };
}

/** The DERP map as Switchboard reads it (tailcfg JSON). */
export function writeSwitchboardDerpMap(path: string): void {
  writeFileSync(path, JSON.stringify(benchDerpMap(), null, 2) + '\n');
}

/**
 * The DERP map as headscale's `derp.paths` loader reads it: YAML (JSON is YAML) decoded with
 * gopkg.in/yaml.v3 into tailcfg.DERPMap, which matches lower-cased Go field names, not JSON names.
 */
export function writeHeadscaleDerpMap(path: string): void {
  const lower = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(lower);
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(
        Object.entries(v).map(([k, x]) => [/^\d+$/.test(k) ? k : k.toLowerCase(), lower(x)]),
      );
    return v;
  };
  // YAML flow style is JSON with unquoted keys allowed; the region ids must be integer keys.
  const yaml = JSON.stringify(lower(benchDerpMap()), null, 2).replace(/"(\d+)":/g, '$1:');
  writeFileSync(path, yaml + '\n');
}
