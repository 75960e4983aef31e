export * from './harness/index.js';
export * from './sim-node.js';
