/**
 * Semantic validation of a decoded policy: every reference must exist (groups, tags, hosts),
 * autogroups must be used where they are allowed, protocol/port and source/destination
 * combinations must make sense, SSH rules and tests must be well formed. All problems are
 * collected; the messages follow Tailscale's texts where the spec lists them.
 */
import type { PolicyIssue, SourceLocation } from './errors.js';
import { familyBits } from './ip.js';
import { formatGoDuration, parsePorts, protoAllowsPorts, q, splitHostPort, parseAlias } from './syntax.js';
import type { AliasRef, AutogroupName, DstRef, Policy, PortRange } from './types.js';

/** Options for validation that depend on the deployment rather than the policy text. */
export interface ValidateOptions {
  /**
   * Group names (with or without `group:`) supplied by the identity provider; references to them
   * are valid even when `groups` does not define them. `'any'` accepts every `group:` name.
   */
  readonly externalGroups?: Iterable<string> | 'any';
  /**
   * Email domains associated with the tailnet. When given, `user:*@<domain>` selectors and
   * `localpart:*@<domain>` SSH users must name one of them (or `passkey`), as in Tailscale.
   */
  readonly tailnetDomains?: Iterable<string>;
}

const SRC_AUTOGROUPS: readonly AutogroupName[] = [
  'autogroup:member',
  'autogroup:tagged',
  'autogroup:danger-all',
];
const DST_AUTOGROUPS: readonly AutogroupName[] = [
  'autogroup:internet',
  'autogroup:member',
  'autogroup:tagged',
  'autogroup:self',
];
const SSH_SRC_AUTOGROUPS: readonly AutogroupName[] = ['autogroup:member', 'autogroup:tagged'];
const SSH_DST_AUTOGROUPS: readonly AutogroupName[] = [
  'autogroup:member',
  'autogroup:tagged',
  'autogroup:self',
];
const NODEATTR_AUTOGROUPS: readonly AutogroupName[] = ['autogroup:member', 'autogroup:tagged'];

const TAILSCALE_CAP_ALLOWLIST = new Set([
  'tailscale.com/cap/drive',
  'tailscale.com/cap/relay',
  'tailscale.com/cap/webui',
  'tailscale.com/cap/kubernetes',
  'tailscale.com/cap/tsidp',
  'tailscale.com/cap/secrets',
]);

const CHECK_PERIOD_MAX_NANOS = 168 * 3600e9;

function list(groups: readonly string[]): string {
  return `[${groups.join(' ')}]`;
}

class Validator {
  readonly issues: PolicyIssue[] = [];
  private readonly externalGroups: Set<string> | 'any';
  private readonly domains: Set<string> | null;

  constructor(
    private readonly p: Policy,
    options: ValidateOptions,
  ) {
    this.domains = options.tailnetDomains === undefined ? null : new Set(options.tailnetDomains);
    const ext = options.externalGroups;
    if (ext === 'any') this.externalGroups = 'any';
    else {
      this.externalGroups = new Set();
      for (const g of ext ?? []) this.externalGroups.add(g.startsWith('group:') ? g : `group:${g}`);
    }
  }

  report(loc: SourceLocation, message: string): void {
    this.issues.push({ line: loc.line, column: loc.column, message });
  }

  groupDefined(name: string): boolean {
    if (this.p.groups.has(name)) return true;
    return this.externalGroups === 'any' || this.externalGroups.has(name);
  }

  /** Checks the references an alias makes; returns false if it reported a problem. */
  checkGroup(ref: AliasRef): void {
    if (ref.alias.kind === 'group' && !this.groupDefined(ref.alias.name)) {
      this.report(ref.loc, `group not defined in policy: ${q(ref.alias.name)}`);
    }
  }

  checkHost(ref: AliasRef): void {
    if (ref.alias.kind === 'host' && !this.p.hosts.has(ref.alias.name)) {
      this.report(ref.loc, `host not defined in policy: ${q(ref.alias.name)}`);
    }
  }

  tagDefined(name: string): boolean {
    return this.p.tagOwners.has(name);
  }

  /** `user:*@domain` must use a domain of the tailnet when the caller says which those are. */
  checkDomain(ref: AliasRef, prefix = ''): void {
    if (this.domains === null || ref.alias.kind !== 'user') return;
    const m = /^user:\*@(.*)$/.exec(ref.alias.login);
    const domain = m?.[1];
    if (domain === undefined || domain === 'passkey' || this.domains.has(domain)) return;
    this.report(
      ref.loc,
      `${prefix}${domain} is not associated with this Tailnet and cannot be used in user:*@<domain> expressions`,
    );
  }

  /** Network rule sources (ACL and grant `src`). */
  checkNetSrc(ref: AliasRef): void {
    this.checkDomain(ref);
    const a = ref.alias;
    switch (a.kind) {
      case 'host':
        this.checkHost(ref);
        break;
      case 'group':
        this.checkGroup(ref);
        break;
      case 'tag':
        if (!this.tagDefined(a.name)) this.report(ref.loc, `src=tag not found: ${q(a.name)}`);
        break;
      case 'autogroup':
        if (a.name === 'autogroup:internet')
          this.report(ref.loc, 'autogroup:internet can only be used in ACL destinations');
        else if (a.name === 'autogroup:self')
          this.report(ref.loc, '"autogroup:self" not valid on the src side of a rule');
        else if (!SRC_AUTOGROUPS.includes(a.name)) {
          this.report(
            ref.loc,
            `autogroup not supported for ACL sources: ${q(a.name)}, can be ${list(SRC_AUTOGROUPS)}`,
          );
        }
        break;
      case 'wildcard':
      case 'user':
      case 'prefix':
        break;
    }
  }

  /** Network rule destinations; `tagMessage` differs between ACLs and grants. */
  checkNetDst(ref: AliasRef, tagMessage: (tag: string) => string): void {
    this.checkDomain(ref);
    const a = ref.alias;
    switch (a.kind) {
      case 'host':
        this.checkHost(ref);
        break;
      case 'group':
        this.checkGroup(ref);
        break;
      case 'tag':
        if (!this.tagDefined(a.name)) this.report(ref.loc, tagMessage(a.name));
        break;
      case 'autogroup':
        if (a.name === 'autogroup:danger-all')
          this.report(ref.loc, 'cannot use autogroup:danger-all as a dst');
        else if (!DST_AUTOGROUPS.includes(a.name)) {
          this.report(
            ref.loc,
            `autogroup not supported for ACL destinations: ${q(a.name)}, can be ${list(DST_AUTOGROUPS)}`,
          );
        }
        break;
      case 'wildcard':
      case 'user':
      case 'prefix':
        break;
    }
  }

  /** Sources allowed together with an `autogroup:self` destination. */
  checkSelfSources(src: readonly AliasRef[], allowWildcard: boolean): void {
    for (const ref of src) {
      const a = ref.alias;
      const okSrc =
        a.kind === 'user' ||
        a.kind === 'group' ||
        (a.kind === 'autogroup' && a.name === 'autogroup:member') ||
        (a.kind === 'wildcard' && allowWildcard);
      if (!okSrc) {
        this.report(ref.loc, 'autogroup:self can only be used with users, groups, or supported autogroups');
        return;
      }
    }
  }

  validate(): void {
    this.validateTagOwners();
    for (const acl of this.p.acls ?? []) {
      for (const s of acl.src) this.checkNetSrc(s);
      for (const d of acl.dst) this.checkNetDst(d, (t) => `dst=${q(t)}: tag not found: ${q(t)}`);
      if (!protoAllowsPorts(acl.proto)) {
        const bad = acl.dst.find((d) => d.ports.some((p) => p.first !== 0 || p.last !== 65535));
        if (bad !== undefined) {
          this.report(
            acl.protoLoc ?? bad.loc,
            `protocol does not support specific ports: ${q(acl.proto.name)}, only "*" is allowed`,
          );
        }
      }
      if (acl.dst.some((d) => isSelf(d))) this.checkSelfSources(acl.src, true);
    }
    for (const g of this.p.grants ?? []) {
      const hasApp = g.app !== null && g.app.length > 0;
      if (g.ip.length === 0 && !hasApp) this.report(g.loc, 'ip and app can not both be empty');
      for (const cap of g.app ?? []) {
        if (cap.name.includes('://'))
          this.report(cap.loc, 'capability name must have the form {domain}/{path}');
        else if (cap.name.startsWith('tailscale.com/') && !TAILSCALE_CAP_ALLOWLIST.has(cap.name)) {
          this.report(cap.loc, 'capability name must not be in the tailscale.com domain');
        }
      }
      if (hasApp) {
        const inet = g.dst.find((d) => d.alias.kind === 'autogroup' && d.alias.name === 'autogroup:internet');
        if (inet !== undefined) this.report(inet.loc, 'cannot use app grants with autogroup:internet');
      }
      const zero = g.dst.find((d) => d.alias.kind === 'prefix' && d.alias.prefix.bits === 0);
      if (zero !== undefined) {
        this.report(
          zero.loc,
          `dst ${q(zero.text)}: to allow all IP addresses, use "*" or "autogroup:internet"`,
        );
      }
      for (const s of g.src) this.checkNetSrc(s);
      for (const d of g.dst) this.checkNetDst(d, (t) => `tag not found: ${q(t)}`);
      for (const v of g.via) {
        if (v.alias.kind === 'tag' && !this.tagDefined(v.alias.name)) {
          this.report(v.loc, `tag ${q(v.alias.name)} not found`);
        }
      }
      if (g.dst.some(isSelf)) this.checkSelfSources(g.src, false);
    }
    for (const rule of this.p.ssh ?? []) this.validateSsh(rule);
    for (const na of this.p.nodeAttrs) {
      for (const t of na.target) {
        const a = t.alias;
        if (a.kind === 'host') this.checkHost(t);
        else if (a.kind === 'group') this.checkGroup(t);
        else if (a.kind === 'tag' && !this.tagDefined(a.name))
          this.report(t.loc, `tag not found: ${q(a.name)}`);
        else if (a.kind === 'autogroup' && !NODEATTR_AUTOGROUPS.includes(a.name)) {
          this.report(
            t.loc,
            `nodeAttrs target does not support this autogroup: ${q(a.name)}, can be ${list(NODEATTR_AUTOGROUPS)}`,
          );
        }
      }
      for (const attr of na.attr) {
        if (attr.name === 'funnel') {
          this.report(attr.loc, `nodeAttrs uses a feature Switchboard does not yet support: ${q(attr.name)}`);
        }
      }
      for (const pool of na.ipPool) this.report(pool.loc, 'nodeAttrs ipPool is not supported by Switchboard');
    }
    for (const r of this.p.autoApprovers.routes) for (const o of r.owners) this.checkOwnerRef(o);
    for (const o of this.p.autoApprovers.exitNode) this.checkOwnerRef(o);
    this.validateTests();
    this.validateSshTests();
  }

  checkOwnerRef(ref: AliasRef): void {
    if (ref.alias.kind === 'group') this.checkGroup(ref);
    if (ref.alias.kind === 'tag' && !this.tagDefined(ref.alias.name)) {
      this.report(ref.loc, `tag not found: ${q(ref.alias.name)}`);
    }
  }

  validateTagOwners(): void {
    for (const def of this.p.tagOwners.values()) {
      for (const o of def.owners) {
        if (o.alias.kind === 'group') this.checkGroup(o);
        if (o.alias.kind === 'tag' && !this.tagDefined(o.alias.name)) {
          this.report(o.loc, `tag ${q(def.tag)} references undefined tag ${q(o.alias.name)}`);
        }
      }
    }
  }

  validateSsh(rule: NonNullable<Policy['ssh']>[number]): void {
    if (rule.action === '') this.report(rule.loc, 'action must be specified');
    if (rule.users.length === 0) this.report(rule.loc, 'users must be specified');
    for (const u of rule.users) {
      if (u.name === '' || u.name === '*') this.report(u.loc, `user ${q(u.name)} is not valid`);
      const lp = /^localpart:\*@(.+)$/.exec(u.name);
      if (lp?.[1] !== undefined && this.domains !== null && !this.domains.has(lp[1])) {
        this.report(
          u.loc,
          `${lp[1]} is not associated with this Tailnet and cannot be used in user:*@<domain> expressions`,
        );
      }
    }
    for (const s of [...rule.src, ...rule.dst]) this.checkDomain(s, '[ssh] ');
    for (const env of rule.acceptEnv ?? [])
      if (env === '') this.report(rule.loc, 'acceptEnv values cannot be empty');
    for (const s of rule.src) {
      const a = s.alias;
      if (a.kind === 'group') this.checkGroup(s);
      else if (a.kind === 'tag' && !this.tagDefined(a.name))
        this.report(s.loc, `tag not found: ${q(a.name)}`);
      else if (a.kind === 'autogroup') {
        if (a.name === 'autogroup:internet')
          this.report(s.loc, 'autogroup:internet can only be used in ACL destinations');
        else if (!SSH_SRC_AUTOGROUPS.includes(a.name)) {
          this.report(
            s.loc,
            `autogroup not supported for SSH sources: ${q(a.name)}, can be ${list(SSH_SRC_AUTOGROUPS)}`,
          );
        }
      }
    }
    for (const d of rule.dst) {
      const a = d.alias;
      if (a.kind === 'tag' && !this.tagDefined(a.name)) this.report(d.loc, `tag not found: ${q(a.name)}`);
      else if (a.kind === 'host') this.report(d.loc, `invalid dst ${q(a.name)}`);
      else if (a.kind === 'autogroup') {
        if (a.name === 'autogroup:internet')
          this.report(d.loc, 'autogroup:internet can only be used in ACL destinations');
        else if (!SSH_DST_AUTOGROUPS.includes(a.name)) {
          this.report(
            d.loc,
            `autogroup not supported for SSH destinations: ${q(a.name)}, can be ${list(SSH_DST_AUTOGROUPS)}`,
          );
        }
      }
    }
    // Source/destination combinations (Tailscale's SSH security model).
    const srcTagged = rule.src.some(
      (s) => s.alias.kind === 'tag' || (s.alias.kind === 'autogroup' && s.alias.name === 'autogroup:tagged'),
    );
    const srcGroups = rule.src.some(
      (s) =>
        s.alias.kind === 'group' || (s.alias.kind === 'autogroup' && s.alias.name === 'autogroup:member'),
    );
    const srcUsers = new Set(rule.src.flatMap((s) => (s.alias.kind === 'user' ? [s.alias.login] : [])));
    for (const d of rule.dst) {
      const a = d.alias;
      if (a.kind === 'user') {
        if (srcTagged) {
          this.report(
            d.loc,
            `tags in SSH source cannot access user-owned devices (${a.login}); use autogroup:tagged or specific tags as destinations instead`,
          );
          break;
        }
        if (srcGroups || srcUsers.size !== 1 || !srcUsers.has(a.login)) {
          this.report(
            d.loc,
            `user destination requires source to contain only that same user ${q(a.login)}; use autogroup:self instead for same-user SSH access`,
          );
          break;
        }
      } else if (a.kind === 'autogroup' && srcTagged) {
        if (a.name === 'autogroup:self') {
          this.report(
            d.loc,
            'autogroup:self destination requires source to contain only users or groups, not tags or autogroup:tagged',
          );
          break;
        }
        if (a.name === 'autogroup:member') {
          this.report(d.loc, 'tags in SSH source cannot access autogroup:member (user-owned devices)');
          break;
        }
      }
    }
    const cp = rule.checkPeriod;
    if (cp !== null) {
      const loc = cp === 'always' ? rule.loc : cp.loc;
      if (rule.action !== 'check') this.report(loc, 'checkPeriod is only valid with action "check"');
      else if (cp !== 'always' && cp.nanos < 0) {
        this.report(loc, `checkPeriod ${formatGoDuration(cp.nanos)} must be a positive duration`);
      } else if (cp !== 'always' && cp.nanos > CHECK_PERIOD_MAX_NANOS) {
        this.report(loc, `checkPeriod ${formatGoDuration(cp.nanos)} is above the max (168h)`);
      }
    }
  }

  validateTests(): void {
    for (const t of this.p.tests) {
      if (t.accept.length === 0 && t.deny.length === 0) {
        this.report(t.loc, 'test(s) failed: test entry must have at least one of "accept" or "deny"');
      }
      if (!['', 'tcp', 'udp', 'sctp'].includes(t.proto.name)) {
        this.report(
          t.loc,
          `test(s) failed: test protocol must be tcp, udp, sctp, or empty: ${q(t.proto.name)}`,
        );
      }
      for (const dst of [...t.accept, ...t.deny]) {
        const problem = this.testDestinationProblem(dst.text);
        if (problem !== null) this.report(dst.loc, `test(s) failed: ${q(dst.text)}: ${problem}`);
      }
    }
  }

  /** Shape rules for a `tests` destination; returns a message or null. */
  testDestinationProblem(text: string): string | null {
    const parsed = parseTestDestination(text);
    if (typeof parsed === 'string') return parsed;
    const { ref, ports } = parsed;
    const a = ref.alias;
    if (a.kind === 'autogroup' && a.name === 'autogroup:internet')
      return 'autogroup:internet not valid as a test destination';
    const only = ports[0];
    if (ports.length !== 1 || only === undefined || only.first !== only.last) {
      return 'test destination port must be a single port';
    }
    if (a.kind === 'prefix' && text.includes('/'))
      return 'test destination must be a single host, not a CIDR range';
    if (a.kind === 'host') {
      const h = this.p.hosts.get(a.name);
      if (h !== undefined && h.prefix.bits < familyBits(h.prefix.family)) {
        return 'test destination must be a single host, not a CIDR range';
      }
    }
    return null;
  }

  validateSshTests(): void {
    for (const t of this.p.sshTests) {
      if (t.src === null) this.report(t.loc, 'test(s) failed: SSH tests entry must have a non-empty src');
      if (t.dst.length === 0)
        this.report(t.loc, 'test(s) failed: SSH tests entry must have at least one dst');
      for (const d of t.dst) {
        const a = d.alias;
        let problem: string | null = null;
        if (a.kind === 'autogroup' && a.name === 'autogroup:internet') {
          problem = `SSH tests dst contains disallowed element ${q(d.text)}`;
        } else if (a.kind === 'prefix' && a.prefix.bits < familyBits(a.prefix.family)) {
          problem = `SSH tests dst contains disallowed element ${q(d.text)}`;
        } else if (a.kind === 'tag' && !this.tagDefined(a.name)) {
          problem = `SSH tests dst contains unknown tag ${q(a.name)}`;
        } else if (a.kind === 'host') {
          const h = this.p.hosts.get(a.name);
          if (h !== undefined && h.prefix.bits < familyBits(h.prefix.family)) {
            problem = `SSH tests dst contains disallowed element ${q(d.text)}`;
          }
        }
        if (problem !== null) this.report(d.loc, `test(s) failed: ${problem}`);
      }
    }
  }
}

function isSelf(ref: AliasRef | DstRef): boolean {
  return ref.alias.kind === 'autogroup' && ref.alias.name === 'autogroup:self';
}

/** Parses a `tests` destination `selector:port`; returns an error message on failure. */
export function parseTestDestination(text: string): { ref: AliasRef; ports: PortRange[] } | string {
  const split = splitHostPort(text);
  if (!split.ok) return split.error;
  const ports = parsePorts(split.value.ports);
  if (!ports.ok) return `dst=${q(text)}: port range ${q(split.value.ports)}: ${ports.error}`;
  const alias = parseAlias(split.value.host);
  if (!alias.ok) return alias.error;
  return {
    ref: { alias: alias.value, text: split.value.host, loc: { line: 0, column: 0 } },
    ports: ports.value,
  };
}

/** Runs the semantic checks; returns the issues (empty when the policy is valid). */
export function validatePolicy(policy: Policy, options: ValidateOptions = {}): PolicyIssue[] {
  const v = new Validator(policy, options);
  v.validate();
  return v.issues;
}
