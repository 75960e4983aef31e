/**
 * Records carried by events and snapshots: the state one service owns, published for the others.
 * Every record has a `version` that grows with each change, so consumers apply events idempotently
 * (an event whose version is not newer than what they hold is ignored).
 */
import { z } from 'zod';

export const isoTime = z.string().datetime({ offset: true });

export const NodeRecordSchema = z.object({
  id: z.number().int().positive(),
  stableId: z.string().min(1),
  tailnetId: z.number().int().positive(),
  /** Owning user; null for tagged nodes (tags replace user identity). */
  userId: z.number().int().positive().nullable(),
  machineKey: z.string().startsWith('mkey:'),
  nodeKey: z.string().startsWith('nodekey:'),
  discoKey: z.string().startsWith('discokey:').nullable(),
  ipv4: z.string(),
  ipv6: z.string(),
  hostname: z.string(),
  givenName: z.string(),
  hostinfo: z.record(z.unknown()).nullable(),
  endpoints: z.array(z.string()),
  homeDerp: z.number().int().nonnegative(),
  tags: z.array(z.string()),
  ephemeral: z.boolean(),
  keyExpiry: isoTime.nullable(),
  createdAt: isoTime,
  lastSeen: isoTime.nullable(),
  machineAuthorized: z.boolean(),
  capVersion: z.number().int().nonnegative(),
  routableIPs: z.array(z.string()),
  approvedRoutes: z.array(z.string()),
  version: z.number().int().nonnegative(),
});
export type NodeRecord = z.infer<typeof NodeRecordSchema>;

/** Tailscale's user roles that Switchboard knows (billing-admin has nothing to administer here). */
export const USER_ROLES = ['owner', 'admin', 'network-admin', 'it-admin', 'auditor', 'member'] as const;
export const UserRoleSchema = z.enum(USER_ROLES);
export type UserRole = z.infer<typeof UserRoleSchema>;

export const UserRecordSchema = z.object({
  id: z.number().int().positive(),
  tailnetId: z.number().int().positive(),
  name: z.string().min(1),
  loginName: z.string().min(1),
  displayName: z.string(),
  email: z.string().nullable(),
  profilePicUrl: z.string().nullable(),
  provider: z.string(),
  groups: z.array(z.string()),
  /** Admin role (Tailscale's user roles); absent or `member`: no admin rights. */
  role: UserRoleSchema.optional(),
  createdAt: isoTime,
  version: z.number().int().nonnegative(),
  /** A disabled user cannot log in or register; their nodes have no peers and are no one's peer. */
  disabled: z.boolean().optional(),
  /** Set for users who signed in through a login provider: the provider's id and the person's subject. */
  providerSubject: z.string().optional(),
});
export type UserRecord = z.infer<typeof UserRecordSchema>;

export const TailnetRecordSchema = z.object({
  id: z.number().int().positive(),
  name: z.string(),
  /** MagicDNS base domain, e.g. `tailnet.switchboard.internal`. */
  domain: z.string(),
});
export type TailnetRecord = z.infer<typeof TailnetRecordSchema>;

export const PolicyRecordSchema = z.object({
  tailnetId: z.number().int().positive(),
  /** Monotonic policy version; 0 is the built-in default (allow all). */
  version: z.number().int().nonnegative(),
  /** HuJSON source; null means the default allow-all policy. */
  text: z.string().nullable(),
});
export type PolicyRecord = z.infer<typeof PolicyRecordSchema>;

/** A tailnet's DNS as the admin API sets it (owned by identity); rendered into every map's DNSConfig. */
export const TailnetDnsRecordSchema = z.object({
  tailnetId: z.number().int().positive(),
  nameservers: z.array(z.string()),
  searchPaths: z.array(z.string()),
  magicDns: z.boolean(),
  /** Split DNS: domain → resolver addresses. */
  splitDns: z.record(z.array(z.string())),
  version: z.number().int().nonnegative(),
});
export type TailnetDnsRecord = z.infer<typeof TailnetDnsRecordSchema>;
