/**
 * The real-client test harness: unmodified tailscale clients in network namespaces, a local
 * DERP/STUN server, a proxy trap and a traffic guard, all owned by one `Harness` per run.
 * See test/README.md.
 */
export {
  DEFAULT_NEWEST_VERSION,
  DEFAULT_OLDEST_VERSION,
  cacheDir,
  clientBinaries,
  derperBinary,
  haveClientBinaries,
  resolveVersion,
  type ClientBinaries,
  type ClientVersion,
} from './binaries.js';
export {
  LOCAL_DERP_REGION_ID,
  buildDerpMap,
  freeTcpPort,
  freeUdpPort,
  startDerper,
  stunProbe,
  writeDerpMapFile,
  type DerpMap,
  type DerpNode,
  type DerpRegion,
  type DerpServer,
  type StartDerperOptions,
} from './derp.js';
export {
  CommandError,
  formatArgv,
  netnsCommand,
  output,
  run,
  sleep,
  type RunOptions,
  type RunResult,
} from './exec.js';
export {
  allowedPeers,
  assertNoForeignTrafficIn,
  checkForeignTraffic,
  type GuardTarget,
  type TrafficReport,
} from './guard.js';
export {
  Harness,
  assertNoForeignTraffic,
  harnessRoot,
  startNode,
  sweepLeftovers,
  withHarness,
  type HarnessOptions,
} from './harness.js';
export {
  DEFAULT_HEADSCALE_VERSION,
  Headscale,
  headscaleBinary,
  headscaleConfig,
  headscaleDerpYaml,
  startHeadscale,
  type HeadscaleOptions,
  type PreAuthKeyOptions,
} from './headscale.js';
export {
  DaemonExitedError,
  TAILSCALED_PORT,
  TailscaleNode,
  down,
  exec,
  ip,
  logout,
  peersOf,
  ping,
  spawnIn,
  status,
  stop,
  up,
  type PeerStatus,
  type PingOptions,
  type PingResult,
  type StartNodeOptions,
  type TailscaleStatus,
  type UpOptions,
} from './node.js';
export { ManagedProcess, startProcess, type ExitInfo, type StartProcessOptions } from './process.js';
export { NAME_PREFIX, SUBNET_BASE, Topology, assertNoDefaultRoute, type NetnsHost } from './topology.js';
export { ProxyTrap, type TrapHit } from './trap.js';
export { GiveUp, WaitTimeoutError, notYet, waitFor, type NotYet, type WaitOptions } from './wait.js';
