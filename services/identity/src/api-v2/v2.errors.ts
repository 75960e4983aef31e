/** Errors of the admin API v2, answered in Tailscale's shape `{"message": …}` (plus our code and hint). */
import { SwitchboardError } from '@switchboard/common';

export type V2ErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'invalid_input'
  | 'conflict'
  | 'precondition_failed'
  | 'method_not_allowed'
  | 'not_implemented';

export const V2_STATUS: Readonly<Record<V2ErrorCode, number>> = {
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  invalid_input: 400,
  conflict: 409,
  precondition_failed: 412,
  method_not_allowed: 405,
  not_implemented: 501,
};

export class V2Error extends SwitchboardError {
  constructor(
    override readonly code: V2ErrorCode,
    message: string,
    hint?: string,
  ) {
    super(code, message, hint);
  }
}

export const notFound = (what: string): V2Error => new V2Error('not_found', `${what} not found`);
