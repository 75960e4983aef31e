/**
 * controlbase wire constants and small frame helpers: message types, sizes, and the unencrypted
 * error frame. Multi-byte header fields are big-endian (unlike the map-frame length prefix).
 */
import { ProtocolError } from '../errors.js';

export const MSG_TYPE_INITIATION = 1;
export const MSG_TYPE_RESPONSE = 2;
export const MSG_TYPE_ERROR = 3;
export const MSG_TYPE_RECORD = 4;

/** Header of every frame except the initiation: type (1) + u16BE length. */
export const HEADER_LEN = 3;
/** Initiation header: u16BE version + type (1) + u16BE length. */
export const INITIATION_HEADER_LEN = 5;
/** 5-byte header + 32-byte ephemeral + 48-byte encrypted machine key + 16-byte tag. */
export const INITIATION_LEN = 101;
export const INITIATION_PAYLOAD_LEN = INITIATION_LEN - INITIATION_HEADER_LEN;
/** 3-byte header + 32-byte ephemeral + 16-byte tag. */
export const RESPONSE_LEN = 51;
export const RESPONSE_PAYLOAD_LEN = RESPONSE_LEN - HEADER_LEN;
export const TAG_LEN = 16;
/** Largest frame on the wire, header included (controlbase maxMessageSize). */
export const MAX_FRAME_SIZE = 4096;
export const MAX_CIPHERTEXT_SIZE = MAX_FRAME_SIZE - HEADER_LEN;
/** Largest plaintext one transport record carries. */
export const MAX_PLAINTEXT_SIZE = MAX_CIPHERTEXT_SIZE - TAG_LEN;
/** Error-frame text is limited by its u16 length field. */
export const MAX_ERROR_TEXT = 0xffff;

/** The Noise prologue: "Tailscale Control Protocol v" + version in decimal. */
export function protocolPrologue(version: number): Uint8Array {
  return Buffer.from(`Tailscale Control Protocol v${version}`, 'latin1');
}

/** An unencrypted error frame (type 3). The text is truncated to fit the u16 length. */
export function encodeErrorFrame(text: string): Buffer {
  let body = Buffer.from(text, 'utf8');
  if (body.length > MAX_ERROR_TEXT) body = body.subarray(0, MAX_ERROR_TEXT);
  const frame = Buffer.allocUnsafe(HEADER_LEN + body.length);
  frame[0] = MSG_TYPE_ERROR;
  frame.writeUInt16BE(body.length, 1);
  body.copy(frame, HEADER_LEN);
  return frame;
}

/** What the server sent in reply to the initiation, read from the start of a byte buffer. */
export type HandshakeReply =
  | { kind: 'incomplete' }
  | { kind: 'response'; message: Buffer; rest: Buffer }
  | { kind: 'error'; text: string; rest: Buffer };

/**
 * Reads the server's handshake reply (a 51-byte response or an error frame) from buffered bytes.
 * Throws ProtocolError for any other message type or a wrong response length, like controlbase.
 */
export function readHandshakeReply(buf: Buffer): HandshakeReply {
  if (buf.length < HEADER_LEN) return { kind: 'incomplete' };
  const type = buf[0]!;
  const len = buf.readUInt16BE(1);
  if (type === MSG_TYPE_ERROR) {
    if (buf.length < HEADER_LEN + len) return { kind: 'incomplete' };
    return {
      kind: 'error',
      text: buf.subarray(HEADER_LEN, HEADER_LEN + len).toString('utf8'),
      rest: buf.subarray(HEADER_LEN + len),
    };
  }
  if (type !== MSG_TYPE_RESPONSE)
    throw new ProtocolError('noise_handshake_failed', `unexpected response message type ${type}`);
  if (len !== RESPONSE_PAYLOAD_LEN)
    throw new ProtocolError('noise_handshake_failed', `wrong length ${len} received for handshake response`);
  if (buf.length < RESPONSE_LEN) return { kind: 'incomplete' };
  return { kind: 'response', message: buf.subarray(0, RESPONSE_LEN), rest: buf.subarray(RESPONSE_LEN) };
}
