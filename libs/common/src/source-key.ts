/**
 * The key that per-source bounds count by (the client edge's connection cap, the admin API's
 * failed-login limit).
 */
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The per-source key for a peer address: IPv4 as is (also when IPv4-mapped), IPv6 as its /64
 * prefix, anything unparseable as itself. Behind a reverse proxy every client shares the proxy's
 * address; X-Forwarded-For is not trusted because any client can set it.
 */
export function sourceKey(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined || remoteAddress === '') return 'unknown';
  const addr = remoteAddress.replace(/%.*$/, '');
  if (isIPv4(addr)) return addr;
  if (!isIPv6(addr)) return addr;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  const groups = expandIPv6(addr);
  return `${groups.slice(0, 4).join(':')}::/64`;
}

/** Eight lower-case, unpadded hex groups of a valid IPv6 address (an embedded IPv4 tail becomes two). */
function expandIPv6(addr: string): string[] {
  let s = addr.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = s.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16).toString(16));
}
