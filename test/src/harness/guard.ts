/**
 * The guard that nothing the harness runs talks to the outside world. `assertNoForeignTraffic`
 * checks, at the end of a test: no namespace has a default route in its main table (and default
 * routes elsewhere only point into a tailscale TUN); every connected TCP/UDP socket inside our
 * namespaces, and of our host-side processes (derper, control server, the test process itself),
 * has a peer on loopback, the bridge subnet, link-local, or the tailnet ranges; and the proxy trap
 * saw no request.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { netnsCommand, run } from './exec.js';

/** What the guard needs to know about a harness. */
export interface GuardTarget {
  /** The run's subnet, e.g. '10.213.57.0/24'. */
  readonly subnet: string;
  /** Our namespaces. */
  readonly namespaces: readonly string[];
  /** Names of our tailscale TUN devices (default routes into them are allowed). */
  readonly tunNames: readonly string[];
  /** Pids of our processes in the host namespace. */
  readonly hostPids: readonly number[];
  /** Requests the proxy trap refused. */
  readonly trapHits: readonly { method: string; target: string; from: string }[];
}

export interface ForeignSocket {
  /** Namespace name, or 'host'. */
  readonly where: string;
  readonly proto: string;
  readonly local: string;
  readonly peer: string;
  readonly process: string;
}

export interface TrafficReport {
  readonly violations: readonly string[];
  readonly socketsChecked: number;
}

/** The address ranges a harness process may talk to. */
export function allowedPeers(subnet: string): BlockList {
  const list = new BlockList();
  const [net, len] = subnet.split('/');
  list.addSubnet(net ?? '', Number(len), 'ipv4');
  list.addSubnet('127.0.0.0', 8, 'ipv4');
  list.addSubnet('100.64.0.0', 10, 'ipv4'); // tailnet addresses (CGNAT range)
  list.addSubnet('169.254.0.0', 16, 'ipv4');
  list.addSubnet('224.0.0.0', 24, 'ipv4'); // link-local multicast
  list.addAddress('255.255.255.255', 'ipv4');
  list.addAddress('::1', 'ipv6');
  list.addSubnet('fd7a:115c:a1e0::', 48, 'ipv6'); // tailnet ULA range
  list.addSubnet('fe80::', 10, 'ipv6');
  list.addSubnet('ff02::', 16, 'ipv6');
  return list;
}

/** Splits ss's "addr:port" (with optional [v6] brackets, %iface zone) into the address. */
export function peerAddress(hostPort: string): string | undefined {
  if (hostPort === '*' || hostPort.endsWith(':*')) return undefined;
  const m = /^\[?(.*?)(?:%[^\]]*)?\]?:(\d+|\*)$/.exec(hostPort);
  const addr = m?.[1];
  if (!addr || addr === '*' || addr === '0.0.0.0' || addr === '::') return undefined;
  return addr.startsWith('::ffff:') && isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
}

/** True if `addr` is an address the harness's processes may talk to. */
export function isAllowedPeer(addr: string, allowed: BlockList): boolean {
  if (isIPv4(addr)) return allowed.check(addr, 'ipv4');
  if (isIPv6(addr)) return allowed.check(addr, 'ipv6');
  return false;
}

interface SsRow {
  readonly proto: string;
  readonly local: string;
  readonly peer: string;
  readonly process: string;
}

/** Parses `ss -Htunap` output. */
export function parseSs(text: string): SsRow[] {
  const rows: SsRow[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    rows.push({ proto: f[0] ?? '', local: f[4] ?? '', peer: f[5] ?? '', process: f.slice(6).join(' ') });
  }
  return rows;
}

async function sockets(netns: string | undefined): Promise<SsRow[]> {
  const argv = ['ss', '-Htunap'];
  const r = await run(netns ? netnsCommand(netns, argv) : argv, { timeoutMs: 15_000 });
  return parseSs(r.stdout);
}

/** Collects every violation without throwing. */
export async function checkForeignTraffic(target: GuardTarget): Promise<TrafficReport> {
  const allowed = allowedPeers(target.subnet);
  const violations: string[] = [];
  let socketsChecked = 0;
  const check = (where: string, rows: readonly SsRow[]): void => {
    for (const row of rows) {
      socketsChecked++;
      const addr = peerAddress(row.peer);
      if (addr !== undefined && !isAllowedPeer(addr, allowed)) {
        violations.push(`${where}: ${row.proto} ${row.local} -> ${row.peer} ${row.process}`);
      }
    }
  };
  for (const ns of target.namespaces) {
    for (const family of ['-4', '-6']) {
      const main = await run(netnsCommand(ns, ['ip', family, 'route', 'show', 'default', 'table', 'main']), {
        timeoutMs: 10_000,
      });
      if (main.stdout.trim() !== '') violations.push(`${ns}: default route ${main.stdout.trim()}`);
      const all = await run(netnsCommand(ns, ['ip', family, 'route', 'show', 'default', 'table', 'all']), {
        timeoutMs: 10_000,
      });
      for (const line of all.stdout.split('\n').filter((l) => l.startsWith('default'))) {
        const dev = /\bdev (\S+)/.exec(line)?.[1];
        if (!dev || !target.tunNames.includes(dev)) violations.push(`${ns}: default route ${line}`);
      }
    }
    check(ns, await sockets(ns));
  }
  const hostPids = new Set(target.hostPids);
  const hostRows = (await sockets(undefined)).filter((row) =>
    [...row.process.matchAll(/pid=(\d+)/g)].some((m) => hostPids.has(Number(m[1]))),
  );
  check('host', hostRows);
  for (const hit of target.trapHits) {
    violations.push(`proxy trap: ${hit.method} ${hit.target} from ${hit.from}`);
  }
  return { violations, socketsChecked };
}

/** Throws, listing every violation, if anything talked (or could route) outside our network. */
export async function assertNoForeignTrafficIn(target: GuardTarget): Promise<TrafficReport> {
  const report = await checkForeignTraffic(target);
  if (report.violations.length > 0) {
    throw new Error(`traffic outside the harness network:\n  ${report.violations.join('\n  ')}`);
  }
  return report;
}
