/**
 * The data model: a parsed policy (every element keeps its source location), the nodes the engine
 * compiles for, and the tailcfg wire shapes it produces (FilterRule, SSHPolicy, node CapMap).
 */
import type { SourceLocation } from './errors.js';
import type { Prefix } from './ip.js';

// ---------------------------------------------------------------------------------------------
// Selectors

export const AUTOGROUPS = [
  'autogroup:internet',
  'autogroup:member',
  'autogroup:nonroot',
  'autogroup:tagged',
  'autogroup:self',
  'autogroup:danger-all',
] as const;
export type AutogroupName = (typeof AUTOGROUPS)[number];

/** A selector ("alias") after classification. Names keep their prefix (`group:x`, `tag:x`). */
export type Alias =
  | { readonly kind: 'wildcard' }
  | { readonly kind: 'user'; readonly login: string }
  | { readonly kind: 'group'; readonly name: string }
  | { readonly kind: 'tag'; readonly name: string }
  | { readonly kind: 'host'; readonly name: string }
  | { readonly kind: 'prefix'; readonly prefix: Prefix }
  | { readonly kind: 'autogroup'; readonly name: AutogroupName };

/** A selector as written: its classification, trimmed text and location. */
export interface AliasRef {
  readonly alias: Alias;
  readonly text: string;
  readonly loc: SourceLocation;
}

export interface PortRange {
  readonly first: number;
  readonly last: number;
}

/** An ACL destination `selector:ports`. */
export interface DstRef extends AliasRef {
  readonly ports: readonly PortRange[];
}

/** A protocol as written (`tcp`, `17`, ...) normalised to its name, or '' for "any". */
export interface ProtoSpec {
  readonly name: string;
  /** IANA numbers for `IPProto`, or null to omit the field (empty or `*`). */
  readonly numbers: readonly number[] | null;
}

export interface AclRule {
  readonly loc: SourceLocation;
  readonly action: 'accept';
  readonly proto: ProtoSpec;
  readonly protoLoc: SourceLocation | null;
  readonly src: readonly AliasRef[];
  readonly dst: readonly DstRef[];
}

/** One grant `ip` entry. */
export interface IpSpec {
  readonly proto: ProtoSpec;
  readonly ports: readonly PortRange[];
  readonly loc: SourceLocation;
}

export interface AppCap {
  readonly name: string;
  readonly values: readonly unknown[];
  readonly loc: SourceLocation;
}

export interface GrantRule {
  readonly loc: SourceLocation;
  readonly src: readonly AliasRef[];
  readonly dst: readonly AliasRef[];
  readonly ip: readonly IpSpec[];
  /** null when `app` is absent; may be empty. */
  readonly app: readonly AppCap[] | null;
  readonly via: readonly AliasRef[];
}

export interface SshUserRef {
  readonly name: string;
  readonly loc: SourceLocation;
}

export interface SshRule {
  readonly loc: SourceLocation;
  /** '' when missing (reported by validation). */
  readonly action: '' | 'accept' | 'check';
  readonly src: readonly AliasRef[];
  readonly dst: readonly AliasRef[];
  readonly users: readonly SshUserRef[];
  /** null: not given; 'always'; or a duration in nanoseconds. */
  readonly checkPeriod:
    null | 'always' | { readonly nanos: number; readonly text: string; readonly loc: SourceLocation };
  readonly acceptEnv: readonly string[] | null;
}

export interface NodeAttrRule {
  readonly loc: SourceLocation;
  readonly target: readonly AliasRef[];
  readonly attr: readonly { readonly name: string; readonly loc: SourceLocation }[];
  readonly ipPool: readonly {
    readonly prefix: Prefix;
    readonly text: string;
    readonly loc: SourceLocation;
  }[];
}

export interface AutoApproverRoute {
  readonly prefix: Prefix;
  readonly text: string;
  readonly loc: SourceLocation;
  readonly owners: readonly AliasRef[];
}

export interface PolicyTestEntry {
  readonly loc: SourceLocation;
  readonly src: string;
  readonly srcLoc: SourceLocation;
  readonly proto: ProtoSpec;
  readonly accept: readonly { readonly text: string; readonly loc: SourceLocation }[];
  readonly deny: readonly { readonly text: string; readonly loc: SourceLocation }[];
}

export interface SshTestEntry {
  readonly loc: SourceLocation;
  readonly src: AliasRef | null;
  readonly dst: readonly AliasRef[];
  readonly accept: readonly SshUserRef[];
  readonly deny: readonly SshUserRef[];
  readonly check: readonly SshUserRef[];
}

export interface GroupDef {
  readonly name: string;
  readonly loc: SourceLocation;
  readonly members: readonly { readonly login: string; readonly loc: SourceLocation }[];
}

export interface HostDef {
  readonly name: string;
  readonly loc: SourceLocation;
  readonly prefix: Prefix;
}

export interface TagOwnerDef {
  readonly tag: string;
  readonly loc: SourceLocation;
  readonly owners: readonly AliasRef[];
}

/** A parsed policy document. Obtain one from `parsePolicy`; treat it as immutable. */
export interface Policy {
  readonly groups: ReadonlyMap<string, GroupDef>;
  readonly hosts: ReadonlyMap<string, HostDef>;
  readonly tagOwners: ReadonlyMap<string, TagOwnerDef>;
  /** null when the key is absent (neither acls nor grants present means allow-all). */
  readonly acls: readonly AclRule[] | null;
  readonly grants: readonly GrantRule[] | null;
  readonly ssh: readonly SshRule[] | null;
  readonly nodeAttrs: readonly NodeAttrRule[];
  readonly autoApprovers: {
    readonly routes: readonly AutoApproverRoute[];
    readonly exitNode: readonly AliasRef[];
  };
  readonly tests: readonly PolicyTestEntry[];
  readonly sshTests: readonly SshTestEntry[];
  readonly randomizeClientPort: boolean;
}

// ---------------------------------------------------------------------------------------------
// Nodes

/** A node as the policy sees it. */
export interface PolicyNode {
  readonly id: string;
  /** Login name of the owning user; null (or ignored) for tagged nodes. */
  readonly user: string | null;
  readonly tags: readonly string[];
  readonly ipv4: string;
  readonly ipv6: string;
  /** Routes the node announces (Hostinfo.RoutableIPs). */
  readonly routableIPs: readonly string[];
  /** Routes an admin or autoApprovers approved. Served routes are announced ∩ approved. */
  readonly approvedRoutes: readonly string[];
  /**
   * Identity-provider groups of the node's user (names with or without `group:`). When given,
   * they replace the user's externally supplied groups (see `PolicyEngine.setUserGroups`).
   */
  readonly groups?: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// Wire shapes (tailcfg)

export interface WirePortRange {
  readonly First: number;
  readonly Last: number;
}

export interface NetPortRange {
  readonly IP: string;
  readonly Ports: WirePortRange;
}

export interface CapGrant {
  readonly Dsts: readonly string[];
  readonly CapMap: Readonly<Record<string, readonly unknown[] | null>>;
}

/** tailcfg.FilterRule as sent to clients. Never carries SrcBits or Bits. */
export interface FilterRule {
  readonly SrcIPs: readonly string[];
  readonly DstPorts?: readonly NetPortRange[];
  readonly IPProto?: readonly number[];
  readonly CapGrant?: readonly CapGrant[];
}

export interface SshPrincipal {
  readonly nodeIP: string;
}

export interface SshAction {
  readonly accept?: boolean;
  readonly allowAgentForwarding?: boolean;
  readonly allowLocalPortForwarding?: boolean;
  readonly allowRemotePortForwarding?: boolean;
  readonly holdAndDelegate?: string;
}

export interface SshPolicyRule {
  readonly principals: readonly SshPrincipal[];
  readonly sshUsers: Readonly<Record<string, string>>;
  readonly action: SshAction;
  readonly acceptEnv?: readonly string[];
}

/** tailcfg.SSHPolicy. */
export interface SshPolicy {
  readonly rules: readonly SshPolicyRule[];
}

/** Node capabilities from nodeAttrs: capability name → null (flags carry no values). */
export type NodeCapMap = Readonly<Record<string, null>>;
