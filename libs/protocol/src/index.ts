/**
 * @switchboard/protocol: the pure protocol library of Switchboard. Keys and their text forms,
 * Tailscale's Noise IK (controlbase), the /ts2021 upgrade, HTTP/2 over Noise, map framing with
 * zstd, the tailcfg JSON types with boundary schemas, capability versions, and a client for tests
 * and load generation. Everything public is exported from here.
 */
export * from './errors.js';
export * from './keys.js';
export * from './capver.js';
export * from './tailcfg.js';
export * from './early-payload.js';
export {
  NOISE_PROTOCOL_NAME,
  ClientHandshake,
  HandshakeRejection,
  acceptInitiation,
  initiate,
  parseInitiationHeader,
  type AcceptedHandshake,
  type HandshakeOptions,
  type InitiationHeader,
  type NoiseSession,
} from './noise/handshake.js';
export {
  HEADER_LEN,
  INITIATION_LEN,
  MAX_FRAME_SIZE,
  MAX_PLAINTEXT_SIZE,
  MSG_TYPE_ERROR,
  MSG_TYPE_INITIATION,
  MSG_TYPE_RECORD,
  MSG_TYPE_RESPONSE,
  RESPONSE_LEN,
  encodeErrorFrame,
  protocolPrologue,
  readHandshakeReply,
  type HandshakeReply,
} from './noise/messages.js';
export { TransportCipher } from './noise/transport-cipher.js';
export { NoiseConn, type NoiseConnOptions } from './noise/noise-conn.js';
export * from './ts2021-server.js';
export * from './noise-http2-server.js';
export {
  DEFAULT_MAX_DECOMPRESSED,
  DEFAULT_ZSTD_LEVEL,
  initZstd,
  zstdBackendName,
  zstdCompress,
  zstdDecompress,
  zstdRawFrame,
  type ZstdBackendName,
} from './zstd.js';
export * from './map-framing.js';
export * from './client/dial.js';
export * from './client/server-key.js';
export * from './client/control-client.js';
export * from './tailcfg-schema.js';
export * from './route-prefix.js';
export * from './legacy/index.js';
