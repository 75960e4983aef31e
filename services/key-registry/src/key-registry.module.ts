/** Nest module for key-registry: owns the runtime's lifecycle inside a Nest application. */
import {
  Inject,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { KeyRegistryRuntime, type KeyRegistryRuntimeOptions } from './key-registry.runtime.js';

export const KEY_REGISTRY_RUNTIME = Symbol('KEY_REGISTRY_RUNTIME');

class KeyRegistryLifecycle implements OnModuleInit, OnApplicationShutdown {
  constructor(@Inject(KEY_REGISTRY_RUNTIME) private readonly runtime: KeyRegistryRuntime) {}
  async onModuleInit(): Promise<void> {
    await this.runtime.start();
  }
  async onApplicationShutdown(): Promise<void> {
    await this.runtime.stop();
  }
}

@Module({})
export class KeyRegistryModule {
  static forRoot(opts: KeyRegistryRuntimeOptions): DynamicModule {
    return {
      module: KeyRegistryModule,
      providers: [
        { provide: KEY_REGISTRY_RUNTIME, useFactory: () => new KeyRegistryRuntime(opts) },
        KeyRegistryLifecycle,
      ],
      exports: [KEY_REGISTRY_RUNTIME],
    };
  }
}
