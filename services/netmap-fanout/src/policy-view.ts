/**
 * The default policy (no policy document set): every node may reach every other node of its tailnet
 * on every port, so everyone sees everyone and every node gets the allow-all filter.
 */
import type { NodeRecord } from '@switchboard/contracts';
import type { PolicyView } from './fanout-engine.js';

export const ALLOW_ALL_FILTER_JSON = JSON.stringify([
  { SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] },
]);

export class AllowAllPolicyView implements PolicyView {
  canSee(viewer: NodeRecord, peer: NodeRecord): boolean {
    return viewer.tailnetId === peer.tailnetId && viewer.id !== peer.id;
  }
  filterJson(_viewer: NodeRecord): string {
    return ALLOW_ALL_FILTER_JSON;
  }
}
