/** Transport handlers only: binds key-registry's bus subjects to the service. */
import type { Bus, Subscription } from '@switchboard/bus';
import { keyRegistry, fanout, serveRpc, subscribeBroadcast } from '@switchboard/contracts';
import type { Logger } from '@switchboard/common';
import type { KeyRegistryService } from './key-registry.service.js';

const Q = keyRegistry.KEY_REGISTRY_QUEUE;

export function bindKeyRegistry(bus: Bus, svc: KeyRegistryService, log: Logger): Subscription[] {
  return [
    serveRpc(bus, keyRegistry.Register, Q, (req) => svc.register(req)),
    serveRpc(bus, keyRegistry.UpdateNode, Q, (req) => svc.updateNode(req)),
    serveRpc(bus, keyRegistry.GetNodeByKey, Q, (req) => svc.getNodeByKey(req.machineKey, req.nodeKey)),
    serveRpc(bus, keyRegistry.ListNodes, Q, async (req) => ({ nodes: await svc.listNodes(req) })),
    serveRpc(bus, keyRegistry.DeleteNode, Q, async (req) => ({ node: await svc.deleteNode(req.nodeId) })),
    serveRpc(bus, keyRegistry.ExpireNode, Q, async (req) => ({
      node: await svc.expireNode(req.nodeId, req.at),
    })),
    serveRpc(bus, keyRegistry.TagNode, Q, async (req) => ({ node: await svc.tagNode(req.nodeId, req.tags) })),
    serveRpc(bus, keyRegistry.SetApprovedRoutes, Q, async (req) => ({
      node: await svc.setApprovedRoutes(req.nodeId, req.routes),
    })),
    serveRpc(bus, keyRegistry.ApproveNode, Q, async (req) => ({ node: await svc.approveNode(req.nodeId) })),
    serveRpc(bus, keyRegistry.Snapshot, Q, () => svc.snapshot()),
    serveRpc(bus, keyRegistry.CreatePreAuthKey, Q, (req) => svc.createPreAuthKey(req)),
    serveRpc(bus, keyRegistry.ListPreAuthKeys, Q, async (req) => ({
      keys: await svc.listPreAuthKeys(req.userId),
    })),
    serveRpc(bus, keyRegistry.ExpirePreAuthKey, Q, async (req) => ({
      record: await svc.expirePreAuthKey(req),
    })),
    subscribeBroadcast(
      bus,
      fanout.Presence,
      (p) => {
        svc.recordPresence(p.nodeId, p.online, new Date(p.at)).catch((err: unknown) => {
          log.error('could not record node presence', { nodeId: p.nodeId, err });
        });
      },
      (err) => log.warn('ignored malformed presence message', { err }),
    ),
  ];
}
