/**
 * @switchboard/derp: the DERP relay protocol (frames, bounds, the NaCl-boxed handshake) and the
 * STUN subset tailscale uses. Pure: no sockets, no timers, no environment.
 */
export * from './frames.js';
export { FrameReader, type FrameHandler } from './frame-reader.js';
export {
  BoxKey,
  encodeClientInfo,
  encodeServerInfo,
  generateKeyPair,
  meshKeyEqual,
  openClientInfo,
  openServerInfo,
  openWithShared,
  parseClientInfoJson,
  publicFromPrivate,
  sealWithShared,
  type ClientInfo,
  type OpenedClientInfo,
} from './handshake.js';
export {
  bindingRequest,
  bindingResponse,
  looksLikeStun,
  parseBindingRequest,
  parseBindingResponse,
} from './stun.js';
