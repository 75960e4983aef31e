/**
 * Maps requests validated by libs/protocol (canonical key text, zero keys and zero times already
 * dropped, an all-empty `Auth` already treated as absent) to the fields this service acts on.
 */
import type {
  ParsedMapRequest as ProtoMap,
  ParsedRegisterRequest as ProtoRegister,
} from '@switchboard/protocol';

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

export function fromRegisterRequest(r: ProtoRegister): ParsedRegisterRequest {
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

export function fromMapRequest(r: ProtoMap): ParsedMapRequest {
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
