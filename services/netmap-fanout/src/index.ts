export * from './netmap-fanout.config.js';
export * from './netmap-fanout.runtime.js';
export * from './stream-registry.js';
export * from './read-model.js';
export * from './fanout-engine.js';
export * from './map-builder.js';
export { PolicyState } from './policy-state.js';
export * from './netmap-fanout.module.js';
