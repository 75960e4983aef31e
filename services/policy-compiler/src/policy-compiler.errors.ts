/** policy-compiler's closed set of error codes (invalid policies raise the policy lib's PolicyError). */
import { SwitchboardError } from '@switchboard/common';

export type PolicyCompilerErrorCode = 'policy_version_not_found';

export class PolicyCompilerError extends SwitchboardError {
  constructor(
    override readonly code: PolicyCompilerErrorCode,
    message: string,
    hint?: string,
  ) {
    super(code, message, hint);
  }
}
