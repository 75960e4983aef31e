export * from './identity.errors.js';
export * from './identity.service.js';
export * from './identity.runtime.js';
export * from './identity.module.js';
export * from './admin/admin.server.js';
export { statusForCode } from './admin/admin.errors.js';
export { registerSamlFactory, type SamlFactory, type LoginOptions } from './login/login.runtime.js';
export { LoginRefused, type LoginProvider, type VerifiedIdentity } from './login/provider.js';
