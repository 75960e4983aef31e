/**
 * Policy → rule units. A unit is one FilterRule-producing piece of a grant (or of an ACL turned
 * into grants), expressed over principal sets ("selector specs") instead of addresses, so the
 * engine can resolve it against any node set and re-resolve only what a change touches.
 *
 * Unit order is the emission order: grants first, then ACLs; inside a grant its `ip` rules, its
 * CapGrant rule, its companion rules, then its `autogroup:self` rules (headscale order, which the
 * SaaS captures confirm).
 */
import { familyBits, formatPrefixCompact, INTERNET_SET, IPSet, type Prefix } from './ip.js';
import { NO_PROTO, normalizeLogin } from './syntax.js';
import type { Alias, AliasRef, GrantRule, Policy, PortRange, ProtoSpec } from './types.js';
import { EMPTY_POLICY, isAllowAll } from './policy.js';

export interface Literal {
  readonly prefix: Prefix;
  /** Filter text: a single address without length, otherwise CIDR. */
  readonly text: string;
}

/** An identity selector: matched against a node's user, groups and tags. */
export type IdentAlias =
  | { readonly kind: 'user'; readonly login: string }
  | { readonly kind: 'userDomain'; readonly domain: string }
  | { readonly kind: 'group'; readonly name: string }
  | { readonly kind: 'tag'; readonly name: string }
  | { readonly kind: 'member' }
  | { readonly kind: 'tagged' };

/** A canonical set of selectors (order-insensitive), the unit of sharing and caching. */
export interface SelectorSpec {
  readonly key: string;
  readonly users: readonly string[];
  /** `user:*@domain`: every user whose login is in that domain. */
  readonly userDomains: readonly string[];
  readonly groups: readonly string[];
  readonly tags: readonly string[];
  readonly member: boolean;
  readonly tagged: boolean;
  readonly wildcard: boolean;
  readonly dangerAll: boolean;
  readonly internet: boolean;
  readonly literals: readonly Literal[];
  readonly literalTexts: ReadonlySet<string>;
  /** True if some member is decided by addresses rather than identity. */
  readonly hasAddr: boolean;
  /** As a destination, does it cover "the internet" (for exit-node visibility)? */
  readonly dstIsInternet: boolean;
}

/** One destination selector of a unit, in policy order (drives DstPorts order). */
export type DstItem =
  | { readonly kind: 'wildcard' }
  | { readonly kind: 'ident'; readonly alias: IdentAlias }
  | { readonly kind: 'literal'; readonly literal: Literal }
  | { readonly kind: 'internet' };

export interface CapSpec {
  readonly names: readonly string[];
  /** JSON of the CapMap, keys in policy order. */
  readonly json: string;
  readonly map: Readonly<Record<string, readonly unknown[] | null>>;
}

interface UnitBase {
  readonly order: number;
  /** Index of the grant (or `acls[i]`) it came from, for diagnostics. */
  readonly origin: string;
}

export type Unit =
  | (UnitBase & {
      readonly kind: 'ip';
      readonly src: SelectorSpec;
      readonly dst: SelectorSpec;
      readonly items: readonly DstItem[];
      readonly ports: readonly PortRange[];
      readonly proto: ProtoSpec;
    })
  | (UnitBase & {
      readonly kind: 'cap';
      readonly src: SelectorSpec;
      readonly dst: SelectorSpec;
      readonly items: readonly DstItem[];
      readonly cap: CapSpec;
    })
  | (UnitBase & {
      readonly kind: 'companion';
      /** Sources of the companion rule: the original destinations, rendered like a src. */
      readonly from: SelectorSpec;
      /** The original sources; their nodes receive the rule. */
      readonly to: SelectorSpec;
      readonly capName: string;
    })
  | (UnitBase & {
      readonly kind: 'self-ip';
      readonly src: SelectorSpec;
      readonly ports: readonly PortRange[];
      readonly proto: ProtoSpec;
    })
  | (UnitBase & { readonly kind: 'self-cap'; readonly src: SelectorSpec; readonly cap: CapSpec })
  | (UnitBase & { readonly kind: 'self-companion'; readonly src: SelectorSpec; readonly capName: string })
  | (UnitBase & {
      readonly kind: 'via';
      readonly src: SelectorSpec;
      readonly viaTags: readonly string[];
      readonly prefixes: readonly Literal[];
      readonly internet: boolean;
      readonly ports: readonly PortRange[];
      readonly proto: ProtoSpec;
    });

export interface CompiledPolicy {
  readonly units: readonly Unit[];
  /** Group name → member logins from the policy's `groups` (normalised). */
  readonly policyGroups: ReadonlyMap<string, ReadonlySet<string>>;
  readonly hasSelf: boolean;
  readonly hasVia: boolean;
}

/** Capabilities that come with an extra reversed rule (drive-sharer, relay-target). */
const COMPANIONS: readonly (readonly [string, string])[] = [
  ['tailscale.com/cap/drive', 'tailscale.com/cap/drive-sharer'],
  ['tailscale.com/cap/relay', 'tailscale.com/cap/relay-target'],
];

/** Builds selector specs and deduplicates them by key. */
export class SpecFactory {
  private readonly cache = new Map<string, SelectorSpec>();

  constructor(private readonly policy: Policy) {}

  /** Resolves host aliases to their literal prefix. */
  literalOf(alias: Alias): Literal | null {
    if (alias.kind === 'prefix') return { prefix: alias.prefix, text: formatPrefixCompact(alias.prefix) };
    if (alias.kind === 'host') {
      const def = this.policy.hosts.get(alias.name);
      if (def === undefined) return null;
      return { prefix: def.prefix, text: formatPrefixCompact(def.prefix) };
    }
    return null;
  }

  spec(aliases: readonly Alias[]): SelectorSpec {
    const users = new Set<string>();
    const userDomains = new Set<string>();
    const groups = new Set<string>();
    const tags = new Set<string>();
    const literals = new Map<string, Literal>();
    let member = false;
    let tagged = false;
    let wildcard = false;
    let dangerAll = false;
    let internet = false;
    for (const a of aliases) {
      switch (a.kind) {
        case 'wildcard':
          wildcard = true;
          break;
        case 'user': {
          const domain = userDomainOf(a.login);
          if (domain !== null) userDomains.add(domain);
          else users.add(normalizeLogin(a.login));
          break;
        }
        case 'group':
          groups.add(a.name);
          break;
        case 'tag':
          tags.add(a.name);
          break;
        case 'host':
        case 'prefix': {
          const lit = this.literalOf(a);
          if (lit !== null) literals.set(lit.text, lit);
          break;
        }
        case 'autogroup':
          if (a.name === 'autogroup:member') member = true;
          else if (a.name === 'autogroup:tagged') tagged = true;
          else if (a.name === 'autogroup:danger-all') dangerAll = true;
          else if (a.name === 'autogroup:internet') internet = true;
          break;
      }
    }
    const keyParts = [
      ...[...users].map((u) => `u:${u}`),
      ...[...userDomains].map((d) => `d:${d}`),
      ...[...groups].map((g) => `g:${g}`),
      ...[...tags].map((t) => `t:${t}`),
      ...[...literals.keys()].map((l) => `p:${l}`),
      ...(member ? ['am'] : []),
      ...(tagged ? ['at'] : []),
      ...(wildcard ? ['*'] : []),
      ...(dangerAll ? ['da'] : []),
      ...(internet ? ['in'] : []),
    ].sort();
    const key = keyParts.join('\u0001');
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const lits = [...literals.values()];
    const litSet = IPSet.of(lits.map((l) => l.prefix));
    const spec: SelectorSpec = {
      key,
      users: [...users].sort(),
      userDomains: [...userDomains].sort(),
      groups: [...groups].sort(),
      tags: [...tags].sort(),
      member,
      tagged,
      wildcard,
      dangerAll,
      internet,
      literals: lits,
      literalTexts: new Set(literals.keys()),
      hasAddr: wildcard || dangerAll || internet || lits.length > 0,
      dstIsInternet:
        wildcard ||
        dangerAll ||
        internet ||
        lits.some((l) => l.prefix.bits === 0) ||
        litSet.containsSet(INTERNET_SET),
    };
    this.cache.set(key, spec);
    return spec;
  }
}

/** `user:*@example.com` → `example.com` (Tailscale's all-users-of-a-domain selector). */
export function userDomainOf(token: string): string | null {
  const m = /^user:\*@(.+)$/.exec(token);
  return m?.[1] === undefined ? null : m[1].toLowerCase();
}

function identOf(alias: Alias): IdentAlias | null {
  switch (alias.kind) {
    case 'user': {
      const domain = userDomainOf(alias.login);
      return domain !== null
        ? { kind: 'userDomain', domain }
        : { kind: 'user', login: normalizeLogin(alias.login) };
    }
    case 'group':
      return { kind: 'group', name: alias.name };
    case 'tag':
      return { kind: 'tag', name: alias.name };
    case 'autogroup':
      if (alias.name === 'autogroup:member') return { kind: 'member' };
      if (alias.name === 'autogroup:tagged') return { kind: 'tagged' };
      return null;
    case 'wildcard':
    case 'host':
    case 'prefix':
      return null;
  }
}

function isSelf(a: Alias): boolean {
  return a.kind === 'autogroup' && a.name === 'autogroup:self';
}

/** An internal, normalised grant: ACLs are rewritten into these. */
interface NormGrant {
  readonly origin: string;
  readonly src: readonly Alias[];
  readonly dst: readonly Alias[];
  readonly ip: readonly { readonly proto: ProtoSpec; readonly ports: readonly PortRange[] }[];
  readonly app: GrantRule['app'];
  readonly via: readonly string[];
}

/** Rewrites an ACL as one grant per destination (non-self first when any dst is not an autogroup). */
function aclToGrants(policy: Policy): NormGrant[] {
  const out: NormGrant[] = [];
  (policy.acls ?? []).forEach((acl, i) => {
    const hasNonAutogroup = acl.dst.some((d) => d.alias.kind !== 'autogroup');
    const ordered = hasNonAutogroup
      ? [...acl.dst.filter((d) => !isSelf(d.alias)), ...acl.dst.filter((d) => isSelf(d.alias))]
      : acl.dst;
    for (const d of ordered) {
      out.push({
        origin: `acls[${i}]`,
        src: acl.src.map((s) => s.alias),
        dst: [d.alias],
        ip: [{ proto: acl.proto, ports: d.ports }],
        app: null,
        via: [],
      });
    }
  });
  return out;
}

function capSpecOf(app: NonNullable<GrantRule['app']>): CapSpec {
  const map: Record<string, readonly unknown[] | null> = {};
  const parts: string[] = [];
  for (const c of app) {
    map[c.name] = c.values;
    parts.push(`${JSON.stringify(c.name)}:${JSON.stringify(c.values)}`);
  }
  return { names: app.map((c) => c.name), json: `{${parts.join(',')}}`, map };
}

function companionCap(name: string): CapSpec {
  return { names: [name], json: `{${JSON.stringify(name)}:null}`, map: { [name]: null } };
}

export { companionCap };

/** Compiles a policy (or null: allow all) into units. */
export function compilePolicy(policy: Policy | null): CompiledPolicy {
  const policyGroups = new Map<string, Set<string>>();
  if (policy === null || isAllowAll(policy)) {
    const f = new SpecFactory(policy ?? EMPTY_POLICY);
    for (const g of policy?.groups.values() ?? []) {
      policyGroups.set(g.name, new Set(g.members.map((m) => normalizeLogin(m.login))));
    }
    const units: Unit[] = [
      {
        kind: 'ip',
        order: 0,
        origin: 'allow-all',
        src: f.spec([{ kind: 'autogroup', name: 'autogroup:danger-all' }]),
        dst: f.spec([{ kind: 'wildcard' }]),
        items: [{ kind: 'wildcard' }],
        ports: [{ first: 0, last: 65535 }],
        proto: { name: '', numbers: null },
      },
    ];
    return { units, policyGroups, hasSelf: false, hasVia: false };
  }
  for (const g of policy.groups.values()) {
    policyGroups.set(g.name, new Set(g.members.map((m) => normalizeLogin(m.login))));
  }
  const f = new SpecFactory(policy);
  const grants: NormGrant[] = [
    ...(policy.grants ?? []).map((g, i): NormGrant => ({
      origin: `grants[${i}]`,
      src: g.src.map((s: AliasRef) => s.alias),
      dst: g.dst.map((d: AliasRef) => d.alias),
      ip: g.ip,
      app: g.app,
      via: g.via.map((v) => v.text),
    })),
    ...aclToGrants(policy),
  ];
  const units: Unit[] = [];
  let hasSelf = false;
  let hasVia = false;
  const push = (u: Unit): void => {
    units.push(u);
  };
  for (const g of grants) {
    if (g.src.length === 0 || g.dst.length === 0) continue;
    const src = f.spec(g.src);
    if (g.via.length > 0) {
      const prefixes: Literal[] = [];
      let internet = false;
      for (const d of g.dst) {
        if (d.kind === 'autogroup' && d.name === 'autogroup:internet') internet = true;
        const lit = f.literalOf(d);
        if (lit !== null) prefixes.push(lit);
      }
      // An app-only via grant yields no rule but still makes sources and routers peers (grant-k12).
      const ips =
        g.ip.length > 0 ? g.ip : g.app !== null && g.app.length > 0 ? [{ proto: NO_PROTO, ports: [] }] : [];
      for (const ip of ips) {
        hasVia = true;
        push({
          kind: 'via',
          order: units.length,
          origin: g.origin,
          src,
          viaTags: g.via,
          prefixes,
          internet,
          ports: ip.ports,
          proto: ip.proto,
        });
      }
      continue;
    }
    const others = g.dst.filter((d) => !isSelf(d));
    const selfs = g.dst.filter(isSelf);
    if (others.length > 0) {
      const dst = f.spec(others);
      const items: DstItem[] = [];
      for (const d of others) {
        if (d.kind === 'wildcard') items.push({ kind: 'wildcard' });
        else if (d.kind === 'autogroup' && d.name === 'autogroup:internet') items.push({ kind: 'internet' });
        else {
          const id = identOf(d);
          if (id !== null) items.push({ kind: 'ident', alias: id });
          else {
            const lit = f.literalOf(d);
            if (lit !== null) items.push({ kind: 'literal', literal: lit });
          }
        }
      }
      for (const ip of g.ip) {
        push({
          kind: 'ip',
          order: units.length,
          origin: g.origin,
          src,
          dst,
          items,
          ports: ip.ports,
          proto: ip.proto,
        });
      }
      if (g.app !== null && g.app.length > 0) {
        const cap = capSpecOf(g.app);
        push({ kind: 'cap', order: units.length, origin: g.origin, src, dst, items, cap });
        const from = f.spec(others);
        for (const [orig, comp] of COMPANIONS) {
          if (cap.names.includes(orig))
            push({ kind: 'companion', order: units.length, origin: g.origin, from, to: src, capName: comp });
        }
      }
    }
    if (selfs.length > 0) {
      hasSelf = true;
      for (const ip of g.ip)
        push({
          kind: 'self-ip',
          order: units.length,
          origin: g.origin,
          src,
          ports: ip.ports,
          proto: ip.proto,
        });
      if (g.app !== null && g.app.length > 0) {
        const cap = capSpecOf(g.app);
        push({ kind: 'self-cap', order: units.length, origin: g.origin, src, cap });
        for (const [orig, comp] of COMPANIONS) {
          if (cap.names.includes(orig))
            push({ kind: 'self-companion', order: units.length, origin: g.origin, src, capName: comp });
        }
      }
    }
  }
  return { units, policyGroups, hasSelf, hasVia };
}

/** True if `p` is a single address. */
export function isSingle(p: Prefix): boolean {
  return p.bits === familyBits(p.family);
}
