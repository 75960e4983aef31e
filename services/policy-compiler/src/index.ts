export * from './policy-compiler.service.js';
export * from './policy-compiler.runtime.js';
export * from './policy-compiler.module.js';
export * from './policy-compiler.errors.js';
export { lineDiff } from './line-diff.js';
