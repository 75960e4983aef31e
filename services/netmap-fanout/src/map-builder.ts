/**
 * Pure rendering of tailcfg values (libs/protocol's types) from read-model records: self node,
 * peer nodes, user profiles, DNS config, peer patches, and the MapResponse text. Peer entries are
 * serialised once per (node version, online, expired) and reused for every recipient instead of
 * being re-encoded per stream; those pre-serialised fragments are typed (`Json<T>`) and spliced
 * into a MapResponse only through `MapResponseJson`, so every field sent has its tailcfg type.
 */
import type { NodeRecord, TailnetDnsRecord, TailnetRecord, UserRecord } from '@switchboard/contracts';
import type {
  DERPMap,
  DNSConfig,
  DNSResolver,
  CapMap,
  Hostinfo,
  MapResponse,
  Node,
  PeerChange,
  UserProfile,
} from '@switchboard/protocol';

declare const jsonOf: unique symbol;
/** JSON text of a `T`, serialised once and spliced into messages as is. */
export type Json<T> = string & { readonly [jsonOf]: T };

/** Serialises a value, keeping its type. */
export function toJson<T>(value: T): Json<T> {
  return JSON.stringify(value) as Json<T>;
}

/** Types JSON text made elsewhere (e.g. libs/policy's packet filters) as a `T`. */
export function trustedJson<T>(text: string): Json<T> {
  return text as Json<T>;
}

/** `T` and every nested array and object read-only: values from libs that hand out readonly data. */
export type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [P in keyof T]: DeepReadonly<T[P]> }
    : T;

type MapField = keyof MapResponse;
type MapValue<K extends MapField> = NonNullable<MapResponse[K]>;

/**
 * Builds one MapResponse text field by field, in the order added, from typed values or from typed
 * pre-serialised fragments. The result is the same bytes `JSON.stringify` would give for an object
 * with those fields in that order.
 */
export class MapResponseJson {
  private readonly parts: string[] = [];

  /** Adds a field from its value. */
  set<K extends MapField>(key: K, value: DeepReadonly<MapValue<K>>): this {
    this.parts.push(`"${key}":${JSON.stringify(value)}`);
    return this;
  }

  /** Adds a field from JSON serialised earlier. */
  setJson<K extends MapField>(key: K, json: Json<MapValue<K>>): this {
    this.parts.push(`"${key}":${json}`);
    return this;
  }

  /** Adds a node-list field from entries serialised earlier. */
  setNodes(key: 'Peers' | 'PeersChanged', entries: readonly Json<Node>[]): this {
    this.parts.push(`"${key}":[${entries.join(',')}]`);
    return this;
  }

  get empty(): boolean {
    return this.parts.length === 0;
  }

  text(): Json<MapResponse> {
    return `{${this.parts.join(',')}}` as Json<MapResponse>;
  }

  /**
   * The text split around a last node-list field: `head` + the entries joined with `,` + `tail` is
   * the message (lets a caller compress blocks of entries separately and reuse them).
   */
  splitAtNodes(key: 'Peers'): { head: string; tail: string } {
    const fields = this.parts.length > 0 ? `${this.parts.join(',')},` : '';
    return { head: `{${fields}"${key}":[`, tail: ']}' };
  }
}

/** Tagged nodes carry no user identity; they are shown as owned by this synthetic user. */
export const TAGGED_USER_ID = 2147455555;
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface MapSettings {
  derpMap: DERPMap;
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

/** Hostinfo without NetInfo (peers do not get it). Stored Hostinfo passed the boundary schema. */
function trimmedHostinfo(h: Record<string, unknown> | null): Hostinfo {
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
): Node {
  const expired = isExpired(node, opts.now);
  const addrs = addresses(node);
  const served = node.approvedRoutes.filter((r) => node.routableIPs.includes(r));
  const routes = opts.routes ? served.filter((r) => opts.routes!.includes(r)) : served;
  const subnetRoutes = routes.filter((r) => r !== '0.0.0.0/0' && r !== '::/0');
  const out: Node = {
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
    const capMap: CapMap = {};
    if (opts.settings.disableCaptivePortalDetection) capMap['disable-captive-portal-detection'] = null;
    out.CapMap = capMap;
  }
  return out;
}

export function userProfile(userId: number, users: ReadonlyMap<number, UserRecord>): UserProfile {
  if (userId === TAGGED_USER_ID)
    return { ID: TAGGED_USER_ID, LoginName: 'tagged-devices', DisplayName: 'Tagged Devices' };
  const u = users.get(userId);
  if (!u) return { ID: userId, LoginName: `user-${userId}`, DisplayName: `user ${userId}` };
  const p: UserProfile = {
    ID: u.id,
    LoginName: u.loginName,
    DisplayName: u.displayName || u.name,
  };
  if (u.profilePicUrl) p.ProfilePicURL = u.profilePicUrl;
  return p;
}

/**
 * The map's DNSConfig: the tailnet's DNS as the admin API set it (`dns`), else the config's. Global
 * nameservers are `Resolvers`, split DNS domains `Routes` (the MagicDNS domain routes to the
 * client's own resolver, `[]`), search paths `Domains` after the MagicDNS domain.
 */
export function dnsConfig(
  tailnet: TailnetRecord | undefined,
  settings: MapSettings,
  dns?: TailnetDnsRecord,
): DNSConfig {
  const domain = tailnet?.domain ?? 'switchboard.internal';
  const magicDns = dns ? dns.magicDns : settings.magicDns;
  const nameservers = dns ? dns.nameservers : settings.nameservers;
  const routes: Record<string, DNSResolver[] | null> = magicDns ? { [`${domain}.`]: [] } : {};
  for (const [d, resolvers] of Object.entries(dns?.splitDns ?? {}))
    routes[`${d.replace(/\.$/, '')}.`] = resolvers.map((a) => ({ Addr: a }));
  const cfg: DNSConfig = {
    Proxied: magicDns,
    Domains: [...(magicDns ? [domain] : []), ...(dns?.searchPaths ?? [])],
    Routes: routes,
  };
  if (nameservers.length > 0) cfg.Resolvers = nameservers.map((a) => ({ Addr: a }));
  return cfg;
}

/** Which record changes a peer can learn through a PeersChangedPatch instead of a full entry. */
export function peerPatch(before: NodeRecord, after: NodeRecord, now: number): PeerChange | null {
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
  const p: PeerChange = { NodeID: after.id };
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
  private readonly cache = new Map<number, { key: string; json: Json<Node> }>();
  private readonly variants = new Map<number, { base: string; map: Map<string, Json<Node>> }>();

  get(
    node: NodeRecord,
    tailnet: TailnetRecord | undefined,
    online: boolean,
    now: number,
    settings: MapSettings,
    routes?: readonly string[],
  ): Json<Node> {
    const base = `${node.version}|${online ? 1 : 0}|${isExpired(node, now) ? 1 : 0}|${tailnet?.domain ?? ''}`;
    if (routes !== undefined) {
      // Routers render per set of routes a viewer may use; those are few, cache them per node too.
      const key = `${base}|${routes.join(',')}`;
      let variants = this.variants.get(node.id);
      if (!variants || variants.base !== base)
        this.variants.set(node.id, (variants = { base, map: new Map() }));
      let json = variants.map.get(key);
      if (json === undefined) {
        json = toJson(renderNode(node, { tailnet, online, now, self: false, settings, routes }));
        variants.map.set(key, json);
      }
      return json;
    }
    const hit = this.cache.get(node.id);
    if (hit && hit.key === base) return hit.json;
    const json = toJson(renderNode(node, { tailnet, online, now, self: false, settings }));
    this.cache.set(node.id, { key: base, json });
    return json;
  }

  delete(nodeId: number): void {
    this.cache.delete(nodeId);
    this.variants.delete(nodeId);
  }
}
