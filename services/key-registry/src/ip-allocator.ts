/**
 * Tailscale address allocation (pure): IPv4 from 100.64.0.0/10 and IPv6 from fd7a:115c:a1e0::/48.
 * An allocation counter (a Postgres sequence, so concurrent callers never get the same number) maps
 * onto the IPv4 range, skipping reserved addresses; the IPv6 address embeds the IPv4 address in its
 * low 32 bits, so a unique IPv4 implies a unique IPv6.
 */
const V4_BASE = (100 << 24) | (64 << 16); // 100.64.0.0
const V4_SIZE = 1 << 22; // /10
const CHROMEOS_START = ((100 << 24) | (115 << 16) | (92 << 8)) >>> 0; // 100.115.92.0/23
const CHROMEOS_END = CHROMEOS_START + 512;
const QUAD100 = ((100 << 24) | (100 << 16) | (100 << 8) | 100) >>> 0;

/** How many usable offsets the range has: excludes network and broadcast addresses. */
export const IPV4_USABLE = V4_SIZE - 2;

export function isReservedV4(addr: number): boolean {
  const a = addr >>> 0;
  const base = V4_BASE >>> 0;
  if (a <= base || a >= base + V4_SIZE - 1) return true;
  if (a >= CHROMEOS_START && a < CHROMEOS_END) return true;
  return a === QUAD100;
}

export function v4ToString(addr: number): string {
  const a = addr >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

export function v4FromString(s: string): number {
  const parts = s.split('.').map((p) => Number(p));
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`not an IPv4 address: ${s}`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** IPv6 partner of an IPv4 address: fd7a:115c:a1e0::XXXX:XXXX. */
export function v6For(addr: number): string {
  const a = addr >>> 0;
  const hi = (a >>> 16).toString(16);
  const lo = (a & 0xffff).toString(16);
  return `fd7a:115c:a1e0::${hi}:${lo}`;
}

/**
 * Maps the n-th allocation (1-based counter) to an address, wrapping around the range and skipping
 * reserved addresses. Returns null once the counter has passed the whole range once (the caller then
 * scans for a free address).
 */
export function v4ForCounter(counter: number): number | null {
  if (!Number.isSafeInteger(counter) || counter < 1 || counter > IPV4_USABLE) return null;
  const addr = ((V4_BASE >>> 0) + counter) >>> 0;
  return isReservedV4(addr) ? null : addr;
}

/** A uniformly random usable address (used after the counter range is exhausted). */
export function randomV4(rand: () => number = Math.random): number {
  for (;;) {
    const addr = ((V4_BASE >>> 0) + 1 + Math.floor(rand() * IPV4_USABLE)) >>> 0;
    if (!isReservedV4(addr)) return addr;
  }
}
