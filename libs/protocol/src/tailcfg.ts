/**
 * TypeScript shapes of the JSON messages of Tailscale's control protocol (package tailcfg), with
 * the exact JSON field names: PascalCase Go field names, except the renamed ones (`DERP`,
 * `omitDefaultRegions`, `sshHostKeys`, all SSH policy fields, `legacyPublicKey`/`publicKey`,
 * `nodeKeyChallenge`, the Oauth2Token fields). These are wire types: keys are text
 * (`nodekey:<hex>`), times are RFC 3339 strings, IDs are integers, byte slices are base64.
 * Fields are taken from tailscale v1.80.3 plus later additions up to v1.104.5 (marked with capver).
 */

/** Key text forms, e.g. `nodekey:` + 64 hex digits. */
export type NodeKeyText = string;
export type MachineKeyText = string;
export type DiscoKeyText = string;
export type NLKeyText = string;
export type ChallengeKeyText = string;
/** RFC 3339 time; `0001-01-01T00:00:00Z` is Go's zero time and means "not set". */
export type TimeText = string;
/** netip.Prefix text, e.g. `100.64.0.1/32`. */
export type PrefixText = string;
/** netip.AddrPort text, e.g. `1.2.3.4:41641` or `[fd7a:115c:a1e0::1]:41641`. */
export type AddrPortText = string;
/** Base64 (standard, padded) of a byte slice. */
export type Base64Text = string;
/** opt.Bool: true, false or null (unset). */
export type OptBool = boolean | null;

export type NodeID = number;
export type UserID = number;
export type LoginID = number;
export type StableNodeID = string;
export type CapabilityVersion = number;

/** Capability name → raw JSON values (null or [] for a flag without values). */
export type CapMap = Record<string, unknown[] | null>;

/** GET /key response (OverTLSPublicKeyResponse). */
export interface OverTLSPublicKeyResponse {
  legacyPublicKey?: MachineKeyText;
  publicKey: MachineKeyText;
}

/** The optional early payload sent inside Noise before HTTP/2 (EarlyNoise). */
export interface EarlyNoise {
  nodeKeyChallenge: ChallengeKeyText;
}

export interface Oauth2Token {
  access_token: string;
  token_type?: string;
  refresh_token?: string;
  expiry?: TimeText;
}

/** RegisterRequest.Auth (RegisterResponseAuth). Pre-1.66 clients also send Provider and LoginName. */
export interface RegisterResponseAuth {
  Provider?: string;
  LoginName?: string;
  Oauth2Token?: Oauth2Token | null;
  AuthKey?: string;
}

export interface Service {
  Proto: string;
  Port: number;
  Description?: string;
}

export interface NetInfo {
  MappingVariesByDestIP?: OptBool;
  HairPinning?: OptBool;
  WorkingIPv6?: OptBool;
  OSHasIPv6?: OptBool;
  WorkingUDP?: OptBool;
  WorkingICMPv4?: OptBool;
  HavePortMap?: boolean;
  UPnP?: OptBool;
  PMP?: OptBool;
  PCP?: OptBool;
  PreferredDERP?: number;
  LinkType?: string;
  DERPLatency?: Record<string, number>;
  FirewallMode?: string;
}

/** TPM 2.0 device metadata (tailcfg.TPMInfo). */
export interface TPMInfo {
  Manufacturer?: string;
  Vendor?: string;
  Model?: number;
  FirmwareVersion?: number;
  SpecRevision?: number;
}

export interface Location {
  Country?: string;
  CountryCode?: string;
  City?: string;
  CityCode?: string;
  Latitude?: number;
  Longitude?: number;
  Priority?: number;
}

/**
 * Hostinfo: the known fields. The index signature is for senders (clients may add fields); the
 * server's boundary schema (tailcfg-schema.ts) drops unknown fields, so stored and forwarded
 * Hostinfo only ever has the fields listed here.
 */
export interface Hostinfo {
  IPNVersion?: string;
  FrontendLogID?: string;
  BackendLogID?: string;
  OS?: string;
  OSVersion?: string;
  Container?: OptBool;
  Env?: string;
  Distro?: string;
  DistroVersion?: string;
  DistroCodeName?: string;
  App?: string;
  Desktop?: OptBool;
  Package?: string;
  DeviceModel?: string;
  PushDeviceToken?: string;
  Hostname?: string;
  ShieldsUp?: boolean;
  ShareeNode?: boolean;
  NoLogsNoSupport?: boolean;
  WireIngress?: boolean;
  IngressEnabled?: boolean;
  AllowsUpdate?: boolean;
  Machine?: string;
  GoArch?: string;
  GoArchVar?: string;
  GoVersion?: string;
  RoutableIPs?: PrefixText[];
  RequestTags?: string[];
  WoLMACs?: string[];
  Services?: Service[];
  NetInfo?: NetInfo;
  sshHostKeys?: string[];
  Cloud?: string;
  Userspace?: OptBool;
  UserspaceRouter?: OptBool;
  AppConnector?: OptBool;
  ServicesHash?: string;
  /** capver 122+ */
  ExitNodeID?: StableNodeID;
  Location?: Location;
  /** capver 118+ */
  StateEncrypted?: OptBool;
  PeerRelay?: boolean;
  RemoteConfig?: boolean;
  TPM?: TPMInfo;
  [unknownField: string]: unknown;
}

export interface RegisterRequest {
  Version: CapabilityVersion;
  NodeKey: NodeKeyText;
  OldNodeKey?: NodeKeyText;
  NLKey?: NLKeyText;
  Auth?: RegisterResponseAuth | null;
  Expiry?: TimeText;
  Followup?: string;
  Hostinfo?: Hostinfo | null;
  Ephemeral?: boolean;
  NodeKeySignature?: Base64Text | null;
  SignatureType?: string;
  Timestamp?: TimeText | null;
  DeviceCert?: Base64Text;
  Signature?: Base64Text;
  Tailnet?: string;
}

export interface User {
  ID: UserID;
  DisplayName: string;
  ProfilePicURL?: string;
  Created?: TimeText;
}

export interface Login {
  ID: LoginID;
  Provider: string;
  LoginName: string;
  DisplayName: string;
  ProfilePicURL?: string;
}

export interface RegisterResponse {
  User: User;
  Login: Login;
  NodeKeyExpired: boolean;
  MachineAuthorized: boolean;
  AuthURL: string;
  NodeKeySignature?: Base64Text | null;
  Error: string;
}

export interface MapRequest {
  Version: CapabilityVersion;
  Compress?: string;
  KeepAlive?: boolean;
  NodeKey: NodeKeyText;
  DiscoKey?: DiscoKeyText;
  Stream?: boolean;
  Hostinfo?: Hostinfo | null;
  MapSessionHandle?: string;
  MapSessionSeq?: number;
  Endpoints?: AddrPortText[] | null;
  EndpointTypes?: number[] | null;
  TKAHead?: string;
  ReadOnly?: boolean;
  OmitPeers?: boolean;
  DebugFlags?: string[] | null;
  ConnectionHandleForTest?: string;
  /** capver 130+ */
  HardwareAttestationKey?: string;
  HardwareAttestationKeySignature?: Base64Text;
  HardwareAttestationKeySignatureTimestamp?: TimeText;
}

export interface DNSResolver {
  Addr?: string;
  BootstrapResolution?: string[];
  /** capver 125+ */
  UseWithExitNode?: boolean;
}

export interface DNSRecord {
  Name: string;
  Type?: string;
  Value: string;
}

export interface DNSConfig {
  Resolvers?: DNSResolver[];
  /** Split DNS; an empty array means "answer with 100.100.100.100" (prefer [] over null). */
  Routes?: Record<string, DNSResolver[] | null>;
  FallbackResolvers?: DNSResolver[];
  Domains?: string[];
  /** MagicDNS on. */
  Proxied?: boolean;
  Nameservers?: string[];
  CertDomains?: string[];
  ExtraRecords?: DNSRecord[];
  ExitNodeFilteredSet?: string[];
  TempCorpIssue13969?: string;
}

export interface DERPNode {
  Name: string;
  RegionID: number;
  HostName: string;
  CertName?: string;
  IPv4?: string;
  IPv6?: string;
  STUNPort?: number;
  STUNOnly?: boolean;
  DERPPort?: number;
  InsecureForTests?: boolean;
  STUNTestIP?: string;
  CanPort80?: boolean;
}

export interface DERPRegion {
  RegionID: number;
  RegionCode: string;
  RegionName: string;
  Latitude?: number;
  Longitude?: number;
  Avoid?: boolean;
  /** capver 115+ */
  NoMeasureNoHome?: boolean;
  Nodes: DERPNode[];
}

export interface DERPHomeParams {
  RegionScore?: Record<string, number>;
}

export interface DERPMap {
  HomeParams?: DERPHomeParams | null;
  /** Region ID (decimal string) → region. null means unchanged. */
  Regions: Record<string, DERPRegion> | null;
  omitDefaultRegions?: boolean;
}

export interface Node {
  ID: NodeID;
  StableID: StableNodeID;
  /** MagicDNS FQDN with a trailing dot. */
  Name: string;
  User: UserID;
  Sharer?: UserID;
  Key: NodeKeyText;
  KeyExpiry?: TimeText;
  KeySignature?: Base64Text;
  Machine?: MachineKeyText;
  DiscoKey?: DiscoKeyText;
  Addresses: PrefixText[];
  /** Clients below capver 112 need this explicitly; see needsExplicitAllowedIPs. */
  AllowedIPs?: PrefixText[] | null;
  Endpoints?: AddrPortText[];
  /** Legacy home DERP, "127.3.3.40:<region>"; clients below capver 111 read only this. */
  DERP?: string;
  /** capver 111+ */
  HomeDERP?: number;
  Hostinfo?: Hostinfo;
  Created?: TimeText;
  /** That node's own capability version. */
  Cap?: CapabilityVersion;
  Tags?: string[];
  PrimaryRoutes?: PrefixText[];
  LastSeen?: TimeText | null;
  Online?: boolean | null;
  MachineAuthorized?: boolean;
  /** Deprecated list form of CapMap. */
  Capabilities?: string[];
  CapMap?: CapMap;
  UnsignedPeerAPIOnly?: boolean;
  ComputedName?: string;
  ComputedNameWithHost?: string;
  DataPlaneAuditLogID?: string;
  Expired?: boolean;
  SelfNodeV4MasqAddrForThisPeer?: string | null;
  SelfNodeV6MasqAddrForThisPeer?: string | null;
  IsWireGuardOnly?: boolean;
  IsJailed?: boolean;
  ExitNodeDNSResolvers?: DNSResolver[];
  /** capver 148+ */
  StableTailnetID?: string;
}

/** A field-level patch of one peer (MapResponse.PeersChangedPatch). */
export interface PeerChange {
  NodeID: NodeID;
  DERPRegion?: number;
  Cap?: CapabilityVersion;
  CapMap?: CapMap;
  Endpoints?: AddrPortText[];
  Key?: NodeKeyText | null;
  KeySignature?: Base64Text;
  DiscoKey?: DiscoKeyText | null;
  Online?: boolean | null;
  LastSeen?: TimeText | null;
  KeyExpiry?: TimeText | null;
}

export interface PortRange {
  First: number;
  Last: number;
}

export interface NetPortRange {
  /** An IP, CIDR, `a-b` range or `*`. Never send `Bits`. */
  IP: string;
  Ports: PortRange;
}

export interface CapGrant {
  Dsts: PrefixText[];
  Caps?: string[];
  CapMap?: CapMap;
}

export interface FilterRule {
  SrcIPs: string[];
  DstPorts?: NetPortRange[];
  IPProto?: number[];
  CapGrant?: CapGrant[];
}

export interface UserProfile {
  ID: UserID;
  LoginName: string;
  DisplayName: string;
  ProfilePicURL?: string;
  /** Always [] in Go output (emptyStructJSONSlice); optional here. */
  Roles?: unknown[];
  Groups?: string[];
}

export interface SSHPrincipal {
  node?: StableNodeID;
  nodeIP?: string;
  userLogin?: string;
  any?: boolean;
  pubKeys?: string[];
}

export interface SSHRecorderFailureAction {
  RejectSessionWithMessage?: string;
  TerminateSessionWithMessage?: string;
  NotifyURL?: string;
}

export interface SSHAction {
  message?: string;
  reject?: boolean;
  accept?: boolean;
  /** Nanoseconds (Go time.Duration). */
  sessionDuration?: number;
  allowAgentForwarding?: boolean;
  holdAndDelegate?: string;
  allowLocalPortForwarding?: boolean;
  allowRemotePortForwarding?: boolean;
  recorders?: AddrPortText[];
  onRecordingFailure?: SSHRecorderFailureAction;
}

export interface SSHRule {
  ruleExpires?: TimeText;
  principals: SSHPrincipal[];
  sshUsers: Record<string, string>;
  action: SSHAction;
  acceptEnv?: string[];
}

export interface SSHPolicy {
  rules: SSHRule[];
}

export interface PingRequest {
  URL: string;
  URLIsNoise?: boolean;
  Log?: boolean;
  Types?: string;
  IP?: string;
  Payload?: Base64Text;
}

export interface TKAInfo {
  Head?: string;
  Disabled?: boolean;
}

export interface Debug {
  SleepSeconds?: number;
  DisableLogTail?: boolean;
  Exit?: number;
}

export interface ControlIPCandidate {
  IP?: string;
  ACEHost?: string;
  DialStartDelaySec?: number;
  DialTimeoutSec?: number;
  Priority?: number;
}

export interface ControlDialPlan {
  Candidates: ControlIPCandidate[];
}

export interface ClientVersion {
  RunningLatest?: boolean;
  LatestVersion?: string;
  UrgentSecurityUpdate?: boolean;
  Notify?: boolean;
  NotifyURL?: string;
  NotifyText?: string;
}

export interface DisplayMessageAction {
  URL: string;
  Label: string;
}

/** capver 117+ structured health message. */
export interface DisplayMessage {
  Title: string;
  Text: string;
  Severity: 'high' | 'medium' | 'low';
  ImpactsConnectivity?: boolean;
  PrimaryAction?: DisplayMessageAction;
}

export interface MapResponse {
  MapSessionHandle?: string;
  Seq?: number;
  KeepAlive?: boolean;
  PingRequest?: PingRequest;
  PopBrowserURL?: string;
  Node?: Node;
  DERPMap?: DERPMap;
  Peers?: Node[];
  PeersChanged?: Node[];
  PeersRemoved?: NodeID[];
  PeersChangedPatch?: PeerChange[];
  /** NodeID (decimal string) → seen now (true) or clear LastSeen (false). */
  PeerSeenChange?: Record<string, boolean>;
  OnlineChange?: Record<string, boolean>;
  DNSConfig?: DNSConfig;
  Domain?: string;
  CollectServices?: OptBool;
  /** Absent = unchanged; [] = deny all inbound. */
  PacketFilter?: FilterRule[] | null;
  PacketFilters?: Record<string, FilterRule[] | null>;
  UserProfiles?: UserProfile[];
  Health?: string[];
  /** capver 117+ */
  DisplayMessages?: Record<string, DisplayMessage | null>;
  SSHPolicy?: SSHPolicy;
  ControlTime?: TimeText;
  TKAInfo?: TKAInfo;
  DomainDataPlaneAuditLogID?: string;
  Debug?: Debug;
  ControlDialPlan?: ControlDialPlan;
  ClientVersion?: ClientVersion;
  DefaultAutoUpdate?: OptBool;
  /** Nanoseconds; present in v1.80 tailcfg, removed later. */
  MaxKeyDuration?: number;
}

/** Go's zero time as it appears on the wire. */
export const ZERO_TIME_TEXT = '0001-01-01T00:00:00Z';

/** Unix 123: the Expiry a client sends to log out (`tailscale logout`). */
export const LOGOUT_EXPIRY_TEXT = '1970-01-01T00:02:03Z';

/** The legacy home-DERP string for a region: "127.3.3.40:<region>". */
export function legacyDerpString(regionId: number): string {
  return `127.3.3.40:${regionId}`;
}
