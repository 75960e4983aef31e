/**
 * Boundary validation of the JSON bodies clients send: RegisterRequest and MapRequest (zod).
 * Bodies are parsed with parseJsonLimited (at most MAX_REQUEST_JSON_DEPTH levels of nesting, so
 * no later recursive walk can overflow the stack). Unknown top-level fields are allowed and dropped
 * (newer clients add fields); Hostinfo is reduced to the fields tailcfg.Hostinfo defines, each
 * bounded, so what a node reports and what its peers are sent is never more than that; route
 * prefixes must be canonical (route-prefix.ts). Key fields are checked and normalised to
 * lowercase text, the zero key and Go's zero time `0001-01-01T00:00:00Z` become "absent", an Auth
 * object whose members are all empty (what clients before v1.66 always send) is "no
 * credentials", and every list and string is bounded. Failures throw ValidationError naming the
 * path of the first bad field.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { ValidationError, parseJsonLimited } from '@switchboard/common';
import { isZeroKey, normalizeKeyText, parseKey, type KeyKind } from './keys.js';
import { routePrefixProblem } from './route-prefix.js';
import type { Hostinfo } from './tailcfg.js';

/** Bounds on client-supplied lists and strings. */
export const LIMITS = {
  endpoints: 1000,
  routableIPs: 1000,
  requestTags: 100,
  services: 1000,
  shortList: 100,
  derpLatency: 1000,
  string: 4096,
  hostname: 1024,
} as const;

/** The deepest nesting accepted in a client request; the deepest real field (Hostinfo.NetInfo.DERPLatency) is 4. */
export const MAX_REQUEST_JSON_DEPTH = 64;
/** The largest client request body parsed (the edge refuses larger bodies with 413 before this). */
export const MAX_REQUEST_JSON_BYTES = 1 << 20;

/** 0001-01-01T00:00:00Z in Unix milliseconds (Date.UTC would read year 1 as 1901). */
const GO_ZERO_TIME_MS = -62135596800000;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses an RFC 3339 time as Go writes it; returns null for Go's zero time. */
export function parseGoTime(text: string): Date | null {
  const m = RFC3339.exec(text);
  if (!m) throw new ValidationError(`invalid RFC 3339 time ${JSON.stringify(text.slice(0, 64))}`);
  const frac = m[7] ? m[7].slice(0, 4).padEnd(4, '0') : '';
  const ms = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${frac}${m[8]!.toUpperCase()}`);
  if (Number.isNaN(ms))
    throw new ValidationError(`invalid RFC 3339 time ${JSON.stringify(text.slice(0, 64))}`);
  return ms === GO_ZERO_TIME_MS ? null : new Date(ms);
}

function str(max: number = LIMITS.string): z.ZodString {
  return z.string().max(max);
}

/** A key in text form, normalised; the zero key becomes undefined unless `required`. */
function keyText(kind: KeyKind, opts: { required: true }): z.ZodEffects<z.ZodString, string>;
function keyText(kind: KeyKind, opts?: { required?: false }): z.ZodEffects<z.ZodString, string | undefined>;
function keyText(
  kind: KeyKind,
  opts: { required?: boolean } = {},
): z.ZodEffects<z.ZodString, string | undefined> {
  return z.string().transform((v, ctx) => {
    try {
      const key = parseKey(kind, v, 'key');
      if (isZeroKey(key)) {
        if (opts.required) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must not be the zero key' });
          return z.NEVER;
        }
        return undefined;
      }
      return normalizeKeyText(kind, v);
    } catch (err) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message.replace(/^key: /, '') });
      return z.NEVER;
    }
  });
}

/** RFC 3339 time; Go's zero time becomes undefined. */
const goTime = z.string().transform((v, ctx) => {
  try {
    return parseGoTime(v) ?? undefined;
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
    return z.NEVER;
  }
});

const addrPort = z
  .string()
  .max(64)
  .refine(isAddrPort, { message: 'expected ip:port, e.g. 1.2.3.4:41641 or [fd7a::1]:41641' });

/** A route prefix in canonical form (masked, Go's spelling, no zone). */
const routePrefix = z
  .string()
  .max(64)
  .superRefine((v, ctx) => {
    const problem = routePrefixProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  });

/** true, false or null (Go's opt.Bool). */
const optBool = z.boolean().nullable();

const base64 = z
  .string()
  .max(64 * 1024)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected standard base64');

/** netip.AddrPort text: IPv4:port or [IPv6(%zone)]:port. */
export function isAddrPort(v: string): boolean {
  let host: string;
  let port: string;
  if (v.startsWith('[')) {
    const end = v.indexOf(']:');
    if (end < 0) return false;
    host = v.slice(1, end);
    port = v.slice(end + 2);
    const pct = host.indexOf('%');
    if (isIP(pct < 0 ? host : host.slice(0, pct)) !== 6) return false;
  } else {
    const i = v.lastIndexOf(':');
    if (i < 0) return false;
    host = v.slice(0, i);
    port = v.slice(i + 1);
    if (isIP(host) !== 4) return false;
  }
  return /^\d{1,5}$/.test(port) && Number(port) <= 65535;
}

/** netip.Prefix text: address/bits (any spelling, host bits allowed; routes use checkRoutePrefix). */
export function isPrefix(v: string): boolean {
  const i = v.indexOf('/');
  if (i < 0) return false;
  const fam = isIP(v.slice(0, i));
  const bits = v.slice(i + 1);
  if (fam === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (fam === 4 ? 32 : 128);
}

const netInfoSchema = z
  .object({
    MappingVariesByDestIP: optBool,
    HairPinning: optBool,
    WorkingIPv6: optBool,
    OSHasIPv6: optBool,
    WorkingUDP: optBool,
    WorkingICMPv4: optBool,
    HavePortMap: z.boolean(),
    UPnP: optBool,
    PMP: optBool,
    PCP: optBool,
    PreferredDERP: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31),
    LinkType: str(64),
    DERPLatency: z.record(str(64), z.number()).refine((r) => Object.keys(r).length <= LIMITS.derpLatency, {
      message: `at most ${LIMITS.derpLatency} entries`,
    }),
    FirewallMode: str(64),
  })
  .partial();

const serviceSchema = z.object({
  Proto: str(64),
  Port: z.number().int().min(0).max(65535),
  Description: str(1024).optional(),
});

const locationSchema = z
  .object({
    Country: str(256),
    CountryCode: str(16),
    City: str(256),
    CityCode: str(16),
    Latitude: z.number(),
    Longitude: z.number(),
    Priority: z.number().int(),
  })
  .partial();

/** tailcfg.TPMInfo (capver 117+ clients on machines with a TPM 2.0). */
const tpmSchema = z
  .object({
    Manufacturer: str(64),
    Vendor: str(64),
    Model: z.number().int(),
    FirmwareVersion: z.number().int().min(0),
    SpecRevision: z.number().int(),
  })
  .partial();

/**
 * Hostinfo: the fields of tailcfg.Hostinfo (v1.104), each checked and bounded; unknown fields are
 * dropped here, so they are neither stored nor forwarded to peers (objects nested inside are
 * reduced to their known fields too).
 */
export const hostinfoSchema = z
  .object({
    IPNVersion: str(256),
    FrontendLogID: str(256),
    BackendLogID: str(256),
    OS: str(64),
    OSVersion: str(256),
    Container: optBool,
    Env: str(64),
    Distro: str(256),
    DistroVersion: str(256),
    DistroCodeName: str(256),
    App: str(256),
    Desktop: optBool,
    Package: str(256),
    DeviceModel: str(256),
    PushDeviceToken: str(),
    Hostname: str(LIMITS.hostname),
    ShieldsUp: z.boolean(),
    ShareeNode: z.boolean(),
    NoLogsNoSupport: z.boolean(),
    WireIngress: z.boolean(),
    IngressEnabled: z.boolean(),
    AllowsUpdate: z.boolean(),
    Machine: str(256),
    GoArch: str(64),
    GoArchVar: str(64),
    GoVersion: str(256),
    RoutableIPs: z.array(routePrefix).max(LIMITS.routableIPs).nullable(),
    RequestTags: z.array(str(256)).max(LIMITS.requestTags).nullable(),
    WoLMACs: z.array(str(64)).max(LIMITS.shortList).nullable(),
    Services: z.array(serviceSchema).max(LIMITS.services).nullable(),
    NetInfo: netInfoSchema.nullable(),
    sshHostKeys: z.array(str()).max(LIMITS.shortList).nullable(),
    Cloud: str(256),
    Userspace: optBool,
    UserspaceRouter: optBool,
    AppConnector: optBool,
    ServicesHash: str(256),
    ExitNodeID: str(256),
    Location: locationSchema.nullable(),
    TPM: tpmSchema.nullable(),
    StateEncrypted: optBool,
    PeerRelay: z.boolean(),
    RemoteConfig: z.boolean(),
  })
  .partial();

const oauth2TokenSchema = z.object({
  access_token: str(),
  token_type: str(256).optional(),
  refresh_token: str().optional(),
  expiry: goTime.optional(),
});

/** RegisterRequest.Auth; undefined when absent, null, or every member empty. */
const authSchema = z
  .object({
    Provider: str(256).optional(),
    LoginName: str(1024).optional(),
    Oauth2Token: oauth2TokenSchema.nullable().optional(),
    AuthKey: str(1024).optional(),
  })
  .nullable()
  .optional()
  .transform((a) => {
    if (!a) return undefined;
    const out = {
      ...(a.AuthKey ? { AuthKey: a.AuthKey } : {}),
      ...(a.Provider ? { Provider: a.Provider } : {}),
      ...(a.LoginName ? { LoginName: a.LoginName } : {}),
      ...(a.Oauth2Token && a.Oauth2Token.access_token ? { Oauth2Token: a.Oauth2Token } : {}),
    };
    return Object.keys(out).length === 0 ? undefined : out;
  });

const version = z.number().int().min(0).max(0xffff);

export const registerRequestSchema = z.object({
  Version: version,
  NodeKey: keyText('node', { required: true }),
  OldNodeKey: keyText('node').optional(),
  NLKey: keyText('nl').optional(),
  Auth: authSchema,
  /** undefined: no expiry requested (zero time). Unix 123 means logout. */
  Expiry: goTime.optional(),
  Followup: str().optional().default(''),
  Hostinfo: hostinfoSchema
    .nullable()
    .optional()
    .transform((h) => (h ?? undefined) as Hostinfo | undefined),
  Ephemeral: z.boolean().optional().default(false),
  NodeKeySignature: base64
    .nullable()
    .optional()
    .transform((v) => v || undefined),
  SignatureType: str(64).optional(),
  Timestamp: goTime
    .nullable()
    .optional()
    .transform((v) => v ?? undefined),
  DeviceCert: base64.optional(),
  Signature: base64.optional(),
  Tailnet: str(256).optional(),
});

export const mapRequestSchema = z.object({
  Version: version,
  Compress: str(32).optional().default(''),
  KeepAlive: z.boolean().optional().default(false),
  NodeKey: keyText('node', { required: true }),
  DiscoKey: keyText('disco').optional(),
  Stream: z.boolean().optional().default(false),
  Hostinfo: hostinfoSchema
    .nullable()
    .optional()
    .transform((h) => (h ?? undefined) as Hostinfo | undefined),
  MapSessionHandle: str(256).optional(),
  MapSessionSeq: z.number().int().optional(),
  Endpoints: z
    .array(addrPort)
    .max(LIMITS.endpoints)
    .nullable()
    .optional()
    .transform((v) => v ?? []),
  EndpointTypes: z
    .array(z.number().int().min(0).max(255))
    .max(LIMITS.endpoints)
    .nullable()
    .optional()
    .transform((v) => v ?? []),
  TKAHead: str(256).optional(),
  ReadOnly: z.boolean().optional().default(false),
  OmitPeers: z.boolean().optional().default(false),
  DebugFlags: z
    .array(str(256))
    .max(LIMITS.shortList)
    .nullable()
    .optional()
    .transform((v) => v ?? []),
  ConnectionHandleForTest: str(256).optional(),
  HardwareAttestationKey: str(256).optional(),
  HardwareAttestationKeySignature: base64.optional(),
  HardwareAttestationKeySignatureTimestamp: goTime.optional(),
});

/** A validated RegisterRequest: canonical key text, Dates, absent-instead-of-zero. */
export type ParsedRegisterRequest = z.output<typeof registerRequestSchema>;
/** A validated MapRequest: canonical key text, lists defaulted to []. */
export type ParsedMapRequest = z.output<typeof mapRequestSchema>;

function parseWith<T extends z.ZodTypeAny>(schema: T, what: string, input: unknown): z.output<T> {
  const value =
    typeof input === 'string' || input instanceof Uint8Array
      ? parseJsonLimited(input, { maxDepth: MAX_REQUEST_JSON_DEPTH, maxBytes: MAX_REQUEST_JSON_BYTES, what })
      : input;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ValidationError(`${what}: expected a JSON object`);
  const r = schema.safeParse(value);
  if (r.success) return r.data as z.output<T>;
  const issues = r.error.issues.map((i) => ({ path: [what, ...i.path].join('.'), message: i.message }));
  const first = issues[0]!;
  throw new ValidationError(`${first.path}: ${first.message}`, undefined, { issues });
}

/** Validates a RegisterRequest (object, JSON text or UTF-8 bytes); throws ValidationError with the field path. */
export function parseRegisterRequest(input: unknown): ParsedRegisterRequest {
  return parseWith(registerRequestSchema, 'RegisterRequest', input);
}

/** Validates a MapRequest (object, JSON text or UTF-8 bytes); throws ValidationError with the field path. */
export function parseMapRequest(input: unknown): ParsedMapRequest {
  return parseWith(mapRequestSchema, 'MapRequest', input);
}
