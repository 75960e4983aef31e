export * from './errors.js';
export * from './logger.js';
export * from './config.js';
export * from './bytes.js';
export * from './json-limits.js';
export * from './rate-limit.js';
export * from './source-key.js';
