/**
 * Capability versions ("capver"): the integer a client announces in /key?v=, the Noise
 * initiation header and prologue, and RegisterRequest/MapRequest.Version. The server varies what
 * it sends by it. Values read from tailscale.com's tailcfg.CurrentCapabilityVersion history.
 */

/** tailscale v1.104.5, the newest client we test with (tailcfg.go: CurrentCapabilityVersion = 148). */
export const CURRENT_CAPVER = 148;

/** tailscale v1.80.3, the version of the Go code our interop test builds against. */
export const INTEROP_CAPVER = 113;

/** Capability version of each client release line (first release of the line unless noted). */
export const CAPVER_BY_RELEASE: Readonly<Record<string, number>> = {
  '1.60': 87,
  '1.62': 88,
  '1.64': 90,
  '1.66': 95,
  '1.68': 97,
  '1.70': 102,
  '1.72': 104,
  '1.74': 106,
  '1.76': 106,
  '1.78': 109,
  '1.80': 113,
  '1.82': 115,
  '1.84': 116,
  '1.86': 122, // v1.86.0; v1.86.5 reports 123
  '1.88': 125,
  '1.90': 130,
  '1.92': 131,
  '1.94': 131,
  '1.96': 133,
  '1.98': 138,
  '1.100': 141,
  '1.102': 142,
  '1.104': 148,
};

/** Clients from v1.64 (capver 90) on speak only Noise; older ones may fall back to NaCl boxes. */
export const NOISE_ONLY_CAPVER = 90;

/** Below 68 a streaming MapRequest is not read-only; every supported client is at or above it. */
export function streamingMapRequestIsReadOnly(capver: number): boolean {
  return capver >= 68;
}

/** Below 95 (v1.66) the client always sends an Auth object, all-empty when it has no credentials. */
export function sendsEmptyAuthObject(capver: number): boolean {
  return capver < 95;
}

/** Below 111 (v1.78 and older) clients read only the legacy `Node.DERP` "127.3.3.40:<region>" string. */
export function needsLegacyDerpString(capver: number): boolean {
  return capver < 111;
}

/** Below 112 clients treat a missing `Node.AllowedIPs` as empty instead of "same as Addresses". */
export function needsExplicitAllowedIPs(capver: number): boolean {
  return capver < 112;
}

/** From 115 clients understand `DERPRegion.NoMeasureNoHome`. */
export function supportsNoMeasureNoHome(capver: number): boolean {
  return capver >= 115;
}

/** From 117 clients understand `MapResponse.DisplayMessages` (send it instead of `Health`). */
export function supportsDisplayMessages(capver: number): boolean {
  return capver >= 117;
}

/** From 131 auto-update defaults come from the self node's CapMap `default-auto-update`. */
export function usesDefaultAutoUpdateNodeAttr(capver: number): boolean {
  return capver >= 131;
}

/** From 137 clients honour HTTP 429 + Retry-After on /machine/register (147: on all /machine/ endpoints). */
export function supportsRegisterRetryAfter(capver: number): boolean {
  return capver >= 137;
}
