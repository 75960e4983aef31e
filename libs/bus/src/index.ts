/** Public API of @switchboard/bus: the Bus contract and its NATS and in-process implementations. */
export type {
  Bus,
  BusEvent,
  ConsumeOptions,
  PublishEventOptions,
  RequestOptions,
  Subscription,
} from './bus.js';
export { connectNatsBus, NatsBus, DEFAULT_STREAM, type NatsBusOptions } from './nats-bus.js';
export { createInProcessBus, InProcessBus, type InProcessBusOptions } from './in-process-bus.js';
export {
  BUS_MAX_JSON_DEPTH,
  BusClosedError,
  DEFAULT_MAX_PAYLOAD_BYTES,
  decodeReply,
  encodePayload,
  handleRequest,
  type ErrorBody,
  type ReplyEnvelope,
} from './envelope.js';
export { subjectMatches, assertSubject } from './subject.js';
