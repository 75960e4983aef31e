/**
 * Protocol errors: one class with a closed set of codes for everything that can go wrong on the
 * wire (Noise handshake and records, the /ts2021 upgrade, map framing, zstd, control HTTP calls).
 * Input that fails schema validation uses ValidationError from @switchboard/common instead.
 */
import { SwitchboardError } from '@switchboard/common';

export type ProtocolErrorCode =
  | 'noise_handshake_failed'
  | 'noise_server_error'
  | 'noise_frame_invalid'
  | 'noise_decrypt_failed'
  | 'noise_cipher_exhausted'
  | 'noise_closed'
  | 'upgrade_failed'
  | 'early_payload_invalid'
  | 'map_frame_invalid'
  | 'zstd_failed'
  | 'body_too_large'
  | 'control_http_error'
  | 'legacy_box_invalid'
  | 'legacy_replay'
  | 'timeout';

export class ProtocolError extends SwitchboardError {
  declare readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, hint?: string, details?: Record<string, unknown>) {
    super(code, message, hint, details);
  }
}

/** A control-server HTTP answer other than the expected status; keeps the status and a body excerpt. */
export class ControlHttpError extends ProtocolError {
  constructor(
    readonly status: number,
    readonly path: string,
    readonly bodyExcerpt: string,
  ) {
    super('control_http_error', `${path}: http ${status}: ${bodyExcerpt}`);
  }
}
