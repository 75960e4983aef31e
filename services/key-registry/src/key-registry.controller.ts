/** Transport handlers only: binds key-registry's bus subjects to the service. */
import type { Bus, Subscription } from '@switchboard/bus';
import { keyRegistry, fanout, serveRpc, subscribeBroadcast } from '@switchboard/contracts';
import type { Logger } from '@switchboard/common';
import type { KeyRegistryService } from './key-registry.service.js';

const Q = keyRegistry.KEY_REGISTRY_QUEUE;

export function bindKeyRegistry(bus: Bus, svc: KeyRegistryService, log: Logger): Subscription[] {
  const { registration: reg, nodes, keys } = svc;
  return [
    serveRpc(bus, keyRegistry.Register, Q, (req) => reg.register(req)),
    serveRpc(bus, keyRegistry.UpdateNode, Q, (req) => nodes.updateNode(req)),
    serveRpc(bus, keyRegistry.GetNodeByKey, Q, (req) => nodes.getNodeByKey(req.machineKey, req.nodeKey)),
    serveRpc(bus, keyRegistry.ListNodes, Q, async (req) => ({ nodes: await nodes.listNodes(req) })),
    serveRpc(bus, keyRegistry.DeleteNode, Q, async (req) => ({ node: await nodes.deleteNode(req.nodeId) })),
    serveRpc(bus, keyRegistry.ExpireNode, Q, async (req) => ({
      node: await nodes.expireNode(req.nodeId, req.at),
    })),
    serveRpc(bus, keyRegistry.TagNode, Q, async (req) => ({
      node: await nodes.tagNode(req.nodeId, req.tags),
    })),
    serveRpc(bus, keyRegistry.SetApprovedRoutes, Q, async (req) => ({
      node: await nodes.setApprovedRoutes(req.nodeId, req.routes),
    })),
    serveRpc(bus, keyRegistry.ApproveNode, Q, async (req) => ({ node: await nodes.approveNode(req.nodeId) })),
    serveRpc(bus, keyRegistry.GetPendingLogin, Q, async (req) => ({
      login: await svc.logins.get(req.loginId),
    })),
    serveRpc(bus, keyRegistry.CompleteLogin, Q, (req) => svc.logins.complete(req.loginId, req.userId)),
    serveRpc(bus, keyRegistry.SetNodeFields, Q, async (req) => ({ node: await nodes.setNodeFields(req) })),
    serveRpc(bus, keyRegistry.Snapshot, Q, () => nodes.snapshot()),
    serveRpc(bus, keyRegistry.CreatePreAuthKey, Q, (req) => keys.create(req)),
    serveRpc(bus, keyRegistry.ListPreAuthKeys, Q, async (req) => ({
      keys: await keys.list(req.userId),
    })),
    serveRpc(bus, keyRegistry.ExpirePreAuthKey, Q, async (req) => ({
      record: await keys.expire(req),
    })),
    subscribeBroadcast(
      bus,
      fanout.Presence,
      (p) => {
        nodes.recordPresence(p.nodeId, p.online, new Date(p.at)).catch((err: unknown) => {
          log.error('could not record node presence', { nodeId: p.nodeId, err });
        });
      },
      (err) => log.warn('ignored malformed presence message', { err }),
    ),
  ];
}
