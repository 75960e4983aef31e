/**
 * Maps validated tailcfg requests (from libs/protocol) to the fields this service acts on,
 * normalising the client's conventions: zero keys and zero times mean "none", an `Auth` object
 * whose members are all empty (clients before 1.66 always send one) means no credentials.
 */
import type { MapRequest, RegisterRequest } from '@switchboard/protocol';

export interface ParsedRegisterRequest {
  version: number;
  nodeKey: string;
  oldNodeKey: string | null;
  authKey: string | null;
  expiry: string | null;
  followup: string;
  hostinfo: Record<string, unknown> | null;
  ephemeral: boolean;
}

export interface ParsedMapRequest {
  version: number;
  nodeKey: string;
  discoKey: string | null;
  endpoints: string[];
  hostinfo: Record<string, unknown> | null;
  stream: boolean;
  omitPeers: boolean;
  compress: string;
}

const ZERO_HEX = '0'.repeat(64);
const nonZeroKey = (k: string | undefined | null): string | null =>
  k === undefined || k === null || k === '' || k.endsWith(ZERO_HEX) ? null : k.toLowerCase();
const nonZeroTime = (t: string | undefined | null): string | null =>
  t === undefined || t === null || t === '' || t.startsWith('0001-01-01') ? null : t;

export function fromRegisterRequest(r: RegisterRequest): ParsedRegisterRequest {
  const authKey = r.Auth?.AuthKey;
  return {
    version: r.Version,
    nodeKey: r.NodeKey.toLowerCase(),
    oldNodeKey: nonZeroKey(r.OldNodeKey),
    authKey: typeof authKey === 'string' && authKey.length > 0 ? authKey : null,
    expiry: nonZeroTime(r.Expiry),
    followup: r.Followup ?? '',
    hostinfo: (r.Hostinfo as Record<string, unknown> | null | undefined) ?? null,
    ephemeral: r.Ephemeral ?? false,
  };
}

export function fromMapRequest(r: MapRequest): ParsedMapRequest {
  return {
    version: r.Version,
    nodeKey: r.NodeKey.toLowerCase(),
    discoKey: nonZeroKey(r.DiscoKey),
    endpoints: r.Endpoints ?? [],
    hostinfo: (r.Hostinfo as Record<string, unknown> | null | undefined) ?? null,
    stream: r.Stream ?? false,
    omitPeers: r.OmitPeers ?? false,
    compress: r.Compress ?? '',
  };
}
