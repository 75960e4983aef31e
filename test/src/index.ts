export * from './harness/index.js';
export * from './sim-node.js';
export * from './scenarios/spine-scenario.js';
export * from './scenarios/embedded-server.js';
