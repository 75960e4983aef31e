/**
 * Route prefixes (Hostinfo.RoutableIPs, approved routes) in the one text form Go's `net/netip`
 * prints for a masked prefix: `10.0.0.0/24`, `fd00:1::/64`. Tailscale's client only ever sends
 * that form (`tailscale set --advertise-routes` refuses host bits and the client masks with
 * netip.Prefix.Masked), and routes are compared as text everywhere (announced ∩ approved), so a
 * second spelling of the same prefix would silently never match. Anything else is refused with a
 * message saying what is wrong and, where there is one, the canonical spelling to use instead.
 */

/** Parsed address: 4 octets (IPv4) or 8 groups of 16 bits (IPv6). */
interface ParsedAddr {
  family: 4 | 6;
  parts: number[];
}

function parseV4(s: string): number[] | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    // Go refuses leading zeros (they read as octal elsewhere).
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

function parseGroups(t: string): number[] | null {
  if (t === '') return [];
  const out: number[] = [];
  for (const g of t.split(':')) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    out.push(parseInt(g, 16));
  }
  return out;
}

function parseV6(s: string): number[] | null {
  let text = s;
  let tail4: number[] = [];
  if (text.includes('.')) {
    const lastColon = text.lastIndexOf(':');
    const v4 = parseV4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    tail4 = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    text = text.slice(0, lastColon + 1);
    // "::ffff:1.2.3.4" leaves "::ffff:"; "1:2:3:4:5:6:1.2.3.4" leaves "1:2:3:4:5:6:".
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const want = 8 - tail4.length;
  const dbl = text.indexOf('::');
  let groups: number[];
  if (dbl >= 0) {
    if (text.indexOf('::', dbl + 1) >= 0) return null;
    const head = parseGroups(text.slice(0, dbl));
    const tail = parseGroups(text.slice(dbl + 2));
    if (head === null || tail === null) return null;
    const missing = want - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    const g = parseGroups(text);
    if (g === null || g.length !== want) return null;
    groups = g;
  }
  return [...groups, ...tail4];
}

function parseAddr(s: string): ParsedAddr | null {
  if (s.includes(':')) {
    const parts = parseV6(s);
    return parts === null ? null : { family: 6, parts };
  }
  const parts = parseV4(s);
  return parts === null ? null : { family: 4, parts };
}

/** Go's netip.Addr.String: dotted IPv4; RFC 5952 IPv6, with `::ffff:a.b.c.d` for IPv4-mapped. */
function formatAddr(a: ParsedAddr): string {
  if (a.family === 4) return a.parts.join('.');
  const g = a.parts;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff)
    return `::ffff:${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function masked(a: ParsedAddr, bits: number): ParsedAddr {
  const width = a.family === 4 ? 8 : 16;
  const parts = a.parts.map((p, i) => {
    const keep = Math.max(0, Math.min(width, bits - i * width));
    return keep === 0 ? 0 : p & (((1 << keep) - 1) << (width - keep));
  });
  return { family: a.family, parts };
}

function shown(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

/** The result of checking a route: its canonical text, or what is wrong with it. */
export type RoutePrefixCheck = { ok: true; prefix: string } | { ok: false; problem: string };

/**
 * Checks that `text` is a route prefix in canonical form (masked, Go's spelling, no zone).
 * The problem message names the route and, when the input was close, the form to use instead,
 * e.g. `route 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?`.
 */
export function checkRoutePrefix(text: string): RoutePrefixCheck {
  const fail = (problem: string): RoutePrefixCheck => ({ ok: false, problem });
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const lenText = slash < 0 ? '' : text.slice(slash + 1);
  const pct = addrText.indexOf('%');
  const addr = parseAddr(pct < 0 ? addrText : addrText.slice(0, pct));
  if (addr === null)
    return fail(
      `route ${shown(text)} is not an IP prefix; expected an IP prefix such as 10.0.0.0/24 or fd00::/64`,
    );
  const maxBits = addr.family === 4 ? 32 : 128;
  if (slash < 0)
    return fail(`route ${shown(text)} has no prefix length; did you mean ${formatAddr(addr)}/${maxBits}?`);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > maxBits)
    return fail(
      `route ${shown(text)} has an invalid prefix length; IPv${addr.family} prefix lengths go from 0 to ${maxBits}`,
    );
  const bits = Number(lenText);
  const canonical = `${formatAddr(masked(addr, bits))}/${bits}`;
  if (pct >= 0)
    return fail(
      `route ${shown(text)} has an IPv6 zone (${addrText.slice(pct)}); routes cannot carry zones, did you mean ${canonical}?`,
    );
  if (formatAddr(masked(addr, bits)) !== formatAddr(addr))
    return fail(`route ${text} has host bits set; did you mean ${canonical}?`);
  if (canonical !== text)
    return fail(`route ${shown(text)} is not written canonically; did you mean ${canonical}?`);
  return { ok: true, prefix: canonical };
}

/** The problem with a route prefix, or undefined when it is canonical (see checkRoutePrefix). */
export function routePrefixProblem(text: string): string | undefined {
  const r = checkRoutePrefix(text);
  return r.ok ? undefined : r.problem;
}
