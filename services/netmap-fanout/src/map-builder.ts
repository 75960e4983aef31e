/**
 * Pure rendering of tailcfg JSON from read-model records: self node, peer nodes, user profiles,
 * DNS config, full map responses. Peer entries are serialised once per (node version, online,
 * expired) and reused for every recipient instead of being re-encoded per stream.
 */
import type { NodeRecord, TailnetRecord, UserRecord } from '@switchboard/contracts';

/** Tagged nodes carry no user identity; they are shown as owned by this synthetic user. */
export const TAGGED_USER_ID = 2147455555;
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface MapSettings {
  /** tailcfg.DERPMap as JSON-ready object. */
  derpMap: Record<string, unknown>;
  magicDns: boolean;
  nameservers: string[];
  disableCaptivePortalDetection: boolean;
}

export function isExpired(node: NodeRecord, now: number): boolean {
  return node.keyExpiry !== null && Date.parse(node.keyExpiry) <= now;
}

function addresses(node: NodeRecord): string[] {
  return [`${node.ipv4}/32`, `${node.ipv6}/128`];
}

function trimmedHostinfo(h: Record<string, unknown> | null): Record<string, unknown> {
  if (!h) return {};
  const { NetInfo: _netinfo, ...rest } = h;
  return rest;
}

export function fqdn(node: NodeRecord, tailnet: TailnetRecord | undefined): string {
  return `${node.givenName}.${tailnet?.domain ?? 'switchboard.internal'}.`;
}

/** The tailcfg.Node object for a node, as a peer sees it (or as itself when `self`). */
export function renderNode(
  node: NodeRecord,
  opts: {
    tailnet: TailnetRecord | undefined;
    online: boolean;
    now: number;
    self: boolean;
    settings: MapSettings;
    /** The routes this viewer may use through the node (default: every served route). */
    routes?: readonly string[];
  },
): Record<string, unknown> {
  const expired = isExpired(node, opts.now);
  const addrs = addresses(node);
  const served = node.approvedRoutes.filter((r) => node.routableIPs.includes(r));
  const routes = opts.routes ? served.filter((r) => opts.routes!.includes(r)) : served;
  const subnetRoutes = routes.filter((r) => r !== '0.0.0.0/0' && r !== '::/0');
  const out: Record<string, unknown> = {
    ID: node.id,
    StableID: node.stableId,
    Name: fqdn(node, opts.tailnet),
    User: node.userId ?? TAGGED_USER_ID,
    Key: node.nodeKey,
    KeyExpiry: node.keyExpiry ?? ZERO_TIME,
    Machine: node.machineKey,
    Addresses: addrs,
    AllowedIPs: [...addrs, ...routes],
    Endpoints: expired && !opts.self ? [] : node.endpoints,
    HomeDERP: expired && !opts.self ? 0 : node.homeDerp,
    DERP: `127.3.3.40:${expired && !opts.self ? 0 : node.homeDerp}`,
    Hostinfo: trimmedHostinfo(node.hostinfo),
    Created: node.createdAt,
    Cap: node.capVersion,
    MachineAuthorized: opts.self ? node.machineAuthorized && !expired : true,
  };
  if (node.discoKey !== null) out.DiscoKey = node.discoKey;
  if (node.tags.length > 0) out.Tags = node.tags;
  if (subnetRoutes.length > 0) out.PrimaryRoutes = subnetRoutes;
  if (!opts.self) {
    out.Online = opts.online;
    if (!opts.online && node.lastSeen !== null) out.LastSeen = node.lastSeen;
  }
  if (expired) out.Expired = true;
  if (opts.self) {
    const capMap: Record<string, unknown[] | null> = {};
    if (opts.settings.disableCaptivePortalDetection) capMap['disable-captive-portal-detection'] = null;
    out.CapMap = capMap;
  }
  return out;
}

export function userProfile(userId: number, users: ReadonlyMap<number, UserRecord>): Record<string, unknown> {
  if (userId === TAGGED_USER_ID)
    return { ID: TAGGED_USER_ID, LoginName: 'tagged-devices', DisplayName: 'Tagged Devices' };
  const u = users.get(userId);
  if (!u) return { ID: userId, LoginName: `user-${userId}`, DisplayName: `user ${userId}` };
  const p: Record<string, unknown> = {
    ID: u.id,
    LoginName: u.loginName,
    DisplayName: u.displayName || u.name,
  };
  if (u.profilePicUrl) p.ProfilePicURL = u.profilePicUrl;
  return p;
}

export function dnsConfig(
  tailnet: TailnetRecord | undefined,
  settings: MapSettings,
): Record<string, unknown> {
  const domain = tailnet?.domain ?? 'switchboard.internal';
  const cfg: Record<string, unknown> = {
    Proxied: settings.magicDns,
    Domains: settings.magicDns ? [domain] : [],
    Routes: settings.magicDns ? { [`${domain}.`]: [] } : {},
  };
  if (settings.nameservers.length > 0) cfg.Resolvers = settings.nameservers.map((a) => ({ Addr: a }));
  return cfg;
}

/** Which record changes a peer can learn through a PeersChangedPatch instead of a full entry. */
export function peerPatch(
  before: NodeRecord,
  after: NodeRecord,
  now: number,
): Record<string, unknown> | null {
  const structural: (keyof NodeRecord)[] = [
    'stableId',
    'userId',
    'machineKey',
    'ipv4',
    'ipv6',
    'givenName',
    'tags',
    'routableIPs',
    'approvedRoutes',
    'machineAuthorized',
    'tailnetId',
  ];
  for (const k of structural) if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) return null;
  if (JSON.stringify(trimmedHostinfo(before.hostinfo)) !== JSON.stringify(trimmedHostinfo(after.hostinfo)))
    return null;
  // Expiry crossing "now" changes Expired/Endpoints rendering: send the full entry.
  if (isExpired(before, now) !== isExpired(after, now)) return null;
  const p: Record<string, unknown> = { NodeID: after.id };
  if (before.nodeKey !== after.nodeKey) p.Key = after.nodeKey;
  if (before.discoKey !== after.discoKey && after.discoKey !== null) p.DiscoKey = after.discoKey;
  if (JSON.stringify(before.endpoints) !== JSON.stringify(after.endpoints)) p.Endpoints = after.endpoints;
  if (before.homeDerp !== after.homeDerp && after.homeDerp !== 0) p.DERPRegion = after.homeDerp;
  if (before.keyExpiry !== after.keyExpiry) p.KeyExpiry = after.keyExpiry ?? ZERO_TIME;
  if (before.capVersion !== after.capVersion && after.capVersion !== 0) p.Cap = after.capVersion;
  if (before.lastSeen !== after.lastSeen && after.lastSeen !== null) p.LastSeen = after.lastSeen;
  return p;
}

/** Caches serialised peer entries: one JSON string per (node, version, online, expired). */
export class PeerJsonCache {
  private readonly cache = new Map<number, { key: string; json: string }>();
  private readonly variants = new Map<number, { base: string; map: Map<string, string> }>();

  get(
    node: NodeRecord,
    tailnet: TailnetRecord | undefined,
    online: boolean,
    now: number,
    settings: MapSettings,
    routes?: readonly string[],
  ): string {
    const base = `${node.version}|${online ? 1 : 0}|${isExpired(node, now) ? 1 : 0}|${tailnet?.domain ?? ''}`;
    if (routes !== undefined) {
      // Routers render per set of routes a viewer may use; those are few, cache them per node too.
      const key = `${base}|${routes.join(',')}`;
      let variants = this.variants.get(node.id);
      if (!variants || variants.base !== base)
        this.variants.set(node.id, (variants = { base, map: new Map() }));
      let json = variants.map.get(key);
      if (json === undefined) {
        json = JSON.stringify(renderNode(node, { tailnet, online, now, self: false, settings, routes }));
        variants.map.set(key, json);
      }
      return json;
    }
    const hit = this.cache.get(node.id);
    if (hit && hit.key === base) return hit.json;
    const json = JSON.stringify(renderNode(node, { tailnet, online, now, self: false, settings }));
    this.cache.set(node.id, { key: base, json });
    return json;
  }

  delete(nodeId: number): void {
    this.cache.delete(nodeId);
    this.variants.delete(nodeId);
  }
}
