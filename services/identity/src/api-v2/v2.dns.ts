/**
 * `/api/v2/tailnet/{tailnet}/dns/*`: nameservers, search paths, MagicDNS preference, split DNS. Each
 * change is stored with its `tailnet-dns-upserted` event in one transaction and reaches every map of
 * the tailnet as DNSConfig (Resolvers, Routes, Domains); it replies once the event is in the log.
 */
import { TailnetDnsUpserted, type TailnetDnsRecord } from '@switchboard/contracts';
import { appendOutbox } from '@switchboard/db';
import { isIP } from 'node:net';
import { z } from 'zod';
import { V2Repository } from './v2.repository.js';
import { route, type ApiRoute } from './v2.route.js';
import type { V2Deps } from './v2.deps.js';
import type { Queryable } from '@switchboard/db';

const ip = z.string().refine((s) => isIP(s) !== 0, 'an IPv4 or IPv6 address');
const domain = z
  .string()
  .max(253)
  .regex(/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?\.?$/i, 'a DNS domain');
const tailnetParams = z.object({ tailnet: z.string() });
const repo = new V2Repository();

const Nameservers = z.object({ dns: z.array(ip).max(64) });
const Preferences = z.object({ magicDNS: z.boolean() });
const SearchPaths = z.object({ searchPaths: z.array(domain).max(64) });
const SplitDns = z.record(domain, z.array(ip).max(64).nullable());

type Change = (cur: TailnetDnsRecord) => Omit<TailnetDnsRecord, 'version'>;

async function change(
  d: V2Deps,
  c: {
    tailnetId: number;
    auditIn: (q: Queryable, n: { target: string; before: unknown; after: unknown }) => Promise<void>;
  },
  what: string,
  f: Change,
): Promise<TailnetDnsRecord> {
  const out = await d.db.transaction(async (q) => {
    const before = await repo.dns(q, c.tailnetId, true);
    const next = f(before);
    const saved = await repo.saveDns(q, next);
    await appendOutbox(q, 'identity', TailnetDnsUpserted.subject, { dns: saved });
    await c.auditIn(q, { target: `tailnet:${c.tailnetId}:dns:${what}`, before, after: saved });
    return saved;
  });
  await d.published();
  return out;
}

export function dnsRoutes(d: V2Deps): ApiRoute[] {
  return [...dnsServerRoutes(d), ...dnsSearchAndSplitRoutes(d)];
}

function dnsServerRoutes(d: V2Deps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/dns/nameservers',
      operationId: 'listDnsNameservers',
      summary: 'Global nameservers',
      tag: 'dns',
      access: { scope: 'dns', write: false },
      params: tailnetParams,
      response: Nameservers,
      examples: { response: { dns: ['8.8.8.8'] } },
      handler: async (c) => ({ json: { dns: (await repo.dns(d.db, c.tailnetId)).nameservers } }),
    }),
    route({
      method: 'POST',
      path: '/api/v2/tailnet/{tailnet}/dns/nameservers',
      operationId: 'setDnsNameservers',
      summary: 'Replace the global nameservers (none left turns MagicDNS off)',
      tag: 'dns',
      access: { scope: 'dns', write: true },
      params: tailnetParams,
      body: Nameservers,
      response: Nameservers.extend({ magicDNS: z.boolean() }),
      examples: {
        body: { dns: ['8.8.8.8', '1.1.1.1'] },
        response: { dns: ['8.8.8.8', '1.1.1.1'], magicDNS: true },
      },
      handler: async (c) => {
        const r = await change(d, c, 'nameservers', (cur) => ({
          ...cur,
          nameservers: c.body.dns,
          magicDns: c.body.dns.length === 0 ? false : cur.magicDns,
        }));
        return { json: { dns: r.nameservers, magicDNS: r.magicDns } };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/dns/preferences',
      operationId: 'getDnsPreferences',
      summary: 'MagicDNS on or off',
      tag: 'dns',
      access: { scope: 'dns', write: false },
      params: tailnetParams,
      response: Preferences,
      examples: { response: { magicDNS: true } },
      handler: async (c) => ({ json: { magicDNS: (await repo.dns(d.db, c.tailnetId)).magicDns } }),
    }),
    route({
      method: 'POST',
      path: '/api/v2/tailnet/{tailnet}/dns/preferences',
      operationId: 'setDnsPreferences',
      summary: 'Turn MagicDNS on or off',
      tag: 'dns',
      access: { scope: 'dns', write: true },
      params: tailnetParams,
      body: Preferences,
      response: Preferences,
      examples: { body: { magicDNS: true }, response: { magicDNS: true } },
      handler: async (c) => {
        const r = await change(d, c, 'preferences', (cur) => ({ ...cur, magicDns: c.body.magicDNS }));
        return { json: { magicDNS: r.magicDns } };
      },
    }),
  ];
}

function dnsSearchAndSplitRoutes(d: V2Deps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/dns/searchpaths',
      operationId: 'listDnsSearchPaths',
      summary: 'Search paths',
      tag: 'dns',
      access: { scope: 'dns', write: false },
      params: tailnetParams,
      response: SearchPaths,
      examples: { response: { searchPaths: ['corp.example.com'] } },
      handler: async (c) => ({ json: { searchPaths: (await repo.dns(d.db, c.tailnetId)).searchPaths } }),
    }),
    route({
      method: 'POST',
      path: '/api/v2/tailnet/{tailnet}/dns/searchpaths',
      operationId: 'setDnsSearchPaths',
      summary: 'Replace the search paths',
      tag: 'dns',
      access: { scope: 'dns', write: true },
      params: tailnetParams,
      body: SearchPaths,
      response: SearchPaths,
      examples: {
        body: { searchPaths: ['corp.example.com'] },
        response: { searchPaths: ['corp.example.com'] },
      },
      handler: async (c) => {
        const r = await change(d, c, 'searchpaths', (cur) => ({
          ...cur,
          searchPaths: c.body.searchPaths.map((s) => s.replace(/\.$/, '')),
        }));
        return { json: { searchPaths: r.searchPaths } };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/dns/split-dns',
      operationId: 'getSplitDns',
      summary: 'Split DNS: domain → nameservers',
      tag: 'dns',
      access: { scope: 'dns', write: false },
      params: tailnetParams,
      response: z.record(z.array(z.string())),
      examples: { response: { 'corp.example.com': ['10.0.0.53'] } },
      handler: async (c) => ({ json: (await repo.dns(d.db, c.tailnetId)).splitDns }),
    }),
    route({
      method: 'PATCH',
      path: '/api/v2/tailnet/{tailnet}/dns/split-dns',
      operationId: 'updateSplitDns',
      summary: 'Change some split DNS domains (null removes one; others are unchanged)',
      tag: 'dns',
      access: { scope: 'dns', write: true },
      params: tailnetParams,
      body: SplitDns,
      response: z.record(z.array(z.string())),
      examples: {
        body: { 'corp.example.com': ['10.0.0.53'], 'old.example.com': null },
        response: { 'corp.example.com': ['10.0.0.53'] },
      },
      handler: async (c) => {
        const r = await change(d, c, 'split-dns', (cur) => {
          const next = { ...cur.splitDns };
          for (const [k, v] of Object.entries(c.body)) {
            const key = k.replace(/\.$/, '').toLowerCase();
            if (v === null || v.length === 0) delete next[key];
            else next[key] = v;
          }
          return { ...cur, splitDns: next };
        });
        return { json: r.splitDns };
      },
    }),
    route({
      method: 'PUT',
      path: '/api/v2/tailnet/{tailnet}/dns/split-dns',
      operationId: 'setSplitDns',
      summary: 'Replace split DNS ({} clears it)',
      tag: 'dns',
      access: { scope: 'dns', write: true },
      params: tailnetParams,
      body: SplitDns,
      response: z.record(z.array(z.string())),
      examples: {
        body: { 'corp.example.com': ['10.0.0.53'] },
        response: { 'corp.example.com': ['10.0.0.53'] },
      },
      handler: async (c) => {
        const r = await change(d, c, 'split-dns', (cur) => {
          const next: Record<string, string[]> = {};
          for (const [k, v] of Object.entries(c.body))
            if (v && v.length > 0) next[k.replace(/\.$/, '').toLowerCase()] = v;
          return { ...cur, splitDns: next };
        });
        return { json: r.splitDns };
      },
    }),
  ];
}
