/** Nest module for identity: owns the runtime's lifecycle inside a Nest application. */
import { runtimeModule } from '@switchboard/nest';
import type { DynamicModule } from '@nestjs/common';
import { IdentityRuntime, type IdentityRuntimeOptions } from './identity.runtime.js';

export const IDENTITY_RUNTIME = Symbol('IDENTITY_RUNTIME');

export const IdentityModule = {
  forRoot: (opts: IdentityRuntimeOptions): DynamicModule =>
    runtimeModule('IdentityModule', IDENTITY_RUNTIME, () => new IdentityRuntime(opts)),
};
