/**
 * Decoding: HuJSON syntax tree → `Policy`. Applies the strict schema (unknown keys rejected,
 * keys matched case-insensitively, `#`-keys ignored inside ACL entries, selector strings trimmed)
 * and the shape checks headscale does while unmarshalling. Every problem is collected with its
 * location; reference checks (undefined groups, tags, hosts, ...) live in validate.ts.
 */
import type { PolicyIssue, SourceLocation } from './errors.js';
import { toPlain, type JsonMember, type JsonNode } from './hujson.js';
import { parsePrefix } from './ip.js';
import {
  NO_PROTO,
  parseAlias,
  parseGoDuration,
  parseGrantIp,
  parsePorts,
  parseProto,
  q,
  splitHostPort,
  tagNameValid,
} from './syntax.js';
import type {
  AclRule,
  AliasRef,
  AppCap,
  AutoApproverRoute,
  DstRef,
  GrantRule,
  GroupDef,
  HostDef,
  IpSpec,
  NodeAttrRule,
  Policy,
  PolicyTestEntry,
  SshRule,
  SshTestEntry,
  SshUserRef,
  TagOwnerDef,
} from './types.js';

/** Go type names used by encoding/json messages, for the few texts that quote them. */
function goTypeName(node: JsonNode): string {
  switch (node.kind) {
    case 'object':
      return 'map[string]interface {}';
    case 'array':
      return '[]interface {}';
    case 'string':
      return 'string';
    case 'number':
      return 'float64';
    case 'boolean':
      return 'bool';
    case 'null':
      return '<nil>';
  }
}

type Fields = Map<string, JsonMember>;

class Decoder {
  readonly issues: PolicyIssue[] = [];

  report(loc: SourceLocation, message: string): void {
    this.issues.push({ line: loc.line, column: loc.column, message });
  }

  /**
   * Reads an object's members against a list of known keys (matched case-insensitively).
   * Unknown keys are reported; `ignoreHash` drops keys starting with `#`.
   */
  fields(node: JsonNode, what: string, known: readonly string[], ignoreHash = false): Fields | null {
    if (node.kind !== 'object') {
      this.report(node.loc, `${what} must be an object, got ${node.kind}`);
      return null;
    }
    const byLower = new Map(known.map((k) => [k.toLowerCase(), k]));
    const out: Fields = new Map();
    for (const m of node.members) {
      if (ignoreHash && m.key.startsWith('#')) continue;
      const canonical = byLower.get(m.key.toLowerCase());
      if (canonical === undefined) {
        this.report(m.keyLoc, `unknown field: ${q(m.key)}`);
        continue;
      }
      if (out.has(canonical)) {
        this.report(m.keyLoc, `duplicate field: ${q(m.key)}`);
        continue;
      }
      out.set(canonical, m);
    }
    return out;
  }

  /** An optional field holding null counts as absent. */
  value(fields: Fields, key: string): JsonNode | undefined {
    const m = fields.get(key);
    if (m === undefined || m.value.kind === 'null') return undefined;
    return m.value;
  }

  array(node: JsonNode | undefined, what: string): readonly JsonNode[] {
    if (node === undefined) return [];
    if (node.kind !== 'array') {
      this.report(node.loc, `${what} must be an array, got ${node.kind}`);
      return [];
    }
    return node.items;
  }

  string(node: JsonNode, what: string): string | null {
    if (node.kind !== 'string') {
      this.report(node.loc, `${what} must be a string, got ${node.kind}`);
      return null;
    }
    return node.value;
  }

  strings(node: JsonNode | undefined, what: string): { text: string; loc: SourceLocation }[] {
    const out: { text: string; loc: SourceLocation }[] = [];
    for (const item of this.array(node, what)) {
      const s = this.string(item, `${what} entry`);
      if (s !== null) out.push({ text: s, loc: item.loc });
    }
    return out;
  }

  aliases(node: JsonNode | undefined, what: string): AliasRef[] {
    const out: AliasRef[] = [];
    for (const { text, loc } of this.strings(node, what)) {
      const trimmed = text.trim();
      const parsed = parseAlias(trimmed);
      if (!parsed.ok) {
        this.report(loc, parsed.error);
        continue;
      }
      out.push({ alias: parsed.value, text: trimmed, loc });
    }
    return out;
  }
}

const TOP_KEYS = [
  'groups',
  'hosts',
  'tagOwners',
  'acls',
  'grants',
  'ssh',
  'nodeAttrs',
  'autoApprovers',
  'tests',
  'sshTests',
  'randomizeClientPort',
] as const;

/** Decodes a syntax tree into a policy; returns the issues found (empty when it decoded cleanly). */
export function decodePolicy(root: JsonNode): { policy: Policy; issues: PolicyIssue[] } {
  const d = new Decoder();
  const f = d.fields(root, 'policy', TOP_KEYS) ?? new Map<string, JsonMember>();

  const groups = decodeGroups(d, d.value(f, 'groups'));
  const hosts = decodeHosts(d, d.value(f, 'hosts'));
  const tagOwners = decodeTagOwners(d, d.value(f, 'tagOwners'));
  const aclsNode = d.value(f, 'acls');
  const grantsNode = d.value(f, 'grants');
  const sshNode = d.value(f, 'ssh');
  const acls =
    aclsNode === undefined ? null : d.array(aclsNode, 'acls').flatMap((n) => decodeAcl(d, n) ?? []);
  const grants =
    grantsNode === undefined ? null : d.array(grantsNode, 'grants').flatMap((n) => decodeGrant(d, n) ?? []);
  const ssh = sshNode === undefined ? null : d.array(sshNode, 'ssh').flatMap((n) => decodeSsh(d, n) ?? []);
  const nodeAttrs = d.array(d.value(f, 'nodeAttrs'), 'nodeAttrs').flatMap((n) => decodeNodeAttr(d, n) ?? []);
  const autoApprovers = decodeAutoApprovers(d, d.value(f, 'autoApprovers'));
  const tests = d.array(d.value(f, 'tests'), 'tests').flatMap((n) => decodeTest(d, n) ?? []);
  const sshTests = d.array(d.value(f, 'sshTests'), 'sshTests').flatMap((n) => decodeSshTest(d, n) ?? []);
  let randomizeClientPort = false;
  const rcp = d.value(f, 'randomizeClientPort');
  if (rcp !== undefined) {
    if (rcp.kind === 'boolean') randomizeClientPort = rcp.value;
    else d.report(rcp.loc, `randomizeClientPort must be a boolean, got ${rcp.kind}`);
  }
  const policy: Policy = {
    groups,
    hosts,
    tagOwners,
    acls,
    grants,
    ssh,
    nodeAttrs,
    autoApprovers,
    tests,
    sshTests,
    randomizeClientPort,
  };
  return { policy, issues: d.issues };
}

function decodeGroups(d: Decoder, node: JsonNode | undefined): Map<string, GroupDef> {
  const out = new Map<string, GroupDef>();
  if (node === undefined) return out;
  if (node.kind !== 'object') {
    d.report(node.loc, `groups must be an object, got ${node.kind}`);
    return out;
  }
  for (const m of node.members) {
    if (!m.key.startsWith('group:')) {
      d.report(m.keyLoc, `group must start with 'group:', got: ${q(m.key)}`);
      continue;
    }
    const v = m.value;
    if (v.kind === 'string') {
      d.report(v.loc, `group value must be an array of users: group ${q(m.key)} got string: ${q(v.value)}`);
      continue;
    }
    if (v.kind !== 'array') {
      d.report(v.loc, `group value must be an array of users: group ${q(m.key)} got ${goTypeName(v)}`);
      continue;
    }
    const members: { login: string; loc: SourceLocation }[] = [];
    for (const item of v.items) {
      if (item.kind !== 'string') {
        d.report(
          item.loc,
          `invalid group member type: group ${q(m.key)} expected string but got ${goTypeName(item)}`,
        );
        continue;
      }
      const login = item.value.trim();
      if (login.startsWith('group:')) {
        d.report(item.loc, `groups[${q(m.key)}]: ${q(login)}: group members cannot be recursive`);
        continue;
      }
      if (!login.includes('@')) {
        d.report(item.loc, `username must contain @, got: ${q(login)}`);
        continue;
      }
      members.push({ login, loc: item.loc });
    }
    out.set(m.key, { name: m.key, loc: m.keyLoc, members });
  }
  return out;
}

function decodeHosts(d: Decoder, node: JsonNode | undefined): Map<string, HostDef> {
  const out = new Map<string, HostDef>();
  if (node === undefined) return out;
  if (node.kind !== 'object') {
    d.report(node.loc, `hosts must be an object, got ${node.kind}`);
    return out;
  }
  for (const m of node.members) {
    if (m.key.includes('@') || m.key.includes(':') || m.key === '') {
      d.report(m.keyLoc, `invalid hostname: ${q(m.key)}`);
      continue;
    }
    const v = m.value;
    const text = v.kind === 'string' ? v.value.trim() : null;
    const prefix = text === null ? null : parsePrefix(text);
    if (prefix === null) {
      const shown = v.kind === 'string' ? q(v.value) : JSON.stringify(toPlain(v));
      d.report(v.loc, `hostname contains invalid IP address: hostname ${q(m.key)} address ${shown}`);
      continue;
    }
    out.set(m.key, { name: m.key, loc: m.keyLoc, prefix });
  }
  return out;
}

/** Owners and auto-approvers: users, groups or tags. */
function decodeOwners(d: Decoder, node: JsonNode | undefined, what: string, badMessage: string): AliasRef[] {
  const out: AliasRef[] = [];
  for (const { text, loc } of d.strings(node, what)) {
    const t = text.trim();
    if (t.includes('@')) out.push({ alias: { kind: 'user', login: t }, text: t, loc });
    else if (t.startsWith('group:')) out.push({ alias: { kind: 'group', name: t }, text: t, loc });
    else if (t.startsWith('tag:')) out.push({ alias: { kind: 'tag', name: t }, text: t, loc });
    else d.report(loc, `${badMessage}: ${q(t)}`);
  }
  return out;
}

function decodeTagOwners(d: Decoder, node: JsonNode | undefined): Map<string, TagOwnerDef> {
  const out = new Map<string, TagOwnerDef>();
  if (node === undefined) return out;
  if (node.kind !== 'object') {
    d.report(node.loc, `tagOwners must be an object, got ${node.kind}`);
    return out;
  }
  for (const m of node.members) {
    if (!m.key.startsWith('tag:')) {
      d.report(m.keyLoc, `tag must start with 'tag:', got: ${q(m.key)}`);
      continue;
    }
    if (!tagNameValid(m.key)) {
      d.report(m.keyLoc, `tagOwners[${q(m.key)}]: tag names must start with a letter, after 'tag:'`);
      continue;
    }
    const owners =
      m.value.kind === 'null' ? [] : decodeOwners(d, m.value, 'tag owners', 'invalid owner format');
    out.set(m.key, { tag: m.key, loc: m.keyLoc, owners });
  }
  return out;
}

function decodeDst(d: Decoder, node: JsonNode): DstRef | null {
  const raw = d.string(node, 'dst entry');
  if (raw === null) return null;
  const text = raw.trim();
  const split = splitHostPort(text);
  if (!split.ok) {
    d.report(node.loc, split.error);
    return null;
  }
  const ports = parsePorts(split.value.ports);
  if (!ports.ok) {
    d.report(node.loc, `dst=${q(text)}: port range ${q(split.value.ports)}: ${ports.error}`);
    return null;
  }
  const alias = parseAlias(split.value.host);
  if (!alias.ok) {
    d.report(node.loc, alias.error);
    return null;
  }
  return { alias: alias.value, text: split.value.host, loc: node.loc, ports: ports.value };
}

function decodeAcl(d: Decoder, node: JsonNode): AclRule | null {
  const f = d.fields(node, 'ACL entry', ['action', 'proto', 'src', 'dst'], true);
  if (f === null) return null;
  const actionNode = d.value(f, 'action');
  const action = actionNode === undefined ? '' : (d.string(actionNode, 'action') ?? 'accept');
  if (action !== 'accept') d.report(actionNode?.loc ?? node.loc, `action=${q(action)} is not supported`);
  const protoNode = d.value(f, 'proto');
  let proto = NO_PROTO;
  if (protoNode !== undefined) {
    const text = d.string(protoNode, 'proto');
    if (text !== null) {
      const p = parseProto(text.trim());
      if (p.ok) proto = p.value;
      else d.report(protoNode.loc, p.error);
    }
  }
  const src = d.aliases(d.value(f, 'src'), 'src');
  const dst = d.array(d.value(f, 'dst'), 'dst').flatMap((n) => decodeDst(d, n) ?? []);
  return { loc: node.loc, action: 'accept', proto, protoLoc: protoNode?.loc ?? null, src, dst };
}

function decodeGrant(d: Decoder, node: JsonNode): GrantRule | null {
  const f = d.fields(node, 'grant', ['src', 'dst', 'ip', 'app', 'via']);
  if (f === null) return null;
  const src = d.aliases(d.value(f, 'src'), 'src');
  const dst = d.aliases(d.value(f, 'dst'), 'dst');
  const ip: IpSpec[] = [];
  for (const { text, loc } of d.strings(d.value(f, 'ip'), 'ip')) {
    const parsed = parseGrantIp(text.trim());
    if (parsed.ok) ip.push({ proto: parsed.value.proto, ports: parsed.value.ports, loc });
    else d.report(loc, parsed.error);
  }
  let app: AppCap[] | null = null;
  const appNode = d.value(f, 'app');
  if (appNode !== undefined) {
    app = [];
    if (appNode.kind !== 'object') d.report(appNode.loc, `app must be an object, got ${appNode.kind}`);
    else
      for (const m of appNode.members) {
        if (m.value.kind === 'null') {
          app.push({ name: m.key, values: [], loc: m.keyLoc });
          continue;
        }
        if (m.value.kind !== 'array') {
          d.report(m.value.loc, `app capability ${q(m.key)} must be an array, got ${m.value.kind}`);
          continue;
        }
        app.push({ name: m.key, values: m.value.items.map(toPlain), loc: m.keyLoc });
      }
  }
  const via: AliasRef[] = [];
  for (const { text, loc } of d.strings(d.value(f, 'via'), 'via')) {
    const t = text.trim();
    if (!t.startsWith('tag:')) d.report(loc, 'via can only be a tag');
    else via.push({ alias: { kind: 'tag', name: t }, text: t, loc });
  }
  return { loc: node.loc, src, dst, ip, app, via };
}

function sshUsers(d: Decoder, node: JsonNode | undefined, what: string): SshUserRef[] {
  return d.strings(node, what).map(({ text, loc }) => ({ name: text.trim(), loc }));
}

function decodeSsh(d: Decoder, node: JsonNode): SshRule | null {
  const f = d.fields(node, 'SSH rule', ['action', 'src', 'dst', 'users', 'checkPeriod', 'acceptEnv']);
  if (f === null) return null;
  let action: SshRule['action'] = '';
  const actionNode = d.value(f, 'action');
  if (actionNode !== undefined) {
    const a = (d.string(actionNode, 'action') ?? '').trim();
    if (a === 'accept' || a === 'check' || a === '') action = a;
    else d.report(actionNode.loc, `${q(a)} is not a valid action`);
  }
  const src: AliasRef[] = [];
  for (const ref of d.aliases(d.value(f, 'src'), 'src')) {
    const k = ref.alias.kind;
    if (k === 'user' || k === 'group' || k === 'tag' || k === 'autogroup') src.push(ref);
    else d.report(ref.loc, `alias not supported for SSH source: ${aliasKindName(ref)}`);
  }
  const dst: AliasRef[] = [];
  for (const ref of d.aliases(d.value(f, 'dst'), 'dst')) {
    const k = ref.alias.kind;
    if (k === 'wildcard') {
      d.report(
        ref.loc,
        "wildcard (*) is not supported as SSH destination; use 'autogroup:member' for user-owned devices, " +
          "'autogroup:tagged' for tagged devices, or specific tags/users",
      );
    } else if (k === 'user' || k === 'tag' || k === 'autogroup' || k === 'host') dst.push(ref);
    else d.report(ref.loc, `alias not supported for SSH destination: ${aliasKindName(ref)}`);
  }
  const users = sshUsers(d, d.value(f, 'users'), 'users');
  let checkPeriod: SshRule['checkPeriod'] = null;
  const cpNode = d.value(f, 'checkPeriod');
  if (cpNode !== undefined) {
    const text = d.string(cpNode, 'checkPeriod');
    if (text === 'always') checkPeriod = 'always';
    else if (text !== null) {
      const dur = parseGoDuration(text);
      if (dur.ok) checkPeriod = { nanos: dur.value, text, loc: cpNode.loc };
      else d.report(cpNode.loc, dur.error);
    }
  }
  const envNode = d.value(f, 'acceptEnv');
  const acceptEnv = envNode === undefined ? null : d.strings(envNode, 'acceptEnv').map((s) => s.text);
  return { loc: node.loc, action, src, dst, users, checkPeriod, acceptEnv };
}

function aliasKindName(ref: AliasRef): string {
  switch (ref.alias.kind) {
    case 'wildcard':
      return 'wildcard "*"';
    case 'prefix':
      return `prefix ${q(ref.text)}`;
    case 'host':
      return `host ${q(ref.text)}`;
    case 'group':
      return `group ${q(ref.text)}`;
    case 'user':
      return `user ${q(ref.text)}`;
    case 'tag':
      return `tag ${q(ref.text)}`;
    case 'autogroup':
      return `autogroup ${q(ref.text)}`;
  }
}

function decodeNodeAttr(d: Decoder, node: JsonNode): NodeAttrRule | null {
  const f = d.fields(node, 'nodeAttrs entry', ['target', 'attr', 'ipPool']);
  if (f === null) return null;
  const target = d.aliases(d.value(f, 'target'), 'target');
  const attr = d.strings(d.value(f, 'attr'), 'attr').map(({ text, loc }) => ({ name: text, loc }));
  const ipPool: NodeAttrRule['ipPool'][number][] = [];
  for (const { text, loc } of d.strings(d.value(f, 'ipPool'), 'ipPool')) {
    const p = text.includes('/') ? parsePrefix(text.trim()) : null;
    if (p === null) d.report(loc, `invalid ipPool prefix ${q(text)}`);
    else ipPool.push({ prefix: p, text, loc });
  }
  return { loc: node.loc, target, attr, ipPool };
}

function decodeAutoApprovers(d: Decoder, node: JsonNode | undefined): Policy['autoApprovers'] {
  const routes: AutoApproverRoute[] = [];
  let exitNode: AliasRef[] = [];
  if (node === undefined) return { routes, exitNode };
  const f = d.fields(node, 'autoApprovers', ['routes', 'exitNode']);
  if (f === null) return { routes, exitNode };
  const routesNode = d.value(f, 'routes');
  if (routesNode !== undefined) {
    if (routesNode.kind !== 'object')
      d.report(routesNode.loc, `routes must be an object, got ${routesNode.kind}`);
    else
      for (const m of routesNode.members) {
        const p = m.key.includes('/') ? parsePrefix(m.key.trim()) : null;
        if (p === null) {
          d.report(m.keyLoc, `invalid route prefix in autoApprovers: ${q(m.key)}`);
          continue;
        }
        const owners = decodeOwners(d, m.value, 'route approvers', 'invalid auto approver format');
        routes.push({ prefix: p, text: m.key, loc: m.keyLoc, owners });
      }
  }
  exitNode = decodeOwners(d, d.value(f, 'exitNode'), 'exitNode', 'invalid auto approver format');
  return { routes, exitNode };
}

function decodeTest(d: Decoder, node: JsonNode): PolicyTestEntry | null {
  const f = d.fields(node, 'test', ['src', 'proto', 'accept', 'deny']);
  if (f === null) return null;
  const srcNode = d.value(f, 'src');
  const src = srcNode === undefined ? '' : (d.string(srcNode, 'src') ?? '').trim();
  let proto = NO_PROTO;
  const protoNode = d.value(f, 'proto');
  if (protoNode !== undefined) {
    const text = d.string(protoNode, 'proto');
    if (text !== null) {
      const p = parseProto(text.trim());
      if (p.ok) proto = p.value;
      else d.report(protoNode.loc, p.error);
    }
  }
  const list = (key: string) =>
    d.strings(d.value(f, key), key).map(({ text, loc }) => ({ text: text.trim(), loc }));
  return {
    loc: node.loc,
    src,
    srcLoc: srcNode?.loc ?? node.loc,
    proto,
    accept: list('accept'),
    deny: list('deny'),
  };
}

function decodeSshTest(d: Decoder, node: JsonNode): SshTestEntry | null {
  const f = d.fields(node, 'sshTests entry', ['src', 'dst', 'accept', 'deny', 'check']);
  if (f === null) return null;
  let src: AliasRef | null = null;
  const srcNode = d.value(f, 'src');
  if (srcNode !== undefined) {
    const text = (d.string(srcNode, 'src') ?? '').trim();
    if (text !== '') {
      const a = parseAlias(text);
      if (a.ok) src = { alias: a.value, text, loc: srcNode.loc };
      else d.report(srcNode.loc, a.error);
    }
  }
  return {
    loc: node.loc,
    src,
    dst: d.aliases(d.value(f, 'dst'), 'dst'),
    accept: sshUsers(d, d.value(f, 'accept'), 'accept'),
    deny: sshUsers(d, d.value(f, 'deny'), 'deny'),
    check: sshUsers(d, d.value(f, 'check'), 'check'),
  };
}
