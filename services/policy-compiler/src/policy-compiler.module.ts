/** Nest module for policy-compiler: owns the runtime's lifecycle inside a Nest application. */
import { runtimeModule } from '@switchboard/nest';
import type { DynamicModule } from '@nestjs/common';
import { PolicyCompilerRuntime, type PolicyRuntimeOptions } from './policy-compiler.runtime.js';

export const POLICY_RUNTIME = Symbol('POLICY_RUNTIME');

export const PolicyCompilerModule = {
  forRoot: (opts: PolicyRuntimeOptions): DynamicModule =>
    runtimeModule('PolicyCompilerModule', POLICY_RUNTIME, () => new PolicyCompilerRuntime(opts)),
};
