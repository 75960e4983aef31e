/**
 * Typed request/reply over the bus: an Rpc pairs a subject with its request and response schemas.
 * `serveRpc` validates requests where they enter the serving service; `callRpc` validates replies
 * where they enter the caller. Subjects are defined only in this package.
 */
import type { Bus, RequestOptions, Subscription } from '@switchboard/bus';
import type { ZodTypeAny, z } from 'zod';
import { validateMessage } from './common.js';

export interface Rpc<Req extends ZodTypeAny, Res extends ZodTypeAny> {
  readonly subject: string;
  readonly request: Req;
  readonly response: Res;
}

export function defineRpc<Req extends ZodTypeAny, Res extends ZodTypeAny>(
  subject: string,
  request: Req,
  response: Res,
): Rpc<Req, Res> {
  return { subject, request, response };
}

export async function callRpc<Req extends ZodTypeAny, Res extends ZodTypeAny>(
  bus: Bus,
  rpc: Rpc<Req, Res>,
  req: z.input<Req>,
  opts?: RequestOptions,
): Promise<z.infer<Res>> {
  const raw = await bus.request(rpc.subject, req, opts);
  return validateMessage(rpc.response, raw, `reply on ${rpc.subject}`);
}

export function serveRpc<Req extends ZodTypeAny, Res extends ZodTypeAny>(
  bus: Bus,
  rpc: Rpc<Req, Res>,
  queue: string,
  handler: (req: z.infer<Req>) => Promise<z.input<Res>>,
): Subscription {
  return bus.serve(rpc.subject, queue, async (payload) => {
    const req = validateMessage(rpc.request, payload, `request on ${rpc.subject}`);
    return handler(req);
  });
}

/** A durable event type: subject + payload schema. */
export interface EventType<P extends ZodTypeAny> {
  readonly subject: string;
  readonly payload: P;
}

export function defineEvent<P extends ZodTypeAny>(subject: string, payload: P): EventType<P> {
  return { subject, payload };
}

/** A best-effort broadcast (not stored): subject + payload schema. */
export type Broadcast<P extends ZodTypeAny> = EventType<P>;
export const defineBroadcast = defineEvent;

export function publishBroadcast<P extends ZodTypeAny>(bus: Bus, b: Broadcast<P>, payload: z.input<P>): void {
  bus.publish(b.subject, payload);
}

export function subscribeBroadcast<P extends ZodTypeAny>(
  bus: Bus,
  b: Broadcast<P>,
  handler: (payload: z.infer<P>) => void,
  onInvalid: (err: unknown) => void,
): Subscription {
  return bus.subscribe(b.subject, (raw) => {
    let msg: z.infer<P>;
    try {
      msg = validateMessage(b.payload, raw, `broadcast on ${b.subject}`);
    } catch (err) {
      onInvalid(err);
      return;
    }
    handler(msg);
  });
}
