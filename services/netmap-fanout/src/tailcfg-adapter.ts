/**
 * Maps requests validated by libs/protocol (canonical key text, zero keys and zero times already
 * dropped, an all-empty `Auth` already treated as absent) to the fields this service acts on.
 */
import type { ParsedMapRequest, ParsedRegisterRequest } from '@switchboard/protocol';

/** The fields of a validated RegisterRequest that registration acts on. */
export interface RegisterParams {
  version: number;
  nodeKey: string;
  oldNodeKey: string | null;
  authKey: string | null;
  expiry: string | null;
  followup: string;
  hostinfo: Record<string, unknown> | null;
  ephemeral: boolean;
}

/** The fields of a validated MapRequest that the map handler acts on. */
export interface MapParams {
  version: number;
  nodeKey: string;
  discoKey: string | null;
  endpoints: string[];
  hostinfo: Record<string, unknown> | null;
  stream: boolean;
  omitPeers: boolean;
  compress: string;
}

export function fromRegisterRequest(r: ParsedRegisterRequest): RegisterParams {
  return {
    version: r.Version,
    nodeKey: r.NodeKey,
    oldNodeKey: r.OldNodeKey ?? null,
    authKey: r.Auth?.AuthKey ?? null,
    expiry: r.Expiry ? r.Expiry.toISOString() : null,
    followup: r.Followup,
    hostinfo: r.Hostinfo ?? null,
    ephemeral: r.Ephemeral,
  };
}

export function fromMapRequest(r: ParsedMapRequest): MapParams {
  return {
    version: r.Version,
    nodeKey: r.NodeKey,
    discoKey: r.DiscoKey ?? null,
    endpoints: r.Endpoints,
    hostinfo: r.Hostinfo ?? null,
    stream: r.Stream,
    omitPeers: r.OmitPeers,
    compress: r.Compress,
  };
}
