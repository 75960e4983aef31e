/**
 * A local DERP relay and STUN server for the real clients, and the DERP map that points at it.
 *
 * `derper` (built with the newest client) runs in the host namespace on the bridge address, over
 * plain HTTP (clients get TS_DEBUG_USE_DERP_HTTP=1). It is not run with `-dev`, because `-dev`
 * forces the listen address to `:3340` on every interface; instead `-a <bridge ip>:<port>` with a
 * port other than 443 and no `-certmode manual` gives plain HTTP on that address only, `-stun-port`
 * binds STUN to the same address, `-http-port -1` disables the port-80 listener, and the private
 * key lives in the run directory (`-c`). Nothing that dials out is enabled: no `-verify-clients`,
 * no `-verify-client-url`, no mesh, no setec, no bootstrap DNS names.
 *
 * The DERP map (region 900, the range reserved for user-run DERP) is written as tailcfg JSON, the
 * format a control server hands to clients in MapResponse.DERPMap.
 */
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startProcess, type ManagedProcess } from './process.js';
import { GiveUp, waitFor } from './wait.js';

/** tailcfg.DERPNode, the fields the harness sets. */
export interface DerpNode {
  readonly Name: string;
  readonly RegionID: number;
  readonly HostName: string;
  readonly IPv4: string;
  readonly IPv6: string;
  readonly STUNPort: number;
  readonly DERPPort: number;
  readonly CanPort80: boolean;
  readonly InsecureForTests?: boolean;
}

/** tailcfg.DERPRegion. */
export interface DerpRegion {
  readonly RegionID: number;
  readonly RegionCode: string;
  readonly RegionName: string;
  readonly Nodes: readonly DerpNode[];
}

/** tailcfg.DERPMap as JSON: region ids are the object's keys. */
export interface DerpMap {
  readonly Regions: Readonly<Record<string, DerpRegion>>;
  readonly OmitDefaultRegions: boolean;
}

export const LOCAL_DERP_REGION_ID = 900;

/** The one-region map for a DERP/STUN server at `host` (an IPv4 literal). */
export function buildDerpMap(opts: {
  readonly host: string;
  readonly derpPort: number;
  readonly stunPort: number;
  readonly regionId?: number;
}): DerpMap {
  const regionId = opts.regionId ?? LOCAL_DERP_REGION_ID;
  return {
    Regions: {
      [String(regionId)]: {
        RegionID: regionId,
        RegionCode: 'sbh',
        RegionName: 'Switchboard test harness',
        Nodes: [
          {
            Name: `${regionId}a`,
            RegionID: regionId,
            HostName: opts.host,
            IPv4: opts.host,
            IPv6: 'none',
            STUNPort: opts.stunPort,
            DERPPort: opts.derpPort,
            CanPort80: false,
          },
        ],
      },
    },
    OmitDefaultRegions: true,
  };
}

/** Writes `map` as pretty tailcfg JSON to `path`. */
export async function writeDerpMapFile(path: string, map: DerpMap): Promise<string> {
  await writeFile(path, JSON.stringify(map, null, 2) + '\n');
  return path;
}

/** A TCP port that was free on `host` a moment ago. */
export async function freeTcpPort(host: string): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, host, () => resolve());
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('freeTcpPort: no address');
  return addr.port;
}

/** A UDP port that was free on `host` a moment ago. */
export async function freeUdpPort(host: string): Promise<number> {
  const sock = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, host, () => resolve());
  });
  const port = sock.address().port;
  await new Promise<void>((resolve) => sock.close(() => resolve()));
  return port;
}

function crc32(buf: Uint8Array): number {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A STUN binding request as tailscale sends it (SOFTWARE "tailnode" + FINGERPRINT). */
export function stunBindingRequest(txId: Uint8Array): Buffer {
  const software = Buffer.from('tailnode');
  const head = Buffer.alloc(20);
  head.writeUInt16BE(0x0001, 0);
  head.writeUInt16BE(4 + software.length + 8, 2);
  head.writeUInt32BE(0x2112a442, 4);
  Buffer.from(txId).copy(head, 8, 0, 12);
  const attr = Buffer.alloc(4);
  attr.writeUInt16BE(0x8022, 0);
  attr.writeUInt16BE(software.length, 2);
  const body = Buffer.concat([head, attr, software]);
  const fp = Buffer.alloc(8);
  fp.writeUInt16BE(0x8028, 0);
  fp.writeUInt16BE(4, 2);
  fp.writeUInt32BE((crc32(body) ^ 0x5354554e) >>> 0, 4);
  return Buffer.concat([body, fp]);
}

/** Sends one STUN binding request to host:port and resolves true if a success response came back. */
export async function stunProbe(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  const sock = createSocket('udp4');
  const txId = randomBytes(12);
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      sock.on('message', (msg) => {
        if (msg.length >= 20 && msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(txId)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      sock.on('error', () => {
        clearTimeout(timer);
        resolve(false);
      });
      sock.send(stunBindingRequest(txId), port, host);
    });
  } finally {
    sock.close();
  }
}

export interface DerpServer {
  readonly host: string;
  readonly derpPort: number;
  readonly stunPort: number;
  readonly process: ManagedProcess;
  readonly map: DerpMap;
  /** Plain-HTTP DERP URL, e.g. http://10.213.57.1:40123/derp */
  readonly url: string;
}

export interface StartDerperOptions {
  readonly binary: string;
  /** The address to listen on (the bridge address). */
  readonly host: string;
  /** Directory for the key and the log. */
  readonly dir: string;
  readonly derpPort?: number;
  readonly stunPort?: number;
  /** Environment (PATH, the proxy trap). */
  readonly env: NodeJS.ProcessEnv;
  readonly readyTimeoutMs?: number;
}

/** Starts derper on `host` and waits until DERP answers HTTP and STUN answers a binding request. */
export async function startDerper(opts: StartDerperOptions): Promise<DerpServer> {
  const derpPort = opts.derpPort ?? (await freeTcpPort(opts.host));
  const stunPort = opts.stunPort ?? (await freeUdpPort(opts.host));
  const proc = startProcess({
    name: 'derper',
    argv: [
      opts.binary,
      `-a=${opts.host}:${derpPort}`,
      `-stun-port=${stunPort}`,
      '-http-port=-1',
      `-c=${join(opts.dir, 'derper.key')}`,
      `-hostname=${opts.host}`,
      '-mesh-psk-file=',
      '-home=blank',
      '-verify-clients=false',
    ],
    logFile: join(opts.dir, 'derper.log'),
    env: opts.env,
  });
  const url = `http://${opts.host}:${derpPort}/derp`;
  try {
    await waitFor(
      async () => {
        if (!proc.running) throw new GiveUp(`derper exited: ${proc.describe()}\n${proc.logTail(20)}`);
        const res = await fetch(`http://${opts.host}:${derpPort}/derp/probe`, {
          signal: AbortSignal.timeout(1_000),
        });
        return res.status === 200 && (await stunProbe(opts.host, stunPort));
      },
      {
        what: `derper on ${opts.host}:${derpPort} (STUN ${stunPort}) to answer`,
        timeoutMs: opts.readyTimeoutMs ?? 15_000,
      },
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    host: opts.host,
    derpPort,
    stunPort,
    process: proc,
    map: buildDerpMap({ host: opts.host, derpPort, stunPort }),
    url,
  };
}
