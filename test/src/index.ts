/**
 * @switchboard/e2e: cross-service, real-client and browser tests. The package's public surface is
 * the real-client harness (./harness), used by the interop tests and the benchmark.
 */
export * from './harness/index.js';
