export * from './common.js';
export * from './records.js';
export * from './rpc.js';
export * from './events.js';
export * as keyRegistry from './key-registry.contract.js';
export * as identity from './identity.contract.js';
export * as policy from './policy-compiler.contract.js';
export * as fanout from './netmap-fanout.contract.js';
export type {
  RegisterInput,
  RegisterResult,
  UpdateNodeInput,
  PreAuthKeyRecord,
  PendingLoginRecord,
} from './key-registry.contract.js';
export type { ApiKeyRecord } from './identity.contract.js';
export type { PolicyVersion } from './policy-compiler.contract.js';
