/** netmap-fanout: broadcasts between replicas about live map streams (not stored; Redis holds truth). */
import { z } from 'zod';
import { defineBroadcast } from './rpc.js';

/** A replica took over a node's map stream; any other replica holding one for that node closes it. */
export const StreamClaimed = defineBroadcast(
  'fanout.v1.stream-claimed',
  z.object({ nodeId: z.number().int().positive(), replicaId: z.string(), streamId: z.string() }),
);

/** A node's stream opened or closed somewhere: peers learn Online/LastSeen, key-registry records last-seen. */
export const Presence = defineBroadcast(
  'fanout.v1.presence',
  z.object({
    nodeId: z.number().int().positive(),
    tailnetId: z.number().int().positive(),
    online: z.boolean(),
    at: z.string(),
    replicaId: z.string(),
  }),
);

/**
 * A replica's embedded DERP relay is up at `url` (sent every few seconds): the other replicas' relays
 * mesh with it, and forget it when the announcements stop.
 */
export const DerpRelayAnnounced = defineBroadcast(
  'fanout.v1.derp-relay',
  z.object({ replicaId: z.string(), url: z.string().url(), relayKey: z.string() }),
);
