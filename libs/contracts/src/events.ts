/**
 * Durable events (JetStream stream `events.>`), past tense, written through each service's outbox in
 * the same transaction as the state change they describe.
 */
import { z } from 'zod';
import { defineEvent, type EventType } from './rpc.js';
import {
  NodeRecordSchema,
  PolicyRecordSchema,
  TailnetDnsRecordSchema,
  TailnetRecordSchema,
  UserRecordSchema,
} from './records.js';

export const NodeUpserted = defineEvent('events.v1.node-upserted', z.object({ node: NodeRecordSchema }));
export const NodeRemoved = defineEvent(
  'events.v1.node-removed',
  z.object({
    nodeId: z.number().int().positive(),
    tailnetId: z.number().int().positive(),
    version: z.number().int().nonnegative(),
    reason: z.enum(['deleted', 'logout-ephemeral', 'ephemeral-inactive', 'user-deleted']),
  }),
);
export const UserUpserted = defineEvent('events.v1.user-upserted', z.object({ user: UserRecordSchema }));
export const UserRemoved = defineEvent(
  'events.v1.user-removed',
  z.object({
    userId: z.number().int().positive(),
    tailnetId: z.number().int().positive(),
    version: z.number().int().nonnegative(),
  }),
);
export const TailnetUpserted = defineEvent(
  'events.v1.tailnet-upserted',
  z.object({ tailnet: TailnetRecordSchema }),
);
export const PolicyChanged = defineEvent(
  'events.v1.policy-changed',
  z.object({ policy: PolicyRecordSchema }),
);
export const TailnetDnsUpserted = defineEvent(
  'events.v1.tailnet-dns-upserted',
  z.object({ dns: TailnetDnsRecordSchema }),
);

/** Every event type, for consumers that dispatch on subject. */
export const allEvents: readonly EventType<z.ZodTypeAny>[] = [
  NodeUpserted,
  NodeRemoved,
  UserUpserted,
  UserRemoved,
  TailnetUpserted,
  PolicyChanged,
  TailnetDnsUpserted,
];

/** Subject filter matching every Switchboard event. */
export const ALL_EVENTS_FILTER = 'events.v1.>';
