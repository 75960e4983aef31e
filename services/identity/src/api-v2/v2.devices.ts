/** `/api/v2` devices: list (`fields`, filters), get, delete, authorize, name, tags, key expiry, routes. */
import { callRpc, keyRegistry, type NodeRecord } from '@switchboard/contracts';
import { ValidationError } from '@switchboard/common';
import { routePrefixProblem } from '@switchboard/protocol';
import { z } from 'zod';
import { route, type ApiRoute } from './v2.route.js';
import type { V2Deps } from './v2.deps.js';
import { notFound } from './v2.errors.js';
import { tailnetSettings } from './v2.settings.js';

const tagName = z.string().regex(/^tag:[a-zA-Z][a-zA-Z0-9-]*$/, 'tags look like tag:name');

export const DeviceSchema = z.object({
  addresses: z.array(z.string()),
  id: z.string(),
  nodeId: z.string(),
  user: z.string(),
  name: z.string(),
  hostname: z.string(),
  clientVersion: z.string(),
  updateAvailable: z.boolean(),
  os: z.string(),
  created: z.string(),
  lastSeen: z.string().optional(),
  connectedToControl: z.boolean(),
  keyExpiryDisabled: z.boolean(),
  expires: z.string(),
  authorized: z.boolean(),
  isExternal: z.boolean(),
  machineKey: z.string(),
  nodeKey: z.string(),
  blocksIncomingConnections: z.boolean(),
  tailnetLockKey: z.string(),
  tailnetLockError: z.string(),
  tags: z.array(z.string()),
  isEphemeral: z.boolean(),
  enabledRoutes: z.array(z.string()).optional(),
  advertisedRoutes: z.array(z.string()).optional(),
});
const DeviceRoutesSchema = z.object({
  advertisedRoutes: z.array(z.string()),
  enabledRoutes: z.array(z.string()),
});
const fieldsQuery = z.object({ fields: z.enum(['all', 'default']).optional() }).passthrough();
const deviceParams = z.object({ deviceId: z.string().min(1).max(64) });
const tailnetParams = z.object({ tailnet: z.string().min(1) });

const ZERO = '0001-01-01T00:00:00Z';

export function renderDevice(
  n: NodeRecord,
  ctx: { domain: string; loginOf: (userId: number | null) => string; all: boolean },
): z.infer<typeof DeviceSchema> {
  const hi = n.hostinfo ?? {};
  const str = (k: string): string => (typeof hi[k] === 'string' ? hi[k] : '');
  const d: z.infer<typeof DeviceSchema> = {
    addresses: [n.ipv4, n.ipv6],
    id: String(n.id),
    nodeId: n.stableId,
    user: n.userId === null ? 'tagged-devices' : ctx.loginOf(n.userId),
    name: `${n.givenName}.${ctx.domain}`,
    hostname: n.hostname,
    clientVersion: str('IPNVersion'),
    updateAvailable: false,
    os: str('OS'),
    created: n.createdAt,
    connectedToControl: false,
    keyExpiryDisabled: n.keyExpiry === null,
    expires: n.keyExpiry ?? ZERO,
    authorized: n.machineAuthorized,
    isExternal: false,
    machineKey: n.machineKey,
    nodeKey: n.nodeKey,
    blocksIncomingConnections: hi['ShieldsUp'] === true,
    tailnetLockKey: '',
    tailnetLockError: '',
    tags: n.tags,
    isEphemeral: n.ephemeral,
  };
  if (n.lastSeen !== null) d.lastSeen = n.lastSeen;
  if (ctx.all) {
    d.enabledRoutes = n.approvedRoutes;
    d.advertisedRoutes = n.routableIPs;
  }
  return d;
}

async function tailnetNodes(d: V2Deps, tailnetId: number): Promise<NodeRecord[]> {
  return (await callRpc(d.bus, keyRegistry.ListNodes, { tailnetId })).nodes;
}

/** The device `{deviceId}` (numeric id or stable nodeId) of the caller's tailnet; 404 otherwise. */
export async function deviceOf(d: V2Deps, tailnetId: number, ref: string): Promise<NodeRecord> {
  const n = (await tailnetNodes(d, tailnetId)).find((x) => String(x.id) === ref || x.stableId === ref);
  if (!n) throw notFound(`device ${ref}`);
  return n;
}

async function renderCtx(d: V2Deps, tailnetId: number, all: boolean) {
  const users = new Map((await d.identity.listUsers()).map((u) => [u.id, u.loginName]));
  const domain = d.nodeOwners.tailnets.get(tailnetId)?.domain ?? 'switchboard.internal';
  return {
    domain,
    all,
    loginOf: (id: number | null) => (id === null ? '' : (users.get(id) ?? `user-${id}`)),
  };
}

function matchesFilters(dev: Record<string, unknown>, filters: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(filters)) {
    const have = dev[k];
    if (Array.isArray(have)) {
      if (!v.split(',').every((x) => have.includes(x))) return false;
    } else if (typeof have !== 'string' && typeof have !== 'number' && typeof have !== 'boolean')
      return false;
    else if (String(have) !== v) return false;
  }
  return true;
}

const EXAMPLE_DEVICE = {
  addresses: ['100.64.0.1', 'fd7a:115c:a1e0::1'],
  id: '1',
  nodeId: 'nAbCdEf1234',
  user: 'alice@example.com',
  name: 'laptop.switchboard.internal',
  hostname: 'laptop',
  clientVersion: '1.80.3',
  updateAvailable: false,
  os: 'linux',
  created: '2026-12-01T10:00:00.000Z',
  connectedToControl: false,
  keyExpiryDisabled: false,
  expires: '2027-05-30T10:00:00.000Z',
  authorized: true,
  isExternal: false,
  machineKey: `mkey:${'a'.repeat(64)}`,
  nodeKey: `nodekey:${'b'.repeat(64)}`,
  blocksIncomingConnections: false,
  tailnetLockKey: '',
  tailnetLockError: '',
  tags: [],
  isEphemeral: false,
};

export function deviceRoutes(d: V2Deps): ApiRoute[] {
  return [...deviceRoutesTagsKeysRoutesasic(d), ...deviceRoutesTagsKeysRoutes(d)];
}

function deviceRoutesTagsKeysRoutesasic(d: V2Deps): ApiRoute[] {
  const setFields = async (
    nodeId: number,
    f: Omit<z.input<typeof keyRegistry.SetNodeFields.request>, 'nodeId'>,
  ) => (await callRpc(d.bus, keyRegistry.SetNodeFields, { nodeId, ...f })).node;
  return [
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/devices',
      operationId: 'listTailnetDevices',
      summary: 'List the devices of a tailnet; top-level fields filter by exact match',
      tag: 'devices',
      access: { scope: 'devices:core', write: false },
      params: tailnetParams,
      query: fieldsQuery,
      response: z.object({ devices: z.array(DeviceSchema) }),
      examples: { response: { devices: [EXAMPLE_DEVICE] } },
      handler: async (c) => {
        const { fields, ...filters } = c.query as { fields?: string } & Record<string, string>;
        const rc = await renderCtx(d, c.tailnetId, fields === 'all');
        const devices = (await tailnetNodes(d, c.tailnetId))
          .map((n) => renderDevice(n, rc))
          .filter((dev) => matchesFilters(dev, filters));
        return { json: { devices } };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v2/device/{deviceId}',
      operationId: 'getDevice',
      summary: 'One device, by nodeId or legacy numeric id',
      tag: 'devices',
      access: { scope: 'devices:core', write: false },
      params: deviceParams,
      query: fieldsQuery,
      response: DeviceSchema,
      examples: { response: EXAMPLE_DEVICE },
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        return { json: renderDevice(n, await renderCtx(d, c.tailnetId, c.query.fields === 'all')) };
      },
    }),
    route({
      method: 'DELETE',
      path: '/api/v2/device/{deviceId}',
      operationId: 'deleteDevice',
      summary: 'Delete a device',
      tag: 'devices',
      access: { scope: 'devices:core', write: true },
      params: deviceParams,
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        await callRpc(d.bus, keyRegistry.DeleteNode, { nodeId: n.id });
        return { audit: { target: `device:${n.stableId}`, before: n, after: null } };
      },
    }),
    route({
      method: 'POST',
      path: '/api/v2/device/{deviceId}/authorized',
      operationId: 'authorizeDevice',
      summary: 'Authorize or deauthorize a device',
      tag: 'devices',
      access: { scope: 'devices:core', write: true },
      params: deviceParams,
      body: z.object({ authorized: z.boolean() }),
      examples: { body: { authorized: true } },
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        const after = await setFields(n.id, { machineAuthorized: c.body.authorized });
        return {
          audit: {
            target: `device:${n.stableId}`,
            before: { authorized: n.machineAuthorized },
            after: { authorized: after.machineAuthorized },
          },
        };
      },
    }),
    route({
      method: 'POST',
      path: '/api/v2/device/{deviceId}/name',
      operationId: 'setDeviceName',
      summary: 'Rename a device (its MagicDNS name); empty resets it to the hostname',
      tag: 'devices',
      access: { scope: 'devices:core', write: true },
      params: deviceParams,
      body: z.object({ name: z.string().max(253) }),
      examples: { body: { name: 'build-server' } },
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        const domain = d.nodeOwners.tailnets.get(c.tailnetId)?.domain ?? '';
        let name = c.body.name.replace(/\.$/, '');
        if (domain && name.endsWith(`.${domain}`)) name = name.slice(0, -domain.length - 1);
        if (name.includes('.'))
          throw new ValidationError(`name "${c.body.name}" is not a name in this tailnet's domain ${domain}`);
        const after = await setFields(n.id, { givenName: name.toLowerCase() });
        return {
          audit: {
            target: `device:${n.stableId}`,
            before: { name: n.givenName },
            after: { name: after.givenName },
          },
        };
      },
    }),
  ];
}

function deviceRoutesTagsKeysRoutes(d: V2Deps): ApiRoute[] {
  const setFields = async (
    nodeId: number,
    f: Omit<z.input<typeof keyRegistry.SetNodeFields.request>, 'nodeId'>,
  ) => (await callRpc(d.bus, keyRegistry.SetNodeFields, { nodeId, ...f })).node;
  return [
    route({
      method: 'POST',
      path: '/api/v2/device/{deviceId}/tags',
      operationId: 'setDeviceTags',
      summary: 'Set the tags of a device',
      tag: 'devices',
      access: { scope: 'devices:core', write: true },
      params: deviceParams,
      body: z.object({ tags: z.array(tagName).max(64) }),
      examples: { body: { tags: ['tag:server'] } },
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        if (c.body.tags.length === 0)
          throw new ValidationError(
            'a tagged device cannot be given back to a user by removing its tags',
            'log the device in again as a user ("tailscale up --force-reauth")',
          );
        const after = (await callRpc(d.bus, keyRegistry.TagNode, { nodeId: n.id, tags: c.body.tags })).node;
        return {
          audit: { target: `device:${n.stableId}`, before: { tags: n.tags }, after: { tags: after.tags } },
        };
      },
    }),
    route({
      method: 'POST',
      path: '/api/v2/device/{deviceId}/key',
      operationId: 'setDeviceKey',
      summary: 'Turn key expiry off or on for a device',
      tag: 'devices',
      access: { scope: 'devices:core', write: true },
      params: deviceParams,
      body: z.object({ keyExpiryDisabled: z.boolean() }),
      examples: { body: { keyExpiryDisabled: true } },
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        let keyExpiry: string | null = null;
        if (!c.body.keyExpiryDisabled) {
          if (n.keyExpiry !== null) return { audit: { target: `device:${n.stableId}` } };
          const days = (await tailnetSettings(d, c.tailnetId)).devicesKeyDurationDays;
          keyExpiry = new Date(Date.now() + days * 86_400_000).toISOString();
        }
        const after = await setFields(n.id, { keyExpiry });
        return {
          audit: {
            target: `device:${n.stableId}`,
            before: { expires: n.keyExpiry },
            after: { expires: after.keyExpiry },
          },
        };
      },
    }),
    route({
      method: 'POST',
      path: '/api/v2/device/{deviceId}/expire',
      operationId: 'expireDeviceKey',
      summary: "Expire a device's key now",
      tag: 'devices',
      access: { scope: 'devices:core', write: true },
      params: deviceParams,
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        const after = (await callRpc(d.bus, keyRegistry.ExpireNode, { nodeId: n.id })).node;
        return {
          audit: {
            target: `device:${n.stableId}`,
            before: { expires: n.keyExpiry },
            after: { expires: after.keyExpiry },
          },
        };
      },
    }),
    route({
      method: 'GET',
      path: '/api/v2/device/{deviceId}/routes',
      operationId: 'getDeviceRoutes',
      summary: 'Routes a device advertises and those enabled',
      tag: 'devices',
      access: { scope: 'devices:routes', write: false },
      params: deviceParams,
      response: DeviceRoutesSchema,
      examples: { response: { advertisedRoutes: ['10.0.0.0/24'], enabledRoutes: [] } },
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        return { json: { advertisedRoutes: n.routableIPs, enabledRoutes: n.approvedRoutes } };
      },
    }),
    route({
      method: 'POST',
      path: '/api/v2/device/{deviceId}/routes',
      operationId: 'setDeviceRoutes',
      summary: 'Replace the enabled routes of a device',
      tag: 'devices',
      access: { scope: 'devices:routes', write: true },
      params: deviceParams,
      body: z.object({ routes: z.array(z.string().max(64)).max(1000) }),
      response: DeviceRoutesSchema,
      examples: {
        body: { routes: ['10.0.0.0/24'] },
        response: { advertisedRoutes: ['10.0.0.0/24'], enabledRoutes: ['10.0.0.0/24'] },
      },
      handler: async (c) => {
        const n = await deviceOf(d, c.tailnetId, c.params.deviceId);
        for (const r of c.body.routes) {
          const problem = routePrefixProblem(r);
          if (problem !== undefined) throw new ValidationError(`route ${r}: ${problem}`);
        }
        const after = (
          await callRpc(d.bus, keyRegistry.SetApprovedRoutes, { nodeId: n.id, routes: c.body.routes })
        ).node;
        const enabled = after.approvedRoutes;
        return {
          json: { advertisedRoutes: after.routableIPs, enabledRoutes: enabled },
          audit: {
            target: `device:${n.stableId}`,
            before: { routes: n.approvedRoutes },
            after: { routes: after.approvedRoutes },
          },
        };
      },
    }),
  ];
}
