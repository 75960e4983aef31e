/** identity's closed set of error codes. */
import { SwitchboardError } from '@switchboard/common';

export type IdentityErrorCode =
  | 'user_not_found'
  | 'user_exists'
  | 'user_has_nodes'
  | 'api_key_not_found'
  | 'login_not_found'
  | 'login_refused';

export class IdentityError extends SwitchboardError {
  constructor(
    override readonly code: IdentityErrorCode,
    message: string,
    hint?: string,
  ) {
    super(code, message, hint);
  }
}
