export * from './key-registry.config.js';
export * from './key-registry.errors.js';
export * from './key-registry.service.js';
export * from './key-registry.runtime.js';
export * from './key-registry.module.js';
