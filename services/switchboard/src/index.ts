export * from './serve.js';
export * from './service.js';
export * from './cli.js';
export * from './admin-client.js';
export * from './config.js';
