/** key-registry's closed set of error codes. Transports map them in one place each. */
import { SwitchboardError } from '@switchboard/common';

export type KeyRegistryErrorCode =
  | 'node_not_found'
  | 'machine_mismatch'
  | 'preauth_key_not_found'
  | 'user_not_found'
  | 'address_space_exhausted'
  | 'tags_not_allowed'
  | 'conflict';

export class KeyRegistryError extends SwitchboardError {
  constructor(
    override readonly code: KeyRegistryErrorCode,
    message: string,
    hint?: string,
  ) {
    super(code, message, hint);
  }
}

export function nodeNotFound(nodeId: number): KeyRegistryError {
  return new KeyRegistryError(
    'node_not_found',
    `no node with id ${nodeId}`,
    'list nodes with "switchboard nodes list"',
  );
}
