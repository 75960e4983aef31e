/** Transport handlers only: binds identity's bus subjects to the service. */
import type { Bus, Subscription } from '@switchboard/bus';
import { identity, serveRpc, type TailnetDnsRecord } from '@switchboard/contracts';
import type { IdentityService } from './identity.service.js';

const Q = identity.IDENTITY_QUEUE;

export function bindIdentity(
  bus: Bus,
  svc: IdentityService,
  dns: () => Promise<TailnetDnsRecord[]>,
): Subscription[] {
  return [
    serveRpc(bus, identity.CreateUser, Q, async (req) => ({ user: await svc.createUser(req) })),
    serveRpc(bus, identity.ListUsers, Q, async () => ({ users: await svc.listUsers() })),
    serveRpc(bus, identity.GetUser, Q, async (req) => ({ user: await svc.getUser(req) })),
    serveRpc(bus, identity.DeleteUser, Q, async (req) => ({ user: await svc.deleteUser(req.id) })),
    serveRpc(bus, identity.IdentitySnapshot, Q, async () => ({
      users: await svc.listUsers(),
      dns: await dns(),
    })),
    serveRpc(bus, identity.CreateApiKey, Q, (req) => svc.createApiKey(req.expiresAt)),
    serveRpc(bus, identity.ListApiKeys, Q, async () => ({ keys: await svc.listApiKeys() })),
    serveRpc(bus, identity.ExpireApiKey, Q, async (req) => ({ record: await svc.expireApiKey(req.prefix) })),
    serveRpc(bus, identity.VerifyApiKey, Q, (req) => svc.verifyApiKey(req.key)),
  ];
}
