/**
 * The private network the real clients live in: one Linux bridge in the host namespace with an
 * address of our own (10.213.<n>.1/24, <n> derived from the run id and checked against the host's
 * addresses), and one network namespace per node joined to it by a veth pair. Each namespace has
 * `lo` up, its veth address and NO default route, so a client can reach only the bridge subnet.
 *
 * `ip netns exec` bind-mounts `/etc/netns/<ns>/resolv.conf` over /etc/resolv.conf for what it
 * starts, so each namespace gets a private, empty resolv.conf: a client told to manage DNS then
 * writes that file, never the host's.
 *
 * Every name carries the prefix `sbh-<runId>` (bridge `sbh-<runId>`, namespaces
 * `sbh-<runId>-<node>`, host-side veths `sbh-<runId>-<i>`), so `sweepLeftovers` can remove what a
 * crashed run left behind without touching anything else.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { output, run, sleep } from './exec.js';

/** Prefix of every bridge, veth and namespace the harness creates. */
export const NAME_PREFIX = 'sbh';
/** The /16 the per-run /24 subnets are carved from. */
export const SUBNET_BASE = '10.213';

const RUN_ID_RE = /^[a-z0-9]{6}$/;
const NODE_NAME_RE = /^[a-z][a-z0-9-]{0,29}$/;

/** A fresh random run id: 6 lowercase letters and digits. */
export function newRunId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(6), (b) => alphabet[b % alphabet.length]).join('');
}

/** The run id inside a harness-made name, or undefined for names that are not ours. */
export function runIdOf(name: string): string | undefined {
  const m = /^sbh-([a-z0-9]{6})(?:-|$)/.exec(name);
  return m?.[1];
}

/** One node's namespace. */
export interface NetnsHost {
  /** The node name the namespace was made for. */
  readonly name: string;
  readonly netns: string;
  /** Its address on the bridge subnet. */
  readonly ip: string;
  /** The interface inside the namespace (always 'eth0'). */
  readonly iface: string;
  /** The host-side end of the veth, enslaved to the bridge. */
  readonly vethHost: string;
  /** The index used for naming and addressing (1, 2, …). */
  readonly index: number;
}

async function ip(args: readonly string[]): Promise<string> {
  return output(['ip', ...args], { timeoutMs: 15_000 });
}

/** Subnet octets already used on the host by anything (addresses or routes) inside 10.213/16. */
async function usedThirdOctets(): Promise<Set<number>> {
  const used = new Set<number>();
  const text =
    (await ip(['-4', '-o', 'addr', 'show'])) + '\n' + (await ip(['-4', 'route', 'show', 'table', 'all']));
  const re = new RegExp(`\\b${SUBNET_BASE.replace('.', '\\.')}\\.(\\d+)\\.`, 'g');
  for (const m of text.matchAll(re)) used.add(Number(m[1]));
  // A route covering all of 10.213/16 (or wider, e.g. 10.0.0.0/8) means the range is taken.
  if (/\b10\.0\.0\.0\/8\b|\b10\.213\.0\.0\/16\b/.test(text)) {
    throw new Error(`the host already routes ${SUBNET_BASE}.0.0/16; the harness needs it free`);
  }
  return used;
}

export class Topology {
  private readonly hosts = new Map<string, NetnsHost>();
  private nextIndex = 1;
  private destroyed = false;

  private constructor(
    readonly runId: string,
    /** The bridge interface in the host namespace. */
    readonly bridge: string,
    /** The third octet of this run's subnet. */
    readonly octet: number,
  ) {}

  /** The bridge's address: where the control server, DERP and STUN listen. */
  get bridgeIp(): string {
    return `${SUBNET_BASE}.${this.octet}.1`;
  }

  /** The run's subnet in CIDR form, e.g. '10.213.57.0/24'. */
  get subnet(): string {
    return `${SUBNET_BASE}.${this.octet}.0/24`;
  }

  /** Creates the bridge for `runId` on a /24 nobody on the host uses. */
  static async create(runId: string): Promise<Topology> {
    if (!RUN_ID_RE.test(runId)) throw new Error(`bad run id ${JSON.stringify(runId)}`);
    const used = await usedThirdOctets();
    const start = createHash('sha256').update(runId).digest()[0]! % 200;
    let octet: number | undefined;
    for (let i = 0; i < 200; i++) {
      const candidate = 32 + ((start + i) % 200);
      if (!used.has(candidate)) {
        octet = candidate;
        break;
      }
    }
    if (octet === undefined) throw new Error(`no free /24 left in ${SUBNET_BASE}.0.0/16`);
    const topo = new Topology(runId, `${NAME_PREFIX}-${runId}`, octet);
    // nf_call_* 0: bridged frames between our namespaces skip the host's iptables/nftables, whose
    // FORWARD policy (e.g. Docker's DROP) would otherwise apply when br_netfilter is loaded.
    await ip([
      'link', 'add', topo.bridge, 'type', 'bridge',
      'nf_call_iptables', '0', 'nf_call_ip6tables', '0', 'nf_call_arptables', '0',
    ]); // prettier-ignore
    await ip(['addr', 'add', `${topo.bridgeIp}/24`, 'dev', topo.bridge]);
    await ip(['link', 'set', topo.bridge, 'up']);
    return topo;
  }

  /** The namespaces created so far, in creation order. */
  list(): NetnsHost[] {
    return [...this.hosts.values()];
  }

  get(name: string): NetnsHost | undefined {
    return this.hosts.get(name);
  }

  /** Creates the namespace for node `name`: lo up, eth0 on the bridge, no default route. */
  async addHost(name: string): Promise<NetnsHost> {
    if (this.destroyed) throw new Error('topology already destroyed');
    if (!NODE_NAME_RE.test(name)) {
      throw new Error(`node name ${JSON.stringify(name)} must match ${String(NODE_NAME_RE)}`);
    }
    if (this.hosts.has(name)) throw new Error(`node ${name} exists already`);
    const index = this.nextIndex++;
    if (index > 200) throw new Error('at most 200 nodes per run');
    const host: NetnsHost = {
      name,
      netns: `${NAME_PREFIX}-${this.runId}-${name}`,
      ip: `${SUBNET_BASE}.${this.octet}.${index + 9}`,
      iface: 'eth0',
      vethHost: `${NAME_PREFIX}-${this.runId}-${index}`,
      index,
    };
    const peerTmp = `sbp-${this.runId}-${index}`;
    this.hosts.set(name, host);
    await ip(['netns', 'add', host.netns]);
    mkdirSync(netnsEtcDir(host.netns), { recursive: true });
    writeFileSync(join(netnsEtcDir(host.netns), 'resolv.conf'), '# switchboard test harness: no DNS here\n');
    await ip(['-n', host.netns, 'link', 'set', 'lo', 'up']);
    await ip(['link', 'add', host.vethHost, 'type', 'veth', 'peer', 'name', peerTmp, 'netns', host.netns]);
    await ip(['link', 'set', host.vethHost, 'master', this.bridge, 'up']);
    await ip(['-n', host.netns, 'link', 'set', peerTmp, 'name', host.iface]);
    await ip(['-n', host.netns, 'addr', 'add', `${host.ip}/24`, 'dev', host.iface]);
    await ip(['-n', host.netns, 'link', 'set', host.iface, 'up']);
    await assertNoDefaultRoute(host.netns);
    return host;
  }

  /** Kills what runs in our namespaces, then deletes namespaces, veths and the bridge. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    for (const host of this.hosts.values()) await deleteNetns(host.netns);
    for (const host of this.hosts.values()) await deleteLink(host.vethHost);
    await deleteLink(this.bridge);
  }
}

/** Throws unless `netns` has no default route in its main table (IPv4 and IPv6). */
export async function assertNoDefaultRoute(netns: string): Promise<void> {
  for (const family of ['-4', '-6']) {
    const routes = await ip(['-n', netns, family, 'route', 'show', 'default', 'table', 'main']);
    if (routes !== '') {
      throw new Error(`namespace ${netns} has a default route (${family}): ${routes}`);
    }
  }
}

/** SIGTERM, then SIGKILL, every process in `netns`, then deletes it. Never throws. */
export async function deleteNetns(netns: string): Promise<void> {
  const pids = async (): Promise<number[]> => {
    const r = await run(['ip', 'netns', 'pids', netns], { allowFailure: true, timeoutMs: 10_000 });
    return r.code === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
  };
  let left = await pids();
  for (const [signal, waitMs] of [
    ['SIGTERM', 3_000],
    ['SIGKILL', 2_000],
  ] as const) {
    if (left.length === 0) break;
    for (const pid of left) killQuietly(pid, signal);
    const deadline = Date.now() + waitMs;
    while (left.length > 0 && Date.now() < deadline) {
      await sleep(100);
      left = await pids();
    }
  }
  await run(['ip', 'netns', 'del', netns], { allowFailure: true, timeoutMs: 10_000 });
  rmSync(netnsEtcDir(netns), { recursive: true, force: true });
}

/** The per-namespace /etc overlay directory `ip netns exec` uses. */
export function netnsEtcDir(netns: string): string {
  return join('/etc/netns', netns);
}

/** Deletes a link if it exists. Never throws. */
export async function deleteLink(name: string): Promise<void> {
  await run(['ip', 'link', 'del', name], { allowFailure: true, timeoutMs: 10_000 });
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Names of all network namespaces on the host. */
export async function listNetns(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { allowFailure: true, timeoutMs: 10_000 });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** Names of all network namespaces on the host, plus leftover /etc/netns directories. */
export async function listNetnsWithEtc(): Promise<string[]> {
  const names = new Set(await listNetns());
  if (existsSync('/etc/netns')) for (const d of readdirSync('/etc/netns')) names.add(d);
  return [...names];
}

/** Names of all links in the host namespace. */
export async function listLinks(): Promise<string[]> {
  const r = await run(['ip', '-o', 'link', 'show'], { allowFailure: true, timeoutMs: 10_000 });
  return r.stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

/** Pids of processes whose command line mentions `needle` (used to find a run's host processes). */
export function pidsWithArg(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) found.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** The kernel's start time of `pid` (field 22 of /proc/<pid>/stat), or undefined if it is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True if `pid` still runs and is the same process that had `startTime`. */
export function processAlive(pid: number, startTime: string | undefined): boolean {
  return existsSync(`/proc/${pid}`) && processStartTime(pid) === startTime;
}

/** Kills `pids` (SIGTERM, then SIGKILL after a grace period). */
export async function killPids(pids: readonly number[], graceMs = 3_000): Promise<void> {
  for (const pid of pids) killQuietly(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  let left = pids.filter((p) => existsSync(`/proc/${p}`));
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    left = left.filter((p) => existsSync(`/proc/${p}`));
  }
  for (const pid of left) killQuietly(pid, 'SIGKILL');
}
