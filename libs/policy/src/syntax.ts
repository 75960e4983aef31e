/**
 * The small grammars inside policy strings: selectors (aliases), `host:ports` destinations, port
 * lists, protocols, grant `ip` entries and Go durations. Each parser returns a value or an error
 * message worded like Tailscale/headscale; callers attach the location.
 */
import { parseAddr, parsePrefix } from './ip.js';
import { AUTOGROUPS, type Alias, type AutogroupName, type PortRange, type ProtoSpec } from './types.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function ok<T>(value: T): Parsed<T> {
  return { ok: true, value };
}
function err<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

/** Go's `%q` for plain strings (enough for the messages we build). */
export function q(s: string): string {
  return JSON.stringify(s);
}

export const AUTOGROUP_LIST_TEXT = `[${AUTOGROUPS.join(' ')}]`;

/**
 * Classifies a selector, in headscale's order: IP/CIDR, `*`, user (contains `@`), `group:`, `tag:`,
 * `autogroup:`, host alias (no `@`, no `:`); anything else is invalid.
 */
export function parseAlias(text: string): Parsed<Alias> {
  const prefix = parsePrefix(text);
  if (prefix !== null) return ok({ kind: 'prefix', prefix });
  if (text === '*') return ok({ kind: 'wildcard' });
  if (text.includes('@')) return ok({ kind: 'user', login: text });
  if (text.startsWith('group:')) return ok({ kind: 'group', name: text });
  if (text.startsWith('tag:')) return ok({ kind: 'tag', name: text });
  if (text.startsWith('autogroup:')) {
    if ((AUTOGROUPS as readonly string[]).includes(text))
      return ok({ kind: 'autogroup', name: text as AutogroupName });
    return err(`invalid autogroup: got ${q(text)}, must be one of ${AUTOGROUP_LIST_TEXT}`);
  }
  if (!text.includes(':') && text !== '') return ok({ kind: 'host', name: text });
  return err(`invalid alias format: ${q(text)}`);
}

/** Normalises a user token for matching: a trailing `@` (user without domain) is dropped. */
export function normalizeLogin(token: string): string {
  return token.endsWith('@') ? token.slice(0, -1) : token;
}

/** True if the text after `tag:` starts with an ASCII letter. */
export function tagNameValid(tag: string): boolean {
  return /^tag:[A-Za-z]/.test(tag);
}

function parsePort(text: string): Parsed<number> {
  if (!/^[+-]?[0-9]+$/.test(text)) return err('invalid first integer');
  const n = Number(text);
  if (n < 0 || n > 65535) return err('port number out of range');
  return ok(n);
}

/** Port list grammar: `*`, or comma-separated `N` / `A-B`. */
export function parsePorts(text: string): Parsed<PortRange[]> {
  if (text === '*') return ok([{ first: 0, last: 65535 }]);
  const out: PortRange[] = [];
  for (const part of text.split(',')) {
    if (part.includes('-')) {
      const pieces = part.split('-').filter((p) => p !== '');
      if (pieces.length !== 2) return err('invalid port range format');
      const a = parsePort(pieces[0] ?? '');
      if (!a.ok) return a;
      const b = parsePort(pieces[1] ?? '');
      if (!b.ok) return b;
      if (a.value > b.value) return err('invalid port range: first port is greater than last port');
      out.push({ first: a.value, last: b.value });
    } else {
      const p = parsePort(part);
      if (!p.ok) return p;
      if (p.value < 1) return err("first port must be >0, or use '*' for wildcard");
      out.push({ first: p.value, last: p.value });
    }
  }
  return ok(out);
}

/** Splits `host:ports` at the last colon, handling `[v6]:ports` and `[v6]/len:ports`. */
export function splitHostPort(input: string): Parsed<{ host: string; ports: string }> {
  let text = input;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return err('square brackets are only valid around IPv6 addresses');
    const host = text.slice(1, close);
    const a = parseAddr(host);
    if (a === null || a.family !== 6)
      return err(`square brackets are only valid around IPv6 addresses: ${q(host)}`);
    const rest = text.slice(close + 1);
    if (rest === '' || (rest[0] !== ':' && rest[0] !== '/')) {
      return err(`square brackets are only valid around IPv6 addresses: ${q(input)}`);
    }
    text = host + rest;
  }
  const i = text.lastIndexOf(':');
  if (i < 0) return err('hostport must contain a colon');
  if (i === 0) return err('input cannot start with a colon character');
  if (i === text.length - 1) return err('input cannot end with a colon character');
  return ok({ host: text.slice(0, i), ports: text.slice(i + 1) });
}

const PROTOCOLS: ReadonlyMap<string, number> = new Map([
  ['icmp', 1],
  ['igmp', 2],
  ['ipv4', 4],
  ['ip-in-ip', 4],
  ['tcp', 6],
  ['egp', 8],
  ['igp', 9],
  ['udp', 17],
  ['gre', 47],
  ['esp', 50],
  ['ah', 51],
  ['ipv6-icmp', 58],
  ['sctp', 132],
  ['fc', 133],
]);

const NUMBER_TO_NAME: ReadonlyMap<number, string> = new Map([
  [1, 'icmp'],
  [2, 'igmp'],
  [4, 'ipv4'],
  [6, 'tcp'],
  [8, 'egp'],
  [9, 'igp'],
  [17, 'udp'],
  [47, 'gre'],
  [50, 'esp'],
  [51, 'ah'],
  [58, 'ipv6-icmp'],
  [132, 'sctp'],
  [133, 'fc'],
]);

export const NO_PROTO: ProtoSpec = { name: '', numbers: null };

/** Parses a protocol name or number (case-insensitive names, decimal numbers without leading 0). */
export function parseProto(raw: string): Parsed<ProtoSpec> {
  const s = raw.toLowerCase();
  if (s === '') return ok(NO_PROTO);
  if (s === '*') {
    return err('proto name "*" not known; use protocol number 0-255 or protocol name (icmp, tcp, udp, etc.)');
  }
  const known = PROTOCOLS.get(s);
  if (known !== undefined) return ok({ name: s, numbers: [known] });
  if (/^[0-9]+$/.test(s)) {
    if (s.startsWith('0')) return err(`leading 0 not permitted in protocol number: ${q(s)}`);
    const n = Number(s);
    if (n > 255) return err(`protocol number out of range (0-255): ${n}`);
    return ok({ name: NUMBER_TO_NAME.get(n) ?? s, numbers: [n] });
  }
  return err(`invalid protocol number: ${q(s)} must be a known protocol name or valid protocol number 0-255`);
}

/** True if the protocol may name specific ports (tcp, udp, sctp, or none). */
export function protoAllowsPorts(p: ProtoSpec): boolean {
  return p.name === '' || p.name === 'tcp' || p.name === 'udp' || p.name === 'sctp';
}

/** A grant `ip` entry: `*`, `<ports>`, or `<proto>:<ports>`. */
export function parseGrantIp(text: string): Parsed<{ proto: ProtoSpec; ports: PortRange[] }> {
  if (text === '*') return ok({ proto: NO_PROTO, ports: [{ first: 0, last: 65535 }] });
  if (!text.includes(':')) {
    const ports = parsePorts(text);
    if (!ports.ok) return err(`port range ${q(text)}: ${ports.error}`);
    return ok({ proto: NO_PROTO, ports: ports.value });
  }
  const parts = text.split(':');
  if (parts.length !== 2) {
    return err(
      `expected only one colon in Internet protocol and port type, got: [${parts.join(' ')}](${parts.length})`,
    );
  }
  const proto = parseProto(parts[0] ?? '');
  if (!proto.ok) return proto;
  const portText = parts[1] ?? '';
  const ports = parsePorts(portText);
  if (!ports.ok) return err(`port range ${q(portText)}: ${ports.error}`);
  return ok({ proto: proto.value, ports: ports.value });
}

// ---------------------------------------------------------------------------------------------
// Go durations (checkPeriod)

const UNITS: ReadonlyMap<string, number> = new Map([
  ['ns', 1],
  ['us', 1e3],
  ['µs', 1e3],
  ['μs', 1e3],
  ['ms', 1e6],
  ['s', 1e9],
  ['m', 60e9],
  ['h', 3600e9],
]);

/** Parses a Go `time.ParseDuration` string into nanoseconds, with Go's error texts. */
export function parseGoDuration(s: string): Parsed<number> {
  const quoted = q(s);
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return ok(0);
  if (rest === '') return err(`time: invalid duration ${quoted}`);
  let total = 0;
  while (rest !== '') {
    const m = /^([0-9]*)(\.([0-9]*))?/.exec(rest);
    const whole = m?.[1] ?? '';
    const frac = m?.[3] ?? '';
    if (m === null || (whole === '' && frac === '')) return err(`time: invalid duration ${quoted}`);
    rest = rest.slice(m[0].length);
    const u = /^[^0-9.]+/.exec(rest);
    if (u === null) return err(`time: missing unit in duration ${quoted}`);
    const unit = UNITS.get(u[0]);
    if (unit === undefined) return err(`time: unknown unit ${q(u[0])} in duration ${quoted}`);
    rest = rest.slice(u[0].length);
    total += Number(`${whole === '' ? '0' : whole}.${frac === '' ? '0' : frac}`) * unit;
  }
  return ok(Math.round(sign * total));
}

/** Formats nanoseconds like Go's `time.Duration.String` (e.g. `1m0s`, `200h0m0s`, `1.5s`). */
export function formatGoDuration(nanos: number): string {
  if (nanos === 0) return '0s';
  const neg = nanos < 0;
  let n = Math.abs(nanos);
  let out: string;
  if (n < 1e9) {
    const [unit, div] = n < 1e3 ? ['ns', 1] : n < 1e6 ? ['µs', 1e3] : ['ms', 1e6];
    out = `${trimFraction(n / div)}${unit}`;
  } else {
    const h = Math.floor(n / 3600e9);
    n -= h * 3600e9;
    const m = Math.floor(n / 60e9);
    n -= m * 60e9;
    const secs = `${trimFraction(n / 1e9)}s`;
    out = h > 0 ? `${h}h${m}m${secs}` : m > 0 ? `${m}m${secs}` : secs;
  }
  return neg ? `-${out}` : out;
}

function trimFraction(x: number): string {
  const s = x.toFixed(9);
  return s.replace(/\.?0+$/, '');
}
