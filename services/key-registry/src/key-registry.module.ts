/** Nest module for key-registry: owns the runtime's lifecycle inside a Nest application. */
import { runtimeModule } from '@switchboard/nest';
import type { DynamicModule } from '@nestjs/common';
import { KeyRegistryRuntime, type KeyRegistryRuntimeOptions } from './key-registry.runtime.js';

export const KEY_REGISTRY_RUNTIME = Symbol('KEY_REGISTRY_RUNTIME');

export const KeyRegistryModule = {
  forRoot: (opts: KeyRegistryRuntimeOptions): DynamicModule =>
    runtimeModule('KeyRegistryModule', KEY_REGISTRY_RUNTIME, () => new KeyRegistryRuntime(opts)),
};
