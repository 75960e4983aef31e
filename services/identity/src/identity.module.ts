/** Nest module for identity. */
import {
  Inject,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { IdentityRuntime, type IdentityRuntimeOptions } from './identity.runtime.js';

export const IDENTITY_RUNTIME = Symbol('IDENTITY_RUNTIME');

class IdentityLifecycle implements OnModuleInit, OnApplicationShutdown {
  constructor(@Inject(IDENTITY_RUNTIME) private readonly runtime: IdentityRuntime) {}
  async onModuleInit(): Promise<void> {
    await this.runtime.start();
  }
  async onApplicationShutdown(): Promise<void> {
    await this.runtime.stop();
  }
}

@Module({})
export class IdentityModule {
  static forRoot(opts: IdentityRuntimeOptions): DynamicModule {
    return {
      module: IdentityModule,
      providers: [
        { provide: IDENTITY_RUNTIME, useFactory: () => new IdentityRuntime(opts) },
        IdentityLifecycle,
      ],
      exports: [IDENTITY_RUNTIME],
    };
  }
}
